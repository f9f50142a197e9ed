"""How long a batch took to process, without the time the event loop gave other agents.

A worker's agents share one event loop. While one awaits its sends, another
runs its own batch, so the wall time from an agent's yield of a batch to its
ask for the next counts the other agents' work as its own. The labels agent
of a worker catching up on 100 models took ~98 ms of wall time a batch for
~15 ms of its own work, most of it the predictions agent's batches run in
its awaits. Sized by that (see :class:`~driftline.streams.batching.BatchSizer`),
its batches shrank to ~240 labels while the predictions agent took ~600
predictions a turn.

Each agent times its synchronous work in an :class:`AgentClock`, and all
the clocks of a worker add to one :class:`LoopTime`: the time others worked
during an agent's batch is taken off its wall time.

>>> loop = LoopTime()
>>> labels, predictions = loop.clock(), loop.clock()
>>> before = labels.others
>>> with predictions:
...     pass
>>> labels.others - before == predictions.seconds > 0
True
"""

import time

__all__ = ["AgentClock", "LoopTime"]


class LoopTime:
    """The synchronous work of all the agents sharing an event loop, in seconds."""

    def __init__(self) -> None:
        self.seconds = 0.0

    def clock(self) -> "AgentClock":
        """A clock for one more agent, adding to this loop's time."""
        return AgentClock(self)


class AgentClock:
    """Times one agent's synchronous work, in ``with`` blocks (not re-entrant).

    ``seconds`` is wall time (what batches are sized by); ``cpu_seconds`` the
    CPU time of the loop's thread in the same blocks, what the work costs
    whatever else the machine runs: a worker's stages are compared by it.
    """

    def __init__(self, loop: LoopTime) -> None:
        self.loop = loop
        self.seconds = 0.0
        """This agent's work so far."""
        self.cpu_seconds = 0.0
        """The CPU time of this agent's work so far (the thread's, in the timed blocks)."""
        self._started = 0.0
        self._started_cpu = 0.0

    @property
    def others(self) -> float:
        """The other agents' work so far."""
        return self.loop.seconds - self.seconds

    def __enter__(self) -> "AgentClock":
        self._started = time.perf_counter()
        self._started_cpu = time.thread_time()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.cpu_seconds += time.thread_time() - self._started_cpu
        spent = time.perf_counter() - self._started
        self.seconds += spent
        self.loop.seconds += spent
