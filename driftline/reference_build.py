"""Reference profiles built from files: a model's training data, or its recorded events.

Three kinds of file are read, by their suffix:

- CSV (``.csv``): a header row names the columns. An empty cell is a missing
  value. A feature column of the spec is read as its kind says: numbers for
  a numeric feature, ``true``/``false`` (any case) or ``1``/``0`` for a
  boolean one, the text as it is for a categorical one (so a category such
  as ``02139`` is never taken for a number); a cell that does not read as
  its kind is kept as text and skipped as a value of the wrong type. Other
  columns stay text. Without a spec, a cell that reads as a number is a
  float, ``true``/``false`` a boolean, anything else text.
- JSON Lines (``.jsonl``, ``.ndjson``): one JSON object per line; blank lines
  are skipped. Values keep their JSON types.
- Parquet (``.parquet``, ``.pq``): values keep their column types; decimals
  are read as floats. A folder so named is read as the Parquet files in it,
  as Spark writes them, with partition folders ``column=value`` giving a
  text column (``model_version=3/part-0.parquet``).

Nested objects (JSON) and structs (Parquet) are flattened into dotted
column names, ``{"features": {"tenure": 3}}`` into ``features.tenure``. A
feature's values are taken from the ``features.<name>`` column when there is
one, else from the ``<name>`` column, so a file of recorded
:class:`~driftline.schemas.PredictionEvent` messages can be used as it is;
when the file has ``model_id`` or ``model_version`` columns, only the rows of
the spec's model version are used.

A profile is built from the columns its spec needs alone (its features',
and ``model_id`` and ``model_version``), and CSV and Parquet files are read
in batches of rows (:data:`BATCH_ROWS`): the rows of the model version are
picked out of each batch, and each feature kept compact (8 bytes a row for
a numeric or boolean one, a reference to one shared string a row for a
categorical one). Memory grows with the rows and the spec's features, not
with the file's other columns: what is kept of a million rows of four
features is some 32 MB, however wide the file. JSON Lines files are read
line by line too, but the spec's columns are kept as read (Python values)
until the end: a column may first appear on the last line, and only then
is it known which column a feature is read from and whether rows are
picked by model version. A Parquet file is read one row group at a time,
so a batch never spans two.
"""

import csv
import json
from collections.abc import Callable, Collection, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import numpy as np
from numpy.typing import NDArray

from driftline.monitors.reference import (
    DEFAULT_MAX_CATEGORIES,
    DEFAULT_RESOLUTION,
    Floats,
    build_reference,
    detector_numbers,
)
from driftline.schemas.reference import ReferenceProfile
from driftline.schemas.registry import FeatureKind, ModelSpec
from driftline.specfiles import load_specs

CSV_SUFFIXES = frozenset({".csv"})
JSON_LINES_SUFFIXES = frozenset({".jsonl", ".ndjson"})
PARQUET_SUFFIXES = frozenset({".parquet", ".pq"})

FEATURES_PREFIX = "features."
"""The prefix of feature columns flattened from a ``features`` object."""

TAGS = ("model_id", "model_version")
"""The columns that say which model version a row is of."""

BATCH_ROWS = 65_536
"""Rows read at a time: few enough that a batch of a wide file takes little memory, enough
that the work per batch (numpy, pyarrow) is done in bulk."""

Progress = Callable[[int], None]
"""Told the number of rows read, each time a batch of them has been."""

Column = TypeVar("Column")


class ReferenceBuildError(ValueError):
    """A data file that cannot be read or holds no usable rows, or no spec to build for.

    The message names the file, and the line when one is at fault.
    """


@dataclass(frozen=True)
class Batch:
    """Consecutive rows of a file: the columns read of them, each with one value per row.

    A column is a list of values (CSV, JSON Lines) or a pyarrow array (Parquet).
    """

    rows: int
    columns: dict[str, Any]


