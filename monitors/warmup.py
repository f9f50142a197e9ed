"""What a monitor keeps of its warm-up events until it builds their reference.

Without a registered reference, a model version's first events (2,000 by
default) become its reference. Kept as they came, each value is a Python
object behind a list slot: about 32 bytes a number. With a hundred models
warming up at once, as after a worker starts, that was some 140 MB of
small objects, and the allocator kept most of it after the references were
built. :class:`WarmupColumns` keeps each numeric column as 8-byte doubles,
already converted as the reference builder converts raw values, so that
building the reference reads them without a pass over Python objects
(the conversion is the builder's own,
:func:`~driftline.monitors.reference.detector_numbers`).

>>> from driftline.schemas import FeatureSpec, ModelSpec
>>> spec = ModelSpec(model_id="m", model_version="1", task="classification", features=[
...     FeatureSpec(name="age", kind="numeric"), FeatureSpec(name="plan", kind="categorical"),
...     FeatureSpec(name="vip", kind="boolean")])
>>> warmup = WarmupColumns(spec, ["age", "plan", "vip"])
>>> warmup.append({"age": 41, "plan": "pro", "vip": True, "(prediction)": "yes"})
>>> warmup.append({"age": "41", "plan": None, "vip": 1, "(uncertainty)": 0.25})
>>> columns = warmup.columns()
>>> columns["age"].tolist(), columns["plan"], columns["vip"].tolist()
([41.0, nan], ['pro', None], [1.0, nan])
>>> columns["(prediction)"], columns["(uncertainty)"].tolist()
(['yes', None], [nan, 0.25])
"""

import math
from array import array
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
from numpy.typing import NDArray

from driftline.monitors.findings import PREDICTION, UNCERTAINTY
from driftline.monitors.reference import detector_numbers
from driftline.monitors.state import State
from driftline.schemas import FeatureKind, ModelSpec, TaskType

__all__ = ["WarmupColumns"]

Column = NDArray[np.float64] | list[str | None]


class WarmupColumns:
    """The warm-up's values, one column per watched feature, the prediction and the uncertainty.

    Numeric and boolean features, a regressor's prediction and the
    uncertainty are columns of doubles: a number as a detector would take
    it (a boolean feature's ``True`` and ``False`` as 1.0 and 0.0, an
    integer as a float), NaN where the event had none (missing, not finite,
    or of the wrong type: the live checks report those, the reference skips
    them).
    Categorical features and a classifier's prediction keep their strings
    (None for anything else).
    """

    def __init__(self, spec: ModelSpec, watched: Sequence[str]) -> None:
        kinds = {feature.name: feature.kind for feature in spec.features}
        self._numbers: dict[str, array[float]] = {}
        self._texts: dict[str, list[str | None]] = {}
        self._booleans: set[str] = set()
        for name in watched:
            if kinds[name] is FeatureKind.CATEGORICAL:
                self._texts[name] = []
            else:
                self._numbers[name] = array("d")
                if kinds[name] is FeatureKind.BOOLEAN:
                    self._booleans.add(name)
        if spec.task is TaskType.REGRESSION:
            self._numbers[PREDICTION] = array("d")
        else:
            self._texts[PREDICTION] = []
        self._numbers[UNCERTAINTY] = array("d")
        self._names = [*watched, PREDICTION, UNCERTAINTY]
        self._rows = 0

    def __len__(self) -> int:
        """How many events the warm-up has kept."""
        return self._rows

    def append(self, values: Mapping[str, object]) -> None:
        """Keep one event's raw values, by column name (a missing name is no value)."""
        numbers, booleans = self._numbers, self._booleans
        for name in self._names:
            value = values.get(name)
            column = numbers.get(name)
            if (
                column is not None
                and type(value) is float
                and math.isfinite(value)
                and name not in booleans
            ):
                column.append(value)  # as detector_numbers takes it, without a numpy array
            else:
                self._add(name, [value])
        self._rows += 1

    def extend(self, columns: Mapping[str, Sequence[object] | NDArray[np.float64]]) -> None:
        """Keep several events' raw values, one equally long list per column name (or an
        array of floats, for numbers already)."""
        lengths = {len(column) for column in columns.values()}
        if len(lengths) > 1:
            raise ValueError(f"the columns differ in length: {sorted(lengths)}")
        rows = lengths.pop() if lengths else 0
        for name in self._names:
            self._add(name, columns.get(name, [None] * rows))
        self._rows += rows

    def columns(self) -> dict[str, Column]:
        """Every column, doubles (a copy) or strings: watched features, prediction, uncertainty."""
        return {
            name: (
                np.array(self._numbers[name], dtype=np.float64)
                if name in self._numbers
                else list(self._texts[name])
            )
            for name in self._names
        }

    def to_state(self) -> State:
        """The columns as JSON: numbers as lists with None for NaN, strings as they are."""
        return {
            "rows": self._rows,
            "numbers": {
                name: [x if math.isfinite(x) else None for x in column]
                for name, column in self._numbers.items()
            },
            "texts": {name: list(column) for name, column in self._texts.items()},
        }

    def load_state(self, state: Mapping[str, Any]) -> None:
        """Take the columns :meth:`to_state` wrote (of the same spec) in place of these."""
        numbers, texts = state["numbers"], state["texts"]
        if set(numbers) != set(self._numbers) or set(texts) != set(self._texts):
            raise ValueError("the saved warm-up columns are not this spec's")
        for name, column in numbers.items():
            self._numbers[name] = array("d", (math.nan if x is None else float(x) for x in column))
        for name, kept in texts.items():
            self._texts[name] = [x if isinstance(x, str) else None for x in kept]
        self._rows = int(state["rows"])

    def _add(self, name: str, values: Sequence[object] | NDArray[np.float64]) -> None:
        if name in self._texts:
            self._texts[name].extend(value if isinstance(value, str) else None for value in values)
            return
        numbers = detector_numbers(values, boolean=name in self._booleans)
        self._numbers[name].frombytes(numbers.tobytes())
