"""The registry follower against the real broker: it reads the registry topic as it grows."""

import asyncio
import time

import pytest
from kafka import KafkaProducer

from driftline.agents.registry import ModelRegistry
from driftline.agents.registry_follower import RegistryFollower
from driftline.schemas import ModelSpec
from driftline.simulate import simulated_model_spec
from driftline.streams.topics import ensure_topics

SPEC = simulated_model_spec(model_id="café")


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
