from hypothesis import given
from hypothesis import strategies as st

from driftline.agents.progress import ProgressWatch

P0, P1 = ("predictions", 0), ("labels", 1)


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def test_a_partition_waiting_without_progress_stalls_after_the_stall_time():
    clock = Clock()
    watch = ProgressWatch(10.0, clock=clock)
    watch.observe([P0, P1])
    clock.now = 9.9
    watch.observe([P0, P1])
    assert watch.stalled() == {}
    clock.now = 10.0
    assert watch.stalled() == {P0: 10.0, P1: 10.0}


def test_progress_or_an_empty_queue_ends_a_stall():
    clock = Clock()
    watch = ProgressWatch(10.0, clock=clock)
    watch.observe([P0, P1])
    clock.now = 30.0
    watch.processed([P0])
    watch.observe([P0, P1])
    assert watch.stalled() == {P1: 30.0}
    watch.observe([P0])  # P1 has nothing waiting any more
    clock.now = 39.0
    assert watch.stalled() == {}
    clock.now = 40.0
    assert watch.stalled() == {P0: 10.0}


def test_a_batch_in_flight_waits_until_it_is_processed():
    clock = Clock()
    watch = ProgressWatch(10.0, clock=clock)
    watch.started([P0])
    watch.observe([])  # nothing left to take: the batch taken is all there was
    clock.now = 10.0
    watch.observe([])
    assert watch.stalled() == {P0: 10.0}
    watch.processed([P0])
    watch.observe([])
    assert watch.stalled() == {}


def test_a_wait_counts_only_from_the_time_given():
    clock = Clock()
    watch = ProgressWatch(10.0, clock=clock)
    watch.observe([P0])
    clock.now = 100.0  # waited on something else (the broker) until 95
    assert watch.stalled(since=95.0) == {}
    clock.now = 105.0
    assert watch.stalled(since=95.0) == {P0: 10.0}
    assert watch.stalled() == {P0: 105.0}


def test_a_quiet_partition_never_stalls():
    clock = Clock()
    watch = ProgressWatch(10.0, clock=clock)
    watch.processed([P0])
    clock.now = 1_000.0
    watch.observe([])
    assert watch.stalled() == {}


STEPS = st.lists(
    st.one_of(
        st.tuples(st.just("advance"), st.floats(0.0, 20.0)),
        st.tuples(st.just("observe"), st.sets(st.sampled_from([P0, P1]))),
        st.tuples(st.just("processed"), st.sets(st.sampled_from([P0, P1]))),
        st.tuples(st.just("started"), st.sets(st.sampled_from([P0, P1]))),
    ),
    max_size=40,
)


@given(STEPS)
def test_stalled_means_waiting_at_every_look_since_the_last_progress_for_the_stall_time(steps):
    """Against the definition, kept by hand: when each partition's present wait began (the
    first of the looks, in an unbroken run, that found it waiting or with a batch in
    flight), and its last progress."""
    clock = Clock()
    watch = ProgressWatch(10.0, clock=clock)
    waiting_since: dict[tuple[str, int], float] = {}
    progress: dict[tuple[str, int], float] = {}
    in_flight: set[tuple[str, int]] = set()
    for kind, argument in steps:
        if kind == "advance":
            clock.now += argument
        elif kind == "observe":
            waiting_since = {p: waiting_since.get(p, clock.now) for p in argument | in_flight}
            watch.observe(argument)
        elif kind == "started":
            in_flight |= argument
            watch.started(argument)
        else:
            progress.update(dict.fromkeys(argument, clock.now))
            in_flight -= argument
            watch.processed(argument)
        expected = {
            partition: clock.now - max(since, progress.get(partition, since))
            for partition, since in waiting_since.items()
            if clock.now - max(since, progress.get(partition, since)) >= 10.0
        }
        assert watch.stalled() == expected