def read_columns(path: Path, spec: ModelSpec | None = None) -> dict[str, list[object]]:
    """The columns of a CSV, JSON Lines or Parquet file, each a list with one value per row.

    Every column, whole: for a look at a small file. ``spec`` tells how to
    read the CSV cells of its features (see the module's description); it
    changes nothing for the other kinds of file. A value missing from a row
    is None. Raises :class:`ReferenceBuildError`.
    """
    names: list[str] = []
    columns: dict[str, list[object]] = {}
    for batch in _batches(path, spec, None, names, batch_rows=BATCH_ROWS, advance=_ignore):
        for name, column in batch.columns.items():
            columns.setdefault(name, []).extend(_values(column))
    return {name: columns.get(name, []) for name in names}


def known_rows(path: Path) -> int | None:
    """How many rows the file holds, when it says so without being read: Parquet's metadata.

    None for other files, and for a Parquet file that cannot be read (reading it says why).
    """
    if path.suffix.lower() not in PARQUET_SUFFIXES:
        return None
    import pyarrow as pa  # type: ignore[import-untyped]
    import pyarrow.parquet as pq  # type: ignore[import-untyped]

    try:
        if path.is_dir():
            return int(_parquet_folder(path).count_rows())
        with pq.ParquetFile(path) as file:
            rows: int = file.metadata.num_rows
    except (pa.ArrowException, OSError):
        return None
    return rows


def feature_columns(columns: Mapping[str, Column], spec: ModelSpec) -> dict[str, Column]:
    """Each spec feature's column, by feature name: ``features.<name>`` first, else ``<name>``.

    >>> from driftline.schemas.registry import FeatureSpec, TaskType
    >>> spec = ModelSpec(model_id="m", model_version="1", task=TaskType.REGRESSION,
    ...                  features=[FeatureSpec(name="prediction", kind=FeatureKind.NUMERIC)])
    >>> feature_columns({"prediction": [0.9], "features.prediction": [3.0]}, spec)
    {'prediction': [3.0]}
    """
    found: dict[str, Column] = {}
    for feature in spec.features:
        for name in (FEATURES_PREFIX + feature.name, feature.name):
            if name in columns:
                found[feature.name] = columns[name]
                break
    return found


def build_reference_file(
    path: Path,
    spec: ModelSpec,
    *,
    output: Path | None = None,
    ordered: bool = False,
    resolution: int = DEFAULT_RESOLUTION,
    max_categories: int = DEFAULT_MAX_CATEGORIES,
    seed: int = 0,
    batch_rows: int = BATCH_ROWS,
    progress: Progress | None = None,
) -> ReferenceProfile:
    """The reference profile of ``spec``'s model version from a data file.

    Rows of other model versions are left out (when the file says which
    model version each row is of). With ``ordered``, the rows are taken as a
    stream in order and the serial correlation of each numeric feature is
    kept (see :func:`~driftline.monitors.reference.build_reference`). The
    file is read ``batch_rows`` rows at a time, and ``progress`` told of
    each batch read; the profile is the same whatever the batch size. The
    profile's JSON is written to ``output`` when given. Raises
    :class:`ReferenceBuildError` when the file cannot be read, has no rows
    of the model version, or has no value of any feature of the spec.
    """
    names: list[str] = []
    kept = KeptRows(spec)
    wanted = spec_columns(spec)
    for batch in _batches(path, spec, wanted, names, batch_rows=batch_rows, advance=progress):
        kept.add(batch)
    kept.check(path, names)
    features = kept.take_features()
    profile: ReferenceProfile | None = None
    if features:
        try:
            profile = build_reference(
                spec,
                features,
                source=f"file:{path.name}",
                ordered=ordered,
                resolution=resolution,
                max_categories=max_categories,
                seed=seed,
            )
        except ValueError as error:
            raise ReferenceBuildError(f"{path}: {error}") from None
    watched = [feature.name for feature in spec.features if feature.monitor]
    if profile is None or (watched and not profile.features):
        found = ", ".join(sorted(set(names))[:20]) or "none"
        raise ReferenceBuildError(
            f"{path}: no values of any feature of model {spec.model_id} version "
            f"{spec.model_version} ({', '.join(watched[:20])}); columns found: {found}"
        )
    if output is not None:
        try:
            output.write_text(profile.model_dump_json() + "\n", encoding="utf-8")
        except OSError as error:
            raise ReferenceBuildError(
                f"{output}: cannot write the profile: {error.strerror or error}"
            ) from None
    return profile


