"""Identifier keys compiled into Conditions: the filters the archive applies to each record.

Compile once per query, test many records: each Condition holds a ``test(*stored)`` closure
with the key already parsed (dates to intervals, patterns to segments, names folded), one
argument per stored attribute it reads. The rules themselves live in ``reference``.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from decimal import Decimal
from functools import lru_cache

from pydicom.datadict import dictionary_VR, tag_for_keyword

from .. import model
from ..errors import QueryError
from ..values import (
    MATCHED_VRS,
    TEXT_VRS,
    fold_case,
    nfc,
    parse_at,
    parse_offset,
    pn_groups,
    split_values,
    strip_padding,
)
from .kinds import ConditionKind
from .options import MatchOptions
from .reference import Zone, combined_datetime, empty_value, key_test, range_form, sequence

__all__ = ["Condition", "compile_condition", "compile_conditions", "TIMEZONE_OFFSET_TAG", "NEVER_MATCHED_TAGS"]

log = logging.getLogger("pacscore.query")

TIMEZONE_OFFSET_TAG = model.T_TZ
NEVER_MATCHED_TAGS = model.NEVER_MATCHED


@dataclass(frozen=True)
class Condition:
    """One compiled key. ``test(*stored)`` takes one stored value per tag in ``tags``: a DICOM
    string (backslash-joined, maybe padded), ``""``, None (absent) or, for SQ, a list of item
    dicts keyword -> str | list."""

    keyword: str
    tags: tuple[int, ...]
    vr: str
    kind: ConditionKind
    key: object
    key_values: tuple[str, ...]
    test: Callable[..., bool]


def _never(*_stored: object) -> bool:
    return False


def _invalid(
    keyword: str, tags: tuple[int, ...], vr: str, key: object, reason: str, options: MatchOptions
) -> Condition:
    """An invalid key (docs/matching.md §5): QueryError, or a condition that matches nothing."""
    if options.invalid_keys == "error":
        raise QueryError(keyword, reason)
    log.warning("invalid key %s=%r matches nothing: %s", keyword, key, reason)
    return Condition(keyword, tags, vr, ConditionKind.NEVER, key, (), _never)


def _key_text(keyword: str, key: object) -> str:
    """The key as one DICOM string; a wrong type is a malformed identifier, whatever the policy."""
    if key is None:
        return ""
    if isinstance(key, str):
        return key
    if isinstance(key, (int, float, Decimal)) and not isinstance(key, bool):
        return str(key)
    if (
        isinstance(key, Sequence)
        and not isinstance(key, (bytes, bytearray))
        and all(isinstance(v, (str, int, float, Decimal)) and not isinstance(v, bool) for v in key)
    ):
        return "\\".join(str(v) for v in key)
    raise QueryError(keyword, f"a key value must be a string, not {type(key).__name__}")


def _stored_text(stored: object) -> str:
    if isinstance(stored, str):
        return stored
    if isinstance(stored, Sequence) and not isinstance(stored, (bytes, bytearray)):
        return "\\".join("" if v is None else str(v) for v in stored)
    return str(stored)


@lru_cache(maxsize=256)
def _offset_or(text: str, default: int) -> int:
    try:
        return parse_offset(text)
    except ValueError:
        return default


def _record_offset(stored_tz: object, local: int) -> int:
    """The UTC offset a record's times are written in: its Timezone Offset From UTC, else local."""
    if not isinstance(stored_tz, str) or not stored_tz.strip(" \0"):
        return local
    return _offset_or(stored_tz.split("\\")[0].strip(" \0"), local)


def _local(options: MatchOptions) -> int:
    try:
        return parse_offset(options.local_timezone)
    except ValueError as exc:
        raise QueryError("local_timezone", str(exc)) from None


def _stored_test(
    vr: str, values_test: Callable, options: MatchOptions, local: int, with_tz: bool
) -> Callable[..., bool]:
    """Wraps a values test with C.2.2.1.2 (an empty or absent value matches when
    ``empty_record_matches``) and, with ``with_tz``, the record's Timezone Offset From UTC."""
    empty = options.empty_record_matches
    single_valued = vr in TEXT_VRS

    def run(stored: object, offset: int) -> bool:
        if not isinstance(stored, str):
            stored = _stored_text(stored)
        if single_valued or "\\" not in stored:
            v = strip_padding(vr, stored)
            if not v:
                return empty
            return values_test((v,), offset)
        return values_test(split_values(vr, stored), offset)

    if with_tz:

        def test_tz(stored: object, stored_tz: object = None) -> bool:
            if stored is None:
                return empty
            return run(stored, _record_offset(stored_tz, local))

        return test_tz

    def test(stored: object) -> bool:
        if stored is None:
            return empty
        return run(stored, local)

    return test


