"""Chooses how to find candidates for a query: the most selective access path, else a scan.

Access paths, most selective first:
  * the unique key of the query level (single value or UID list): direct lookups;
  * the unique key of an upper level: navigate down the children lists;
  * secondary indexes (index/secondary.py): exact values, case-folded person-name prefixes,
    date ranges, time and date-time ranges (schema 6); the candidate sets of every usable
    index are intersected;
  * a scan of the level in key order.
Every path only proposes; execute.py verifies each candidate, so a plan can never lose a match,
only cost time. Candidate keys are always visited in ascending order.
"""

from __future__ import annotations

import datetime
import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any, Protocol

from .. import model, values
from ..index import segments, timekeys
from ..index.lmdb_index import Index
from ..index.secondary import (
    DEFAULT_INDEXED,
    GRAM_INDEXED,
    MAX_VALUE_BYTES,
    TIME_VRS,
    UNINDEXABLE,
    gram_prefix,
    grams,
    normalise_pn,
    prefix,
)
from ..index.snapshot import Snapshot
from . import temporal
from .keys import Query
from .kinds import ConditionKind, PlanKind


class Executor(Protocol):
    """What a plan reads of the query run it is made for (query/execute.py's Executor): the
    index, a snapshot of it (index/snapshot.py) and the query. A protocol, so that this module
    needs nothing of execute.py, which builds on it."""

    index: Index
    snapshot: Snapshot
    query: Query


#: an index value range: (start, end inclusive or None, mode): mode False is one exact value,
#: True a prefix, "range" the keys from start to end
Range = tuple[bytes, bytes | None, bool | str]

_DOWN = {"PATIENT": "STUDY", "STUDY": "SERIES", "SERIES": "IMAGE"}
_EXACT_VRS = frozenset({"CS", "SH", "LO", "AE", "UI"})
_DA8 = re.compile(r"^\d{8}$")
_DAY = datetime.timedelta(days=1)


@dataclass
class Plan:
    kind: PlanKind
    detail: str
    keys: list[bytes] | None = None  # the candidate keys (sorted); None = scan
    executor: Executor = None  # type: ignore[assignment]  # every plan is made for (and given) its Executor
    steps: list[str] = field(default_factory=list)

    @property
    def segmented(self) -> bool:
        """A scan of a level kept in scan segments (index/segments.py)."""
        ex = self.executor
        return self.keys is None and ex.query.level in segments.SEGMENTED_LEVELS and ex.index.segmented

    def segment_values(self) -> Iterator[object]:
        ex = self.executor
        return ex.snapshot.segment_values(ex.query.level)

    def candidates(self) -> Iterator[tuple[bytes, Any]]:
        """(key, record) pairs in ascending key order; the record may be a buffer."""
        ex = self.executor
        if self.keys is not None:
            get, db = ex.snapshot.getter(ex.query.level)
            return ((k, get(k, db=db)) for k in self.keys)
        if self.segmented:
            return (entry for value in self.segment_values() for entry in segments.entries(value))
        return ex.snapshot.records(ex.query.level)

    def describe(self) -> dict:
        out = {
            "plan": self.kind,
            "detail": self.detail,
            "candidates": None if self.keys is None else len(self.keys),
            "steps": self.steps,
        }
        if self.keys is None:
            out["segments"] = self.segmented  # the scan reads the packed segments of the level
        return out


def choose_plan(ex) -> Plan:
    q = ex.query
    unique = _unique_values(q, q.level)
    if unique is not None:
        keys = sorted(set(_lookup_unique(ex, q.level, unique)))
        return Plan(PlanKind.UNIQUE, f"{model.keyword_of(model.UNIQUE_KEY[q.level])} lookup", keys, ex)
    for lvl in q.ancestors:
        values = _unique_values(q, lvl)
        if values is not None:
            keys = _lookup_unique(ex, lvl, values)
            current = lvl
            while current != q.level:
                keys = [c for k in keys for c in _children(ex, current, k)]
                current = _DOWN[current]
            return Plan(
                PlanKind.NAVIGATE, f"down from {model.keyword_of(model.UNIQUE_KEY[lvl])}", sorted(set(keys)), ex
            )
    return _index_plan(ex) or Plan(PlanKind.SCAN, f"scan of the {q.level} level", None, ex)


