"""Replay of one model in two processes, one after the other: this one screens each batch, the
other monitors it.

A model's events must go through its monitor in one process, in order, so
sharing the models out (:mod:`driftline.parallel_replay`) does nothing for
one model. What comes before the monitor does not need its state, though:
decoding a batch, checking each event against its spec and telling
repeats apart (:meth:`~driftline.agents.intake.Intake.screen_batch`) read
only the registry and the recent event ids, and the monitors and the label
join (:meth:`~driftline.agents.intake.Intake.process_screened`) read none of
those. So this process reads and screens batch ``k + 1`` while a process
forked from it at the first batch monitors batch ``k``. Each event is still
monitored in order, by one monitor, as in one process.

This process keeps what it found of the events it refused or found
repeated; the events that go on (and the new labels) cross to the other
process with their batch, which sends back what they led to, by place. The
outputs of a batch come out once the other process is done with it, in
the batch's order, as one process sends them; at the end of the input the
other process's counters are added to this one's, so the totals are those
of one process too. The screening also creates each new version's monitor
here (as it would in one process: a bound on the versions watched is kept
alike), and names it, so the other process creates it too.

What it costs: a batch crosses as its messages packed
(:func:`~driftline.parallel_replay.packed`, about 0.4 µs an event) and the
events that go on as columns of their fields, their float features as one
matrix (:func:`event_columns`: about 1.9 µs an event, and 0.8 to pickle),
remade there without validation (:func:`remade_events`, about 1.7 µs an
event with the pickle read), their features read as rows of the matrix.
One model of 20 features, in batches of 5,000 crossing in pieces of 2,500
(:func:`cut_to_pieces`): this process took about 15 to 17 µs an event, the
other 14 to 15.5 (monitoring 11 to 12). Eight runs alternated on two cores:
a median of 61,500 events a second, against 56,800 when each event's fields
crossed as a dict, its features a dict of floats pickled and remade value
by value, in batches of 5,000.
"""

import io
import multiprocessing
import pickle
from collections.abc import Iterable, Iterator, Sequence
from itertools import repeat
from multiprocessing.connection import Connection
from multiprocessing.process import BaseProcess
from operator import attrgetter, itemgetter
from typing import Any, NamedTuple, NoReturn

from pydantic import BaseModel

from driftline.agents.intake import (
    InputMessage,
    InputTopic,
    Intake,
    NewLabel,
    Screened,
    new_decoded,
)
from driftline.agents.outputs import OutputMessage
from driftline.monitors.feature_rows import FeatureMatrix, FeatureRow
from driftline.parallel_replay import (
    END,
    PICKLE_PROTOCOL,
    STOP_SECONDS,
    add_counters,
    by_place,
    packed,
    serve_batches,
    unpacked,
)
from driftline.schemas import FeatureEvent, LabelEvent, PredictionEvent
from driftline.schemas.events import PredictionInterval
from driftline.streams.runtime import collector_paused

_new_object = object.__new__
_set = object.__setattr__


def _remade(
    kind: type[BaseModel], fields: dict[str, Any], given: set[str], extra: Any, private: Any
) -> BaseModel:
    """A validated model, remade from its fields as pydantic's own unpickling remakes it
    (``BaseModel.__setstate__``), without the steps around it."""
    model = _new_object(kind)
    _set(model, "__dict__", fields)
    _set(model, "__pydantic_fields_set__", given)
    _set(model, "__pydantic_extra__", extra)
    _set(model, "__pydantic_private__", private)
    return model


def _reduced(model: BaseModel) -> tuple[Any, tuple[Any, ...]]:
    return _remade, (
        type(model),
        model.__dict__,
        model.__pydantic_fields_set__,
        model.__pydantic_extra__,
        model.__pydantic_private__,
    )


_EVENT_TYPES: tuple[type[BaseModel], ...] = (
    PredictionEvent,
    FeatureEvent,
    LabelEvent,
    PredictionInterval,
)


def event_pickle(value: object) -> bytes:
    """``value`` pickled, its events (and their intervals) as their fields, to be remade as
    they are without validation: about three quarters of the time of pydantic's own pickling
    to load (3.7 against 4.9 µs for an event of 20 features, 5,000 at a time).

    >>> from datetime import UTC, datetime
    >>> event = PredictionEvent(
    ...     model_id="m", model_version="1", event_id="e", event_time=datetime.now(UTC),
    ...     prediction=0.5, interval={"lower": 0.0, "upper": 1.0},
    ... )
    >>> remade = pickle.loads(event_pickle([event]))[0]
    >>> remade == event, remade.model_fields_set == event.model_fields_set
    (True, True)
    >>> type(remade.interval).__name__, remade.interval.model_fields_set == {"lower", "upper"}
    ('PredictionInterval', True)
    """
    buffer = io.BytesIO()
    pickler = pickle.Pickler(buffer, protocol=PICKLE_PROTOCOL)
    pickler.dispatch_table = _DISPATCH
    pickler.dump(value)
    return buffer.getvalue()


