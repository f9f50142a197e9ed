"""A dead letter's size is bounded whatever the message: long texts are cut, long keys left out,
long values carried cut with the size and digest of the whole."""

import base64
import hashlib
import json
import math

from hypothesis import given, settings
from hypothesis import strategies as st

from driftline.schemas import DeadLetter, DeadLetterReason, KafkaPosition
from driftline.streams.codecs import Rejection, encode
from driftline.streams.deadletters import MAX_TEXT_CHARS, dead_letter
from driftline.streams.settings import DEAD_LETTER_TEXT_BYTES, Settings

SOURCE = KafkaPosition(topic="predictions", partition=3, offset=41)
BOUND = 200_000
"""A bound on value and key large beside the room for text, so that carrying more shows."""


def test_a_long_reason_and_field_path_are_cut_and_say_so() -> None:
    rejection = Rejection(DeadLetterReason.INVALID_EVENT, "r" * 10_000, field_path="f" * 5_000)
    letter = dead_letter(rejection, value=b"{}", key=None, source=SOURCE)
    assert letter.message.startswith("r" * MAX_TEXT_CHARS + "...")
    assert "10,000 characters in all" in letter.message
    assert letter.field_path is not None
    assert "5,000 characters in all" in letter.field_path


def test_a_key_too_long_to_show_is_left_out_and_the_bytes_kept() -> None:
    long_key = b"k" * (MAX_TEXT_CHARS + 1)
    letter = dead_letter(
        Rejection(DeadLetterReason.INVALID_JSON, "not JSON"),
        value=b"{",
        key=long_key,
        source=SOURCE,
    )
    assert letter.key is None
    assert base64.b64decode(letter.original or "") == b"{"


@settings(max_examples=50, deadline=None)
@given(
    st.text(max_size=6_000),
    st.text(max_size=3_000) | st.none(),
    st.integers(min_value=0, max_value=BOUND) | st.none(),
    st.integers(min_value=0, max_value=2 * BOUND) | st.none(),
)
def test_a_dead_letter_and_its_key_are_never_larger_than_twice_the_bound_and_its_text(
    reason: str, field_path: str | None, key_size: int | None, value_size: int | None
) -> None:
    """The record is the dead letter and the message's own key (taken to be at most the bound:
    a longer key makes a record as long as itself, whatever the dead letter holds)."""
    key = None if key_size is None else b"k" * key_size
    value = None if value_size is None else b"{" * value_size
    letter = dead_letter(
        Rejection(DeadLetterReason.INVALID_EVENT, reason, field_path=field_path),
        value=value,
        key=key,
        source=SOURCE,
        max_original_bytes=BOUND,
    )
    whole = value is not None and len(value) + len(key or b"") <= BOUND
    assert (letter.original is not None) == (value is not None)
    assert letter.original_truncated == (value is not None and not whole)
    assert len(encode(letter)) + len(key or b"") <= 2 * BOUND + DEAD_LETTER_TEXT_BYTES


@settings(max_examples=200, deadline=None)
@given(
    st.binary(max_size=3_000),
    st.binary(max_size=600) | st.none(),
    st.integers(min_value=0, max_value=4_000),
    st.text(max_size=3_000),
)
def test_a_dead_letter_carries_a_prefix_of_its_value_and_the_size_and_digest_of_the_whole(
    value: bytes, key: bytes | None, bound: int, reason: str
) -> None:
    letter = dead_letter(
        Rejection(DeadLetterReason.TOO_LARGE, reason),
        value=value,
        key=key,
        source=SOURCE,
        max_original_bytes=bound,
    )
    carried = base64.b64decode(letter.original or "", validate=True)
    fits = len(value) + len(key or b"") <= bound
    assert value.startswith(carried)
    if fits:
        assert carried == value
        assert not letter.original_truncated
    else:
        assert letter.original_truncated
        assert len(carried) == max(bound - len(key or b""), 0)
        assert f"{len(value):,} bytes are cut to their first {len(carried):,}" in letter.message
    assert len(carried) + len(key or b"") <= max(bound, len(key or b""))
    assert letter.original_bytes == len(value)
    assert letter.original_sha256 == hashlib.sha256(value).hexdigest()
    encoded = encode(letter)
    assert len(encoded) <= 4 * math.ceil(min(bound, len(value)) / 3) + DEAD_LETTER_TEXT_BYTES
    assert DeadLetter.model_validate_json(encoded) == letter


def test_a_tombstone_has_no_original_size_or_digest() -> None:
    letter = dead_letter(
        Rejection(DeadLetterReason.EMPTY, "no value"), value=None, key=b"m", source=SOURCE
    )
    assert letter.original is None
    assert letter.original_bytes is None
    assert letter.original_sha256 is None
    assert not letter.original_truncated


def test_the_largest_dead_letter_fits_the_settings_bound() -> None:
    settings = Settings(max_message_bytes=BOUND)
    letter = dead_letter(
        Rejection(DeadLetterReason.TOO_LARGE, "x" * 10_000, field_path="\x00" * 5_000),
        value=b"\x00" * (3 * BOUND),
        key=None,
        source=SOURCE,
        max_original_bytes=settings.max_message_bytes,
    )
    assert letter.original_truncated
    assert letter.original_bytes == 3 * BOUND
    assert len(base64.b64decode(letter.original or "")) == BOUND
    assert len(encode(letter)) <= settings.dead_letter_max_bytes


def test_a_dead_letter_written_before_the_size_and_digest_still_reads() -> None:
    old = {
        "schema_version": 1,
        "reason": "too_large",
        "message": "too large (the message's 2,000,000 bytes are not carried: ...)",
        "field_path": None,
        "source": {"topic": "predictions", "partition": 3, "offset": 41},
        "key": "m",
        "original": None,
    }
    letter = DeadLetter.model_validate_json(json.dumps(old))
    assert letter.original is None
    assert letter.original_bytes is None
    assert letter.original_sha256 is None
    assert not letter.original_truncated
