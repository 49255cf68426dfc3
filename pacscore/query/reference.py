"""The reference matcher: the attribute matching rules of PS3.4 C.2.2, one function per rule.

Written to be read beside the standard (and docs/matching.md); every faster path must give exactly
its answers. Each rule function turns a key into a test over stored values:

- a *value test* ``(value, offset) -> bool`` sees one stored value, padding removed and not
  empty; ``offset`` is the UTC offset (µs) the record's offset-less times are written in;
- a *values test* ``(values, offset) -> bool`` sees all values of a stored attribute.

``pacscore.query.conditions`` wraps them with the handling of empty and absent values and the
record's timezone; ``pacscore.match`` (query/oracle.py) is the public oracle over the shapes of the
test vectors.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass

from ..values import (
    DAY,
    TEMPORAL_VRS,
    WILDCARD_VRS,
    combine_da_tm,
    fold_case,
    is_empty,
    nfc,
    parse_at,
    parse_number,
    parse_temporal,
    parse_tm,
    pn_groups,
    split_range,
)
from .options import MatchOptions

ValueTest = Callable[[str, int], bool]
ValuesTest = Callable[[Sequence[str], int], bool]

__all__ = [
    "Zone",
    "WildcardPattern",
    "classify",
    "single_value",
    "exact_value",
    "person_name",
    "temporal_value",
    "numeric_value",
    "tag_value",
    "uid_list",
    "wildcard",
    "person_name_wildcard",
    "range_value",
    "range_form",
    "combined_datetime",
    "value_test",
    "any_value",
    "any_key_value",
    "multiple_values",
    "key_test",
    "sequence",
    "empty_value",
]


@dataclass(frozen=True)
class Zone:
    """Where offset-less key times are written (``key_offset``, µs east of UTC) and whether TM
    values are moved to UTC before comparing (timezone query adjustment, C.2.2.2.1.3)."""

    key_offset: int = 0
    adjust: bool = False


# ---------------------------------------------------------------- decision table


def classify(vr: str, value: str) -> str:
    """The matching type of one key value, padding removed (PS3.4 C.2.2.2; docs/matching.md §2):
    ``"universal"``, ``"wildcard"``, ``"range"`` or ``"single"``.

    '*'/'?' are wild cards only for AE CS LO LT PN SH ST UC UR UT (C.2.2.2.4); a key of only
    '*' is universal (C.2.2.2.4 Note 1); '-' is a range only for DA TM DT (C.2.2.2.5), and '-'
    alone is universal (pacscore, §9.4)."""
    if vr in WILDCARD_VRS and ("*" in value or "?" in value):
        return "universal" if value.strip("*") == "" else "wildcard"
    if vr in TEMPORAL_VRS and "-" in value:
        return "universal" if value.strip(" ") == "-" else "range"
    return "single"


# ---------------------------------------------------------------- single value matching


def single_value(vr: str, value: str, options: MatchOptions, zone: Zone = Zone()) -> ValueTest:
    """Single Value Matching (PS3.4 C.2.2.2.1): exact and case-sensitive, except PN (C.2.2.2.1.1),
    DA/TM/DT by meaning (C.2.2.2.1.3) and IS/DS numerically (CP-2305).

    '*' or '?' in a key of a VR without wild cards is not a valid value (docs/matching.md §5)."""
    if vr == "PN":
        return person_name(value, options)
    if vr in TEMPORAL_VRS:
        return temporal_value(vr, value, zone)
    if "*" in value or "?" in value:
        raise ValueError(f"wild cards are not allowed for VR {vr} (PS3.4 C.2.2.2.4): {value!r}")
    if vr in ("IS", "DS"):
        return numeric_value(vr, value)
    if vr == "AT":
        return tag_value(value)
    return exact_value(value)


def exact_value(value: str) -> ValueTest:
    """Exact, case-sensitive equality of precomposed text (C.2.2.2.1)."""
    key = nfc(value)

    def test(v: str, _offset: int = 0) -> bool:
        return v == key or (not v.isascii() and nfc(v) == key)

    return test


def _pn_fold(options: MatchOptions) -> Callable[[str], str]:
    return fold_case if options.pn_case_insensitive else (lambda s: s)


def _stored_groups(v: str, fold: Callable[[str], str]) -> tuple[str, ...]:
    return tuple(fold(g) for g in pn_groups(nfc(v)))


def person_name(value: str, options: MatchOptions) -> ValueTest:
    """PN Single Value Matching (C.2.2.2.1.1): literal, component-normalised, case-insensitive by
    default (``pn_case_insensitive``). A key without '=' is compared with the Alphabetic group (or
    any group with ``pn_match_all_groups``); with '=' each non-empty key group must equal the
    same stored group. Fuzzy matching (``fuzzy_pn``) is answered literally."""
    fold = _pn_fold(options)
    key = tuple(fold(g) for g in pn_groups(nfc(value)))
    if len(key) <= 1:
        only = key[0] if key else ""
        any_group = options.pn_match_all_groups

        def test(v: str, _offset: int = 0) -> bool:
            groups = _stored_groups(v, fold)
            if any_group:
                return any(g == only for g in groups) or (not groups and only == "")
            return (groups[0] if groups else "") == only

        return test

    wanted = [(i, g) for i, g in enumerate(key) if g]

    def test_groups(v: str, _offset: int = 0) -> bool:
        groups = _stored_groups(v, fold)
        return all((groups[i] if i < len(groups) else "") == g for i, g in wanted)

    return test_groups


def _interval(vr: str, lo: int | None, hi: int | None, zone: Zone) -> ValueTest:
    """Does the stored value's floor instant lie in [lo, hi] (None = open)? (docs/matching.md §3, Range Matching)."""
    if vr == "TM" and zone.adjust:
        # Times of day move to UTC and may wrap around midnight: compare on the 24-hour circle.
        lo0 = 0 if lo is None else lo
        width = (DAY - 1 if hi is None else hi) - lo0
        start = lo0 - zone.key_offset

        def test_circle(v: str, offset: int) -> bool:
            try:
                floor = parse_tm(v)[0]
            except ValueError:
                return False
            return (floor - offset - start) % DAY <= width

        return test_circle

    low = float("-inf") if lo is None else lo
    high = float("inf") if hi is None else hi

    def test(v: str, offset: int) -> bool:
        try:
            floor = parse_temporal(vr, v, offset)[0]
        except ValueError:  # an invalid stored value matches nothing
            return False
        return low <= floor <= high

    return test


