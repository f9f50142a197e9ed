import asyncio
import time

import pytest
from kafka import KafkaProducer

from driftline.agents.registry import (
    ModelRegistry,
    Registration,
    RegistryFollower,
    Unregistration,
    read_registry_message,
)
from driftline.schemas import ModelSpec
from driftline.simulate import simulated_model_spec
from driftline.streams import Rejection
from driftline.streams.topics import ensure_topics

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


@pytest.mark.kafka
def test_the_follower_reads_specs_published_before_a_given_time(worker_settings):
    ensure_topics(worker_settings)
    registry = ModelRegistry()
    follower = RegistryFollower(worker_settings, registry)
    producer = KafkaProducer(bootstrap_servers=worker_settings.bootstrap_servers, acks="all")

    def publish(spec: ModelSpec, *, tombstone: bool = False) -> float:
        value = None if tombstone else spec.model_dump_json().encode()
        producer.send(worker_settings.models_topic, key=spec.registry_key(), value=value).get(30)
        return time.time()

    async def scenario() -> None:
        following = asyncio.create_task(follower.run())
        try:
            published = publish(SPEC)
            await follower.sync(published_before=published)
            assert registry.spec("café", "1") == SPEC
            other = simulated_model_spec(model_id="other")
            published = publish(other)
            await follower.sync(published_before=published)
            assert registry.spec("other", "1") == other
            published = publish(SPEC, tombstone=True)
            await follower.sync(published_before=published)
            assert registry.spec("café", "1") is None
        finally:
            following.cancel()
            await asyncio.gather(following, return_exceptions=True)

    try:
        asyncio.run(asyncio.wait_for(scenario(), timeout=60))
    finally:
        producer.close()