def reference_build_command(
    data: Path,
    spec_path: Path,
    output: Path | None,
    *,
    model: str | None = None,
    version: str | None = None,
    ordered: bool = False,
    progress: Progress | None = None,
) -> ReferenceProfile:
    """What ``driftline reference build`` does: a profile from a data file and a spec file.

    The spec file (YAML or TOML, read by :func:`~driftline.specfiles.load_specs`)
    must hold exactly one spec, or exactly one of model ``model`` and version
    ``version`` when they are given. The profile's JSON is written to
    ``output`` when given; ``progress`` is told of the rows read. Raises
    :class:`~driftline.specfiles.SpecFileError` for an invalid spec file and
    :class:`ReferenceBuildError` otherwise.
    """
    spec = choose_spec(load_specs(spec_path), spec_path, model=model, version=version)
    return build_reference_file(data, spec, output=output, ordered=ordered, progress=progress)


def choose_spec(
    specs: list[ModelSpec], path: Path, *, model: str | None, version: str | None
) -> ModelSpec:
    """The one spec of the model and version asked for, or the only spec when none is."""
    chosen = [
        spec
        for spec in specs
        if (model is None or spec.model_id == model)
        and (version is None or spec.model_version == version)
    ]
    if len(chosen) == 1:
        return chosen[0]
    held = "; ".join(f"model {s.model_id} version {s.model_version}" for s in specs)
    asked = " ".join(
        part
        for part in (
            f"model {model}" if model is not None else "",
            f"version {version}" if version is not None else "",
        )
        if part
    )
    if not chosen:
        raise ReferenceBuildError(f"{path}: holds no spec of {asked} (it holds: {held})")
    raise ReferenceBuildError(
        f"{path}: holds {len(chosen)} specs{' of ' + asked if asked else ''}; "
        f"choose one with the model and version (it holds: {held})"
    )


def spec_columns(spec: ModelSpec) -> frozenset[str]:
    """The columns a profile of ``spec`` may read: each feature's two names, and the tags.

    >>> from driftline.schemas.registry import FeatureSpec, TaskType
    >>> spec = ModelSpec(model_id="m", model_version="1", task=TaskType.REGRESSION,
    ...                  features=[FeatureSpec(name="age", kind=FeatureKind.NUMERIC)])
    >>> sorted(spec_columns(spec))
    ['age', 'features.age', 'model_id', 'model_version']
    """
    features = (name for f in spec.features for name in (FEATURES_PREFIX + f.name, f.name))
    return frozenset({*features, *TAGS})


