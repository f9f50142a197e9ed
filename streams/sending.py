"""Sending output messages without losing them and without hanging forever."""

import asyncio
import logging

from faust.types import TopicT

log = logging.getLogger(__name__)

MAX_BACKOFF_SECONDS = 30.0


async def send_until_accepted(
    topic: TopicT, key: bytes | None, value: bytes, *, timeout: float
) -> None:
    """Hand one message to the producer, retrying with backoff until it is taken.

    An agent that gave up on a send would still have its input event marked
    done, and the alert or dead letter would be lost; so this waits, each try
    bounded by ``timeout`` so a broker that went away cannot stall a try
    forever, and the agent simply stops taking new events meanwhile. faust
    flushes the producer before it commits offsets, so an event's offset is
    committed only after what it produced was sent.
    """
    backoff = 0.5
    while True:
        try:
            await asyncio.wait_for(topic.send(key=key, value=value), timeout=timeout)
            return
        except (TimeoutError, OSError, RuntimeError) as error:
            log.error(
                "sending to %s failed (%r); retrying in %.1f s",
                topic.get_topic_name(),
                error,
                backoff,
            )
        await asyncio.sleep(backoff)
        backoff = min(backoff * 2, MAX_BACKOFF_SECONDS)
