"""A dead letter's size is bounded whatever the message: long texts are cut, long keys left out."""

import base64

from hypothesis import given, settings
from hypothesis import strategies as st

from driftline.schemas import DeadLetterReason, KafkaPosition
from driftline.streams.codecs import Rejection, encode
from driftline.streams.deadletters import MAX_TEXT_CHARS, dead_letter
from driftline.streams.settings import DEAD_LETTER_TEXT_BYTES

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
    carried = value is not None and len(value) + len(key or b"") <= BOUND
    assert (letter.original is not None) == carried
    assert len(encode(letter)) + len(key or b"") <= 2 * BOUND + DEAD_LETTER_TEXT_BYTES
