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
  are read as floats.

Nested objects (JSON) and structs (Parquet) are flattened into dotted
column names, ``{"features": {"tenure": 3}}`` into ``features.tenure``. A
feature's values are taken from the ``features.<name>`` column when there is
one, else from the ``<name>`` column, so a file of recorded
:class:`~driftline.schemas.PredictionEvent` messages can be used as it is;
when the file has ``model_id`` or ``model_version`` columns, only the rows of
the spec's model version are used.

Files are read whole into memory: fine for the millions of rows a reference
needs, not for a whole data lake.
"""

import csv
import json
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path

from driftline.monitors.reference import (
    DEFAULT_MAX_CATEGORIES,
    DEFAULT_RESOLUTION,
    build_reference,
)
from driftline.schemas.reference import ReferenceProfile
from driftline.schemas.registry import FeatureKind, ModelSpec
from driftline.specfiles import load_specs

CSV_SUFFIXES = frozenset({".csv"})
JSON_LINES_SUFFIXES = frozenset({".jsonl", ".ndjson"})
PARQUET_SUFFIXES = frozenset({".parquet", ".pq"})

FEATURES_PREFIX = "features."
"""The prefix of feature columns flattened from a ``features`` object."""


class ReferenceBuildError(ValueError):
    """A data file that cannot be read or holds no usable rows, or no spec to build for.

    The message names the file, and the line when one is at fault.
    """


def read_columns(path: Path, spec: ModelSpec | None = None) -> dict[str, list[object]]:
    """The columns of a CSV, JSON Lines or Parquet file, each a list with one value per row.

    ``spec`` tells how to read the CSV cells of its features (see the module's
    description); it changes nothing for the other kinds of file. A value
    missing from a row is None. Raises :class:`ReferenceBuildError`.
    """
    suffix = path.suffix.lower()
    if suffix in CSV_SUFFIXES:
        kinds = {} if spec is None else {f.name: f.kind for f in spec.features}
        return _read_csv(path, kinds, guess=spec is None)
    if suffix in JSON_LINES_SUFFIXES:
        return _columns(_read_json_lines(path))
    if suffix in PARQUET_SUFFIXES:
        return _read_parquet(path)
    raise ReferenceBuildError(
        f"{path}: unknown kind of file {suffix or '(no suffix)'!r}; reference data is CSV "
        "(.csv), JSON Lines (.jsonl, .ndjson) or Parquet (.parquet, .pq)"
    )


def feature_columns(
    columns: Mapping[str, list[object]], spec: ModelSpec
) -> dict[str, list[object]]:
    """Each spec feature's column, by feature name: ``features.<name>`` first, else ``<name>``.

    >>> from driftline.schemas.registry import FeatureSpec, TaskType
    >>> spec = ModelSpec(model_id="m", model_version="1", task=TaskType.REGRESSION,
    ...                  features=[FeatureSpec(name="prediction", kind=FeatureKind.NUMERIC)])
    >>> feature_columns({"prediction": [0.9], "features.prediction": [3.0]}, spec)
    {'prediction': [3.0]}
    """
    found: dict[str, list[object]] = {}
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
) -> ReferenceProfile:
    """The reference profile of ``spec``'s model version from a data file.

    Rows of other model versions are left out (when the file says which
    model version each row is of). With ``ordered``, the rows are taken as a
    stream in order and the serial correlation of each numeric feature is
    kept (see :func:`~driftline.monitors.reference.build_reference`). The
    profile's JSON is written to ``output`` when given. Raises
    :class:`ReferenceBuildError` when the file cannot be read, has no rows
    of the model version, or has no value of any feature of the spec.
    """
    columns = _rows_of(spec, read_columns(path, spec), path)
    features = feature_columns(columns, spec)
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
        found = ", ".join(sorted(columns)[:20]) or "none"
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
) -> ReferenceProfile:
    """What ``driftline reference build`` does: a profile from a data file and a spec file.

    The spec file (YAML or TOML, read by :func:`~driftline.specfiles.load_specs`)
    must hold exactly one spec, or exactly one of model ``model`` and version
    ``version`` when they are given. The profile's JSON is written to
    ``output`` when given. Raises :class:`~driftline.specfiles.SpecFileError`
    for an invalid spec file and :class:`ReferenceBuildError` otherwise.
    """
    spec = choose_spec(load_specs(spec_path), spec_path, model=model, version=version)
    return build_reference_file(data, spec, output=output, ordered=ordered)


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


def _rows_of(
    spec: ModelSpec, columns: dict[str, list[object]], path: Path
) -> dict[str, list[object]]:
    """The columns cut to the rows of the spec's model version, when the file says."""
    wanted = {"model_id": spec.model_id, "model_version": spec.model_version}
    tags = {name: columns[name] for name in wanted if name in columns}
    rows = len(next(iter(columns.values()), []))
    if not tags:
        if rows == 0:
            raise ReferenceBuildError(f"{path}: the file holds no rows")
        return columns
    keep = [row for row in range(rows) if all(tags[name][row] == wanted[name] for name in tags)]
    if not keep:
        seen = sorted({" ".join(str(tags[n][row]) for n in tags) for row in range(rows)})
        raise ReferenceBuildError(
            f"{path}: no rows of model {spec.model_id} version {spec.model_version} "
            f"({', '.join(tags)} found: {', '.join(seen[:10]) or 'none'})"
        )
    if len(keep) == rows:
        return columns
    return {name: [column[row] for row in keep] for name, column in columns.items()}


