"""Replay in several processes, each owning a share of the models, with one process's answers.

A model's monitor is its own: nothing one model's events do changes what
another's lead to. So replay splits by model. Every process takes every
batch, and processes only the messages it owns
(:meth:`~driftline.agents.intake.Intake.read_many` with ``owns``). The
calling process is share 0, and forks the others at the first batch. A
model's events never leave the process that owns it, so each monitor sees
what it would see in one process, in the same order.

Which model a message is of is read from its bytes first
(:func:`~driftline.streams.grouping.model_named`): when they begin ``{``
and say ``"model_id":"...`` at the top level, without an escape, a valid
event is of that model. Only the owner of that model decodes the message, and
sends its dead letter if it is no valid event after all. Any other
message is decoded by every process, and goes on in the one that owns the
model the decoded event names, or in share 0 when it is no valid event
(its dead letter is sent once).

The processes agree on who owns what without talking: each deals out the
specs' models in turn, in the specs' order; any other model id belongs to
the share its CRC-32 gives (only dead letters come of such a model's
events, so the split need not be even; it must not depend on which
process sees what first).

For each batch, the other processes send back only the outputs they
found, with their places in the batch; the calling process puts them in
order with its own. At the end of the input each sends its counters,
which are added to the calling process's, so the totals are those of one
process.

What it costs: every process reads each message's model from its bytes
(about 0.8 µs an event), and handing a batch to the others takes about
0.4 µs an event to pack and 0.5 µs to unpack in each (pickling the
messages one by one took 1 µs). Ten interleaved models of 20 features
each ran at 36,500 to 37,400 events a second in one process and 52,000 to
57,600 in two, on two cores (``benchmarks/throughput.py``, paths (d1) and
(d)); when every process decoded every message (9.7 µs of the 27 µs an
event in one process), two ran at 50,000.
"""

import contextlib
import io
import logging
import multiprocessing
import os
import pickle
import sys
import traceback
import zlib
from array import array
from collections.abc import Callable, Iterable, Sequence
from functools import partial
from itertools import accumulate, repeat
from multiprocessing.connection import Connection
from multiprocessing.process import BaseProcess
from typing import Any, NoReturn

from driftline.agents.counters import TopicCounters
from driftline.agents.intake import InputMessage, InputTopic, Intake, IntakeCounters
from driftline.agents.outputs import OutputMessage
from driftline.monitors.positions import Position
from driftline.streams.grouping import model_named
from driftline.streams.runtime import collector_paused

PICKLE_PROTOCOL = 5

STOP_SECONDS = 5.0
"""How long a process that was told to stop may take before it is terminated."""

_TOPICS = list(InputTopic)
_TOPIC_CODES = {topic: code for code, topic in enumerate(_TOPICS)}
"""Each topic's code, a byte of the packed batch."""

new_position = partial(tuple.__new__, Position)
new_message = partial(tuple.__new__, InputMessage)
"""Named tuples made from a tuple of their fields: half the time of calling the class."""

END = b""
"""Sent in place of a batch: the input has ended, send your counters."""


def processes_wanted(asked: int) -> int:
    """The processes a replay asks for: ``asked``, or one per CPU when it is 0 or less.

    >>> processes_wanted(3)
    3
    >>> processes_wanted(0) == (os.cpu_count() or 1)
    True
    """
    return asked if asked > 0 else os.cpu_count() or 1


class Shares:
    """Which of ``processes`` processes owns each model id; ``None`` (no valid event) is
    share 0's.

    The ``models`` given (the specs') are dealt out in turn, so that they are
    spread evenly; any other model id belongs to the share its CRC-32 gives.

    >>> shares = [Shares(share, 2, ["a", "b", "c"]) for share in range(2)]
    >>> [[s.owns(m) for s in shares] for m in ["c", "b", "unknown", None]]
    [[True, False], [False, True], [False, True], [True, False]]
    """

    def __init__(self, share: int, processes: int, models: Iterable[str] = ()) -> None:
        self.share = share
        self.processes = processes
        self.dealt: dict[str, int] = {}
        for model_id in models:
            self.dealt.setdefault(model_id, len(self.dealt) % processes)

    def share_of(self, model_id: str) -> int:
        """The share that owns the model's events."""
        share = self.dealt.get(model_id)
        if share is None:
            share = zlib.crc32(model_id.encode("utf-8", "surrogatepass")) % self.processes
        return share

    def owns(self, model_id: str | None) -> bool:
        """Whether this process handles the model's events (or, for ``None``, the rest)."""
        return self.share == (0 if model_id is None else self.share_of(model_id))