def temporal_value(vr: str, value: str, zone: Zone = Zone()) -> ValueTest:
    """DA/TM/DT Single Value Matching by meaning (C.2.2.2.1.3): the key covers the interval of
    its precision (TM ``10`` is 10:00:00-10:59:59.999999, as an equal-bounds range, Note 2);
    a stored value matches when its floor instant lies inside."""
    floor, ceil = parse_temporal(vr, value, zone.key_offset)
    return _interval(vr, floor, ceil, zone)


def numeric_value(vr: str, value: str) -> ValueTest:
    """IS/DS Single Value Matching (CP-2305, implementation dependent): numeric equality, so
    ``+7`` = ``007`` = ``7``; a key that is no number is compared literally (docs/matching.md §3,
    Single Value Matching)."""
    try:
        key = parse_number(vr, value)
    except ValueError:
        return exact_value(value)

    def test(v: str, _offset: int = 0) -> bool:
        if v == value:
            return True
        try:
            return parse_number(vr, v) == key
        except ValueError:
            return False

    return test


def tag_value(value: str) -> ValueTest:
    """AT Single Value Matching: compares 32-bit tags, not their spelling (C.2.2.2.1 c)."""
    try:
        key = parse_at(value)
    except ValueError:
        return exact_value(value)

    def test(v: str, _offset: int = 0) -> bool:
        try:
            return parse_at(v) == key
        except ValueError:
            return False

    return test


# ---------------------------------------------------------------- list of UID matching


def uid_list(uids: Iterable[str]) -> ValueTest:
    """List of UID Matching (PS3.4 C.2.2.2.2): each UID of the list may generate a match."""
    wanted = frozenset(uids)
    for uid in wanted:
        if "*" in uid or "?" in uid:
            raise ValueError(f"wild cards are not allowed for VR UI (PS3.4 C.2.2.2.4): {uid!r}")

    def test(v: str, _offset: int = 0) -> bool:
        return v in wanted

    return test


