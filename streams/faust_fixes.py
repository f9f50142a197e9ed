"""A fix for faust-streaming's table recovery, which lost input after a restart.

After recovering tables, ``Recovery.on_recovery_completed`` (faust-streaming
0.15.3) resumes the stream partitions, seeks them to the committed offsets,
then resumes flow control. Flow was already running since the recovery
began, so the fetcher may read a first batch from the resumed partitions
during the seek and put it on the agents' queues, advancing the consumer's
read offsets; resuming flow control, though already resumed, clears those
queues. The batch is never processed, the same offsets fetched again are
dropped as already read, and commits stop at the gap: we saw a restarted
worker skip about 200 events and never commit past its first one
(``tests/agents/test_lifecycle_end_to_end.py`` guards it).

The fix resumes flow control there only when it is suspended, so nothing
fetched is thrown away; the rest is the method as faust has it. A batch read
before the seek and read again after it is processed once (faust drops
offsets already read) or, at worst, seen twice and counted as duplicates by
event id.
"""

from typing import Any

from faust.tables.recovery import Recovery

_APPLIED = "_driftline_recovery_fixed"


def fix_recovery() -> None:
    """Install the fixed ``Recovery.on_recovery_completed`` (once; idempotent)."""
    if getattr(Recovery, _APPLIED, False):
        return
    original = Recovery.on_recovery_completed

    async def on_recovery_completed(self: Any, generation_id: int = 0) -> None:
        flow = self.app.flow_control
        resume = flow.resume
        if flow.is_active():
            flow.resume = lambda: None  # already resumed: do not clear the queues
        try:
            await original(self, generation_id)
        finally:
            flow.resume = resume

    Recovery.on_recovery_completed = on_recovery_completed  # type: ignore[method-assign]
    setattr(Recovery, _APPLIED, True)