def add_counters(total: IntakeCounters, more: IntakeCounters) -> None:
    """Add ``more`` into ``total``, in place (other objects hold ``total``'s topic counters).

    >>> total, more = IntakeCounters(), IntakeCounters()
    >>> total.topics[InputTopic.PREDICTIONS].processed = 3
    >>> more.topics[InputTopic.PREDICTIONS].processed = 4
    >>> more.topics[InputTopic.PREDICTIONS].dead_letter_reasons["invalid_json"] = 1
    >>> more.alerts["drift"], more.triggers = 2, 1
    >>> add_counters(total, more)
    >>> predictions = total.topics[InputTopic.PREDICTIONS]
    >>> predictions.processed, dict(predictions.dead_letter_reasons)
    (7, {'invalid_json': 1})
    >>> dict(total.alerts), total.triggers
    ({'drift': 2}, 1)
    """
    for topic, counters in more.topics.items():
        into = total.topics.setdefault(topic, TopicCounters())
        into.consumed += counters.consumed
        into.processed += counters.processed
        into.dead_lettered += counters.dead_lettered
        into.duplicates += counters.duplicates
        into.waiting += counters.waiting
        into.dead_letter_reasons.update(counters.dead_letter_reasons)
    total.alerts.update(more.alerts)
    total.alert_messages.update(more.alert_messages)
    total.triggers += more.triggers


def packed(batch: Sequence[InputMessage]) -> tuple[bytes, bytes]:
    """A batch as two byte strings: its fields, and its values joined end to end.

    Pickling the messages one by one took about 1 µs each; most of a
    message is its value, and most of the rest repeats from one message to
    the next (one topic, one source name, no key).

    >>> batch = [
    ...     InputMessage(InputTopic.PREDICTIONS, b'{"a": 1}', None, Position("f", 0, 7)),
    ...     InputMessage(InputTopic.LABELS, None, b"k", Position("g", 1, 8), 1.5),
    ... ]
    >>> unpacked(*packed(batch)) == batch
    True
    """
    topics, values, keys, sources, stamps = zip(*batch, strict=True)
    codes = bytes(map(_TOPIC_CODES.__getitem__, topics))
    try:
        lengths: array[int] | None = None
        ends = array("q", accumulate(map(len, values)))
        joined = b"".join(values)
    except TypeError:  # a value of None: length -1, and the ends are the lengths
        lengths = array("q", [-1 if value is None else len(value) for value in values])
        ends = None
        joined = b"".join(value for value in values if value is not None)
    where: Any = list(sources)
    if set(map(type, sources)) == {Position}:
        names, partitions, offsets = zip(*sources, strict=True)
        table = {name: place for place, name in enumerate(dict.fromkeys(names))}
        places = None if len(table) == 1 else array("l", map(table.__getitem__, names))
        where = (list(table), places, array("l", partitions), array("q", offsets))
    fields = (
        codes,
        ends,
        lengths,
        None if keys.count(None) == len(keys) else keys,
        where,
        None if stamps.count(None) == len(stamps) else stamps,
    )
    return pickle.dumps(fields, protocol=PICKLE_PROTOCOL), joined


def unpacked(fields: bytes, joined: bytes) -> list[InputMessage]:
    """The batch :func:`packed` made these of."""
    codes, ends, lengths, keys, where, stamps = pickle.loads(fields)
    count = len(codes)
    topics = list(map(_TOPICS.__getitem__, codes))
    values: list[bytes | None]
    if ends is not None:
        starts = [0, *ends[:-1]]
        values = list(map(joined.__getitem__, map(slice, starts, ends)))
    else:
        values = []
        start = 0
        for length in lengths:
            if length < 0:
                values.append(None)
            else:
                values.append(joined[start : start + length])
                start += length
    sources = where
    if isinstance(where, tuple):
        names, places, partitions, offsets = where
        named = repeat(names[0], count) if places is None else map(names.__getitem__, places)
        sources = list(map(new_position, zip(named, partitions, offsets, strict=True)))
    nothing = [None] * count
    return list(
        map(
            new_message,
            zip(topics, values, keys or nothing, sources, stamps or nothing, strict=True),
        )
    )


