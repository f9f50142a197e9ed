"""Model specs written by hand, in YAML or TOML files.

A file holds one spec (a mapping with ``model_id``, ``model_version``, ...)
or several under a top-level ``models`` list. Each spec is validated exactly
as the worker validates it on the wire: the loaded data goes through JSON
first, so a number written in quotes, a category that YAML reads as a
boolean (``yes``) or a date that YAML or TOML reads as a date is refused
with a message naming the file, the spec and the field, instead of being
guessed at.

>>> from pathlib import Path
>>> specs = load_specs(Path("examples/churn-model.yaml"))  # doctest: +SKIP
>>> [(spec.model_id, spec.model_version) for spec in specs]  # doctest: +SKIP
[('churn', '3')]
"""

import datetime as dt
import json
import tomllib
from collections.abc import Hashable, Iterable, Mapping
from pathlib import Path
from typing import Any, TypeVar

import yaml
from pydantic import BaseModel, ValidationError
from pydantic_core import ErrorDetails, InitErrorDetails, PydanticCustomError
from yaml.constructor import ConstructorError
from yaml.nodes import MappingNode

from driftline.schemas import ModelSpec, ReferenceProfile

YAML_SUFFIXES = frozenset({".yaml", ".yml"})
TOML_SUFFIXES = frozenset({".toml"})

Model = TypeVar("Model", bound=BaseModel)


class SpecFileError(ValueError):
    """A spec file (or reference profile file) that cannot be read or holds an invalid spec.

    The message names the file, the spec (its place in ``models`` and its
    model id and version, when known) and the field, one line per problem.
    """


def validate_as_json(model: type[Model], data: object, *, datetimes: bool = False) -> Model:
    """Validate Python data exactly as ``model`` validates the same data sent as JSON.

    Mappings and lists are taken as JSON objects and arrays. A value JSON
    cannot carry (a date, a set, bytes, a mapping key that is not a string)
    is refused with its path, as pydantic's ``ValidationError``, before the
    data is validated; with ``datetimes``, a ``datetime`` is first written
    as its ISO 8601 text, as a JSON producer would write it.

    >>> from driftline.schemas import FeatureSpec
    >>> validate_as_json(FeatureSpec, {"name": "plan", "kind": "categorical"}).kind
    <FeatureKind.CATEGORICAL: 'categorical'>
    >>> age = {"name": "age", "kind": "numeric", "minimum": dt.date(2026, 1, 1)}
    >>> validate_as_json(FeatureSpec, age)
    Traceback (most recent call last):
    ...
    pydantic_core._pydantic_core.ValidationError: 1 validation error for FeatureSpec
    minimum
      Input should be a JSON value: a date (2026-01-01) has no JSON form; ...
    """
    problems: list[InitErrorDetails] = []
    converted = _to_json_data(data, (), datetimes=datetimes, problems=problems)
    try:
        validated = model.model_validate_json(json.dumps(converted, ensure_ascii=False))
    except ValidationError as error:
        if not problems:
            raise
        # Report the rest of the data's errors too, but none about the values
        # already refused (they were validated as null).
        refused = [problem["loc"] for problem in problems]
        problems.extend(
            InitErrorDetails(
                type=other["type"], loc=other["loc"], input=other["input"], ctx=other.get("ctx", {})
            )
            for other in error.errors()
            if other["type"] == "extra_forbidden"
            or not any(other["loc"][: len(loc)] == loc for loc in refused)
        )
    if problems:
        raise ValidationError.from_exception_data(model.__name__, problems)
    return validated


def load_specs(path: Path) -> list[ModelSpec]:
    """The model specs in one YAML (``.yaml``, ``.yml``) or TOML (``.toml``) file.

    Raises :class:`SpecFileError` when the file cannot be read or parsed,
    does not hold specs, or holds an invalid one (every problem of every
    spec in the file is listed), or when one model version is defined twice.
    """
    data = _read(path)
    entries, listed = _entries(path, data)
    specs: list[ModelSpec] = []
    problems: list[str] = []
    defined: dict[tuple[str, str], int] = {}
    for index, entry in enumerate(entries):
        where = _where(path, index if listed else None, entry)
        if not isinstance(entry, Mapping):
            problems.append(f"{where}: a model spec is a mapping of fields, not {_kind(entry)}")
            continue
        try:
            spec = validate_as_json(ModelSpec, entry)
        except ValidationError as error:
            yaml_file = path.suffix.lower() in YAML_SUFFIXES
            problems.extend(f"{where}: {_explain(e, yaml_file=yaml_file)}" for e in error.errors())
            continue
        model = (spec.model_id, spec.model_version)
        if model in defined:
            problems.append(
                f"{where}: this model version is also defined at models.{defined[model]}"
            )
            continue
        defined[model] = index
        specs.append(spec)
    if problems:
        raise SpecFileError("\n".join(problems))
    return specs