class KeptRows:
    """The feature columns of a spec's model version's rows, gathered batch by batch.

    Each batch's rows of other model versions are dropped as it comes (when
    the file has :data:`TAGS` columns), and each feature is kept compact: a
    numeric or boolean one as float arrays (NaN: no value, as
    :func:`~driftline.monitors.reference.detector_numbers` has it), a
    categorical one as a list holding one copy of each distinct text (None
    for any value that is not text). That is all
    :func:`~driftline.monitors.reference.build_reference` looks at, so the
    profile is the one the whole columns would give.
    """

    def __init__(self, spec: ModelSpec) -> None:
        self.spec = spec
        self._kinds = {feature.name: feature.kind for feature in spec.features}
        self.rows_read = 0
        self.rows_kept = 0
        self._numbers: dict[str, list[Floats]] = {}
        self._texts: dict[str, list[str | None]] = {}
        self._strings: dict[str, str] = {}
        # The tags' values seen while no row was of the spec's model version: the message's.
        self._seen: set[str] = set()

    def add(self, batch: Batch) -> None:
        """Keep the batch's rows of the spec's model version."""
        rows = self._rows_of_model(batch)
        self.rows_read += batch.rows
        self.rows_kept += batch.rows if rows is None else rows.size
        for name, column in feature_columns(batch.columns, self.spec).items():
            kind = self._kinds[name]
            if kind is FeatureKind.CATEGORICAL:
                self._texts.setdefault(name, []).extend(self._shared_texts(column, rows))
            else:
                numbers = _numbers(column, boolean=kind is FeatureKind.BOOLEAN)
                self._numbers.setdefault(name, []).append(
                    numbers if rows is None else numbers[rows]
                )

    def check(self, path: Path, names: Collection[str]) -> None:
        """Raise :class:`ReferenceBuildError` when no row was read, or none of the model version.

        ``names`` are every column of the file.
        """
        tags = [name for name in TAGS if name in names]
        if not tags and not self.rows_read:
            raise ReferenceBuildError(f"{path}: the file holds no rows")
        if tags and not self.rows_kept:
            seen = sorted(self._seen)
            raise ReferenceBuildError(
                f"{path}: no rows of model {self.spec.model_id} version "
                f"{self.spec.model_version} ({', '.join(tags)} found: "
                f"{', '.join(seen[:10]) or 'none'})"
            )

    def take_features(self) -> dict[str, Floats | list[str | None]]:
        """Each feature's column over the rows kept, by feature name (the file's features only).

        Handed over, not copied: the columns are let go of here, each numeric
        one's batches as soon as they are joined, so that they are never all
        held twice.
        """
        found: dict[str, Floats | list[str | None]] = {}
        for name in list(self._numbers):
            chunks = self._numbers.pop(name)
            found[name] = chunks[0] if len(chunks) == 1 else np.concatenate(chunks)
        found.update(self._texts)
        self._texts = {}
        return found

    def _rows_of_model(self, batch: Batch) -> NDArray[np.intp] | None:
        """The rows of the batch of the spec's model version; None for all of them."""
        tags = [name for name in TAGS if name in batch.columns]
        if not tags:
            return None
        wanted = tuple(getattr(self.spec, name) for name in tags)
        found = list(zip(*(_values(batch.columns[name]) for name in tags), strict=True))
        rows = [row for row, values in enumerate(found) if values == wanted]
        if not rows and not self.rows_kept:
            self._seen.update(" ".join(str(value) for value in values) for values in found)
        elif rows:
            self._seen.clear()
        if len(rows) == batch.rows:
            return None
        return np.array(rows, dtype=np.intp)

    def _shared_texts(self, column: Any, rows: NDArray[np.intp] | None) -> list[str | None]:
        """The column's texts, one copy of each shared by every row holding it; None for others."""
        values = _values(column)
        if rows is not None:
            values = [values[row] for row in rows.tolist()]
        strings = self._strings
        return [strings.setdefault(v, v) if isinstance(v, str) else None for v in values]


def _values(column: Any) -> list[object]:
    """A column's values as a list: itself, or a pyarrow array's values."""
    if isinstance(column, list):
        return column
    values: list[object] = column.to_pylist()
    return values


def _numbers(column: Any, *, boolean: bool) -> Floats:
    """A column as :func:`~driftline.monitors.reference.detector_numbers` has it.

    A pyarrow array of integers or floats (for a numeric feature) or of
    booleans (for a boolean one) is converted whole, without a Python
    object per value; any other column value by value.
    """
    numbers = None if isinstance(column, list) else _arrow_numbers(column, boolean=boolean)
    if numbers is None:
        numbers = detector_numbers(_values(column), boolean=boolean)
    return numbers