def owned_outputs(
    intake: Intake, batch: Sequence[InputMessage], shares: Shares
) -> list[tuple[int, list[OutputMessage]]]:
    """What the messages of the batch that this process owns lead to: each message that
    leads to anything, by its place in the batch.

    A message whose bytes name its model (:func:`model_named`) is read only
    by that model's owner, which also dead-letters it if it is no valid
    event; any other is read here, and goes on if this process owns the
    model its event names (share 0: if it is no valid event).
    """
    places: list[int] = []
    named: list[bool] = []
    me = shares.share
    for index, message in enumerate(batch):
        model_id = model_named(message.value)
        if model_id is None:
            places.append(index)
            named.append(False)
        elif shares.share_of(model_id) == me:
            places.append(index)
            named.append(True)

    def owns(place: int, model_id: str | None) -> bool:
        if not named[place]:
            return shares.owns(model_id)
        if model_id is not None and not shares.owns(model_id):  # the bytes said otherwise
            raise RuntimeError(f"an event of model {model_id!r} was read as another model's")
        return True

    mine = [batch[index] for index in places]
    with collector_paused():
        each = intake.process_batch_each(intake.read_many(mine, owns=owns))
    return [
        (places[place], [output.message for output in outputs])
        for place, outputs in enumerate(each)
        if outputs
    ]


class ParallelIntake:
    """An intake's work over batches of messages, shared by ``processes`` processes by model.

    This process keeps ``intake`` and share 0; the others are forked from it
    at the first batch, each with a copy of ``intake`` as it is then, and
    live until :meth:`finish` (the input's end, their counters added to
    ``intake.counters``) or :meth:`close` (an early stop: they are stopped
    and their counters dropped). A process that fails makes
    :meth:`outputs` raise :class:`RuntimeError` with its traceback, the
    others stopped. A process whose parent is gone stops at its next batch.

    Processes are forked while other threads may run (a progress line's):
    a forked process writes nothing to the streams it inherits, whose
    locks another thread may have held at the fork, but to a stream of
    its own over standard error (its log, should a bug be logged).

    >>> from driftline.simulate import simulated_model_spec, simulated_predictions
    >>> from driftline.replay import Replay
    >>> specs = [simulated_model_spec(model_id=m) for m in ("a", "b")]
    >>> run = Replay(specs)
    >>> lines = [
    ...     e.model_dump_json().encode() for m in ("a", "b")
    ...     for e in simulated_predictions(500, shift_at=500, model_id=m)
    ... ]
    >>> with ParallelIntake(run.intake, 2, models=["a", "b"]) as shared:
    ...     found = shared.outputs([InputMessage(InputTopic.PREDICTIONS, line, None,
    ...         Position("f", 0, n)) for n, line in enumerate(lines + [b"oops"])])
    ...     shared.finish()
    >>> [(type(output).__name__, output.source.offset) for output in found]
    [('DeadLetter', 1000)]
    >>> run.counters.processed, run.counters.dead_lettered
    (1000, 1)
    """

    def __init__(self, intake: Intake, processes: int, *, models: Iterable[str] = ()) -> None:
        if processes < 2:
            raise ValueError(f"{processes} processes: a parallel intake takes at least 2")
        self.intake = intake
        self.processes = processes
        self._models = list(models)
        self.shares = Shares(0, processes, self._models)
        self._children: list[tuple[BaseProcess, Connection]] = []
        self._started = False

    def __enter__(self) -> "ParallelIntake":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def outputs(self, batch: Sequence[InputMessage]) -> list[OutputMessage]:
        """What one batch of messages leads to, in the batch's order, as one process sends it."""
        if not batch:
            return []
        if not self._started:
            self._start()
        fields, joined = packed(batch)
        for share, (_, connection) in enumerate(self._children, start=1):
            try:
                connection.send_bytes(fields)
                connection.send_bytes(joined)
            except OSError:
                self._failed(share, None)
        found = owned_outputs(self.intake, batch, self.shares)
        for share in range(1, self.processes):
            found += self._answer(share, "outputs")
        found.sort(key=by_place)
        return [message for _, messages in found for message in messages]

    def finish(self) -> None:
        """End the input: add every other process's counters to the intake's, then end them."""
        for share, (_, connection) in enumerate(self._children, start=1):
            try:
                connection.send_bytes(END)
            except OSError:
                self._failed(share, None)
        for share in range(1, len(self._children) + 1):
            add_counters(self.intake.counters, self._answer(share, "counters"))
        self.close()

    def close(self) -> None:
        """Stop and join the other processes (their pipes closed: each ends at once)."""
        children, self._children = self._children, []
        for _, connection in children:
            connection.close()
        for process, _ in children:
            process.join(STOP_SECONDS)
            if process.is_alive():
                process.terminate()
                process.join()

    def _start(self) -> None:
        """Fork the other processes, each with its share, from this process as it is now."""
        self._started = True
        context = multiprocessing.get_context("fork")
        for share in range(1, self.processes):
            ours, theirs = context.Pipe(duplex=True)
            inherited = [connection for _, connection in self._children] + [ours]
            process = context.Process(
                target=_serve,
                args=(theirs, inherited, self.intake, Shares(share, self.processes, self._models)),
                name=f"driftline-replay-{share}",
                daemon=True,
            )
            process.start()
            theirs.close()
            self._children.append((process, ours))

    def _answer(self, share: int, kind: str) -> Any:
        """The next answer of process ``share``, of the kind expected; raises if it failed."""
        connection = self._children[share - 1][1]
        try:
            got, payload = pickle.loads(connection.recv_bytes())
        except (EOFError, OSError):
            self._failed(share, None)
        if got != kind:
            self._failed(share, str(payload))
        return payload

    def _failed(self, share: int, text: str | None) -> NoReturn:
        """Stop every process and raise what became of process ``share``."""
        process = self._children[share - 1][0]
        self.close()
        if text is None:
            text = f"it ended without a word (exit code {process.exitcode})"
        raise RuntimeError(f"replay process {share} of {self.processes} failed:\n{text}")


