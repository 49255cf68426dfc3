"""VR-aware decoding of single DICOM values, so that matching compares meanings, not bytes.

Everything here works on decoded text (str). Padding and multi-values follow PS3.5 6.2 and
docs/matching.md §4; person names follow PS3.5 6.2.1 (docs/matching.md §3); dates and times
become integer intervals ``(floor, ceil)`` in microseconds (docs/matching.md §3, Range Matching):

- DA: days since 0001-01-01 on the local calendar (no timezone);
- TM: microseconds since midnight, local time of day;
- DT: microseconds since 0001-01-01T00:00 **UTC** (the value's offset, or a default one, applied).

Invalid input raises ValueError with a reason a person can read.
"""

from __future__ import annotations

import calendar
import re
import unicodedata
from datetime import date
from decimal import Decimal, InvalidOperation
from functools import lru_cache

__all__ = [
    "TEXT_VRS",
    "LEADING_SIGNIFICANT",
    "WILDCARD_VRS",
    "TEMPORAL_VRS",
    "MATCHED_VRS",
    "US",
    "SECOND",
    "MINUTE",
    "HOUR",
    "DAY",
    "strip_padding",
    "split_values",
    "is_empty",
    "nfc",
    "fold_case",
    "parse_pn",
    "pn_groups",
    "normalize_pn",
    "parse_offset",
    "parse_da",
    "parse_tm",
    "parse_dt",
    "parse_temporal",
    "split_range",
    "combine_da_tm",
    "parse_number",
    "parse_at",
]

#: Single-valued text VRs: the backslash is an ordinary character (PS3.5 6.2).
TEXT_VRS = frozenset({"LT", "ST", "UT", "UR"})
#: VRs whose leading spaces are significant (only trailing padding is removed).
LEADING_SIGNIFICANT = frozenset({"LT", "ST", "UT", "UR", "UC"})
#: VRs for which '*' and '?' are wild cards (PS3.4 C.2.2.2.4).
WILDCARD_VRS = frozenset({"AE", "CS", "LO", "LT", "PN", "SH", "ST", "UC", "UR", "UT"})
TEMPORAL_VRS = frozenset({"DA", "TM", "DT"})
#: VRs pacscore matches on; keys of any other VR (binary, numeric binary) are return keys only.
MATCHED_VRS = frozenset(WILDCARD_VRS | TEMPORAL_VRS | {"AS", "AT", "DS", "IS", "UI", "SQ"})

US = 1
SECOND = 1_000_000
MINUTE = 60 * SECOND
HOUR = 60 * MINUTE
DAY = 24 * HOUR


# ---------------------------------------------------------------- padding, values, text


def strip_padding(vr: str, value: str) -> str:
    """One value without its padding: trailing spaces/NULs always, leading spaces except for
    LT, ST, UT, UR and UC, where they are text (PS3.5 Table 6.2-1, docs/matching.md §4)."""
    if vr in LEADING_SIGNIFICANT:
        return value.rstrip(" \0")
    return value.strip(" \0")


def split_values(vr: str, value: str) -> list[str]:
    """The values of a DICOM string, each without padding; LT/ST/UT/UR are never split."""
    if vr in TEXT_VRS:
        return [strip_padding(vr, value)]
    if "\\" not in value:
        return [strip_padding(vr, value)]
    return [strip_padding(vr, v) for v in value.split("\\")]


def is_empty(vr: str, value: object) -> bool:
    """True for an absent (None) or zero-length value (padding only, or an SQ without items)."""
    if value is None:
        return True
    if isinstance(value, str):
        return strip_padding(vr, value) == ""
    try:
        return len(value) == 0  # type: ignore[arg-type]
    except TypeError:
        return False


def nfc(text: str) -> str:
    """Text precomposed (Unicode NFC), so that one character is one code point where possible."""
    if text.isascii() or unicodedata.is_normalized("NFC", text):
        return text
    return unicodedata.normalize("NFC", text)


@lru_cache(maxsize=8192)
def _fold_char(ch: str) -> str:
    folded = ch.casefold()
    if len(folded) == 1:
        return folded
    lowered = ch.lower()
    return lowered if len(lowered) == 1 else ch


