import pytest

from driftline.agents.registry import (
    ModelRegistry,
    Registration,
    Unregistration,
    read_registry_message,
)
from driftline.simulate import simulated_model_spec
from driftline.streams import Rejection

SPEC = simulated_model_spec(model_id="café")


def read(key: bytes | None, value: bytes | None) -> object:
    return read_registry_message(key, value, max_bytes=1 << 20)


def test_a_spec_under_its_own_key_registers_it_whatever_the_json_spelling():
    value = SPEC.model_dump_json().encode()
    for key in (SPEC.registry_key(), b'["caf\\u00e9", "1"]', b' [ "caf\\u00e9","1" ] '):
        assert read(key, value) == Registration(SPEC)


@pytest.mark.parametrize(
    ("key", "value", "says"),
    [
        (b'["other","1"]', SPEC.model_dump_json().encode(), "publish it under"),
        (None, SPEC.model_dump_json().encode(), "with no key"),
        (b"cafe", None, "tombstone"),
        (b'["a","b","c"]', None, "tombstone"),
        (SPEC.registry_key(), b'{"model_id": "x"}', "model_version"),
    ],
)
def test_unusable_registry_messages_are_rejected_saying_why(key, value, says):
    rejection = read(key, value)
    assert isinstance(rejection, Rejection)
    assert rejection.reason.value == "invalid_spec"
    assert says in rejection.message


def test_a_tombstone_unregisters_and_every_change_is_announced_once():
    changes: list[tuple[str, str]] = []
    registry = ModelRegistry(on_change=changes.append)
    registry.apply(Registration(SPEC))
    registry.apply(Registration(SPEC))  # the same spec again changes nothing
    assert registry.spec("café", "1") == SPEC
    assert registry.has_model("café")
    registry.apply(Registration(SPEC.model_copy(update={"description": "v2"})))
    registry.apply(read(SPEC.registry_key(), None))  # type: ignore[arg-type]
    registry.apply(Unregistration(("café", "1")))  # already gone: nothing to announce
    assert changes == [("café", "1")] * 3
    assert registry.spec("café", "1") is None
    assert not registry.has_model("café")
    assert len(registry) == 0
