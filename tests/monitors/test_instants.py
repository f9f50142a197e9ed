from datetime import UTC, datetime, timedelta, timezone, tzinfo

from hypothesis import given
from hypothesis import strategies as st
from pydantic_core import TzInfo

from driftline.monitors.instants import ZoneEpoch

UNIX = datetime(1970, 1, 1, tzinfo=UTC)
offsets = st.integers(min_value=-86_399, max_value=86_399)  # seconds, as both zones allow
zones = offsets.map(lambda s: TzInfo(s)) | offsets.map(lambda s: timezone(timedelta(seconds=s)))


@given(zones, st.datetimes(min_value=datetime(1, 1, 2), max_value=datetime(9999, 12, 30)))
def test_microseconds_within_a_fixed_zone_are_those_since_the_unix_epoch(zone, wall):
    moment = wall.replace(tzinfo=zone)
    within = ZoneEpoch.of(zone)
    assert within is not None
    assert within.micros(moment) == (moment - UNIX) // timedelta(microseconds=1)


class SummerTime(tzinfo):
    """An hour ahead from April to September: an offset that changes."""

    def utcoffset(self, moment: datetime | None) -> timedelta:
        return timedelta(hours=1 if moment is not None and 4 <= moment.month <= 9 else 0)

    def dst(self, moment: datetime | None) -> timedelta:
        return self.utcoffset(moment)


def test_a_zone_whose_offset_changes_or_none_has_no_epoch():
    assert ZoneEpoch.of(SummerTime()) is None
    assert ZoneEpoch.of(None) is None
    assert ZoneEpoch.of(UTC) is not None
