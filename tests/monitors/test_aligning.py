import json
from datetime import UTC, datetime, timedelta

from hypothesis import given
from hypothesis import strategies as st

from driftline.monitors.aligning import SummaryAligner
from driftline.schemas import KafkaPosition
from driftline.schemas.summaries import VersionSummary

START = datetime(2026, 1, 1, tzinfo=UTC)


def summary(partition: int, offset: int, second: float, spread: int = 3) -> VersionSummary:
    time = START + timedelta(seconds=second)
    return VersionSummary(
        model_id="m",
        model_version="1",
        events=1,
        checked=1,
        spread=spread,
        source=KafkaPosition(topic="p", partition=partition, offset=offset),
        last_offset=offset,
        first_event_time=time,
        last_event_time=time,
        last_event_id=f"e{partition}-{offset}",
    )


def streams(draw_times: list[list[float]]) -> list[list[VersionSummary]]:
    """Each partition's summaries, its times sorted (a partition's events come in order)."""
    return [
        [summary(partition, offset, t) for offset, t in enumerate(sorted(times))]
        for partition, times in enumerate(draw_times)
    ]


@given(
    times=st.lists(st.lists(st.floats(0, 1_000), max_size=12), min_size=3, max_size=3),
    order=st.lists(st.integers(0, 2), max_size=60),
)
def test_summaries_go_once_each_in_time_order_while_no_partition_falls_far_behind(times, order):
    # The partitions take turns as ``order`` says (then the rest in turn); with room for all,
    # every summary goes once, all in the order of their times.
    queues = streams(times)
    aligner = SummaryAligner(held=1_000)
    gone: list[VersionSummary] = []
    turns = [*order, *(p for p in range(3) for _ in range(len(queues[p])))]
    for partition in turns:
        if queues[partition]:
            released = aligner.offer(queues[partition].pop(0))
            assert released is not None
            gone += released
    gone += aligner.flush()
    assert sorted(s.last_event_id for s in gone) == sorted(
        f"e{p}-{o}" for p, ts in enumerate(times) for o in range(len(ts))
    )
    assert [s.last_event_time for s in gone] == sorted(s.last_event_time for s in gone)


def test_a_partition_never_heard_from_holds_the_rest_up_to_the_bound():
    aligner = SummaryAligner(held=4)
    gone = []
    for offset in range(6):  # partitions 0 and 1 send; 2 of the three never does
        for partition in (0, 1):
            gone += aligner.offer(summary(partition, offset, offset)) or []
    assert aligner.waiting == 4
    assert [(s.source.partition, s.source.offset) for s in gone] == [
        (0, 0),
        (1, 0),
        (0, 1),
        (1, 1),
        (0, 2),
        (1, 2),
        (0, 3),
        (1, 3),
    ][: len(gone)]
    assert len(gone) == 8


def test_a_summary_sent_again_is_dropped():
    aligner = SummaryAligner()
    assert aligner.offer(summary(0, 5, 1.0, spread=1)) == [summary(0, 5, 1.0, spread=1)]
    assert aligner.offer(summary(0, 5, 1.0, spread=1)) is None
    assert aligner.offer(summary(0, 4, 0.5, spread=1)) is None


def test_an_aligner_read_back_from_its_state_lets_the_same_summaries_go():
    first, second = SummaryAligner(), SummaryAligner()
    offers = [summary(p, o, o * 3 + p) for o in range(5) for p in (0, 2, 1)]
    for each in offers[:7]:
        first.offer(each)
        second.offer(each)
    restored = SummaryAligner.from_state(json.loads(json.dumps(second.to_state())))
    assert restored.waiting == first.waiting > 0
    for each in offers[7:]:
        assert restored.offer(each) == first.offer(each)
    assert restored.flush() == first.flush()
