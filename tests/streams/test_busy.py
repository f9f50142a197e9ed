import time

import pytest

from driftline.streams.busy import AgentClock, LoopTime


def test_each_clock_counts_its_own_work_and_sees_the_others_work() -> None:
    loop = LoopTime()
    labels, predictions, idle = loop.clock(), loop.clock(), loop.clock()
    with predictions:
        time.sleep(0.02)
    with labels:
        time.sleep(0.01)
    assert predictions.seconds >= 0.02
    assert labels.seconds >= 0.01
    assert loop.seconds == pytest.approx(predictions.seconds + labels.seconds)
    assert labels.others == pytest.approx(predictions.seconds)
    assert predictions.others == pytest.approx(labels.seconds)
    assert idle.seconds == 0.0
    assert idle.others == loop.seconds


def fail_after_work(clock: AgentClock) -> None:
    with clock:
        time.sleep(0.01)
        raise ValueError("a bug in the batch")


def test_a_clock_counts_the_work_of_a_block_that_raised() -> None:
    loop = LoopTime()
    clock = loop.clock()
    with pytest.raises(ValueError, match="a bug"):
        fail_after_work(clock)
    assert clock.seconds >= 0.01
    assert loop.seconds == clock.seconds


def spin(seconds: float) -> None:
    until = time.thread_time() + seconds
    while time.thread_time() < until:
        pass


def test_a_clock_counts_cpu_time_apart_from_waiting() -> None:
    clock = LoopTime().clock()
    with clock:
        time.sleep(0.05)  # waits: wall time, next to no CPU
    assert clock.seconds >= 0.05
    assert clock.cpu_seconds < 0.02
    with clock:
        spin(0.03)
    assert clock.cpu_seconds >= 0.03
    spin(0.03)  # outside a block: not counted
    assert clock.cpu_seconds < 0.05
