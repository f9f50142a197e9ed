"""Progress is drawn on a terminal only, with a count and a rate; a pipe gets nothing."""

import io
import re

from driftline.progress import count_text, shown_progress

ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]")


class Terminal(io.StringIO):
    """A stream that says it is a terminal, as standard error at a terminal does."""

    def isatty(self) -> bool:
        return True


def read_in_batches(stream: io.StringIO, **options) -> str:
    with shown_progress("reading data.csv", stream=stream, **options) as advance:
        for _ in range(4):
            advance(2_500)
    return ANSI.sub("", stream.getvalue())


def test_nothing_is_drawn_into_a_pipe():
    assert read_in_batches(io.StringIO(), total=10_000) == ""


def test_nothing_is_drawn_when_turned_off_even_on_a_terminal():
    assert read_in_batches(Terminal(), total=10_000, enabled=False) == ""


def test_a_terminal_gets_the_count_of_the_total_and_a_rate():
    drawn = read_in_batches(Terminal(), total=10_000)
    last = drawn.split("\r")[-1]
    assert "reading data.csv" in last
    assert re.search(r"10,000/10,000 rows, [\d,]+/s", last), last


def test_forced_on_it_draws_into_any_stream_and_without_a_total_the_count_alone():
    drawn = read_in_batches(io.StringIO(), enabled=True)
    assert re.search(r"reading data\.csv +10,000 rows, [\d,]+/s", drawn), drawn
    assert "/10,000" not in drawn


def test_the_rate_is_the_count_over_the_seconds_it_took():
    assert count_text(3_000, None, "events", 1.5) == "3,000 events, 2,000/s"
    assert count_text(0, 50, "rows", 0.0) == "0/50 rows, -/s"


def test_the_rate_is_of_the_time_to_the_last_batch_not_of_the_work_after_it(monkeypatch):
    now = [0.0]
    monkeypatch.setattr("rich.console.monotonic", lambda: now[0])  # rich's clock
    stream = Terminal()
    with shown_progress("reading data.csv", stream=stream) as advance:
        now[0] = 2.0
        advance(1_000)
        now[0] = 100.0  # building what was read
    last = ANSI.sub("", stream.getvalue()).split("\r")[-1]
    assert re.search(r"1,000 rows, 500/s 0:01:40$", last), last


def test_a_long_description_is_cut_short_on_a_narrow_terminal_never_the_figures():
    stream = Terminal()  # rich draws 80 columns wide into a stream of unknown width
    with shown_progress("reading " + "x" * 100 + ".parquet", total=1_000_000, stream=stream) as (
        advance
    ):
        advance(1_000_000)
    last = ANSI.sub("", stream.getvalue()).split("\r")[-1]
    assert re.search(r"reading x+… .* 1,000,000/1,000,000 rows, [\d,]+/s \d+:\d\d:\d\d$", last)