_DISPATCH: dict[type, Any] = dict.fromkeys(_EVENT_TYPES, _reduced)


class EventColumns(NamedTuple):
    """Events of one type with their places in a batch, as a column per field
    (:func:`event_columns`)."""

    kind: type[BaseModel]
    places: list[int]
    names: tuple[str, ...]
    """The fields, as each event's ``__dict__`` holds them."""
    columns: list[list[Any]]
    given: list[set[str]]
    """The distinct sets of the fields given (``model_fields_set``)."""
    which_given: list[int] | None
    """Each event's set in ``given``, by number; None when all have the first."""
    extras: list[Any] | None
    """Each event's ``__pydantic_extra__``; None when none has any."""
    privates: list[Any] | None
    """Each event's ``__pydantic_private__``; None when none has any."""


_FIELDS_GIVEN = attrgetter("__pydantic_fields_set__")
_EXTRA = attrgetter("__pydantic_extra__")
_PRIVATE = attrgetter("__pydantic_private__")
_FIELDS = attrgetter("__dict__")


def event_columns(
    placed: Iterable[tuple[int, BaseModel]],
) -> tuple[list[EventColumns], list[FeatureMatrix]]:
    """The ``(place, event)`` as columns of their fields, one set of columns per type of
    event, to be remade as they are (:func:`remade_events`); and the matrices of their features.

    Columns, not an event's fields each: a dict of fields pickled and read
    back costs its keys every time. The features that are all floats cross
    as rows of float matrices (:meth:`FeatureMatrix.gather`), their place
    ``(matrix, row)`` in the features' column: one block of bytes each,
    where a dict of twenty floats was pickled and read value by value, and
    taken as columns by the data-quality checks
    (:func:`~driftline.monitors.feature_rows.matrix_rows`) where they were
    read out of each dict. The sets of the fields given are shared: as a
    rule all the events of a batch have the same. (Events are frozen:
    nothing adds to a set.)

    Events of 20 features, 5,000 a batch: 2.4 µs an event to lay out and
    pickle, 1.7 to read and remake, against 3.4 and 1.6 as a dict of fields
    each with the features in the matrix, and 3.1 and 2.5 with a dict of
    features each.
    """
    placed = list(placed)
    matrices, where = FeatureMatrix.gather(
        [getattr(event, "features", None) for _, event in placed]
    )
    every_event = [event for _, event in placed]
    kinds: dict[type[BaseModel], list[int]] = {}
    if len(set(map(type, every_event))) == 1:  # as a rule, all of one type
        kinds[type(every_event[0])] = list(range(len(placed)))
    else:
        for number, event in enumerate(every_event):
            kinds.setdefault(type(event), []).append(number)
    laid_out = []
    for kind, numbers in kinds.items():
        alone = len(numbers) == len(placed)
        events = every_event if alone else [every_event[number] for number in numbers]
        names = tuple(kind.model_fields)
        fields = list(map(_FIELDS, events))
        if set(map(len, fields)) != {len(names)}:
            raise ValueError(f"an event of {kind.__name__} holds other fields than its model's")
        columns = [list(column) for column in zip(*map(itemgetter(*names), fields), strict=True)]
        if "features" in names:
            at = names.index("features")
            places_of = where if alone else [where[number] for number in numbers]
            columns[at] = [
                given if place is None else place
                for given, place in zip(columns[at], places_of, strict=True)
            ]
        laid_out.append(
            EventColumns(
                kind,
                [placed[number][0] for number in numbers],
                names,
                columns,
                *_shared_sets(list(map(_FIELDS_GIVEN, events))),
                _unless_all_none(list(map(_EXTRA, events))),
                _unless_all_none(list(map(_PRIVATE, events))),
            )
        )
    return laid_out, matrices


def _shared_sets(sets: list[set[str]]) -> tuple[list[set[str]], list[int] | None]:
    """The distinct sets, and each one's number among them (None when all are the first)."""
    first = sets[0]
    if all(given == first for given in sets):
        return [first], None
    distinct: list[set[str]] = []
    numbers: list[int] = []
    for given in sets:
        number = next((n for n, seen in enumerate(distinct) if seen == given), len(distinct))
        if number == len(distinct):
            distinct.append(given)
        numbers.append(number)
    return distinct, numbers