def _arrow_numbers(column: Any, *, boolean: bool) -> Floats | None:
    """A pyarrow array's numbers, NaN where there is none; None when its type needs a closer look.

    The same numbers as its values converted one by one give: an integer is
    rounded to the nearest float either way, and a float32 widens exactly.
    """
    import pyarrow as pa

    kind = column.type
    numbers: Floats
    if boolean:
        if not pa.types.is_boolean(kind):
            return None
        numbers = column.fill_null(False).to_numpy().astype(np.float64)
    elif pa.types.is_integer(kind) or kind in (pa.float32(), pa.float64()):
        numbers = column.fill_null(0).to_numpy().astype(np.float64)
        numbers[~np.isfinite(numbers)] = np.nan
    else:
        return None
    if column.null_count:
        numbers[column.is_null().to_numpy()] = np.nan
    return numbers


def _batches(
    path: Path,
    spec: ModelSpec | None,
    wanted: Collection[str] | None,
    names: list[str],
    *,
    batch_rows: int,
    advance: Progress | None,
) -> Iterator[Batch]:
    """The file's rows in batches, with the columns in ``wanted`` (all when None) that it has.

    ``names`` is extended with every column of the file: for CSV and
    Parquet before the first batch, for JSON Lines before its one batch
    (see the module's description). ``advance`` is told of the rows read.
    """
    tell = advance or _ignore
    suffix = path.suffix.lower()
    if suffix in CSV_SUFFIXES:
        kinds = {} if spec is None else {f.name: f.kind for f in spec.features}
        return _csv_batches(path, kinds, spec is None, wanted, names, batch_rows, tell)
    if suffix in JSON_LINES_SUFFIXES:
        return _json_lines_batches(path, wanted, names, batch_rows, tell)
    if suffix in PARQUET_SUFFIXES:
        return _parquet_batches(path, wanted, names, batch_rows, tell)
    raise ReferenceBuildError(
        f"{path}: unknown kind of file {suffix or '(no suffix)'!r}; reference data is CSV "
        "(.csv), JSON Lines (.jsonl, .ndjson) or Parquet (.parquet, .pq)"
    )


def _ignore(rows: int) -> None:
    """No one to tell of the rows read."""


@contextmanager
def _text_errors(path: Path) -> Iterator[None]:
    """Errors of reading a text file, as :class:`ReferenceBuildError` naming it."""
    try:
        yield
    except UnicodeDecodeError as error:
        raise ReferenceBuildError(
            f"{path}: not UTF-8 text ({error.reason} at byte {error.start})"
        ) from None
    except OSError as error:
        raise ReferenceBuildError(
            f"{path}: cannot read the file: {error.strerror or error}"
        ) from None


def _csv_batches(
    path: Path,
    kinds: Mapping[str, FeatureKind],
    guess: bool,
    wanted: Collection[str] | None,
    names: list[str],
    batch_rows: int,
    advance: Progress,
) -> Iterator[Batch]:
    """The file's rows in batches: the wanted columns' cells read as their columns' readers say.

    Every row is checked for cells beyond the header, whatever columns are wanted.
    """
    with _text_errors(path), path.open(encoding="utf-8-sig", newline="") as file:
        reader = csv.reader(file)
        try:
            header = _csv_header(path, next(reader, None))
            names.extend(header)
            read = [
                (index, name, _cell_reader(name, kinds, guess=guess))
                for index, name in enumerate(header)
                if wanted is None or name in wanted
            ]
            rows = 0
            columns: dict[str, list[object]] = {name: [] for _, name, _ in read}
            for cells in reader:
                if not cells:
                    continue
                if len(cells) > len(header):
                    raise ReferenceBuildError(
                        f"{path}: line {reader.line_num}: {len(cells)} cells, "
                        f"but the header names {len(header)} columns"
                    )
                for index, name, cell_reader in read:  # a short row's last cells are empty
                    columns[name].append(cell_reader(cells[index] if index < len(cells) else ""))
                rows += 1
                if rows == batch_rows:
                    advance(rows)
                    yield Batch(rows, columns)
                    rows, columns = 0, {name: [] for _, name, _ in read}
        except csv.Error as error:
            raise ReferenceBuildError(f"{path}: not valid CSV: {error}") from None
        if rows:
            advance(rows)
            yield Batch(rows, columns)


