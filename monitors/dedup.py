"""Recognising repeated events: event ids remembered for a bounded event time.

Kafka delivers at least once, and producers retry, so the same event can
arrive twice; counting it twice would bias every statistic. Remembering
every id forever would grow without bound, so ids are kept for a window of
event time (and at most a number of them). An event older than what is
remembered cannot be told apart from a duplicate, so it is reported as late
instead of being counted blindly.
"""

from collections import deque
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum


class Arrival(StrEnum):
    """What an event id's arrival means."""

    NEW = "new"
    """First time seen within the window: process the event."""
    DUPLICATE = "duplicate"
    """Seen before within the window: count it, do not process it again."""
    LATE = "late"
    """Older than the window: it can no longer be checked for duplicates."""


@dataclass(frozen=True, slots=True)
class _Seen:
    event_id: str
    event_time: datetime


class RecentEventIds:
    """The event ids of one stream seen within ``window`` of event time.

    The window ends at the latest event time seen so far (the stream's
    watermark), never at a wall clock, so a replay gives the same answers.
    At most ``max_ids`` ids are kept; when more arrive, the earliest
    arrivals are forgotten and everything up to their event time counts as
    late from then on, so a forgotten id can never pass as new.

    Examples
    --------
    >>> from datetime import UTC, datetime, timedelta
    >>> ids = RecentEventIds(window=timedelta(hours=1), max_ids=1000)
    >>> noon = datetime(2026, 1, 1, 12, tzinfo=UTC)
    >>> ids.arrive("a", noon).value, ids.arrive("a", noon).value
    ('new', 'duplicate')
    >>> ids.arrive("b", noon + timedelta(hours=2)).value
    'new'
    >>> ids.arrive("c", noon).value
    'late'
    """

    def __init__(self, window: timedelta, max_ids: int) -> None:
        if window <= timedelta(0):
            raise ValueError(f"window must be positive, got {window}")
        if max_ids < 1:
            raise ValueError(f"max_ids must be at least 1, got {max_ids}")
        self.window = window
        self.max_ids = max_ids
        self._times: dict[str, datetime] = {}
        self._arrivals: deque[_Seen] = deque()
        self._watermark: datetime | None = None
        self._forgotten_until: datetime | None = None

    def arrive(self, event_id: str, event_time: datetime) -> Arrival:
        """Record one event's arrival and say whether it is new, a duplicate or late."""
        if self._is_late(event_time):
            return Arrival.LATE
        if event_id in self._times:
            return Arrival.DUPLICATE
        self._times[event_id] = event_time
        self._arrivals.append(_Seen(event_id, event_time))
        if self._watermark is None or event_time > self._watermark:
            self._watermark = event_time
        self._forget_old()
        return Arrival.NEW

    def event_time_of(self, event_id: str) -> datetime | None:
        """The event time of a remembered id, or None when it is not remembered."""
        return self._times.get(event_id)

    @property
    def horizon(self) -> datetime | None:
        """Events at or before this event time are late; None before any event."""
        if self._watermark is None:
            return None
        horizon = self._watermark - self.window
        if self._forgotten_until is not None and self._forgotten_until > horizon:
            return self._forgotten_until
        return horizon

    def __len__(self) -> int:
        return len(self._times)

    def _is_late(self, event_time: datetime) -> bool:
        horizon = self.horizon
        return horizon is not None and event_time <= horizon

    def _forget_old(self) -> None:
        """Drop ids past the window, and the earliest arrivals past ``max_ids``."""
        assert self._watermark is not None
        expiry = self._watermark - self.window
        while self._arrivals and (
            len(self._arrivals) > self.max_ids or self._arrivals[0].event_time <= expiry
        ):
            seen = self._arrivals.popleft()
            del self._times[seen.event_id]
            if len(self._arrivals) >= self.max_ids and (
                self._forgotten_until is None or seen.event_time > self._forgotten_until
            ):
                self._forgotten_until = seen.event_time
