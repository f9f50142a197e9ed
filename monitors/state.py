"""The one state format of the core: plain JSON data, checked field by field when read back.

A monitor's state is everything it needs to go on exactly where it was, as
a ``dict`` of JSON values (numbers, strings, booleans, None, lists and
nested dicts): it goes through ``json.dumps`` and back unchanged, and can be
kept outside the process without pickling, so that reading it back runs no
code of its own. Every stateful monitor follows :class:`Stateful`:
``to_state()`` writes its state, the class method ``from_state(state)``
builds a monitor that behaves exactly as the one that wrote it.

The detectors at the bottom (the CUSUMs and the serial dependence of
:mod:`~driftline.monitors.sequential`, the calibrator, estimator and window
of :mod:`~driftline.monitors.estimation`) begin their state with two
fields, written by :func:`header`: ``kind``, the class's name, so that a
state is never read as another class's, and ``version``,
:data:`STATE_VERSION`, the layout of the other fields. Their
``from_state`` starts with :func:`check_header`, which refuses a state of
another kind or of a version this code cannot read, then checks every
other field with the validators here before trusting it: a damaged or
truncated state is refused with a ValueError that names the field, never
another exception from deep inside. The validators read with
``state.get``, so a missing field is refused like a wrong one.

The layout has had one version so far. A change to it bumps
:data:`STATE_VERSION`, and ``from_state`` then goes on reading the older
layouts it can convert, so that states saved before an upgrade load after
it.

The monitors made of those detectors
(:class:`~driftline.monitors.model.ModelMonitor`, the drift detectors of
:mod:`~driftline.monitors.feature_drift` and
:mod:`~driftline.monitors.multivariate`) write no header of their own:
they nest their parts' states, each with its header and checked as above,
and are read back whole only by the class that wrote them.

>>> state = {**header("Window"), "count": 3, "mean": 0.5}
>>> check_header(state, "Window")
>>> integer_field(state, "count"), number_field(state, "mean", minimum=0.0)
(3, 0.5)
>>> check_header({**state, "version": 99}, "Window")
Traceback (most recent call last):
...
ValueError: state: version 99 is not 1
>>> integer_field({**state, "count": -1}, "count")
Traceback (most recent call last):
...
ValueError: state: count must be an integer of at least 0, got -1
"""

import math
from collections.abc import Mapping
from typing import Any, Protocol, Self, TypeGuard, runtime_checkable

State = dict[str, Any]
"""A state as plain JSON values: what ``to_state`` writes."""

STATE_VERSION = 1
"""Version of the state layout that ``to_state`` writes, and the one ``from_state`` reads."""

MAX_INTEGER = 2**63 - 1
"""The largest integer a state holds: JSON readers elsewhere keep integers in 64 bits, and
no count of a monitor comes near it (so it also still converts to a float)."""


@runtime_checkable
class Stateful(Protocol):
    """A monitor whose state goes out as plain data and comes back as the same monitor.

    ``type(m).from_state(m.to_state())`` behaves exactly as ``m`` from then
    on, also after a round trip of the state through JSON. Some monitors
    take more, optionally: a flag to leave out a reference their owner keeps
    anyway, and that reference back when read.
    """

    def to_state(self) -> State:
        """Everything that decides the monitor's future, as JSON-ready data."""
        ...

    @classmethod
    def from_state(cls, state: Mapping[str, Any]) -> Self:
        """The monitor :meth:`to_state` described; ValueError if ``state`` is not one."""
        ...


def header(kind: str) -> State:
    """The first fields of a state of ``kind`` (a class name): that kind, and the version."""
    return {"kind": kind, "version": STATE_VERSION}


def check_header(state: object, kind: str) -> None:
    """Refuse (ValueError) anything but a mapping :func:`header` began for ``kind``.

    The version must be :data:`STATE_VERSION` itself, an integer: ``true``
    or ``1.0`` compare equal to 1 in Python, but no state was ever written
    with them.
    """
    if not isinstance(state, Mapping):
        raise ValueError(f"state: expected a mapping, got {type(state).__name__}")
    if state.get("kind") != kind:
        raise ValueError(f"state: kind {state.get('kind')!r} is not {kind!r}")
    version = state.get("version")
    if not is_integer(version) or version != STATE_VERSION:
        raise ValueError(f"state: version {version!r} is not {STATE_VERSION}")


def is_integer(value: object) -> TypeGuard[int]:
    """Whether ``value`` is a JSON integer: an ``int``, not a ``bool`` (JSON's true or false)."""
    return isinstance(value, int) and not isinstance(value, bool)


def integer_field(state: Mapping[str, Any], key: str, minimum: int = 0) -> int:
    """The field ``key``: an integer of at least ``minimum`` (a count by default).

    At most :data:`MAX_INTEGER`, too.
    """
    value = state.get(key)
    if not is_integer(value) or value < minimum:
        raise ValueError(f"state: {key} must be an integer of at least {minimum}, got {value!r}")
    if value > MAX_INTEGER:
        raise ValueError(f"state: {key} must be an integer of at most {MAX_INTEGER}")
    return value


def number_field(state: Mapping[str, Any], key: str, minimum: float = -math.inf) -> float:
    """The field ``key``: a finite number (an integer or a float) of at least ``minimum``."""
    return _number(state.get(key), key, minimum)


def numbers_field(state: Mapping[str, Any], key: str) -> list[float]:
    """The field ``key``: a list of finite numbers (integers or floats), as floats."""
    values = state.get(key)
    if not isinstance(values, list):
        raise ValueError(f"state: {key} must be a list of numbers, got {values!r}")
    return [_number(value, key) for value in values]


def _number(value: object, key: str, minimum: float = -math.inf) -> float:
    """``value`` as a float, or ValueError; an integer too large for a float is not finite."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ValueError(f"state: {key} must hold numbers, got {value!r}")
    try:
        result = float(value)
    except OverflowError:
        result = math.inf
    if not (math.isfinite(result) and result >= minimum):
        bound = "" if minimum == -math.inf else f" of at least {minimum}"
        raise ValueError(f"state: {key} must hold finite numbers{bound}, got {value!r}")
    return result