def _csv_header(path: Path, header: list[str] | None) -> list[str]:
    """The header row's column names, each named once."""
    if header is None:
        raise ReferenceBuildError(f"{path}: the file is empty; a header row is expected")
    repeated = sorted({name for name in header if header.count(name) > 1})
    if repeated:
        raise ReferenceBuildError(
            f"{path}: line 1: columns named more than once: {', '.join(repeated)}"
        )
    return header


def _cell_reader(
    column: str, kinds: Mapping[str, FeatureKind], *, guess: bool
) -> Callable[[str], object]:
    """How to read one column's cells: by its feature's kind, else as text or by guessing."""
    kind = kinds.get(column.removeprefix(FEATURES_PREFIX), kinds.get(column))
    if kind is FeatureKind.NUMERIC:
        return _number_cell
    if kind is FeatureKind.BOOLEAN:
        return _boolean_cell
    if kind is FeatureKind.CATEGORICAL or not guess:
        return _text_cell
    return _guessed_cell


def _text_cell(cell: str) -> object:
    return cell if cell else None


def _number_cell(cell: str) -> object:
    if not cell.strip():
        return None
    try:
        return float(cell)
    except ValueError:
        return cell


_BOOLEANS = {"true": True, "false": False, "1": True, "0": False}


def _boolean_cell(cell: str) -> object:
    if not cell.strip():
        return None
    return _BOOLEANS.get(cell.strip().lower(), cell)


def _guessed_cell(cell: str) -> object:
    if not cell.strip():
        return None
    word = cell.strip().lower()
    if word in ("true", "false"):
        return word == "true"
    try:
        return float(cell)
    except ValueError:
        return cell


def _json_lines_batches(
    path: Path,
    wanted: Collection[str] | None,
    names: list[str],
    batch_rows: int,
    advance: Progress,
) -> Iterator[Batch]:
    """The whole file as one batch (see the module's description), its rows told as they are read.

    A row without a column's key has None there.
    """
    columns: dict[str, list[object]] = {}
    every: set[str] = set()
    rows = 0
    for row in _read_json_lines(path):
        every.update(row)
        for key, value in row.items():
            if wanted is not None and key not in wanted:
                continue
            column = columns.get(key)
            if column is None:
                column = columns[key] = [None] * rows
            column.append(value)
        rows += 1
        for column in columns.values():
            if len(column) < rows:
                column.append(None)
        if rows % batch_rows == 0:
            advance(batch_rows)
    if rows % batch_rows:
        advance(rows % batch_rows)
    names.extend([*columns, *sorted(every.difference(columns))])
    yield Batch(rows, columns)


def _read_json_lines(path: Path) -> Iterator[dict[str, object]]:
    with _text_errors(path), path.open(encoding="utf-8") as file:
        for number, line in enumerate(file, start=1):
            if not line.strip():
                continue
            try:
                value = json.loads(line)
            except json.JSONDecodeError as error:
                raise ReferenceBuildError(
                    f"{path}: line {number}: not valid JSON: {error.msg} (column {error.colno})"
                ) from None
            if not isinstance(value, dict):
                raise ReferenceBuildError(
                    f"{path}: line {number}: a JSON object is expected, not {type(value).__name__}"
                )
            yield _flattened(value)


def _flattened(value: Mapping[str, object], prefix: str = "") -> dict[str, object]:
    """Nested objects as dotted keys: ``{"a": {"b": 1}}`` as ``{"a.b": 1}``."""
    flat: dict[str, object] = {}
    for key, item in value.items():
        if isinstance(item, dict):
            flat.update(_flattened(item, f"{prefix}{key}."))
        else:
            flat[f"{prefix}{key}"] = item
    return flat