def _read_csv(
    path: Path, kinds: Mapping[str, FeatureKind], *, guess: bool
) -> dict[str, list[object]]:
    try:
        with path.open(encoding="utf-8-sig", newline="") as file:
            reader = csv.reader(file)
            header = next(reader, None)
            if header is None:
                raise ReferenceBuildError(f"{path}: the file is empty; a header row is expected")
            repeated = sorted({name for name in header if header.count(name) > 1})
            if repeated:
                raise ReferenceBuildError(
                    f"{path}: line 1: columns named more than once: {', '.join(repeated)}"
                )
            columns: list[list[object]] = [[] for _ in header]
            readers = [_cell_reader(name, kinds, guess=guess) for name in header]
            for cells in reader:
                if not cells:
                    continue
                if len(cells) > len(header):
                    raise ReferenceBuildError(
                        f"{path}: line {reader.line_num}: {len(cells)} cells, "
                        f"but the header names {len(header)} columns"
                    )
                cells += [""] * (len(header) - len(cells))
                for column, read, cell in zip(columns, readers, cells, strict=True):
                    column.append(read(cell))
    except UnicodeDecodeError as error:
        raise ReferenceBuildError(
            f"{path}: not UTF-8 text ({error.reason} at byte {error.start})"
        ) from None
    except csv.Error as error:
        raise ReferenceBuildError(f"{path}: not valid CSV: {error}") from None
    except OSError as error:
        raise ReferenceBuildError(
            f"{path}: cannot read the file: {error.strerror or error}"
        ) from None
    return dict(zip(header, columns, strict=True))


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


def _read_json_lines(path: Path) -> Iterator[dict[str, object]]:
    try:
        with path.open(encoding="utf-8") as file:
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
                        f"{path}: line {number}: a JSON object is expected, "
                        f"not {type(value).__name__}"
                    )
                yield _flattened(value)
    except UnicodeDecodeError as error:
        raise ReferenceBuildError(
            f"{path}: not UTF-8 text ({error.reason} at byte {error.start})"
        ) from None
    except OSError as error:
        raise ReferenceBuildError(
            f"{path}: cannot read the file: {error.strerror or error}"
        ) from None


def _flattened(value: Mapping[str, object], prefix: str = "") -> dict[str, object]:
    """Nested objects as dotted keys: ``{"a": {"b": 1}}`` as ``{"a.b": 1}``."""
    flat: dict[str, object] = {}
    for key, item in value.items():
        if isinstance(item, dict):
            flat.update(_flattened(item, f"{prefix}{key}."))
        else:
            flat[f"{prefix}{key}"] = item
    return flat


def _columns(rows: Iterator[dict[str, object]]) -> dict[str, list[object]]:
    """Rows as columns; a row without a column's key has None there."""
    columns: dict[str, list[object]] = {}
    for count, row in enumerate(rows):
        for key, value in row.items():
            column = columns.get(key)
            if column is None:
                column = columns[key] = [None] * count
            column.append(value)
        for column in columns.values():
            if len(column) == count:
                column.append(None)
    return columns


def _read_parquet(path: Path) -> dict[str, list[object]]:
    # Imported here: pyarrow is slow to import and only this reader needs it.
    import pyarrow as pa  # type: ignore[import-untyped]
    import pyarrow.parquet as pq  # type: ignore[import-untyped]

    try:
        table = pq.read_table(path)
    except (pa.ArrowException, OSError) as error:
        raise ReferenceBuildError(f"{path}: cannot read the Parquet file: {error}") from None
    while any(pa.types.is_struct(field.type) for field in table.schema):
        table = table.flatten()
    for index, field in enumerate(table.schema):
        if pa.types.is_decimal(field.type):
            table = table.set_column(index, field.name, table.column(index).cast(pa.float64()))
    columns: dict[str, list[object]] = table.to_pydict()
    return columns