def fold_case(text: str) -> str:
    """Case-folded text with one code point per code point, so '?' still counts characters
    (full casefold would turn 'ß' into 'ss'); accents are kept."""
    if text.isascii():
        return text.lower()
    return "".join(map(_fold_char, text))


# ---------------------------------------------------------------- person names


def parse_pn(value: str, *, strict: bool = False) -> tuple[tuple[str, ...], ...]:
    """A PN value as groups (Alphabetic, Ideographic, Phonetic) of components, each component
    trimmed, trailing empty components and groups dropped (PS3.5 6.2.1).

    >>> parse_pn("Doe ^John^^^=")
    (('Doe', 'John'),)

    ``strict`` refuses more than 3 groups or 5 components (after dropping trailing empty ones);
    matching is lenient, since an extra group or component simply has nothing to match."""
    out: list[tuple[str, ...]] = []
    for group in value.split("="):
        comps = [c.strip(" \0") for c in group.split("^")]
        while comps and not comps[-1]:
            comps.pop()
        if strict and len(comps) > 5:
            raise ValueError(f"person name group {group!r} has {len(comps)} components, at most 5 allowed")
        out.append(tuple(comps))
    while out and not out[-1]:
        out.pop()
    if strict and len(out) > 3:
        raise ValueError(f"person name {value!r} has {len(out)} component groups, at most 3 allowed")
    return tuple(out)


def pn_groups(value: str, *, strict: bool = False) -> tuple[str, ...]:
    """The normalised component groups of a PN value as strings ('^'-joined components)."""
    if (
        not strict
        and value
        and not (" " in value or "\0" in value or "^^" in value or "^=" in value or value.endswith(("^", "=")))
    ):
        return tuple(value.split("="))  # already normal: the common case, kept cheap
    return tuple("^".join(g) for g in parse_pn(value, strict=strict))


def normalize_pn(value: str) -> str:
    """The normalised PN value: ``"Doe ^John^^=" -> "Doe^John"``."""
    return "=".join(pn_groups(value))


# ---------------------------------------------------------------- dates and times

_OFFSET = re.compile(r"([+-])([0-9]{2})([0-9]{2})")
_DA = re.compile(r"([0-9]{4})([0-9]{2})([0-9]{2})")
_DA_RETIRED = re.compile(r"([0-9]{4})\.([0-9]{2})\.([0-9]{2})")
_TM = re.compile(r"([0-9]{2})(?:([0-9]{2})(?:([0-9]{2})(?:\.([0-9]{1,6}))?)?)?")
_TM_RETIRED = re.compile(r"([0-9]{2}):([0-9]{2})(?::([0-9]{2})(?:\.([0-9]{1,6}))?)?")
_DT = re.compile(
    r"([0-9]{4})(?:([0-9]{2})(?:([0-9]{2})(?:([0-9]{2})(?:([0-9]{2})(?:([0-9]{2})(?:\.([0-9]{1,6}))?)?)?)?)?)?"
    r"([+-][0-9]{4})?"
)


def parse_offset(text: str) -> int:
    """A UTC offset ``&HHMM`` (PS3.5 DT, Timezone Offset From UTC) in microseconds, -12:00..+14:00."""
    m = _OFFSET.fullmatch(text.strip(" "))
    if not m:
        raise ValueError(f"{text!r} is not a UTC offset of the form +HHMM or -HHMM")
    hours, minutes = int(m[2]), int(m[3])
    if minutes > 59:
        raise ValueError(f"UTC offset {text!r} has minutes {minutes} > 59")
    offset = hours * HOUR + minutes * MINUTE
    if m[1] == "-":
        offset = -offset
    if not -12 * HOUR <= offset <= 14 * HOUR:
        raise ValueError(f"UTC offset {text!r} is outside -1200..+1400")
    return offset


