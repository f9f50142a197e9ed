"""The feature values of many events as one float matrix, each event's a read-only mapping
onto its row.

An event's features come as a dict of twenty or so Python floats. A batch
of them crossing from one process to another is pickled value by value and
remade dict by dict, and the data-quality checks then read the values back
out of the dicts into columns. Where every value of a batch's events is a
float and the events name the same features (the common case),
:meth:`FeatureMatrix.gather` lays them out as one ``float64`` matrix, which
crosses as one block of bytes, and each event gets a :class:`FeatureRow` in
place of its dict: a mapping of the same names and values (in the order the
first of those events gave them), so that whatever reads an event's
features reads what it would have read in the dict. The data-quality checks recognise a
batch of rows of one matrix (:func:`matrix_rows`) and take its columns as
they are.

>>> matrices, places = FeatureMatrix.gather(
...     [{"a": 1.0, "b": 2.0}, {"a": 3.5, "b": -1.0}, {"a": "x", "b": 0.0}, None]
... )
>>> places
[(0, 0), (0, 1), None, None]
>>> row = matrices[0].row(1)
>>> dict(row), row["a"], list(row), row == {"a": 3.5, "b": -1.0}
({'a': 3.5, 'b': -1.0}, 3.5, ['a', 'b'], True)
"""

from collections.abc import Callable, Iterator, Mapping, Sequence
from itertools import chain
from operator import attrgetter, countOf, itemgetter
from typing import Any, cast

import numpy as np


class FeatureMatrix:
    """Events' feature values, one row per event and one column per name, all floats.

    ``names``: the features, in the order the first of its events gave them; ``values``:
    an ``(events, names)`` array of ``float64``, kept read-only, as the
    events it stands for are frozen.
    """

    __slots__ = ("_places", "names", "values")

    def __init__(self, names: Sequence[str], values: np.ndarray) -> None:
        values = np.asarray(values, dtype=np.float64)
        if values.ndim != 2 or values.shape[1] != len(names):
            raise ValueError(
                f"a feature matrix of {len(names)} names needs {len(names)} columns; "
                f"got an array of shape {values.shape}"
            )
        if len(set(names)) != len(names):
            raise ValueError("a feature matrix names each feature once")
        if values.flags.writeable:
            values = values.view()
            values.flags.writeable = False
        self.names: tuple[str, ...] = tuple(names)
        self.values = values
        self._places = {name: place for place, name in enumerate(self.names)}

    def __len__(self) -> int:
        return len(self.values)

    def __reduce__(self) -> tuple[Any, tuple[Any, ...]]:
        return FeatureMatrix, (self.names, self.values)

    def column(self, name: str) -> int | None:
        """Where ``name`` is among the columns; None when the events do not give it."""
        return self._places.get(name)

    def row(self, index: int) -> "FeatureRow":
        """The features of the ``index``-th event, as a mapping."""
        if not -len(self.values) <= index < len(self.values):
            raise IndexError(f"row {index} of a matrix of {len(self.values)} events")
        return FeatureRow(self, index % len(self.values))

    @staticmethod
    def gather(
        batch: Sequence[Mapping[str, object] | None],
    ) -> tuple[list["FeatureMatrix"], list[tuple[int, int] | None]]:
        """The matrices of a batch's features, and where each event's went: ``(matrix, row)``,
        or None for an event that stays as it is.

        An event's features go into a matrix when every value is a float;
        events that name the same features share one, in batch order, its
        names in the order the first of them gave them. Features with
        another value (a string, a boolean, ``null``), or none at all, stay
        as they are. As a rule every event names the same features: then
        their values are read with one call each, checked and laid out with
        one pass over all of them (about 1 µs an event of twenty features).
        """
        given = [index for index, features in enumerate(batch) if features]
        if not given:
            return [], [None] * len(batch)
        try:
            groups = [_named_alike(batch, given)]
        except KeyError:  # the events name different features: a matrix for each set
            sets: dict[frozenset[str], list[int]] = {}
            for index in given:
                sets.setdefault(frozenset(batch[index]), []).append(index)  # type: ignore[arg-type]
            groups = [_named_alike(batch, indices) for indices in sets.values()]
        matrices: list[FeatureMatrix] = []
        places: list[tuple[int, int] | None] = [None] * len(batch)
        for names, indices, rows in groups:
            if countOf(map(type, chain.from_iterable(rows)), float) != len(rows) * len(names):
                kept = [place for place, row in enumerate(rows) if set(map(type, row)) == _FLOATS]
                rows, indices = [rows[place] for place in kept], [indices[place] for place in kept]
                if not rows:
                    continue
            values = np.fromiter(
                chain.from_iterable(rows), dtype=np.float64, count=len(rows) * len(names)
            )
            number = len(matrices)
            matrices.append(FeatureMatrix(names, values.reshape(len(rows), len(names))))
            for row, index in enumerate(indices):
                places[index] = (number, row)
        return matrices, places


