import base64
from types import SimpleNamespace

from hypothesis import given
from hypothesis import strategies as st

from driftline.agents.health import carries_token, liveness, readiness
from driftline.agents.progress import ProgressWatch
from driftline.streams.broker_contact import BrokerContact

BROKER = ("kafka-0", 9092)


def an_app(state: str = "running", *, recovered: bool = True) -> SimpleNamespace:
    completed = SimpleNamespace(is_set=lambda: recovered)
    return SimpleNamespace(
        state=state,
        crashed=state == "crashed",
        should_stop=state in {"crashed", "stopping"},
        tables=SimpleNamespace(recovery=SimpleNamespace(completed=completed)),
    )


def a_contact(now: list[float]) -> BrokerContact:
    return BrokerContact(clock=lambda: now[0], wall=lambda: 1_800_000_000.0 + now[0])


def test_a_running_worker_without_stalls_is_live():
    assert liveness(an_app(), ProgressWatch(10.0), a_contact([0.0])) == {
        "live": True,
        "problems": [],
        "broker": {"reachable": True},
    }


def test_a_stopping_or_crashed_worker_is_not_live():
    for state in ("stopping", "crashed"):
        report = liveness(an_app(state), ProgressWatch(10.0), a_contact([0.0]))
        assert report == {
            "live": False,
            "problems": [f"the worker is {state}: it consumes nothing more"],
            "broker": {"reachable": True},
        }


def test_a_broker_outage_is_reported_live_and_not_ready():
    now = [0.0]
    contact = a_contact(now)
    contact.asked(BROKER)
    now[0] = 42.0
    broker = {
        "reachable": False,
        "since": "2027-01-15T08:00:00+00:00",
        "seconds": 42.0,
        "unanswered": ["kafka-0:9092"],
    }
    assert liveness(an_app(), ProgressWatch(10.0), contact) == {
        "live": True,  # a restart would not bring the broker back
        "problems": [],
        "broker": broker,
    }
    monitoring = SimpleNamespace(follower=SimpleNamespace(caught_up=True))
    assert readiness(an_app(), monitoring, contact) == {
        "ready": False,
        "waiting_for": ["an answer from the broker (kafka-0:9092): none for 42 s"],
        "broker": broker,
    }
    contact.answered(BROKER)
    assert readiness(an_app(), monitoring, contact)["ready"] is True


def test_a_partition_waiting_during_a_broker_outage_stalls_only_after_it_answers_again():
    now = [0.0]
    watch = ProgressWatch(10.0, clock=lambda: now[0])
    contact = a_contact(now)
    watch.observe([("predictions", 0)])
    contact.asked(BROKER)
    now[0] = 60.0  # a minute without progress, the broker silent all along
    assert liveness(an_app(), watch, contact)["problems"] == []
    contact.answered(BROKER)
    now[0] = 69.0
    assert liveness(an_app(), watch, contact)["live"] is True
    now[0] = 70.5  # the stall counts from the broker's answer
    assert liveness(an_app(), watch, contact)["problems"] == [
        "predictions[0] has had messages waiting 10 s without progress (DRIFTLINE_STALL_SECONDS=10)"
    ]


def test_a_stalled_partition_is_named_with_how_long_it_waited():
    now = [0.0]
    watch = ProgressWatch(10.0, clock=lambda: now[0])
    watch.observe([("predictions", 3)])
    now[0] = 12.4
    assert liveness(an_app(), watch, a_contact(now))["problems"] == [
        "predictions[3] has had messages waiting 12 s without progress (DRIFTLINE_STALL_SECONDS=10)"
    ]


def test_ready_once_the_tables_are_recovered_and_the_registry_read():
    follower = SimpleNamespace(caught_up=False)
    monitoring = SimpleNamespace(follower=follower)
    contact = a_contact([0.0])
    assert readiness(an_app(recovered=False), monitoring, contact) == {
        "ready": False,
        "waiting_for": ["the tables' recovery", "the registry topic, read to its end"],
        "broker": {"reachable": True},
    }
    follower.caught_up = True
    assert readiness(an_app(), monitoring, contact) == {
        "ready": True,
        "waiting_for": [],
        "broker": {"reachable": True},
    }


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
