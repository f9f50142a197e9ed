"""JSON Schemas of every message on the wire, for producers and consumers in any language.

``driftline schemas export DIR`` writes one ``<name>.schema.json`` per entry
of :data:`~driftline.schemas.WIRE_MODELS` (JSON Schema draft 2020-12, the
schema pydantic derives for validation). A producer that validates its
messages against them sends only messages of the right shape and types: the
fields, their JSON types (a number is never a string, a boolean never a
number), required fields, unknown fields refused, enumerations, lengths and
bounds.

Some of the worker's rules are beyond what JSON Schema can say, or what these
schemas say; a message can pass its schema and still be dead-lettered for:

- class ``probabilities`` that do not sum to 1 (within 0.001), and a
  prediction ``interval`` whose ``lower`` is above its ``upper``;
- a model spec whose parts disagree: ``minimum`` or ``maximum`` on a feature
  that is not numeric, ``categories`` on one that is not categorical,
  ``minimum`` above ``maximum``, a category, class or feature name listed
  twice, ``classes`` on a regression model;
- a JSON object that names one key twice (a schema validator sees the object
  after parsing, when one of the two values is already gone);
- ``NaN``, ``Infinity`` or a number too large for a 64-bit float (``1e400``),
  which are not JSON or which a validator may read as a big number;
- an integer field given as ``1.0``: JSON Schema's ``integer`` takes a number
  with no fraction, the worker only an integer literal;
- ``event_time`` and other date-times: ``format: date-time`` is checked only
  by validators told to assert formats (RFC 3339, which requires the offset
  that the worker requires too);
- everything that depends on more than one message: a registered model
  version, its spec, duplicate and late events, the Kafka key.

One thing is added to what pydantic derives: in a tagged union (an alert's
``evidence``), each member's tag (``kind``) is required, as the worker
requires it, although the member has a default for it.
"""

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from pydantic import BaseModel

from driftline.schemas import WIRE_MODELS

JSON_SCHEMA_DIALECT = "https://json-schema.org/draft/2020-12/schema"
"""The ``$schema`` of every exported schema."""

SCHEMA_SUFFIX = ".schema.json"


def json_schema(model: type[BaseModel]) -> dict[str, Any]:
    """The JSON Schema of one wire model, as exported.

    >>> from driftline.schemas import LabelEvent
    >>> schema = json_schema(LabelEvent)
    >>> schema["$schema"], schema["additionalProperties"], "label" in schema["required"]
    ('https://json-schema.org/draft/2020-12/schema', False, True)
    """
    schema = model.model_json_schema(mode="validation")
    _require_tags(schema, schema.get("$defs", {}))
    return {"$schema": JSON_SCHEMA_DIALECT, **schema}


def schema_text(model: type[BaseModel]) -> str:
    """The exported file's text: sorted keys, two-space indents, a final newline."""
    return json.dumps(json_schema(model), indent=2, sort_keys=True, ensure_ascii=False) + "\n"


def export_json_schemas(directory: Path) -> list[Path]:
    """Write ``<name>.schema.json`` for each wire model into ``directory``; return the paths.

    The directory is created when missing; files of the same names are
    replaced, other files left alone. The text depends only on the models,
    so exporting twice gives the same bytes.
    """
    directory.mkdir(parents=True, exist_ok=True)
    # Typed loosely: a mapping of model classes reads to mypy as one of metaclasses.
    models: Mapping[str, Any] = WIRE_MODELS
    written = []
    for name, model in models.items():
        path = directory / f"{name}{SCHEMA_SUFFIX}"
        with path.open("w", encoding="utf-8", newline="\n") as file:
            file.write(schema_text(model))
        written.append(path)
    return written


def _require_tags(node: object, definitions: dict[str, Any]) -> None:
    """Make each tagged union's tag a required property of every member it maps to."""
    if isinstance(node, dict):
        discriminator = node.get("discriminator")
        if isinstance(discriminator, dict):
            tag = discriminator.get("propertyName")
            for reference in discriminator.get("mapping", {}).values():
                member = definitions.get(str(reference).removeprefix("#/$defs/"))
                if isinstance(member, dict) and tag is not None:
                    required = member.setdefault("required", [])
                    if tag not in required:
                        required.insert(0, tag)
        for value in node.values():
            _require_tags(value, definitions)
    elif isinstance(node, list):
        for value in node:
            _require_tags(value, definitions)