def _parquet_batches(
    path: Path,
    wanted: Collection[str] | None,
    names: list[str],
    batch_rows: int,
    advance: Progress,
) -> Iterator[Batch]:
    """The file's row batches, each read of the wanted columns alone (nested ones too)."""
    # Imported here: pyarrow is slow to import and only this reader needs it.
    import pyarrow as pa
    import pyarrow.parquet as pq

    try:
        if path.is_dir():
            yield from _parquet_folder_batches(path, wanted, names, batch_rows, advance)
            return
        with pq.ParquetFile(path) as file:
            names.extend(_flat_names(file.schema_arrow))
            # Dotted names select a struct's fields alone; the batch holds the struct of them.
            read = None if wanted is None else list(dict.fromkeys(n for n in names if n in wanted))
            # A row group at a time: a batch across two cannot hold a struct of dictionaries.
            for group in range(file.num_row_groups):
                for batch in file.iter_batches(batch_rows, row_groups=[group], columns=read):
                    table = _flat_table(pa.Table.from_batches([batch]))
                    columns = dict(zip(table.column_names, table.columns, strict=True))
                    advance(batch.num_rows)
                    yield Batch(batch.num_rows, columns)
    except (pa.ArrowException, OSError) as error:
        raise ReferenceBuildError(f"{path}: cannot read the Parquet file: {error}") from None


def _parquet_folder(path: Path) -> Any:
    """A folder of Parquet files as one dataset, as Spark and Hive write them: ``part-*``
    files, in partition folders named ``column=value`` whose values become columns.

    Partition values are read as text (``model_version=3`` is ``"3"``, as a spec
    names it), never guessed as numbers.
    """
    import pyarrow as pa
    import pyarrow.dataset as ds  # type: ignore[import-untyped]

    found = ds.dataset(path, format="parquet", partitioning="hive").partitioning
    text = pa.schema([(name, pa.string()) for name in found.schema.names])
    return ds.dataset(path, format="parquet", partitioning=ds.partitioning(text, flavor="hive"))


def _parquet_folder_batches(
    path: Path,
    wanted: Collection[str] | None,
    names: list[str],
    batch_rows: int,
    advance: Progress,
) -> Iterator[Batch]:
    """:func:`_parquet_batches` over a folder of Parquet files: the top-level columns that
    hold a wanted one are read (a struct whole)."""
    import pyarrow as pa

    dataset = _parquet_folder(path)
    names.extend(_flat_names(dataset.schema))
    read = None
    if wanted is not None:
        read = [
            field.name
            for field in dataset.schema
            if any(n in wanted for n in _flat_names(pa.schema([field])))
        ]
    for batch in dataset.to_batches(columns=read, batch_size=batch_rows):
        table = _flat_table(pa.Table.from_batches([batch]))
        columns = dict(zip(table.column_names, table.columns, strict=True))
        advance(batch.num_rows)
        yield Batch(batch.num_rows, columns)


def _flat_names(schema: Any) -> list[str]:
    """The dotted names of a pyarrow schema's columns, a struct's fields in its place."""
    import pyarrow as pa

    names: list[str] = []
    for field in schema:
        if pa.types.is_struct(field.type):
            names.extend(f"{field.name}.{name}" for name in _flat_names(field.type))
        else:
            names.append(field.name)
    return names


def _flat_table(table: Any) -> Any:
    """The table with its structs flattened into dotted columns and its decimals as floats."""
    import pyarrow as pa

    while any(pa.types.is_struct(field.type) for field in table.schema):
        table = table.flatten()
    for index, field in enumerate(table.schema):
        if pa.types.is_decimal(field.type):
            table = table.set_column(index, field.name, table.column(index).cast(pa.float64()))
    return table
