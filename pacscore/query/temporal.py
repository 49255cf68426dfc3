"""TM and DT keys as instants: the bounds of a key, and the pure twins of the compiled kernel's
readers of stored values (pacscore/_ext/_match.pyx ``tm_floor``, ``dt_floor``).

The compiled kernel answers a TM or DT range (or single value) key on a record's bytes by the
first instant of each stored value: a plain value (``HH[MM[SS[.F]]]``; a DT value with or
without an offset) is read in C, and any other text (retired forms, invalid values, non-ASCII)
goes to the reference (query/reference.py), which decides it. ``tm_floor_pure`` and
``dt_floor_pure`` read exactly the forms the C readers read, and give None for exactly the
others: tests/test_impl_parity.py holds the twins to that, and both to values.parse_tm and
values.parse_dt where they give an instant. ``tm_floor`` and ``dt_floor`` are whichever is live.

``key_bounds`` gives the first and last instant of one key value as the reference computes them
(docs/matching.md §3: a range's start counts from its floor, its end to its ceiling, a single
value covers the interval of its precision), for the planner's index ranges (query/plan.py)
and the kernel's bounds (query/fast.py).
"""

from __future__ import annotations

import re

from .. import _impl
from ..values import DAY, HOUR, MINUTE, SECOND, parse_temporal, split_range
from .reference import classify

__all__ = ["dt_floor", "dt_floor_pure", "key_bounds", "tm_floor", "tm_floor_pure"]

_TM = re.compile(rb"([0-9]{2})(?:([0-9]{2})(?:([0-9]{2})(?:\.([0-9]{1,6}))?)?)?")
_DATE = re.compile(rb"([0-9]{4})(?:([0-9]{2})(?:([0-9]{2})(.*))?)?", re.DOTALL)
_OFFSET = re.compile(rb"([+-])([0-9]{2})([0-9]{2})")
_DAYS_BEFORE = (0, 31, 59, 90, 120, 151, 181, 212, 243, 273, 304, 334)


def key_bounds(vr: str, value: str, offset: int = 0) -> tuple[int | None, int | None] | None:
    """``(first, last)`` instant in µs of one TM or DT key value (None: an open end), with
    offset-less DT values in ``offset``; None when the value is not a valid single value or
    range (the condition compiler has refused those already)."""
    try:
        if classify(vr, value) == "range":
            first, last = split_range(vr, value)
            lo = None if first is None else parse_temporal(vr, first, offset)[0]
            hi = None if last is None else parse_temporal(vr, last, offset)[1]
            return lo, hi
        return parse_temporal(vr, value, offset)
    except ValueError:
        return None


def tm_floor_pure(value: bytes) -> int | None:
    """The first instant (µs since midnight) of a plain TM value ``HH[MM[SS[.F{1,6}]]]`` (hours
    00-23, minutes 00-59, seconds 00-60), else None."""
    m = _TM.fullmatch(value)
    if m is None:
        return None
    hh, mm, ss, frac = m.groups()
    hours = int(hh)
    if hours > 23:
        return None
    floor = hours * HOUR
    if mm is not None:
        if int(mm) > 59:
            return None
        floor += int(mm) * MINUTE
    if ss is not None:
        if int(ss) > 60:
            return None
        floor += int(ss) * SECOND
    if frac is not None:
        floor += int(frac.ljust(6, b"0"))
    return floor


def _leap(year: int) -> bool:
    return year % 4 == 0 and (year % 100 != 0 or year % 400 == 0)


def _days(year: int, month: int, day: int) -> int:
    """Days since 0001-01-01 (as the kernel counts them: date.toordinal() - 1)."""
    y = year - 1
    return y * 365 + y // 4 - y // 100 + y // 400 + _DAYS_BEFORE[month - 1] + day - 1 + (month > 2 and _leap(year))


def dt_floor_pure(value: bytes, default_offset: int = 0) -> int | None:
    """The first instant (µs since 0001-01-01 UTC) of a DT value
    ``YYYY[MM[DD[HH[MM[SS[.F{1,6}]]]]]][&HHMM]`` (offset -1200..+1400; ``default_offset`` µs
    without one), else None."""
    offset = default_offset
    body = value
    if len(value) >= 5 and value[-5:-4] in (b"+", b"-"):
        sign = _OFFSET.fullmatch(value[-5:])
        if sign is None:
            return None
        minutes = int(sign[3])
        if minutes > 59:
            return None
        offset = int(sign[2]) * HOUR + minutes * MINUTE
        if sign[1] == b"-":
            offset = -offset
        if not -12 * HOUR <= offset <= 14 * HOUR:
            return None
        body = value[:-5]
    m = _DATE.fullmatch(body)
    if m is None:
        return None
    year = int(m[1])
    if year < 1:
        return None
    if m[2] is None:
        day = _days(year, 1, 1)
    elif m[3] is None:
        month = int(m[2])
        if not 1 <= month <= 12:
            return None
        day = _days(year, month, 1)
    else:
        month, dd = int(m[2]), int(m[3])
        if not 1 <= month <= 12 or dd < 1:
            return None
        if dd > (31, 29 if _leap(year) else 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31)[month - 1]:
            return None
        day = _days(year, month, dd)
        if m[4]:
            time = tm_floor_pure(m[4])
            if time is None:
                return None
            return day * DAY + time - offset
    return day * DAY - offset


_compiled = _impl.compiled("_match")
tm_floor = _compiled.tm_floor if _compiled is not None else tm_floor_pure
dt_floor = _compiled.dt_floor if _compiled is not None else dt_floor_pure