def _day(year: int, month: int, day: int, text: str) -> int:
    """Days since 0001-01-01 of a calendar date, validated."""
    try:
        return date(year, month, day).toordinal() - 1
    except ValueError:
        pass
    if year < 1:
        raise ValueError(f"{text!r}: year 0000 does not exist")
    if not 1 <= month <= 12:
        raise ValueError(f"{text!r}: month {month} is not 01..12")
    last = calendar.monthrange(year, month)[1]
    raise ValueError(f"{text!r}: day {day} is not 01..{last:02d} for {year:04d}-{month:02d}")


@lru_cache(maxsize=16384)  # stored dates repeat a lot; times rarely do
def parse_da(text: str) -> tuple[int, int]:
    """A DA value ``YYYYMMDD`` (or the retired ``YYYY.MM.DD``) as its day ``(floor, ceil)`` in
    microseconds since 0001-01-01 (local calendar)."""
    s = text.strip(" \0")
    m = _DA.fullmatch(s) or _DA_RETIRED.fullmatch(s)
    if not m:
        raise ValueError(f"{text!r} is not a date (DA is YYYYMMDD)")
    floor = _day(int(m[1]), int(m[2]), int(m[3]), text) * DAY
    return floor, floor + DAY - 1


def _time(hh: str, mm: str | None, ss: str | None, frac: str | None, text: str) -> tuple[int, int]:
    """Microseconds since midnight of a time given to some precision, as (floor, ceil)."""
    hours = int(hh)
    if hours > 23:
        raise ValueError(f"{text!r}: hour {hours} is not 00..23")
    floor, span = hours * HOUR, HOUR
    if mm is not None:
        minutes = int(mm)
        if minutes > 59:
            raise ValueError(f"{text!r}: minute {minutes} is not 00..59")
        floor, span = floor + minutes * MINUTE, MINUTE
    if ss is not None:
        seconds = int(ss)
        if seconds > 60:  # 60 is a leap second (PS3.5 TM)
            raise ValueError(f"{text!r}: second {seconds} is not 00..60")
        floor, span = floor + seconds * SECOND, SECOND
    if frac is not None:
        floor += int(frac.ljust(6, "0"))
        span = 10 ** (6 - len(frac))
    return floor, floor + span - 1


def parse_tm(text: str) -> tuple[int, int]:
    """A TM value ``HH[MM[SS[.F{1,6}]]]`` (or the retired ``HH:MM[:SS[.F]]``) as ``(floor, ceil)``
    in microseconds since midnight: ``1100`` covers 11:00:00 to 11:00:59.999999."""
    s = text.strip(" \0")
    m = _TM.fullmatch(s) or _TM_RETIRED.fullmatch(s)
    if not m:
        raise ValueError(f"{text!r} is not a time (TM is HH[MM[SS[.FFFFFF]]])")
    return _time(m[1], m[2], m[3], m[4], text)


def parse_dt(text: str, default_offset: int = 0) -> tuple[int, int]:
    """A DT value ``YYYY[MM[DD[HH[MM[SS[.F{1,6}]]]]]][&ZZXX]`` as ``(floor, ceil)`` in microseconds
    since 0001-01-01T00:00 UTC; without an offset the value is in ``default_offset`` (µs)."""
    s = text.strip(" \0")
    m = _DT.fullmatch(s)
    if not m:
        raise ValueError(f"{text!r} is not a date-time (DT is YYYY[MM[DD[HH[MM[SS[.F]]]]]][&ZZXX])")
    year = int(m[1])
    if year < 1:
        raise ValueError(f"{text!r}: year 0000 does not exist")
    if m[2] is None:
        floor = _day(year, 1, 1, text) * DAY
        span = (366 if calendar.isleap(year) else 365) * DAY
    elif m[3] is None:
        month = int(m[2])
        floor = _day(year, month, 1, text) * DAY
        span = calendar.monthrange(year, month)[1] * DAY
    else:
        floor, span = _day(year, int(m[2]), int(m[3]), text) * DAY, DAY
        if m[4] is not None:
            t_floor, t_ceil = _time(m[4], m[5], m[6], m[7], text)
            floor, span = floor + t_floor, t_ceil - t_floor + 1
    offset = parse_offset(m[8]) if m[8] else default_offset
    return floor - offset, floor - offset + span - 1


