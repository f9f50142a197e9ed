"""Each model version's state, saved at every checkpoint where a restart or a rebalance finds it.

A worker keeps, per model version, a drift and data-quality monitor, a
performance monitor, an alert lifecycle and a retraining decider. Started
afresh after a restart,
a monitor without a registered reference would collect a new warm-up
reference from whatever comes next, drifted data included, and the drift
would become the new normal. So at every checkpoint (every two seconds,
see :mod:`~driftline.agents.checkpoints`), the state of every version
touched since is written to a table (``version-state``, whose
changelog survives the worker) as one record:

- ``format``: :data:`STATE_FORMAT`, the layout of the record; a record of
  another format is refused with a log line, and the version starts afresh;
- ``spec``: a digest of the spec it belongs to (a re-registered spec starts
  afresh, as a live worker does);
- ``registered``: a digest of the version's registered reference profile
  when it was written, or None: a monitor saved against another reference
  (or a warm-up one, and now one is registered) is not restored, as a live
  worker would have dropped it;
- ``monitor``: :meth:`~driftline.monitors.ModelMonitor.to_state` without its
  reference profile; a warm-up reference goes in a record of its own
  (:func:`reference_key`), written once, when the warm-up ends, and
  ``reference`` holds its digest;
- ``performance``: the performance monitor (realized and estimated
  performance, the estimator's calibration), once the version has one;
- ``lifecycle`` and ``retraining``: the alert lifecycle and the decider;
- ``fence``: per input topic and partition, the offset after the last event
  of the version the state reflects; ``label_fence`` the same for the
  labels of its model.

The fence makes a replay harmless. Offsets are committed every few
seconds, and only those a checkpoint covers, so the worker that takes over
after a crash is handed again the events since the last commit, some of
which its restored state has already seen: those below the fence count as duplicates
and change nothing (see :class:`~driftline.agents.intake.Intake`). Every record is JSON (orjson),
never pickled: reading one back runs no code of its own.
"""

import hashlib
import logging
from collections.abc import Mapping, MutableMapping
from dataclasses import dataclass
from typing import Any

import orjson

from driftline.agents.registry import ModelKey
from driftline.monitors import ModelMonitor
from driftline.monitors.performance import PerformanceMonitor
from driftline.monitors.state import State
from driftline.monitors.summary_monitor import SummaryMonitor
from driftline.schemas import KeyedBy, ModelSpec, ReferenceProfile, registry_key

log = logging.getLogger(__name__)

STATE_FORMAT = 1
"""The layout of a version's record that this code writes, and the only one it reads."""

Fence = dict[tuple[str, int], int]
"""Per input topic and partition, the offset after the last event a state reflects."""


@dataclass(frozen=True, slots=True)
class SavedVersion:
    """A version's record, read back and checked against the version's spec and reference."""

    monitor: ModelMonitor | None
    """The monitor, going on where it was; None when it must start afresh (its reference
    changed, or its state could not be read)."""
    performance: PerformanceMonitor | None
    """The performance monitor, going on where it was; None when it had none (or its state
    could not be read)."""
    lifecycle: State
    retraining: State
    fence: Fence
    label_fence: Fence