def by_place(found: tuple[int, list[OutputMessage]]) -> int:
    """The place in its batch of a message that led to outputs (a sort key)."""
    return found[0]


def _serve(
    connection: Connection, inherited: list[Connection], intake: Intake, shares: Shares
) -> None:
    """A forked process's life: take batches, send back the outputs of its share."""
    serve_batches(
        connection,
        inherited,
        intake,
        lambda fields: owned_outputs(intake, unpacked(fields, connection.recv_bytes()), shares),
    )


def serve_batches(
    connection: Connection,
    inherited: Sequence[Connection],
    intake: Intake,
    work: Callable[[bytes], list[tuple[int, list[OutputMessage]]]],
) -> None:
    """A forked process's life: for each batch, what ``work`` finds of it (given the batch's
    first part, it reads the rest from ``connection``), sent back; at the end of the input
    (:data:`END` in place of a batch), its ``intake``'s counters. Its failure is sent back as
    its traceback.

    ``inherited``: the parent's ends of pipes, closed here, so that a pipe ends when its
    parent does.
    """
    own_streams()
    for other in inherited:
        other.close()
    try:
        while True:
            try:
                fields = connection.recv_bytes()
            except EOFError:  # the parent stopped early, or is gone
                return
            if fields == END:
                send_answer(connection, ("counters", intake.counters))
                return
            with collector_paused():  # a batch's messages are all new, and all live on
                found = work(fields)
            send_answer(connection, ("outputs", found))
    except BaseException:
        with contextlib.suppress(OSError):  # the parent may be gone
            send_answer(connection, ("error", traceback.format_exc()))
    finally:
        connection.close()


def send_answer(connection: Connection, answer: tuple[str, object]) -> None:
    """Send a forked process's answer to its parent: its kind, and what it holds."""
    connection.send_bytes(pickle.dumps(answer, protocol=PICKLE_PROTOCOL))


def own_streams() -> None:
    """Give a forked process standard streams and log handlers of its own, over a copy of
    standard error: an inherited stream's lock may have been held by another thread at the fork,
    and whatever it held unwritten would be written twice."""
    inherited = {id(stream) for stream in (sys.stdout, sys.stderr, sys.__stdout__, sys.__stderr__)}
    own = io.TextIOWrapper(
        io.FileIO(os.dup(2), "w"), encoding="utf-8", errors="backslashreplace", line_buffering=True
    )
    sys.stdout = sys.stderr = own
    loggers = [logging.getLogger(), *logging.Logger.manager.loggerDict.values()]
    for logger in loggers:
        for handler in getattr(logger, "handlers", []):
            if isinstance(handler, logging.StreamHandler) and id(handler.stream) in inherited:
                handler.stream = own  # not setStream: it would flush the inherited stream
