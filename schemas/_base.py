"""The one pydantic configuration every wire model shares."""

from enum import StrEnum
from typing import Annotated, TypeVar

from pydantic import BaseModel, ConfigDict, Strict


class WireModel(BaseModel):
    """Base of every message on the wire.

    Frozen, so a validated event cannot be changed behind a detector's back;
    strict with unknown fields rejected, so a producer's typo (``"featurs"``)
    or a number sent as a string (``"0.5"``) is refused with a message naming
    the field instead of being guessed at; and no NaN or infinity anywhere,
    because one non-finite value silently poisons a running mean forever.
    """

    model_config = ConfigDict(
        frozen=True,
        extra="forbid",
        strict=True,
        allow_inf_nan=False,
        populate_by_name=False,
    )


E = TypeVar("E", bound=StrEnum)

Choice = Annotated[E, Strict(False)]
"""An enumerated field that Python code may also set by value (``kind="numeric"``).

Strict mode would take only enum members from Python; JSON carries the
values either way, and nothing else is coerced.
"""
