from types import SimpleNamespace

from driftline.agents.health import liveness, readiness
from driftline.agents.progress import ProgressWatch


def an_app(state: str = "running", *, recovered: bool = True) -> SimpleNamespace:
    completed = SimpleNamespace(is_set=lambda: recovered)
    return SimpleNamespace(
        state=state,
        crashed=state == "crashed",
        should_stop=state in {"crashed", "stopping"},
        tables=SimpleNamespace(recovery=SimpleNamespace(completed=completed)),
    )


def test_a_running_worker_without_stalls_is_live():
    assert liveness(an_app(), ProgressWatch(10.0)) == {"live": True, "problems": []}


def test_a_stopping_or_crashed_worker_is_not_live():
    for state in ("stopping", "crashed"):
        report = liveness(an_app(state), ProgressWatch(10.0))
        assert report == {
            "live": False,
            "problems": [f"the worker is {state}: it consumes nothing more"],
        }


def test_a_stalled_partition_is_named_with_how_long_it_waited():
    now = [0.0]
    watch = ProgressWatch(10.0, clock=lambda: now[0])
    watch.observe([("predictions", 3)])
    now[0] = 12.4
    assert liveness(an_app(), watch)["problems"] == [
        "predictions[3] has had messages waiting 12 s without progress (DRIFTLINE_STALL_SECONDS=10)"
    ]


def test_ready_once_the_tables_are_recovered_and_the_registry_read():
    follower = SimpleNamespace(caught_up=False)
    monitoring = SimpleNamespace(follower=follower)
    assert readiness(an_app(recovered=False), monitoring) == {
        "ready": False,
        "waiting_for": ["the tables' recovery", "the registry topic, read to its end"],
    }
    follower.caught_up = True
    assert readiness(an_app(), monitoring) == {"ready": True, "waiting_for": []}