class VersionStates:
    """Writes and reads the records of each model version in a store (a faust table).

    ``store`` maps a version's key (:func:`state_key`) to its record, and
    :func:`reference_key` to its warm-up reference. Digests of specs and
    profiles are kept per object, so a batch costs one of each only when
    they change.
    """

    def __init__(self, store: MutableMapping[str, bytes]) -> None:
        self.store = store
        self._digests: dict[int, tuple[object, str]] = {}
        self._references_written: dict[ModelKey, tuple[ModelMonitor, str]] = {}
        """Per version, the monitor whose warm-up reference was last written, and its digest."""

    def write(
        self,
        spec: ModelSpec,
        registered: ReferenceProfile | None,
        *,
        monitor: ModelMonitor | None,
        performance: PerformanceMonitor | None,
        lifecycle: State,
        retraining: State,
        fence: Fence,
        label_fence: Fence,
    ) -> None:
        """Write a version's record (and its warm-up reference, when new)."""
        key = (spec.model_id, spec.model_version)
        reference_digest = None
        if monitor is not None and registered is None:
            written = self._references_written.get(key)
            if written is not None and written[0] is monitor:
                reference_digest = written[1]
            else:
                reference = monitor.reference
                if reference is not None:  # the warm-up ended: its profile, once
                    reference_digest = self.digest(reference)
                    self.store[reference_key(*key)] = orjson.dumps(
                        {
                            "format": STATE_FORMAT,
                            "digest": reference_digest,
                            "profile": reference.model_dump(mode="json"),
                        }
                    )
                    self._references_written[key] = (monitor, reference_digest)
        self.store[state_key(*key)] = orjson.dumps(
            {
                "format": STATE_FORMAT,
                "spec": self.digest(spec),
                "registered": None if registered is None else self.digest(registered),
                "reference": reference_digest,
                "monitor": None if monitor is None else monitor.to_state(with_reference=False),
                "performance": None if performance is None else performance.to_state(),
                "lifecycle": lifecycle,
                "retraining": retraining,
                "fence": _listed(fence),
                "label_fence": _listed(label_fence),
            },
            option=orjson.OPT_SERIALIZE_NUMPY,
        )

    def read(self, spec: ModelSpec, registered: ReferenceProfile | None) -> SavedVersion | None:
        """The version's saved state, if there is one for this spec; None otherwise.

        A record this code cannot read (another format, or damaged) is
        logged and ignored: the version starts afresh rather than the worker
        failing. A monitor saved against another reference is left out.
        """
        key = (spec.model_id, spec.model_version)
        raw = self.store.get(state_key(*key))
        if raw is None:
            return None
        try:
            record = orjson.loads(raw)
            if not isinstance(record, dict) or record.get("format") != STATE_FORMAT:
                found = record.get("format") if isinstance(record, dict) else None
                raise ValueError(f"format {found!r}, where this worker reads {STATE_FORMAT}")
            if record["spec"] != self.digest(spec):
                return None  # saved for an earlier spec of the version
            fence, label_fence = _fence(record["fence"]), _fence(record["label_fence"])
            lifecycle, retraining = record["lifecycle"], record["retraining"]
            if not isinstance(lifecycle, dict) or not isinstance(retraining, dict):
                raise ValueError("lifecycle and retraining must be objects")
        except (ValueError, KeyError, TypeError) as error:
            log.error(
                "model %s version %s: its saved state cannot be read (%s); it starts afresh "
                "from its reference",
                *key,
                error,
            )
            return None
        return SavedVersion(
            self._monitor(spec, registered, record),
            self._performance(spec, record.get("performance")),
            lifecycle,
            retraining,
            fence,
            label_fence,
        )

    def _performance(self, spec: ModelSpec, state: object) -> PerformanceMonitor | None:
        """The record's performance monitor, if it has one that can be read."""
        if state is None:
            return None
        try:
            if not isinstance(state, Mapping):
                raise ValueError("not an object")
            return PerformanceMonitor.from_state(spec, state)
        except ValueError as error:
            log.error(
                "model %s version %s: its saved performance monitor cannot be read (%s); it "
                "starts afresh",
                spec.model_id,
                spec.model_version,
                error,
            )
            return None

    def _monitor(
        self, spec: ModelSpec, registered: ReferenceProfile | None, record: Mapping[str, Any]
    ) -> ModelMonitor | None:
        """The record's monitor, if it was saved against the reference the version has now."""
        key = (spec.model_id, spec.model_version)
        state = record.get("monitor")
        if state is None:
            return None
        now = None if registered is None else self.digest(registered)
        own = (
            record.get("registered") is None and now is not None and record.get("reference") == now
        )
        if own:
            # Its warm-up reference, which a version keyed by event id publishes: registered
            # since it was saved, it is still the one the monitor measures against.
            registered = None
        elif record.get("registered") != now:
            log.info("model %s version %s: its reference changed; its monitor starts afresh", *key)
            return None
        digest = record.get("reference")
        try:
            reference = registered
            if registered is None and digest is not None:
                reference = self._warmup_reference(key, digest)
            kind = SummaryMonitor if spec.keyed_by is KeyedBy.EVENT_ID else ModelMonitor
            monitor = kind.from_state(state, reference, spec=spec)
        except (ValueError, KeyError, TypeError, IndexError) as error:
            log.error(
                "model %s version %s: its saved monitor cannot be read (%s); it starts afresh "
                "from its reference",
                *key,
                error,
            )
            return None
        if registered is None and digest is not None:
            self._references_written[key] = (monitor, digest)
        return monitor

    def _warmup_reference(self, key: ModelKey, digest: str) -> ReferenceProfile:
        """The warm-up reference saved for a version, checked against its digest."""
        raw = self.store.get(reference_key(*key))
        if raw is None:
            raise ValueError("its warm-up reference is missing")
        record = orjson.loads(raw)
        if record.get("format") != STATE_FORMAT or record.get("digest") != digest:
            raise ValueError("its warm-up reference is not the one it was saved with")
        return ReferenceProfile.model_validate(record["profile"])

    def forget(self, key: ModelKey) -> None:
        """Forget what was written for a version (its spec or reference changed)."""
        self._references_written.pop(key, None)

    def digest(self, thing: ModelSpec | ReferenceProfile) -> str:
        """A digest of a spec's or a profile's JSON, computed once per object."""
        known = self._digests.get(id(thing))
        if known is not None and known[0] is thing:
            return known[1]
        digest = hashlib.sha256(thing.model_dump_json().encode("utf-8")).hexdigest()[:32]
        if len(self._digests) > 4 * 1024:
            self._digests.clear()
        self._digests[id(thing)] = (thing, digest)
        return digest


def _listed(fence: Fence) -> list[list[Any]]:
    return [[topic, partition, offset] for (topic, partition), offset in fence.items()]


def _fence(listed: Any) -> Fence:
    """A fence as :func:`_listed` wrote it; ValueError if it is not one."""
    if not isinstance(listed, list):
        raise ValueError("a fence must be a list")
    fence: Fence = {}
    for item in listed:
        if not isinstance(item, list) or len(item) != 3:
            raise ValueError("a fence lists [topic, partition, offset]")
        topic, partition, offset = item
        if (
            not isinstance(topic, str)
            or not isinstance(partition, int)
            or not isinstance(offset, int)
        ):
            raise ValueError("a fence lists [topic, partition, offset]")
        fence[(topic, partition)] = offset
    return fence


def state_key(model_id: str, model_version: str) -> str:
    """The key of a version's record: its registry key.

    >>> state_key("fraud", "2")
    '["fraud","2"]'
    """
    return registry_key(model_id, model_version).decode("utf-8")


def reference_key(model_id: str, model_version: str) -> str:
    """The key of a version's warm-up reference.

    >>> reference_key("fraud", "2")
    '["fraud","2","reference"]'
    """
    return f'{state_key(model_id, model_version)[:-1]},"reference"]'