def _key_values(vr: str, kind: str, values: list[str], options: MatchOptions) -> tuple[str, ...]:
    """Normalised key values for index planning: exact strings (NFC), PN normalised (and folded
    when PN matching ignores case), AT as 8 upper-case hex digits, patterns and ranges as given."""
    if vr == "PN" and kind in (ConditionKind.SINGLE, ConditionKind.MULTI_VALUE):
        fold = fold_case if options.pn_case_insensitive else (lambda s: s)
        return tuple("=".join(fold(g) for g in pn_groups(nfc(v))) for v in values)
    if vr == "AT" and kind in (ConditionKind.SINGLE, ConditionKind.MULTI_VALUE):
        out = []
        for v in values:
            try:
                out.append(f"{parse_at(v):08X}")
            except ValueError:
                out.append(v)
        return tuple(out)
    return tuple(nfc(v) for v in values)


def _item_vr(sequence_keyword: str, keyword: str, item_vrs: Mapping[str, str] | None) -> str:
    if item_vrs and keyword in item_vrs:
        return item_vrs[keyword]
    try:
        return dictionary_VR(keyword)
    except (KeyError, ValueError):
        raise QueryError(
            keyword, f"unknown attribute in the {sequence_keyword} item: give its VR in item_vrs"
        ) from None


def _compile_sequence(
    keyword: str, tag: int, key: object, options: MatchOptions, item_vrs: Mapping[str, str] | None, local: int
) -> Condition | None:
    """Sequence Matching (PS3.4 C.2.2.2.6): the first key item's keys, compiled recursively."""
    if key is None or key == "":
        return None
    if isinstance(key, Mapping):
        items: list = [key]
    elif isinstance(key, Sequence) and not isinstance(key, (str, bytes)):
        items = list(key)
    else:
        raise QueryError(keyword, "a sequence key is a list holding one item (a dict keyword -> value)")
    if not items:
        return None
    if len(items) > 1:
        log.warning("%s: the sequence key has %d items; only the first is used (PS3.4 C.2.2.2.6)", keyword, len(items))
    item = items[0]
    if not isinstance(item, Mapping):
        raise QueryError(keyword, f"a sequence key item must be a dict, not {type(item).__name__}")
    tests = []
    for item_keyword, item_key in item.items():
        item_tag = tag_for_keyword(item_keyword) or 0
        if item_tag in NEVER_MATCHED_TAGS:
            continue
        vr = _item_vr(keyword, item_keyword, item_vrs)
        condition = _compile(item_keyword, item_tag, vr, item_key, options, item_vrs, Zone(local), local, False)
        if condition is None:
            continue
        if condition.kind == ConditionKind.NEVER:  # already reported by _invalid
            return Condition(keyword, (tag,), "SQ", ConditionKind.NEVER, key, (), _never)
        tests.append((item_keyword, condition.test))
    if not tests:
        return None  # an empty item, or only universal item keys
    return Condition(keyword, (tag,), "SQ", ConditionKind.SEQUENCE, key, (), sequence(tests, options))


def _compile(
    keyword: str,
    tag: int,
    vr: str,
    key: object,
    options: MatchOptions,
    item_vrs: Mapping[str, str] | None,
    zone: Zone,
    local: int,
    with_tz: bool,
) -> Condition | None:
    if vr == "SQ":
        return _compile_sequence(keyword, tag, key, options, item_vrs, local)
    text = _key_text(keyword, key)
    if vr not in MATCHED_VRS:
        return None  # binary and numeric-binary VRs are return keys only (docs/matching.md §4)
    stripped = strip_padding(vr, text)
    if not stripped:
        return None  # Universal Matching (C.2.2.2.3)
    if options.empty_value_matching and stripped == '""':
        return Condition(keyword, (tag,), vr, ConditionKind.EMPTY_VALUE, key, (), empty_value(vr))
    values = [v for v in split_values(vr, stripped) if v]  # an empty list item is ignored, §9 UID-007
    reads_tz = with_tz and vr in ("TM", "DT")
    tags = (tag, TIMEZONE_OFFSET_TAG) if reads_tz else (tag,)
    try:
        found = key_test(vr, values, options, zone if reads_tz else Zone(local))
    except ValueError as exc:
        return _invalid(keyword, tags, vr, key, str(exc), options)
    if found is None:
        return None
    kind, values_test = found
    test = _stored_test(vr, values_test, options, local, reads_tz)
    return Condition(keyword, tags, vr, ConditionKind(kind), key, _key_values(vr, kind, values, options), test)