def parse_temporal(vr: str, text: str, default_offset: int = 0) -> tuple[int, int]:
    """``(floor, ceil)`` of a DA, TM or DT value on that VR's axis (see the module docstring)."""
    if vr == "DA":
        return parse_da(text)
    if vr == "TM":
        return parse_tm(text)
    if vr == "DT":
        return parse_dt(text, default_offset)
    raise ValueError(f"{vr} is not a date or time VR")


def _valid(vr: str, text: str) -> bool:
    try:
        parse_temporal(vr, text)
    except ValueError:
        return False
    return True


@lru_cache(maxsize=1024)  # a pure function of two strings; a query compiles its key several times
def split_range(vr: str, text: str) -> tuple[str | None, str | None]:
    """A range key ``v1-v2``, ``-v2`` or ``v1-`` as ``(v1, v2)``, None for an open end; ``"-"``
    alone gives ``(None, None)``. Spaces around the '-' are dropped.

    The split is at the unique '-' that leaves a valid value (or nothing) on both sides, so DT
    bounds may carry negative offsets (docs/matching.md §3, Range Matching); two valid splits are refused:

    >>> split_range("DT", "20200101100000-0500-20200101120000-0500")
    ('20200101100000-0500', '20200101120000-0500')
    """
    s = text.strip(" \0")
    if s == "-":
        return None, None
    splits: list[tuple[str | None, str | None]] = []
    errors: list[str] = []
    for i, ch in enumerate(s):
        if ch != "-":
            continue
        left, right = s[:i].strip(" "), s[i + 1 :].strip(" ")
        if not left and not right:
            continue
        bad = [part for part in (left, right) if part and not _valid(vr, part)]
        if bad:
            errors.extend(bad)
            continue
        splits.append((left or None, right or None))
    if len(splits) == 1:
        return splits[0]
    if not splits:
        if s.count("-") == 1 and errors:
            parse_temporal(vr, errors[0])  # raises with the precise reason
        raise ValueError(f"{text!r} is not a {vr} range (v1-v2, -v2 or v1-)")
    raise ValueError(f"{text!r} is an ambiguous {vr} range: it splits validly at {len(splits)} hyphens")


def combine_da_tm(da: str, tm: str | None, offset: int = 0) -> tuple[int, int]:
    """A DA and a TM value as one DT interval ``(floor, ceil)`` (PS3.4 C.2.2.2.5.4); without a
    time the interval is the whole day. ``offset`` is the timezone both are written in."""
    d_floor, d_ceil = parse_da(da)
    if tm is None or strip_padding("TM", tm) == "":
        return d_floor - offset, d_ceil - offset
    t_floor, t_ceil = parse_tm(tm)
    return d_floor + t_floor - offset, d_floor + t_ceil - offset


# ---------------------------------------------------------------- numbers and tags

_IS = re.compile(r"[+-]?[0-9]+")
_DS = re.compile(r"[+-]?(?:[0-9]+\.?[0-9]*|\.[0-9]+)(?:[eE][+-]?[0-9]+)?")


def parse_number(vr: str, text: str) -> Decimal:
    """An IS or DS value as a Decimal, so ``+7``, ``007`` and ``7.0`` all equal 7 (CP-2305)."""
    s = text.strip(" \0")
    pattern = _IS if vr == "IS" else _DS
    if not pattern.fullmatch(s):
        raise ValueError(f"{text!r} is not a valid {vr} number")
    try:
        return Decimal(s)
    except InvalidOperation as exc:  # pragma: no cover - the pattern already rules this out
        raise ValueError(f"{text!r} is not a valid {vr} number") from exc


_AT = re.compile(r"\(?([0-9A-Fa-f]{4}),?([0-9A-Fa-f]{4})\)?")


def parse_at(text: str) -> int:
    """An AT value (``00100010``, ``0010,0010`` or ``(0010,0010)``) as a 32-bit tag."""
    m = _AT.fullmatch(text.strip(" \0").replace(" ", ""))
    if not m:
        raise ValueError(f"{text!r} is not an attribute tag (AT is 8 hexadecimal digits)")
    return int(m[1] + m[2], 16)
