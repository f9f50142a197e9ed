import math
import pickle

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from driftline.monitors.feature_rows import FeatureMatrix, FeatureRow, matrix_rows

names = st.sampled_from(["a", "b", "c", "d"])
values = (
    st.floats(allow_nan=False)
    | st.sampled_from([math.inf, 0.0, 1.0])
    | st.none()
    | st.booleans()
    | st.integers(0, 2)
    | st.sampled_from(["x", "1.5"])
)
feature_dicts = st.none() | st.dictionaries(names, values, max_size=4)
# Most events of a batch name the same features, all floats: the common case, taken at once.
same_names = st.lists(st.floats(allow_nan=False), min_size=3, max_size=3).map(
    lambda row: dict(zip("bca", row, strict=True))
)


def all_floats(features: dict[str, object] | None) -> bool:
    return bool(features) and all(type(value) is float for value in features.values())  # type: ignore[union-attr]


@given(st.lists(same_names | feature_dicts, max_size=30))
def test_gathered_rows_read_as_the_features_they_came_from(batch):
    matrices, places = FeatureMatrix.gather(batch)
    assert len(places) == len(batch)
    taken: list[tuple[int, int]] = []
    for features, place in zip(batch, places, strict=True):
        # Every event whose values are all floats goes into a matrix; no other does.
        assert (place is not None) == all_floats(features)
        if place is None:
            continue
        row = matrices[place[0]].row(place[1])
        assert row == features
        assert dict(row) == features
        assert sorted(row) == sorted(features)
        assert len(row) == len(features)
        assert all(type(row[name]) is float for name in row)
        assert "nothing" not in row
        assert row.get("nothing") is None
        with pytest.raises(KeyError):
            row["nothing"]
        taken.append(place)
    # Each matrix is used whole, its rows in batch order, and events of one set of names share one.
    for number, matrix in enumerate(matrices):
        rows = [row for matrix_number, row in taken if matrix_number == number]
        assert rows == list(range(len(matrix)))
    assert len(matrices) == len({frozenset(batch[i]) for i, p in enumerate(places) if p})


def test_a_matrix_is_read_only_and_its_rows_pickle_as_dicts():
    matrix = FeatureMatrix(("x", "y"), np.array([[1.0, 2.0], [3.0, 4.0]]))
    with pytest.raises(ValueError, match="read-only"):
        matrix.values[0, 0] = 9.0
    row = matrix.row(-1)
    assert type(pickle.loads(pickle.dumps(row))) is dict
    assert pickle.loads(pickle.dumps(row)) == {"x": 3.0, "y": 4.0}
    again = pickle.loads(pickle.dumps(matrix))
    assert again.names == matrix.names
    assert np.array_equal(again.values, matrix.values)
    with pytest.raises(IndexError):
        matrix.row(2)


@pytest.mark.parametrize(
    ("given_names", "shape"),
    [(("x",), (2, 2)), (("x", "x"), (1, 2)), (("x", "y"), (2,))],
)
def test_a_matrix_refuses_names_that_do_not_fit_its_columns(given_names, shape):
    with pytest.raises(ValueError, match="feature matrix"):
        FeatureMatrix(given_names, np.zeros(shape))


def test_only_a_batch_of_rows_of_one_matrix_is_read_as_one():
    first = FeatureMatrix(("x",), np.array([[1.0], [2.0]]))
    second = FeatureMatrix(("x",), np.array([[1.0], [2.0]]))
    found = matrix_rows([first.row(1), first.row(0)])
    assert found is not None
    assert found[0] is first
    assert found[1].tolist() == [1, 0]
    assert matrix_rows([first.row(0), second.row(1)]) is None
    assert matrix_rows([first.row(0), {"x": 2.0}]) is None
    assert matrix_rows([{"x": 2.0}, first.row(0)]) is None
    assert matrix_rows([]) is None
    assert isinstance(first.row(0), FeatureRow)


def test_events_naming_the_same_features_in_other_orders_share_a_matrix():
    batch = [{"a": 1.0, "b": 2.0}, {"c": 0.5}, {"b": 4.0, "a": 3.0}]
    matrices, places = FeatureMatrix.gather(batch)
    assert places == [(0, 0), (1, 0), (0, 1)]
    assert matrices[0].names == ("a", "b")
    assert matrices[0].values.tolist() == [[1, 2], [3, 4]]
    assert matrices[0].row(1) == batch[2]