def _unless_all_none(values: list[Any]) -> list[Any] | None:
    return None if values.count(None) == len(values) else values


def remade_events(
    laid_out: Sequence[EventColumns], matrices: Sequence[FeatureMatrix] = ()
) -> list[tuple[int, Any]]:
    """The ``(place, event)`` that :func:`event_columns` laid out, remade without validation,
    in place order; features that crossed in a matrix are its rows (:class:`FeatureRow`, a
    mapping of the same items).

    >>> from datetime import UTC, datetime
    >>> events = [
    ...     PredictionEvent(model_id="m", model_version="1", event_id=str(n),
    ...                     event_time=datetime.now(UTC), prediction=0.5,
    ...                     features={"a": float(n), "b": "x" if n else 1.0})
    ...     for n in range(2)
    ... ]
    >>> crossed = pickle.loads(event_pickle(event_columns(enumerate(events))))
    >>> remade = remade_events(*crossed)
    >>> [(place, event == events[place]) for place, event in remade]
    [(0, True), (1, True)]
    >>> [type(event.features).__name__ for _, event in remade]
    ['FeatureRow', 'dict']
    """
    new, setting = _new_object, _set
    remade: list[tuple[int, Any]] = []
    for kind, places, names, columns, given, which_given, extras, privates in laid_out:
        if "features" in names:
            at = names.index("features")
            columns[at] = [
                FeatureRow(matrices[where[0]], where[1]) if type(where) is tuple else where
                for where in columns[at]
            ]
        sets = repeat(given[0]) if which_given is None else map(given.__getitem__, which_given)
        for place, values, fields_given, extra, private in zip(
            places,
            zip(*columns, strict=True),
            sets,
            repeat(None) if extras is None else extras,
            repeat(None) if privates is None else privates,
            strict=False,  # the repeats are endless; the places and columns are as long
        ):
            event = new(kind)
            setting(event, "__dict__", dict(zip(names, values, strict=True)))
            setting(event, "__pydantic_fields_set__", fields_given)
            setting(event, "__pydantic_extra__", extra)
            setting(event, "__pydantic_private__", private)
            remade.append((place, event))
    remade.sort(key=itemgetter(0))  # events of several types: back in the batch's order
    return remade