# ---------------------------------------------------------------- wild card matching


class _Segment:
    """A run of a pattern between two '*': literal pieces at fixed offsets, '?' between them."""

    __slots__ = ("length", "pieces")

    def __init__(self, text: str) -> None:
        self.length = len(text)
        self.pieces = tuple((m.start(), m.group()) for m in re.finditer(r"[^?]+", text))

    def at(self, text: str, pos: int) -> bool:
        for offset, literal in self.pieces:
            if not text.startswith(literal, pos + offset):
                return False
        return True

    def find(self, text: str, start: int, end: int) -> tuple[int, int]:
        """Leftmost position p in [start, end - length] where the segment matches, and the
        number of candidate positions tried (-1 if none)."""
        last = end - self.length
        if last < start:
            return -1, 1
        if not self.pieces:
            return start, 1
        offset, literal = self.pieces[0]
        steps = 0
        p = start
        while p <= last:
            steps += 1
            q = text.find(literal, p + offset, last + offset + len(literal))
            if q < 0:
                return -1, steps
            p = q - offset
            if self.at(text, p):
                return p, steps
            p += 1
        return -1, steps


class WildcardPattern:
    """A DICOM wild card pattern: '*' any run of characters (also none), '?' exactly one
    character, every other character literal, anchored at both ends (PS3.4 C.2.2.2.4).

    No regular expressions and no backtracking: the parts between stars are placed leftmost,
    one after the other, so a match costs O(len(text) x len(pattern)) at worst.

    >>> WildcardPattern("M?ller*").match("Müller^Hans")
    True
    """

    __slots__ = ("pattern", "_head", "_tail", "_middle", "_star", "_min", "_literals")

    def __init__(self, pattern: str) -> None:
        self.pattern = pattern
        parts = pattern.split("*")
        self._star = len(parts) > 1
        self._head = _Segment(parts[0])
        self._tail = _Segment(parts[-1]) if self._star else None
        self._middle = tuple(_Segment(p) for p in parts[1:-1] if p)
        self._min = sum(len(p) for p in parts)
        # Without '?' every part is a plain string: str.startswith/endswith/find do the work.
        self._literals = None if "?" in pattern else (parts[0], parts[-1], tuple(p for p in parts[1:-1] if p))

    def match(self, text: str) -> bool:
        literals = self._literals
        if literals is None:
            return self.match_steps(text)[0]
        if not self._star:
            return text == self.pattern
        head, tail, middle = literals
        if len(text) < self._min or not text.startswith(head) or not text.endswith(tail):
            return False
        pos, end = len(head), len(text) - len(tail)
        for part in middle:
            found = text.find(part, pos, end)
            if found < 0:
                return False
            pos = found + len(part)
        return True

    def match_steps(self, text: str) -> tuple[bool, int]:
        """The answer and the number of steps (candidate positions) it took."""
        n = len(text)
        if n < self._min:
            return False, 1
        head, tail = self._head, self._tail
        if tail is None:
            return n == head.length and head.at(text, 0), 1
        if not head.at(text, 0):
            return False, 1
        end = n - tail.length
        if not tail.at(text, end):
            return False, 2
        pos, steps = head.length, 2
        for segment in self._middle:
            found, tried = segment.find(text, pos, end)
            steps += tried
            if found < 0:
                return False, steps
            pos = found + segment.length
        return True, steps


def wildcard(vr: str, pattern: str, options: MatchOptions) -> ValueTest:
    """Wild Card Matching (PS3.4 C.2.2.2.4) on one stored value: case-sensitive, code points of
    precomposed (NFC) text, '*' spans newlines. PN is delegated to ``person_name_wildcard``."""
    if vr == "PN":
        return person_name_wildcard(pattern, options)
    compiled = WildcardPattern(nfc(pattern))

    def test(v: str, _offset: int = 0) -> bool:
        return compiled.match(v if v.isascii() else nfc(v))

    return test