def _unique_values(q, level: str) -> list[str] | None:
    """The values of a single/UID-list condition on the level's unique key, if there is one."""
    tag = model.UNIQUE_KEY[level]
    for cond in q.conditions.get(level, ()):
        if cond.tags == (tag,) and cond.kind in (ConditionKind.SINGLE, ConditionKind.UID_LIST) and cond.key_values:
            return list(cond.key_values)
    return None


def _lookup_unique(ex, level: str, values: Iterable[str]) -> list[bytes]:
    out = []
    if level == "PATIENT":  # patient keys are PatientID \0 Issuer: every issuer of that ID
        return [k for v in values for k in ex.snapshot.patient_keys(v)]
    for v in values:
        key = v.strip(" \x00").encode("utf-8")
        if key and ex.snapshot.record(level, key) is not None:
            out.append(key)
    return out


def _children(ex, level: str, key: bytes) -> list[bytes]:
    return ex.snapshot.children(level, key)


# -- secondary indexes -------------------------------------------------------------------------


def _index_plan(ex) -> Plan | None:
    q = ex.query
    level = q.level
    indexed = set(DEFAULT_INDEXED.get(level, ())) | set(ex.snapshot.indexed_by_level().get(level, ()))
    total = ex.snapshot.count(level)
    # past this many candidates a scan is cheaper (a fetched candidate costs three to five scanned
    # records), so the walk of an index range stops there and the level is scanned instead
    cap = max(256, total // 4)
    best: list[bytes] | set[bytes] | None = None
    found: list[bytes] | set[bytes] | None
    steps = []
    gram_tags = GRAM_INDEXED.get(level, ()) if ex.index.grams else ()
    for cond in q.conditions.get(level, ()):
        if (
            len(cond.tags) == 1
            and cond.tags[0] in gram_tags
            and cond.vr in ("LO", "SH")
            and cond.tags[0] not in indexed
        ):
            found, kind = _collect_grams(ex, level, cond, cap), " (trigrams)"
        elif cond.tags[0] in indexed and (len(cond.tags) == 1 or cond.kind == ConditionKind.COMBINED):
            if cond.vr in TIME_VRS and cond.kind != ConditionKind.COMBINED:
                ranges = _time_ranges(cond, q.options) if ex.index.time_entries else None
            else:
                ranges = _ranges_for(cond, q.options)
            if ranges is None:
                continue
            found, kind = _collect(ex, prefix(level, cond.tags[0]), ranges, cap, _empty_can_match(cond)), ""
        else:
            continue
        if found is None:
            steps.append(f"{cond.keyword}: {'no trigram plan' if kind else 'too broad'}")
            continue
        steps.append(f"{cond.keyword}: {len(found)} candidates{kind}")
        best = found if best is None else set(best).intersection(found)
    if best is None:
        return None
    # a list of sorted runs (the trigram plan's) sorts in about linear time
    return Plan(PlanKind.INDEX, "secondary index", sorted(best), ex, steps)


def pn_lookups(cond, options) -> list[tuple[str, bool]] | None:
    """The index keys a PN condition can match, as (key, is a prefix) per value: the
    case-folded Alphabetic group, exact or up to the first wildcard. None when a match may
    lie elsewhere (``=`` in the key, ``pn_match_all_groups``, no literal start, a start with a
    component separator or a space). The worklist's name lookup uses the same rules."""
    if options.pn_match_all_groups or cond.kind not in (
        ConditionKind.SINGLE,
        ConditionKind.WILDCARD,
        ConditionKind.MULTI_VALUE,
    ):
        return None
    out: list[tuple[str, bool]] = []
    for raw in str(cond.key).split("\\"):
        if "=" in raw:
            return None
        if cond.kind == ConditionKind.WILDCARD or "*" in raw or "?" in raw:
            lit = re.split(r"[*?]", raw, maxsplit=1)[0]
            if not lit or any(c in lit for c in "^= ") or lit != lit.strip():
                return None
            out.append((values.fold_case(values.nfc(lit)), True))
        else:
            out.append((normalise_pn(raw), False))
    return out


def _ranges_for(cond, options) -> list[Range] | None:
    """Index value ranges (start, end inclusive, or prefix) that hold every possible match."""
    vr = cond.vr
    if cond.kind in (ConditionKind.SINGLE, ConditionKind.UID_LIST, ConditionKind.MULTI_VALUE) and vr in _EXACT_VRS:
        return [(_enc(v.strip(" \x00")), None, False) for v in cond.key_values]
    if vr == "PN":
        lookups = pn_lookups(cond, options)
        return None if lookups is None else [(_enc(key), None, prefix) for key, prefix in lookups]
    if vr in _EXACT_VRS and cond.kind == ConditionKind.WILDCARD:
        out: list[Range] = []
        for raw in str(cond.key).split("\\"):
            lit = re.split(r"[*?]", raw.lstrip(" "), maxsplit=1)[0]
            if not lit:
                return None
            out.append((_enc(lit), None, True))
        return out
    if cond.kind == ConditionKind.COMBINED and not options.timezone_adjustment:
        return _combined_date_range(cond.key_values[0])
    if vr == "DA" and cond.kind in (ConditionKind.SINGLE, ConditionKind.RANGE) and not options.timezone_adjustment:
        text = str(cond.key).replace(" ", "")
        if "\\" in text:
            return None
        lo, _, hi = text.partition("-") if cond.kind == ConditionKind.RANGE else (text, "", text)
        if (lo and not _DA8.match(lo)) or (hi and not _DA8.match(hi)):
            return None
        return [(_enc(lo), _enc(hi) if hi else b"\xff", "range")]
    return None


def _time_ranges(cond, options) -> list[Range] | None:
    """Index ranges of a TM or DT key (single values, ranges, or a list of them) over the
    sortable instants of schema 6 (index/timekeys.py): each key value's first to last instant,
    as the reference reads it. None under timezone adjustment (times then compare on the
    24-hour circle in each record's zone), or for a key the planner cannot read."""
    if options.timezone_adjustment or cond.kind not in (
        ConditionKind.SINGLE,
        ConditionKind.RANGE,
        ConditionKind.MULTI_VALUE,
    ):
        return None
    offset = values.parse_offset(options.local_timezone) if cond.vr == "DT" else 0
    out: list[Range] = []
    for key_value in cond.key_values:
        instants = temporal.key_bounds(cond.vr, key_value, offset)
        if instants is None:
            return None
        start, end = timekeys.key_range(cond.vr, *instants)
        out.append((_enc(start), b"\xff" if end is None else _enc(end), "range"))
    return out


def _combined_date_range(date_key: str) -> list[Range] | None:
    """The dates a combined date-time range can match, as a range of the date's index: its date
    bounds widened by a day each way (a key's UTC offset moves its bounds by up to 14 hours)."""
    if date_key.count("-") > 1:
        return None
    first, _, last = date_key.partition("-") if "-" in date_key else (date_key, "", date_key)
    first, last = first.strip(" "), last.strip(" ")
    if (first and not _DA8.match(first)) or (last and not _DA8.match(last)) or not (first or last):
        return None
    try:
        lo = _shift(first, -_DAY) if first else ""
        hi = _shift(last, _DAY) if last else ""
    except (ValueError, OverflowError):  # not a real day, or the calendar's first or last day
        return None
    return [(_enc(lo), _enc(hi) if hi else b"\xff", "range")]


def _shift(day: str, delta: datetime.timedelta) -> str:
    d = datetime.date(int(day[:4]), int(day[4:6]), int(day[6:])) + delta
    return f"{d.year:04d}{d.month:02d}{d.day:02d}"


def _enc(text: str) -> bytes:
    return text.encode("utf-8")[:MAX_VALUE_BYTES]


def _collect_grams(ex, level: str, cond, cap: int) -> list[bytes] | None:
    """Candidates of a wild card (or single value) key from the trigram entries (in NFC, as the
    matcher compares): the entities ``_unfiled`` gives, and for each key value the entities
    holding the rarest trigram of each of its literal runs of three or more characters (at most
    three runs; none held by more than ``cap`` entities). None when a key value has no such
    run, or when its rarest trigram is common.

    One trigram per run: the trigrams of one run of text nearly always occur together (a value
    holding ``PHA`` of ``ESOPHAGUS`` holds the others), so reading a second list of the same
    run costs more than the few candidates it could remove; the matcher decides anyway. The
    empty-value and non-text entities hold no trigram, so they and a key value's entities never
    overlap."""
    if (
        cond.kind not in (ConditionKind.WILDCARD, ConditionKind.SINGLE, ConditionKind.MULTI_VALUE)
        or not cond.key_values
    ):
        return None
    head = gram_prefix(level, cond.tags[0])
    snapshot = ex.snapshot
    unfiled = _unfiled(ex, head, _empty_can_match(cond))
    per_value: list[list[bytes]] = []
    for key_value in cond.key_values:
        runs = [grams(run) for run in re.split(r"[*?]", values.nfc(values.strip_padding(cond.vr, key_value)))]
        runs = [run for run in runs if run]
        if not runs:
            return None
        rarest: list[tuple[int, bytes]] = []
        unmatched = False  # a trigram of the key value that no stored value has
        for run in runs:
            counts = []
            for gram in run:
                key = head + gram.encode("utf-8", "surrogatepass")  # as the entries are written
                count = snapshot.entity_count(key)
                if count is None:
                    break  # a trigram no stored value has: this key value matches only the unfiled
                counts.append((count, key))
            else:
                rarest.append(min(counts))
                continue
            unmatched = True
            break
        if unmatched:
            continue
        rarest.sort()
        if rarest[0][0] > cap:
            return None
        matched: list[bytes] | set[bytes] = snapshot.entities(rarest[0][1])  # the rarest: at most cap (above)
        for count, key in rarest[1:3]:
            if count > cap:
                break  # reading a common trigram's entities would cost more than it saves
            matched = set(matched).intersection(snapshot.entities(key))
        per_value.append(matched if isinstance(matched, list) else sorted(matched))
    if len(per_value) > 1:
        per_value = [sorted(set().union(*per_value))]
    found = unfiled + per_value[0] if per_value else unfiled
    return None if len(found) > cap else found


def _empty_can_match(cond) -> bool:
    """Whether an entity with an empty or absent value can match the condition (the reference's
    own answer: C.2.2.1.2 with ``empty_record_matches``); True when the test cannot tell."""
    if len(cond.tags) != 1:
        return True  # a combined date-time key: the time of an entity without a date counts
    try:
        return bool(cond.test(None)) or bool(cond.test(""))
    except Exception:  # whatever the reason, keep the empty ones
        return True


def _unfiled(ex, head: bytes, empties: bool) -> list[bytes]:
    """The entities of a prefix that the index could not file by text: those with a value it
    cannot index, and (when ``empties``: they can match) those with an empty or absent value;
    the matcher decides on them. Before schema 4 both are under the bare prefix."""
    entities = ex.snapshot.entities
    if not ex.index.splits_unindexable:
        return entities(head)
    return entities(head + UNINDEXABLE) + (entities(head) if empties else [])


def _collect(ex, head: bytes, ranges, cap: int, empties: bool = True) -> set[bytes] | None:
    snapshot = ex.snapshot
    found = set(_unfiled(ex, head, empties))
    for start, end, mode in ranges:
        lo = head + start
        if mode is False:  # exact value
            found.update(snapshot.entities(lo))
        else:
            if start == b"" and mode is True:
                return None
            hi = head + end if mode == "range" else None
            if not snapshot.walk(head, lo, hi, mode is True, found, cap):
                return None
        if len(found) > cap:
            return None
    return found