class PipelinedIntake:
    """An intake's work over batches of messages, in this process and one forked from it at
    the first batch, one batch apart (see the module's docstring).

    The other process lives until :meth:`finish` (the input's end: its
    counters are added to ``intake.counters``) or :meth:`close` (an early
    stop: it is stopped, and its counters dropped). A failure there makes
    :meth:`outputs` raise :class:`RuntimeError` with its traceback.

    >>> from driftline.simulate import simulated_model_spec, simulated_predictions
    >>> from driftline.replay import Replay
    >>> from driftline.agents.intake import InputTopic
    >>> from driftline.monitors.positions import Position
    >>> run = Replay([simulated_model_spec()])
    >>> lines = [e.model_dump_json().encode() for e in simulated_predictions(1_000, shift_at=500)]
    >>> batches = [
    ...     [InputMessage(InputTopic.PREDICTIONS, line, None, Position("f", 0, start + n))
    ...      for n, line in enumerate(lines[start : start + 300])]
    ...     for start in range(0, 1_000, 300)
    ... ] + [[InputMessage(InputTopic.PREDICTIONS, b"oops", None, Position("f", 0, 1_000))]]
    >>> with PipelinedIntake(run.intake) as pipeline:
    ...     found = [output for _, outputs in pipeline.outputs(batches) for output in outputs]
    ...     pipeline.finish()
    >>> [type(output).__name__ for output in found][-1], found[-1].source.offset
    ('DeadLetter', 1000)
    >>> run.counters.processed, run.counters.dead_lettered
    (1000, 1)
    """

    def __init__(self, intake: Intake) -> None:
        self.intake = intake
        self._child: tuple[BaseProcess, Connection] | None = None

    def __enter__(self) -> "PipelinedIntake":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def outputs(
        self, batches: Iterable[Sequence[InputMessage]]
    ) -> Iterator[tuple[int, list[OutputMessage]]]:
        """What each batch of messages leads to, in order, as one process sends it, with the
        batch's size: each batch's once the next has been screened (the last one's at the
        input's end). The first and the last batch go in pieces (see :func:`ramped`)."""
        waiting: tuple[int, list[tuple[int, list[OutputMessage]]]] | None = None
        for batch in ramped(cut_to_pieces(batches)):
            if self._child is None:
                self._start()
            with collector_paused():  # a batch's messages are all new, and all live on
                screened = self.intake.screen_batch(self.intake.read_many(batch))
                going = self._going(batch, screened)
            done = None if waiting is None else (waiting[0], self._merged(waiting[1]))
            self._post(*going)  # the other process, done with the last batch, starts on it
            if done is not None:
                yield done
            here = [
                (place, [output.message for output in some])
                for place, some in enumerate(screened.outputs)
                if some
            ]
            waiting = (len(batch), here)
            del screened, going  # the batch's events go now, before the next batch is read
        if waiting is not None:
            yield waiting[0], self._merged(waiting[1])

    def finish(self) -> None:
        """End the input: add the other process's counters to the intake's, then end it."""
        if self._child is not None:
            self._post(END)
            add_counters(self.intake.counters, self._answer("counters"))
        self.close()

    def close(self) -> None:
        """Stop and join the other process (its pipe closed: it ends at once)."""
        child, self._child = self._child, None
        if child is None:
            return
        process, connection = child
        connection.close()
        process.join(STOP_SECONDS)
        if process.is_alive():
            process.terminate()
            process.join()

    def _start(self) -> None:
        """Fork the monitoring process from this one as it is now."""
        context = multiprocessing.get_context("fork")
        ours, theirs = context.Pipe(duplex=True)
        process = context.Process(
            target=_monitor_batches,
            args=(theirs, ours, self.intake),
            name="driftline-replay-monitors",
            daemon=True,
        )
        process.start()
        theirs.close()
        self._child = (process, ours)

    def _going(self, batch: Sequence[InputMessage], screened: Screened) -> tuple[bytes, ...]:
        """What the other process takes of a screened batch: its messages, and what goes on."""
        fields, joined = packed(batch)
        going = (
            event_columns((place, item.event) for place, item, _ in screened.arrived),
            [(place, new.label) for place, new in screened.labels],
            screened.created,
        )
        return fields, joined, event_pickle(going)

    def _merged(self, here: list[tuple[int, list[OutputMessage]]]) -> list[OutputMessage]:
        """This process's outputs of the batch in the other process, with what it found there,
        in the batch's order."""
        found: list[tuple[int, list[OutputMessage]]] = here + self._answer("outputs")
        found.sort(key=by_place)
        return [message for _, messages in found for message in messages]

    def _post(self, *parts: bytes) -> None:
        assert self._child is not None
        try:
            for part in parts:
                self._child[1].send_bytes(part)
        except OSError:
            self._failed(None)

    def _answer(self, kind: str) -> Any:
        """The other process's next answer, of the kind expected; raises if it failed."""
        assert self._child is not None
        try:
            got, payload = pickle.loads(self._child[1].recv_bytes())
        except (EOFError, OSError):
            self._failed(None)
        if got != kind:
            self._failed(str(payload))
        return payload

    def _failed(self, text: str | None) -> NoReturn:
        """Stop the other process and raise what became of it."""
        assert self._child is not None
        process = self._child[0]
        self.close()
        if text is None:
            text = f"it ended without a word (exit code {process.exitcode})"
        raise RuntimeError(f"the replay's monitoring process failed:\n{text}")


PIECE_EVENTS = 2_500
"""Batches of predictions alone cross in pieces of at most this many messages."""