def person_name_wildcard(pattern: str, options: MatchOptions) -> ValueTest:
    """PN Wild Card Matching (implementation dependent, C.2.2.2.4): the pattern applies per
    component group like PN single values (``*=*`` constrains two groups, an empty key group
    none), case-folded by default. Stored trailing empty components count as present, so
    ``Doe^*`` matches ``Doe``."""
    fold = _pn_fold(options)
    groups = pn_groups(nfc(pattern))
    compiled = [(i, WildcardPattern(fold(g)), g.count("^")) for i, g in enumerate(groups) if g]

    def group_ok(p: WildcardPattern, carets: int, g: str) -> bool:
        if p.match(g):
            return True
        missing = carets - g.count("^")
        return missing > 0 and p.match(g + "^" * missing)

    if len(groups) <= 1:
        if not compiled:

            def anything(v: str, _offset: int = 0) -> bool:
                return True

            return anything
        _, only, carets = compiled[0]
        any_group = options.pn_match_all_groups

        def test(v: str, _offset: int = 0) -> bool:
            if any_group:
                return any(group_ok(only, carets, g) for g in _stored_groups(v, fold) or ("",))
            groups = pn_groups(nfc(v))  # only the Alphabetic group is compared: fold just that
            return group_ok(only, carets, fold(groups[0]) if groups else "")

        return test

    def test_groups(v: str, _offset: int = 0) -> bool:
        stored = _stored_groups(v, fold)
        return all(group_ok(p, c, stored[i] if i < len(stored) else "") for i, p, c in compiled)

    return test_groups


# ---------------------------------------------------------------- range matching


def range_value(vr: str, value: str, zone: Zone = Zone()) -> ValueTest:
    """Range Matching (PS3.4 C.2.2.2.5) of DA, TM and DT: ``v1-v2``, ``-v2``, ``v1-``, bounds
    inclusive over their precision (TM end ``1100`` includes 11:00:59.999999). DT offsets are
    honoured (C.2.2.2.5.3); a reversed range, including a TM range over midnight
    (C.2.2.2.5.2), is invalid."""
    first, last = split_range(vr, value)
    lo = None if first is None else parse_temporal(vr, first, zone.key_offset)[0]
    hi = None if last is None else parse_temporal(vr, last, zone.key_offset)[1]
    if lo is not None and hi is not None and lo > hi:
        what = "crosses midnight" if vr == "TM" else "is reversed"
        raise ValueError(f"range {value!r} {what}: its start is after its end (PS3.4 C.2.2.2.5)")
    return _interval(vr, lo, hi, zone)


def range_form(vr: str, value: str) -> tuple[bool, bool] | None:
    """Which ends of a range key are given ((True, True) for ``v1-v2``); None if not a range."""
    if classify(vr, value) != "range":
        return None
    try:
        first, last = split_range(vr, value)
        for part in (first, last):
            if part is not None:
                parse_temporal(vr, part)
    except ValueError:
        return None
    return first is not None, last is not None


def combined_datetime(
    date_key: str, time_key: str, zone: Zone = Zone()
) -> Callable[[str | None, str | None, int], bool]:
    """Combined Date Time Range Matching (PS3.4 C.2.2.2.5.4): a DA and a TM range of the same
    form are one DT range (``20060705-20060707`` with ``1000-1800`` runs from July 5 10:00 to
    July 7 18:00). A stored date without a time is compared by date alone (the day overlaps).
    Returns ``test(date, time, offset)``; the date must not be empty (callers handle that)."""
    d_first, d_last = split_range("DA", date_key)
    t_first, t_last = split_range("TM", time_key)
    if (d_first is None) != (t_first is None) or (d_last is None) != (t_last is None):
        raise ValueError(f"date {date_key!r} and time {time_key!r} are not ranges of the same form")
    lo = None if d_first is None else combine_da_tm(d_first, t_first, zone.key_offset)[0]
    hi = None if d_last is None else combine_da_tm(d_last, t_last, zone.key_offset)[1]
    if lo is not None and hi is not None and lo > hi:
        raise ValueError(f"combined range {date_key!r} {time_key!r} is reversed (PS3.4 C.2.2.2.5.4)")
    low = float("-inf") if lo is None else lo
    high = float("inf") if hi is None else hi

    def test(date: str | None, time: str | None, offset: int) -> bool:
        try:
            floor, ceil = combine_da_tm(date or "", time, offset)
        except ValueError:
            return False
        if time is None or not time.strip(" \0"):
            return floor <= high and ceil >= low
        return low <= floor <= high

    # for the compiled kernel (query/fast.py): None is an open end
    test.bounds = (lo, hi)  # type: ignore[attr-defined]  # a function attribute
    return test