def load_spec_files(paths: Iterable[Path]) -> list[tuple[Path, ModelSpec]]:
    """The specs of several files, each with its file, in order.

    Raises :class:`SpecFileError` listing the problems of every file, and
    each model version defined in more than one file.
    """
    loaded: list[tuple[Path, ModelSpec]] = []
    problems: list[str] = []
    defined: dict[tuple[str, str], Path] = {}
    for path in paths:
        try:
            specs = load_specs(path)
        except SpecFileError as error:
            problems.append(str(error))
            continue
        for spec in specs:
            model = (spec.model_id, spec.model_version)
            if model in defined:
                problems.append(
                    f"{path}: model {spec.model_id} version {spec.model_version} "
                    f"is also defined in {defined[model]}"
                )
                continue
            defined[model] = path
            loaded.append((path, spec))
    if problems:
        raise SpecFileError("\n".join(problems))
    return loaded


def load_reference_files(paths: Iterable[Path]) -> list[ReferenceProfile]:
    """The reference profiles of JSON files (as ``driftline reference build`` writes them).

    Raises :class:`SpecFileError` naming the file and the field of every
    problem of every file, a line each.
    """
    profiles: list[ReferenceProfile] = []
    problems: list[str] = []
    for path in paths:
        try:
            profiles.append(ReferenceProfile.model_validate_json(path.read_bytes()))
        except OSError as error:
            problems.append(f"{path}: cannot read it: {error.strerror or error}")
        except ValidationError as error:
            problems.extend(
                f"{path}: not a reference profile: {_explain(e, yaml_file=False)}"
                for e in error.errors()
            )
    if problems:
        raise SpecFileError("\n".join(problems))
    return profiles


class _StrictYamlLoader(yaml.SafeLoader):
    """PyYAML's safe loader, refusing a mapping that names one key twice.

    Plain PyYAML keeps the last of two equal keys silently; the wire refuses
    such a JSON object as ambiguous, and so does this loader. Keys brought
    in by a merge (``<<: *defaults``) may still be overridden.
    """

    def construct_mapping(self, node: MappingNode, deep: bool = False) -> dict[Hashable, Any]:
        seen: set[object] = set()
        for key_node, _ in node.value:
            if key_node.tag == "tag:yaml.org,2002:merge":
                continue
            key = self.construct_object(key_node, deep=True)
            if isinstance(key, Hashable) and key in seen:
                raise ConstructorError(
                    "while constructing a mapping",
                    node.start_mark,
                    f"found the key {key!r} twice",
                    key_node.start_mark,
                )
            seen.add(key)
        return super().construct_mapping(node, deep=deep)


def _read(path: Path) -> object:
    suffix = path.suffix.lower()
    if suffix not in YAML_SUFFIXES | TOML_SUFFIXES:
        raise SpecFileError(
            f"{path}: unknown kind of file {suffix or '(no suffix)'!r}; "
            "spec files are YAML (.yaml, .yml) or TOML (.toml)"
        )
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError as error:
        raise SpecFileError(
            f"{path}: not UTF-8 text ({error.reason} at byte {error.start})"
        ) from None
    except OSError as error:
        raise SpecFileError(f"{path}: cannot read the file: {error.strerror or error}") from None
    if suffix in TOML_SUFFIXES:
        try:
            return tomllib.loads(text)
        except tomllib.TOMLDecodeError as error:
            raise SpecFileError(f"{path}: not valid TOML: {error}") from None
    try:
        return yaml.load(text, Loader=_StrictYamlLoader)  # a safe loader
    except yaml.MarkedYAMLError as error:
        mark = error.problem_mark
        at = f" (line {mark.line + 1}, column {mark.column + 1})" if mark is not None else ""
        problem = error.problem or error.context or "cannot be parsed"
        raise SpecFileError(f"{path}: not valid YAML: {problem}{at}") from None
    except yaml.YAMLError as error:
        raise SpecFileError(f"{path}: not valid YAML: {error}") from None


