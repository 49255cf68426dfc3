"""The sortable index forms of TM and DT values (schema 6), so that a time or date-time range is
a walk over a range of index keys instead of a scan of the level.

A stored value is filed under the first instant it stands for, the instant the matcher compares
(PS3.4 C.2.2.2.5, docs/matching.md §3 "Range Matching": a stored value matches when its first
instant is in the key's range), written so that byte order is time order:

* TM: ``HHMMSS.FFFFFF`` (13 characters) of the value's floor, so ``08`` files as
  ``080000.000000`` and ``0830`` as ``083000.000000``, beside ``083000.000000`` itself; the
  retired ``HH:MM:SS`` form files the same. A leap second files at the instant it counts as
  (``235960`` as ``240000.000000``, after every other time of the day), as the matcher sees it.
* DT: the floor in microseconds since 0001-01-01 00:00 UTC, plus two days (so that a value of
  year 1 with a positive offset stays positive), as 19 decimal digits. A value with a UTC offset
  files at its UTC instant; a value without one at its instant read as UTC, because the zone it
  is in (``local_timezone``, or the record's Timezone Offset From UTC under timezone
  adjustment) is known only at query time: the plan widens its range by the largest offsets
  instead (``DT_WIDEN_*``), and the matcher decides.

A value that is not a valid TM or DT (the matcher never matches it to a range) has no sortable
form: the caller files it with the values the index cannot file by text.
"""

from __future__ import annotations

from .. import values

#: added to a DT floor so that every filed instant is positive (a year-1 value at +14:00 is
#: 14 hours before 0001-01-01 UTC)
DT_BIAS = 2 * values.DAY
DT_DIGITS = 19
#: a DT value without an offset is somewhere between UTC-12:00 and UTC+14:00 (PS3.5 DT): its
#: instant read as UTC is at most 14 hours after or 12 hours before its real one
DT_WIDEN_BEFORE = 12 * values.HOUR
DT_WIDEN_AFTER = 14 * values.HOUR


def tm_form(floor: int) -> str:
    """The index form of a TM floor (µs since midnight; up to a day and a leap second)."""
    hours, rest = divmod(floor, values.HOUR)
    minutes, rest = divmod(rest, values.MINUTE)
    seconds, micros = divmod(rest, values.SECOND)
    return f"{hours:02d}{minutes:02d}{seconds:02d}.{micros:06d}"


def dt_form(floor: int) -> str:
    """The index form of a DT floor (µs since 0001-01-01 UTC); bounds outside the calendar are
    clamped, which keeps them outside every filed value."""
    return str(min(max(floor + DT_BIAS, 0), 10**DT_DIGITS - 1)).zfill(DT_DIGITS)


def stored_form(vr: str, value: str) -> str:
    """The index form of one stored TM or DT value (padding removed), or ``""`` when it is not
    a valid value of its VR (the caller files those apart)."""
    try:
        if vr == "TM":
            return tm_form(values.parse_tm(value)[0])
        return dt_form(values.parse_dt(value, 0)[0])
    except ValueError:
        return ""


def key_range(vr: str, lo: int | None, hi: int | None) -> tuple[str, str | None]:
    """The range of index forms ``(start, end)`` (inclusive, None: to the end) that holds every
    stored value whose instant lies in ``[lo, hi]`` (None: open), the bounds of a TM key or of a
    DT key in UTC."""
    if vr == "TM":
        return tm_form(lo or 0), None if hi is None else tm_form(hi)
    start = "" if lo is None else dt_form(lo - DT_WIDEN_BEFORE)
    return start, None if hi is None else dt_form(hi + DT_WIDEN_AFTER)
