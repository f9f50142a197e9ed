"""InputPacer: labels held back while ahead of a predictions backlog, and never for good."""

import asyncio

import pytest
from hypothesis import given
from hypothesis import strategies as st

from driftline.streams.pacing import InputPacer, earliest_by_partition, latest_by_partition


def pacer(*, backlog: bool = True, lead: float = 5.0, max_wait: float = 30.0) -> InputPacer:
    return InputPacer(lead=lead, leader_backlog=lambda partition: backlog, max_wait=max_wait)


def test_a_record_within_the_lead_goes_at_once() -> None:
    paced = pacer()
    paced.leader_reached({0: 100.0})
    assert not paced.ahead(0, 105.0)
    assert asyncio.run(paced.wait_to_follow({0: 105.0})) == 0.0


def test_without_a_backlog_of_the_leader_nothing_waits() -> None:
    paced = pacer(backlog=False)
    paced.leader_reached({0: 100.0})
    assert not paced.ahead(0, 10_000.0)
    assert asyncio.run(paced.wait_to_follow({0: 10_000.0})) == 0.0


def test_each_partition_follows_its_own_leader() -> None:
    paced = pacer()
    paced.leader_reached({0: 100.0, 1: 10.0})
    assert not paced.ahead(0, 100.0)
    assert paced.ahead(1, 100.0)
    assert paced.ahead(2, 100.0)  # no prediction of partition 2 processed yet, some waiting
    only_partition_0 = InputPacer(lead=0.0, leader_backlog=lambda p: p == 0, max_wait=1.0)
    assert not only_partition_0.ahead(1, 1e9)  # partition 1 has no predictions waiting


def test_a_record_ahead_waits_until_the_leader_comes_within_the_lead() -> None:
    async def scenario() -> tuple[bool, bool, float]:
        paced = pacer()
        paced.leader_reached({0: 100.0, 1: 100.0})
        waiting = asyncio.create_task(paced.wait_to_follow({0: 120.0, 1: 101.0}))
        for _ in range(5):
            await asyncio.sleep(0)
        held = not waiting.done()
        paced.leader_reached({0: 110.0})  # still 10 s behind: not enough
        for _ in range(5):
            await asyncio.sleep(0)
        still_held = not waiting.done()
        paced.leader_reached({0: 115.0})
        return held, still_held, await asyncio.wait_for(waiting, timeout=10)

    held, still_held, waited = asyncio.run(scenario())
    assert held
    assert still_held
    assert waited > 0.0


def test_the_leader_never_goes_back() -> None:
    paced = pacer()
    paced.leader_reached({0: 100.0})
    paced.leader_reached({0: 50.0})
    assert paced.leader_times == {0: 100.0}


def test_a_record_ahead_goes_after_the_longest_wait_if_the_leader_does_not_move() -> None:
    paced = pacer(max_wait=0.05)
    paced.leader_reached({0: 100.0})
    waited = asyncio.run(asyncio.wait_for(paced.wait_to_follow({0: 1_000.0}), timeout=10))
    assert waited >= 0.05


def test_a_record_waits_until_the_leader_backlog_is_gone() -> None:
    backlog = [True]

    async def scenario() -> bool:
        paced = InputPacer(lead=0.0, leader_backlog=lambda partition: backlog[0], max_wait=30.0)
        waiting = asyncio.create_task(paced.wait_to_follow({3: 1_000.0}))
        await asyncio.sleep(0.01)
        held = not waiting.done()
        backlog[0] = False  # noticed at the next recheck
        await asyncio.wait_for(waiting, timeout=10)
        return held

    assert asyncio.run(scenario())


@given(st.lists(st.tuples(st.integers(0, 3), st.floats(0, 1e9))))
def test_earliest_and_latest_by_partition(pairs: list[tuple[int, float]]) -> None:
    partitions = {partition for partition, _ in pairs}
    assert earliest_by_partition(pairs) == {
        p: min(t for q, t in pairs if q == p) for p in partitions
    }
    assert latest_by_partition(pairs) == {p: max(t for q, t in pairs if q == p) for p in partitions}


@pytest.mark.parametrize(("lead", "max_wait"), [(-1.0, 1.0), (1.0, 0.0)])
def test_invalid_parameters_are_refused(lead: float, max_wait: float) -> None:
    with pytest.raises(ValueError, match="lead must be at least 0"):
        InputPacer(lead=lead, leader_backlog=lambda partition: True, max_wait=max_wait)