# ---------------------------------------------------------------- several values


def any_value(test: ValueTest) -> ValuesTest:
    """A multi-valued stored attribute matches if any of its values does (PS3.4 C.2.2.3)."""

    def values_test(values: Sequence[str], offset: int) -> bool:
        for v in values:
            if test(v, offset):
                return True
        return False

    return values_test


def any_key_value(tests: Sequence[ValueTest]) -> ValuesTest:
    """A multi-valued key without Multiple Value Matching: any key value matching any stored
    value is enough (undefined by C.2.2.2.8 Note 4; pacscore OR, docs/matching.md §2)."""
    if len(tests) == 1:
        return any_value(tests[0])

    def values_test(values: Sequence[str], offset: int) -> bool:
        return any(t(v, offset) for v in values for t in tests)

    return values_test


def multiple_values(tests: Sequence[ValueTest]) -> ValuesTest:
    """Multiple Value Matching (PS3.4 C.2.2.2.8, negotiated): every key value must match some
    stored value, in any order (``CT\\PT`` needs both)."""

    def values_test(values: Sequence[str], offset: int) -> bool:
        return all(any(t(v, offset) for v in values) for t in tests)

    return values_test


def value_test(vr: str, value: str, options: MatchOptions, zone: Zone = Zone()) -> ValueTest | None:
    """The test of one non-empty key value by its matching type (None = universal)."""
    kind = classify(vr, value)
    if kind == "universal":
        return None
    if kind == "wildcard":
        return wildcard(vr, value, options)
    if kind == "range":
        return range_value(vr, value, zone)
    return single_value(vr, value, options, zone)


def key_test(
    vr: str, values: Sequence[str], options: MatchOptions, zone: Zone = Zone()
) -> tuple[str, ValuesTest] | None:
    """The matching kind and values test of a key given as its non-empty values (padding
    removed); None if it is universal. Raises ValueError for an invalid key (§9.7)."""
    if not values:
        raise ValueError("the key has only empty values")
    kinds = [classify(vr, v) for v in values]
    if len(values) > 1 and vr == "UI":
        return "uid_list", any_value(uid_list(values))
    if len(values) > 1 and options.multiple_value_matching:
        if "wildcard" in kinds or any(("*" in v or "?" in v) for v in values):
            raise ValueError("wild cards are not allowed in Multiple Value Matching (PS3.4 C.2.2.2.8)")
        tests = [t for t in (value_test(vr, v, options, zone) for v in values) if t is not None]
        return ("multi_value", multiple_values(tests)) if tests else None
    key_tests = [value_test(vr, v, options, zone) for v in values]
    if any(t is None for t in key_tests):
        return None  # OR with a universal value matches everything
    kind = "wildcard" if "wildcard" in kinds else "range" if "range" in kinds else "single"
    return kind, any_key_value(key_tests)  # type: ignore[arg-type]  # no None left: returned above


# ---------------------------------------------------------------- sequences and empty values


def sequence(
    item_tests: Sequence[tuple[str, Callable[[object], bool]]], options: MatchOptions
) -> Callable[[object], bool]:
    """Sequence Matching (PS3.4 C.2.2.2.6): one stored item must match every item key (keys may
    not be satisfied by different items). A stored sequence without items, or none at all,
    matches like an empty value (C.2.2.1.2 by analogy, ``empty_record_matches``)."""
    empty = options.empty_record_matches

    def test(stored: object) -> bool:
        if is_empty("SQ", stored):
            return empty
        if isinstance(stored, (str, bytes)) or not isinstance(stored, Iterable):
            return False
        for item in stored:
            if isinstance(item, Mapping) and all(t(item.get(kw)) for kw, t in item_tests):
                return True
        return False

    return test


def empty_value(vr: str) -> Callable[[object], bool]:
    """Empty Value Matching (PS3.4 C.2.2.2.7, negotiated): a key of two QUOTATION MARKs
    matches only a zero-length or absent stored value (docs/matching.md §3, inferred)."""
    return lambda stored: is_empty(vr, stored)