def _entries(path: Path, data: object) -> tuple[list[object], bool]:
    """The spec entries of a file's data, and whether they came as a ``models`` list."""
    if data is None or data == {}:
        raise SpecFileError(
            f"{path}: the file is empty; it should hold a model spec or a models list"
        )
    if isinstance(data, list):
        raise SpecFileError(
            f"{path}: the file holds a list; put several specs under a top-level models key"
        )
    if not isinstance(data, Mapping):
        raise SpecFileError(f"{path}: the file should hold a model spec, not {_kind(data)}")
    if "models" not in data:
        return [data], False
    others = sorted(str(key) for key in data if key != "models")
    if others:
        raise SpecFileError(
            f"{path}: a file with a models list holds nothing else at the top level "
            f"(found also: {', '.join(others)})"
        )
    models = data["models"]
    if not isinstance(models, list):
        raise SpecFileError(f"{path}: models: should be a list of model specs, not {_kind(models)}")
    if not models:
        raise SpecFileError(f"{path}: models: the list is empty")
    return models, True


def _where(path: Path, index: int | None, entry: object) -> str:
    """Where in the file a spec is: its place in ``models``, and its model when known."""
    model = ""
    if isinstance(entry, Mapping) and isinstance(entry.get("model_id"), str):
        model = f"model {entry['model_id']}"
        version = entry.get("model_version")
        if isinstance(version, str | int | float) and not isinstance(version, bool):
            model += f" version {version}"
    if index is None:
        return f"{path}: {model}" if model else str(path)
    return f"{path}: models.{index} ({model})" if model else f"{path}: models.{index}"


def _explain(error: ErrorDetails, *, yaml_file: bool) -> str:
    """One pydantic error as ``field.path: explanation``, with a hint for common slips."""
    message = error["msg"].removeprefix("Value error, ")
    value = error.get("input")
    if error["type"] == "string_type" and isinstance(value, bool) and yaml_file:
        message += " (YAML reads yes, no, on, off, true and false as booleans: quote it)"
    elif error["type"] == "string_type" and isinstance(value, int | float):
        message += " (quote it to write it as text)"
    elif error["type"] in {"float_type", "int_type"} and _looks_numeric(value):
        if yaml_file and "." not in str(value) and "e" in str(value).lower():
            message += " (YAML reads a number such as 1e5 as text: write 1.0e5)"
        else:
            message += " (a number in quotes is text: leave the quotes out)"
    location = ".".join(str(part) for part in error["loc"])
    return f"{location}: {message}" if location else message


def _looks_numeric(value: object) -> bool:
    if not isinstance(value, str):
        return False
    try:
        float(value)
    except ValueError:
        return False
    return True


def _kind(value: object) -> str:
    """A value's JSON-ish kind, for messages."""
    if isinstance(value, Mapping):
        return "a mapping"
    if isinstance(value, list | tuple):
        return "a list"
    if isinstance(value, str):
        return "text"
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int | float):
        return "a number"
    return f"a {type(value).__name__}"


def _to_json_data(
    value: object,
    location: tuple[str | int, ...],
    *,
    datetimes: bool,
    problems: list[InitErrorDetails],
) -> object:
    """``value`` as a JSON parser would give it; what JSON cannot carry goes to ``problems``."""
    if value is None or isinstance(value, str | int | float):
        # NaN and infinity are left to the model, which refuses them as not finite.
        return value
    if isinstance(value, Mapping):
        result: dict[str, object] = {}
        for key, item in value.items():
            if not isinstance(key, str):
                problems.append(
                    _not_json(
                        location,
                        key,
                        f"a mapping key must be a string, not {type(key).__name__} {key!r} "
                        "(quote it)",
                    )
                )
                continue
            result[key] = _to_json_data(
                item, (*location, key), datetimes=datetimes, problems=problems
            )
        return result
    if isinstance(value, list | tuple):
        return [
            _to_json_data(item, (*location, index), datetimes=datetimes, problems=problems)
            for index, item in enumerate(value)
        ]
    if isinstance(value, dt.datetime) and datetimes:
        return value.isoformat()
    if isinstance(value, dt.datetime | dt.date | dt.time):
        what = (
            "a date and time"
            if isinstance(value, dt.datetime)
            else "a date"
            if isinstance(value, dt.date)
            else "a time of day"
        )
        problems.append(
            _not_json(
                location,
                value,
                f"{what} ({value.isoformat()}) has no JSON form; quote it if it is meant as text",
            )
        )
        return None
    problems.append(_not_json(location, value, f"{_kind(value)} has no JSON form"))
    return None


def _not_json(location: tuple[str | int, ...], value: object, why: str) -> InitErrorDetails:
    return InitErrorDetails(
        type=PydanticCustomError("json_value", "Input should be a JSON value: {why}", {"why": why}),
        loc=location,
        input=value,
    )
