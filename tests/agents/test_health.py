import base64
from types import SimpleNamespace

from hypothesis import given
from hypothesis import strategies as st

from driftline.agents.health import carries_token, liveness, readiness
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


TOKEN = b"a-token-of-some-length"


def basic(user: str, password: bytes) -> str:
    return "Basic " + base64.b64encode(user.encode() + b":" + password).decode()


def test_the_token_comes_as_a_bearer_token_or_a_basic_password():
    assert carries_token("Bearer a-token-of-some-length", TOKEN)
    assert carries_token("bearer  a-token-of-some-length ", TOKEN)
    assert carries_token(basic("anyone", TOKEN), TOKEN)
    assert carries_token(basic("", TOKEN), TOKEN)
    assert not carries_token("Bearer a-token-of-some-lengt", TOKEN)
    assert not carries_token(basic("a-token-of-some-length", b""), TOKEN)  # not as the user
    assert not carries_token("a-token-of-some-length", TOKEN)
    assert not carries_token("Basic not base64 at all", TOKEN)
    assert not carries_token("", TOKEN)


@given(st.text(max_size=200))
def test_no_other_header_carries_the_token(header):
    carried = carries_token(header, TOKEN)
    scheme, _, value = header.partition(" ")
    if scheme.lower() == "bearer":
        assert carried == (value.strip() == TOKEN.decode())
    elif scheme.lower() != "basic":
        assert not carried