def compile_condition(
    keyword: str, tag: int, vr: str, key: object, options: MatchOptions, *, item_vrs: Mapping[str, str] | None = None
) -> Condition | None:
    """The Condition of one key, or None if it matches everything (a return key only).

    >>> compile_condition("Modality", 0x00080060, "CS", "CT", MatchOptions()).test("CT")
    True
    """
    local = _local(options)
    return _compile(keyword, tag, vr, key, options, item_vrs, Zone(local), local, False)


def _first(stored: object) -> str | None:
    if stored is None:
        return None
    text = _stored_text(stored)
    first = text.split("\\", 1)[0].strip(" \0")
    return first or None


def _compile_combined(date: tuple, time: tuple, options: MatchOptions, zone: Zone, local: int) -> Condition:
    """Combined Date Time Matching (C.2.2.2.5.4) of a DA and a TM range key of the same form.
    Stored DA/TM pairs are single-valued in every Q/R model; only their first values are read."""
    (d_kw, d_tag, _, d_key), (t_kw, t_tag, _, t_key) = date, time
    keyword = f"combined:{d_kw}+{t_kw}"
    tags = (d_tag, t_tag, TIMEZONE_OFFSET_TAG) if zone.adjust else (d_tag, t_tag)
    d_text, t_text = strip_padding("DA", _key_text(d_kw, d_key)), strip_padding("TM", _key_text(t_kw, t_key))
    try:
        rule = combined_datetime(d_text, t_text, zone)
    except ValueError as exc:
        return _invalid(d_kw, tags, "DA", {d_kw: d_key, t_kw: t_key}, str(exc), options)
    empty, adjust = options.empty_record_matches, zone.adjust

    def test(stored_date: object, stored_time: object, stored_tz: object = None) -> bool:
        d = _first(stored_date)
        if d is None:
            return empty
        offset = _record_offset(stored_tz, local) if adjust else local
        return rule(d, _first(stored_time), offset)

    if not adjust:  # what a compiled kernel needs to give the same answers (query/fast.py)
        test.combined = (rule.bounds, local, empty)  # type: ignore[attr-defined]  # function attributes

    return Condition(keyword, tags, "DT", ConditionKind.COMBINED, {d_kw: d_key, t_kw: t_key}, (d_text, t_text), test)


def compile_conditions(
    keys: list[tuple[str, int, str, object]], options: MatchOptions, *, timezone_offset: str | None = None
) -> list[Condition]:
    """The Conditions of one level's keys ``(keyword, tag, vr, key)``; universal keys give none.

    Never-matched attributes (Specific Character Set, Query/Retrieve Level and View, Timezone
    Offset From UTC, groups below 0008) are skipped. With ``combined_datetime`` a DA key
    ``<X>Date`` and a TM key ``<X>Time`` that are ranges of the same form become one "combined"
    condition. With ``timezone_adjustment``, ``timezone_offset`` (the identifier's Timezone
    Offset From UTC; ``local_timezone`` when None) is where key TM and offset-less DT values are
    written, and each record's own Timezone Offset From UTC places its times."""
    local = _local(options)
    if timezone_offset is None:
        for _keyword, tag, _vr, key in keys:
            if tag == TIMEZONE_OFFSET_TAG and isinstance(key, str) and key.strip(" \0"):
                timezone_offset = key
    conditions: list[Condition] = []
    zone = Zone(local)
    if options.timezone_adjustment:
        key_offset = local
        if timezone_offset is not None and timezone_offset.strip(" \0"):
            try:
                key_offset = parse_offset(timezone_offset.split("\\")[0])
            except ValueError as exc:
                conditions.append(
                    _invalid("TimezoneOffsetFromUTC", (TIMEZONE_OFFSET_TAG,), "SH", timezone_offset, str(exc), options)
                )
        zone = Zone(key_offset, adjust=True)
    keys = [k for k in keys if k[1] not in NEVER_MATCHED_TAGS and k[1] >> 16 >= 0x0008]
    paired: set[str] = set()
    if options.combined_datetime:
        by_keyword = {k[0]: k for k in keys}
        for date in keys:
            keyword, _tag, vr, key = date
            time = by_keyword.get(keyword[:-4] + "Time") if keyword.endswith("Date") else None
            if vr != "DA" or time is None or time[2] != "TM":
                continue
            if not isinstance(key, str) or not isinstance(time[3], str):
                continue
            form = range_form("DA", strip_padding("DA", key))
            if form is not None and form == range_form("TM", strip_padding("TM", time[3])):
                conditions.append(_compile_combined(date, time, options, zone, local))
                paired.update((keyword, time[0]))
    for keyword, tag, vr, key in keys:
        if keyword in paired or (key == "" and vr != "SQ"):  # (an empty key: universal matching)
            continue
        condition = _compile(keyword, tag, vr, key, options, None, zone, local, zone.adjust)
        if condition is not None:
            conditions.append(condition)
    return conditions
