"""The soak script's figures: the growth slope, the lag, the lines it prints; no Kafka."""

import sys
from pathlib import Path

import pytest

# benchmarks/ is a folder at the repository root, not part of the installed package,
# and the root is kept off sys.path: put it there just for this import.
ROOT = str(Path(__file__).resolve().parents[2])
sys.path.insert(0, ROOT)
try:
    from benchmarks import soak
finally:
    sys.path.remove(ROOT)

MIB = 2**20


def sample(seconds: float, resident_mib: float, lag: int | None = 0) -> soak.Sample:
    return soak.Sample(
        elapsed_seconds=seconds,
        published=int(seconds * 100),
        processed=int(seconds * 100) - 5,
        labels_published=int(seconds * 100),
        labels_processed=0,
        dead_lettered=0,
        duplicates=0,
        lag=lag,
        resident_bytes=int(resident_mib * MIB),
        waiting_in_join=1_234,
        cpu_percent=42.4,
    )


def test_the_slope_is_that_of_the_least_squares_line():
    assert soak.least_squares_slope([(0, 1), (1, 3), (2, 5)]) == pytest.approx(2.0)
    # One outlier moves the fitted slope less than it moves last-minus-first.
    assert soak.least_squares_slope([(0, 0), (1, 0), (2, 0), (3, 3)]) == pytest.approx(0.9)
    assert soak.least_squares_slope([(5, 1)]) is None
    assert soak.least_squares_slope([(5, 1), (5, 2)]) is None


def test_growth_is_in_percent_of_the_warmup_memory_per_ten_minutes():
    # 200 MiB at the end of a 5-minute warm-up, then 2 MiB more a minute: 10 % per 10 min.
    samples = [sample(60.0 * minute, 150 + 10 * minute) for minute in range(5)]
    samples += [sample(60.0 * minute, 200 + 2 * (minute - 5)) for minute in range(5, 31)]
    assert soak.growth_per_10_minutes(samples, warmup_seconds=300) == pytest.approx(10.0)
    # The warm-up's own climb is left out; flat after it is no growth.
    flat = samples[:6] + [sample(60.0 * minute, 200) for minute in range(6, 31)]
    assert soak.growth_per_10_minutes(flat, warmup_seconds=300) == pytest.approx(0.0)


def test_the_warmup_ends_at_the_sample_nearest_to_it():
    samples = [sample(30.2, 100), sample(60.1, 120), sample(90.1, 121)]
    assert soak.warmup_end_sample(samples, 60).elapsed_seconds == 60.1
    assert soak.warmup_end_sample(samples, 0).elapsed_seconds == 30.2
    assert soak.warmup_end_sample([], 60) is None
    assert soak.growth_per_10_minutes(samples[:1], 60) is None


def test_a_partition_never_committed_lags_by_all_it_holds():
    assert soak.lag({0: 10, 1: 5}, {0: 12, 1: 5, 2: 7}) == 2 + 0 + 7
    assert soak.lag({0: 12}, {0: 10}) == 0  # never negative


def test_the_summary_says_whether_growth_stayed_under_the_limit():
    options = soak.Options(minutes=30, warmup_minutes=5)
    growing = [sample(60.0 * m, 200 + 2 * max(m - 5, 0), lag=m) for m in range(31)]
    summary = soak.summarize(growing, options, rate=100.0)
    assert summary["warmup_end_resident_bytes"] == 200 * MIB
    assert summary["growth_within_limit"] is False
    assert summary["max_lag"] == 30
    assert summary["achieved_rate"] == pytest.approx(100.0)
    assert summary_text(summary).endswith("growth < 5 % per 10 min: NO")
    assert summary["kept_up"] is True  # 30 messages of 200 a second
    assert summary["end_lag_seconds"] == pytest.approx(0.15)
    steady = [sample(60.0 * m, 200, lag=None) for m in range(31)]
    summary = soak.summarize(steady, options, rate=100.0)
    assert summary["growth_within_limit"] is True
    assert summary["max_lag"] is None
    assert "+0.00 % per 10 min" in summary_text(summary)
    assert summary["kept_up"] is False  # nothing says it did


def test_a_lag_of_more_than_ten_seconds_of_traffic_is_falling_behind():
    options = soak.Options(minutes=30, warmup_minutes=5)
    # 200 messages a second (predictions and labels): 2,001 is just over 10 s of them.
    for lag, kept_up in ((2_000, True), (2_001, False)):
        summary = soak.summarize([sample(60.0, 200, lag=lag)], options, rate=100.0)
        assert summary["kept_up"] is kept_up
    assert "the worker fell behind" in summary_text(summary)


def summary_text(summary: dict) -> str:
    return "\n".join(soak.summary_lines(summary))


def test_a_sample_line_sits_under_its_header():
    line = soak.sample_line(sample(75.4, 201.25, lag=12_345))
    assert line.split() == ["1:15", "7,540", "7,535", "12,345", "201.2", "1,234", "42"]
    assert len(line) == len(soak.HEADER)
    unknown = soak.Sample(75.4, 0, None, 0, None, None, None, None, resident_bytes=MIB)
    assert soak.sample_line(unknown).split() == ["1:15", "0", "-", "-", "1.0", "-", "-"]


def test_the_options_are_checked():
    options, _ = soak.parse_options(["--minutes", "3", "--warmup-minutes", "1", "--every", "15"])
    assert (options.seconds, options.every, options.drift_after_seconds) == (180, 15, 90)
    assert soak.parse_options(["--drift-after-minutes", "2"])[0].drift_after_seconds == 120
    for wrong in (["--every", "0"], ["--rate", "-1"], ["--unlabelled-share", "2"]):
        with pytest.raises(SystemExit):
            soak.parse_options(wrong)