def _named_alike(
    batch: Sequence[Mapping[str, object] | None], indices: list[int]
) -> tuple[tuple[str, ...], list[int], list[tuple[object, ...]]]:
    """The names of the features at ``indices`` (in the first one's order), the indices, and
    each one's values in that order; ``KeyError`` when they do not all name the same."""
    given = cast(Sequence[Mapping[str, object]], batch)  # at ``indices``, as the caller knows
    names = tuple(given[indices[0]])
    if set(map(len, (given[index] for index in indices))) != {len(names)}:
        raise KeyError(names)
    read = itemgetter(*names) if len(names) > 1 else _one(names[0])
    return names, indices, [read(given[index]) for index in indices]


def _one(name: str) -> Callable[[Mapping[str, object]], tuple[object]]:
    """What reads the value of the one feature ``name`` as a row of one value."""
    return lambda features: (features[name],)


_FLOATS = {float}


class FeatureRow(Mapping[str, float]):
    """One event's features: a row of a :class:`FeatureMatrix`, read as a mapping of its names
    to Python floats, in the matrix's order. Equal to a dict of the same items.

    It stands in an event's ``features`` only where the event goes no
    further than its monitor (the monitoring process of a pipelined replay):
    pydantic serializes an event's features as a dict, and refuses this. A
    row pickles as a dict, so an event that crosses again is a plain one.
    """

    __slots__ = ("index", "matrix")

    def __init__(self, matrix: FeatureMatrix, index: int) -> None:
        self.matrix = matrix
        self.index = index

    def __getitem__(self, name: str) -> float:
        place = self.matrix.column(name)
        if place is None:
            raise KeyError(name)
        return float(self.matrix.values[self.index, place])

    def __iter__(self) -> Iterator[str]:
        return iter(self.matrix.names)

    def __len__(self) -> int:
        return len(self.matrix.names)

    def __contains__(self, name: object) -> bool:
        return isinstance(name, str) and self.matrix.column(name) is not None

    def __repr__(self) -> str:
        return f"FeatureRow({dict(self)!r})"

    def __reduce__(self) -> tuple[Any, tuple[Any, ...]]:
        return dict, (dict(self),)


_matrix_of = attrgetter("matrix")
_index_of = attrgetter("index")


def matrix_rows(batch: Sequence[Mapping[str, object]]) -> tuple[FeatureMatrix, np.ndarray] | None:
    """The matrix and row numbers of a batch of features that are all rows of one matrix;
    None for any other batch (an empty one too).

    >>> matrices, _ = FeatureMatrix.gather([{"a": 1.0}, {"a": 2.0}, {"a": 3.0}])
    >>> matrix = matrices[0]
    >>> matrix_rows([matrix.row(2), matrix.row(0)])[1].tolist()
    [2, 0]
    >>> matrix_rows([matrix.row(0), {"a": 1.0}]) is None
    True
    """
    if not batch or type(batch[0]) is not FeatureRow:
        return None
    matrix = batch[0].matrix
    if any(type(features) is not FeatureRow for features in batch):
        return None
    if any(other is not matrix for other in map(_matrix_of, batch)):
        return None
    return matrix, np.fromiter(map(_index_of, batch), dtype=np.intp, count=len(batch))