def cut_to_pieces(
    batches: Iterable[Sequence[InputMessage]], most: int = PIECE_EVENTS
) -> Iterator[Sequence[InputMessage]]:
    """The batches in order, each one of predictions alone cut into equal pieces of at most
    ``most`` messages.

    Why: the two processes take turns on each batch, and smaller ones went
    faster, down to a point. One model of 20 features, 100,000 events,
    three runs of each size alternated on two cores: 55,300 to 58,800
    events a second in batches of 1,000, 62,000 to 63,500 of 1,500, 64,700
    to 64,900 of 2,000, 62,400 to 65,300 of 2,500, 62,400 to 63,800 of
    3,000, 56,900 to 60,400 of 5,000 and 53,000 to 54,500 of 10,000. (A
    replay in one process, or sharing models out, takes 5,000 at a time:
    those go no faster in smaller batches, and many models slower.) Where
    a batch of predictions ends changes nothing the intake finds (see
    :func:`ramped`), so the pieces give the outputs of the batch whole; a
    batch with other messages goes whole.

    >>> def batch(size):
    ...     return [InputMessage(InputTopic.PREDICTIONS, b"{}", None, None)] * size
    >>> [len(piece) for piece in cut_to_pieces([batch(5_000), batch(5_001), batch(10)])]
    [2500, 2500, 1667, 1667, 1667, 10]
    """
    for batch in batches:
        if len(batch) <= most or not _predictions_alone(batch):
            yield batch
            continue
        pieces = -(-len(batch) // most)
        size = -(-len(batch) // pieces)
        for start in range(0, len(batch), size):
            yield batch[start : start + size]


RAMP_SHARES = (8, 8, 4, 2)
"""The first batch goes as an eighth of it, another eighth, a quarter and the rest (a
half); the last in the reverse order."""

SMALLEST_RAMPED = 64
"""A batch of fewer messages goes whole: its pieces would cost more than they save."""


def ramped(batches: Iterable[Sequence[InputMessage]]) -> Iterator[Sequence[InputMessage]]:
    """The batches that hold something, in order, the first and the last cut into pieces
    that grow, and shrink (:data:`RAMP_SHARES`), when they hold predictions alone.

    Why: this process screens the first batch while the other has nothing
    to monitor yet, and the other monitors the last while this one has
    nothing left to screen. Each of those costs the time of a whole batch
    on one core, about a twentieth of a replay of 100,000 events in
    batches of 5,000; in pieces, the time of the smallest piece. Where a
    batch of predictions ends changes nothing the intake finds, so the
    pieces give the outputs of the batch whole. A batch with labels (or
    other events) goes whole: a batch's labels are joined before its
    predictions are counted, so cutting it could change what a
    performance window estimated.

    >>> def batch(size):
    ...     return [InputMessage(InputTopic.PREDICTIONS, b"{}", None, None)] * size
    >>> [len(piece) for piece in ramped([batch(800), batch(800), batch(800)])]
    [100, 100, 200, 400, 800, 400, 200, 100, 100]
    >>> [len(piece) for piece in ramped([batch(800), [], batch(10)])]
    [100, 100, 200, 400, 10]
    >>> [len(piece) for piece in ramped([batch(800)])]
    [50, 50, 100, 200, 200, 100, 50, 50]
    """
    kept = (batch for batch in batches if batch)
    current = next(kept, None)
    if current is None:
        return
    first = True
    for following in kept:
        yield from _pieces(current, rising=True) if first else [current]
        first, current = False, following
    if not first:
        yield from _pieces(current, rising=False)
        return
    middle = len(current) // 2  # the only batch: up to its middle, then down
    if middle < SMALLEST_RAMPED or not _predictions_alone(current):
        yield current
        return
    yield from _pieces(current[:middle], rising=True)
    yield from _pieces(current[middle:], rising=False)


def _pieces(batch: Sequence[InputMessage], *, rising: bool) -> list[Sequence[InputMessage]]:
    """The batch cut at :data:`RAMP_SHARES` (rising) or in the reverse order; whole when small
    or when it holds other messages than predictions."""
    if len(batch) < SMALLEST_RAMPED or not _predictions_alone(batch):
        return [batch]
    sizes = [len(batch) // share for share in RAMP_SHARES[:-1]]
    sizes.append(len(batch) - sum(sizes))
    if not rising:
        sizes.reverse()
    pieces, start = [], 0
    for size in sizes:
        pieces.append(batch[start : start + size])
        start += size
    return pieces


def _predictions_alone(batch: Sequence[InputMessage]) -> bool:
    return all(message.topic is InputTopic.PREDICTIONS for message in batch)


def _monitor_batches(connection: Connection, parents: Connection, intake: Intake) -> None:
    """The forked process's life: take screened batches, send back what their events and
    labels led to."""

    def monitored(fields: bytes) -> list[tuple[int, list[OutputMessage]]]:
        batch = unpacked(fields, connection.recv_bytes())
        return _monitored(intake, batch, pickle.loads(connection.recv_bytes()))

    serve_batches(connection, [parents], intake, monitored)


def _monitored(
    intake: Intake, batch: list[InputMessage], going: tuple[Any, Any, Any]
) -> list[tuple[int, list[OutputMessage]]]:
    """What the events and labels of a batch screened in the other process lead to here: each
    message that leads to anything, by its place in the batch."""
    (laid_out, matrices), labels, created = going
    intake.create_monitors(created)
    monitors = intake.monitors
    screened = Screened(
        [[] for _ in batch],
        [
            (
                place,
                new_decoded((batch[place], event)),
                monitors[event.model_id, event.model_version],
            )
            for place, event in remade_events(laid_out, matrices)
        ],
        [(place, NewLabel(batch[place], label)) for place, label in labels],
        [],
    )
    each = intake.process_screened(screened)
    return [
        (place, [output.message for output in outputs])
        for place, outputs in enumerate(each)
        if outputs
    ]
