"""A worklist identifier compiled into conditions, and the candidates the index proposes.

The rules are the query layer's (pacscore/query/conditions.py, docs/matching.md) with the one
difference the Modality Worklist makes: a zero-length or absent stored value never matches a
key that is not universal (PS3.4 K.2.2.1.1.1), so ``empty_record_matches`` is always off.
The Scheduled Procedure Step Sequence key is matched by Sequence Matching (C.2.2.2.6) against
the item's scheduled step; its item keys are compiled like the keys of a level, so that a
Scheduled Procedure Step Start Date and Time may be one combined range (C.2.2.2.5.4).
"""

from __future__ import annotations

import datetime
import logging
from collections.abc import Mapping
from dataclasses import dataclass, field

from pydicom.datadict import tag_for_keyword
from pydicom.dataset import Dataset

from .. import model
from ..errors import QueryError
from ..query.conditions import Condition, compile_conditions
from ..query.keys import _value_of, identifier_items
from ..query.kinds import ConditionKind
from ..query.options import MatchOptions
from ..query.plan import pn_lookups
from ..values import split_range, strip_padding
from . import items
from .store import (
    STEP,
    STEP_DATES,
    STEP_INDEXED,
    STEP_NAMES,
    TOP,
    TOP_INDEXED,
    TOP_NAMES,
    WorklistStore,
    date_text,
)

log = logging.getLogger("pacscore.query")

#: kinds whose key values are exact strings the index files (docs/matching.md §2)
_EXACT = (ConditionKind.SINGLE, ConditionKind.UID_LIST, ConditionKind.MULTI_VALUE)
#: keys the response sets itself, or that belong to the Q/R models and not to the worklist
_DROPPED = frozenset({model.T_QR_LEVEL, model.T_CHARSET})


@dataclass
class WorklistKey:
    tag: int
    keyword: str
    vr: str
    value: object  # a DICOM string ("" universal) or a list of item dicts keyword -> value (SQ)


@dataclass
class WorklistQuery:
    keys: list[WorklistKey]
    options: MatchOptions
    conditions: list[Condition] = field(default_factory=list)
    #: the conditions on the scheduled step item; None when the identifier sets none
    step_conditions: list[Condition] | None = None

    def matches(self, record: items.Fields, steps: list[items.Fields]) -> list[int] | None:
        """The indexes of the matching scheduled steps, or None when the item does not match."""
        for cond in self.conditions:
            if not cond.test(*[record.get(t) for t in cond.tags]):
                return None
        if self.step_conditions is None:
            return list(range(len(steps)))
        hits = [
            i
            for i, step in enumerate(steps)
            if all(c.test(*[step.get(t) for t in c.tags]) for c in self.step_conditions)
        ]
        return hits or None

    def candidates(self, txn, dbs) -> set[bytes] | None:
        """Keys of the items the index proposes (a superset of the matches), or None when no
        key narrows the worklist and every item has to be tested."""
        found: set[bytes] | None = None
        lookups = [(TOP, c) for c in self.conditions] + [(STEP, c) for c in self.step_conditions or []]
        for scope, cond in lookups:
            keys = _lookup(txn, dbs, scope, cond, self.options)
            if keys is not None:
                found = keys if found is None else found & keys
        return found


def _lookup(txn, dbs, scope: bytes, cond: Condition, options: MatchOptions) -> set[bytes] | None:
    tag = cond.tags[0]
    indexed = TOP_INDEXED if scope == TOP else STEP_INDEXED
    if cond.kind == ConditionKind.NEVER:
        return set()
    if tag in indexed and cond.kind in _EXACT and cond.key_values:
        return WorklistStore.exact(txn, dbs, scope, tag, cond.key_values)
    if tag in (TOP_NAMES if scope == TOP else STEP_NAMES):
        return _name_lookup(txn, dbs, scope, cond, options)
    if scope != STEP or options.timezone_adjustment:
        return None  # a shifted window may move a date by a day: test every item
    date_key = None
    if cond.kind in (ConditionKind.SINGLE, ConditionKind.RANGE) and tag in STEP_DATES:
        date_key = cond.key
    elif cond.kind == ConditionKind.COMBINED and isinstance(cond.key, Mapping):
        date_key = cond.key.get(model.keyword_of(next(iter(STEP_DATES))))
    if not isinstance(date_key, str):
        return None
    text = strip_padding("DA", date_key)
    if "\\" in text:
        return None  # an OR list of dates: rare, tested item by item
    try:
        low, high = split_range("DA", text) if "-" in text else (text, text)
    except ValueError:
        return None  # the condition itself reports it
    low, high = (None if v is None else date_text(v) for v in (low, high))
    if cond.kind == ConditionKind.COMBINED:  # widened a day each way, as the Q/R planner does
        low, high = _shifted(low, -1), _shifted(high, 1)
    return WorklistStore.between(txn, dbs, STEP, next(iter(STEP_DATES)), low, high)


def _name_lookup(txn, dbs, scope: bytes, cond: Condition, options: MatchOptions) -> set[bytes] | None:
    """The items a PN key can match, from the case-folded Alphabetic groups; None when the key
    may match another group or has no literal start (the Q/R planner's rules: plan.pn_lookups)."""
    lookups = pn_lookups(cond, options)
    if lookups is None:
        return None
    tag = cond.tags[0]
    found = WorklistStore.unfiled(txn, dbs, scope, tag)
    for key, prefix in lookups:
        if prefix:
            found |= WorklistStore.prefixed(txn, dbs, scope, tag, key)
        else:
            found |= WorklistStore.exact(txn, dbs, scope, tag, [key])
    return found


def _shifted(day: str | None, days: int) -> str | None:
    """``YYYYMMDD`` moved by ``days``; None (an open end) when there is none, or past the calendar."""
    if day is None:
        return None
    try:
        moved = datetime.date(int(day[:4]), int(day[4:6]), int(day[6:8])) + datetime.timedelta(days=days)
    except (ValueError, OverflowError):
        return None
    return f"{moved.year:04d}{moved.month:02d}{moved.day:02d}"


def build(identifier: object, options: MatchOptions) -> WorklistQuery:
    """A WorklistQuery of an identifier (pydicom Dataset, dict keyword or tag -> value, or a
    DICOM JSON dict); QueryError names a malformed key."""
    if isinstance(identifier, Mapping) and identifier and all(isinstance(v, Mapping) for v in identifier.values()):
        try:
            identifier = Dataset.from_json(dict(identifier))
        except Exception as exc:
            raise QueryError(None, f"malformed DICOM JSON identifier: {exc}") from None
    pairs, _level = identifier_items(identifier)
    options = options.replace(empty_record_matches=False)  # K.2.2.1.1.1
    query = WorklistQuery(keys=[], options=options)
    for tag, raw in pairs:
        if tag >> 16 in (0x0000, 0x0002) or tag in _DROPPED:
            continue
        keyword = model.keyword_of(tag)
        vr = model.vr_of(tag)
        query.keys.append(WorklistKey(tag, keyword, vr, _value_of(tag, vr, raw, keyword)))
    specs = [(k.keyword, k.tag, k.vr, k.value) for k in query.keys if k.tag != items.SPS]
    query.conditions = compile_conditions(specs, options)
    step_key = next((k for k in query.keys if k.tag == items.SPS), None)
    if step_key is not None and isinstance(step_key.value, list) and step_key.value:
        if len(step_key.value) > 1:
            log.warning(
                "ScheduledProcedureStepSequence: the key has %d items; only the first is used (PS3.4 C.2.2.2.6)",
                len(step_key.value),
            )
        first = step_key.value[0]
        step_specs = []
        for item_keyword, value in first.items():
            item_tag = _tag(item_keyword)
            item_vr = model.vr_of(item_tag)
            step_specs.append((item_keyword, item_tag, item_vr, _value_of(item_tag, item_vr, value, item_keyword)))
        # the identifier's Timezone Offset From UTC places the step's key times too
        zone = next((k.value for k in query.keys if k.tag == model.T_TZ and isinstance(k.value, str)), None)
        conditions = compile_conditions(step_specs, options, timezone_offset=zone)
        query.step_conditions = conditions or None
    return query


def _tag(keyword: str) -> int:
    tag = tag_for_keyword(keyword)
    return tag if tag is not None else int(keyword, 16)


#: attributes of the scheduled step that a flat filter (CLI arguments, HTTP query parameters)
#: may name by their own keyword
STEP_KEYWORDS = frozenset(
    {
        "Modality",
        "ScheduledStationAETitle",
        "ScheduledStationName",
        "ScheduledProcedureStepStartDate",
        "ScheduledProcedureStepStartTime",
        "ScheduledPerformingPhysicianName",
        "ScheduledProcedureStepID",
        "ScheduledProcedureStepStatus",
        "ScheduledProcedureStepDescription",
        "ScheduledProcedureStepLocation",
    }
)
_SPS_NAMES = ("ScheduledProcedureStepSequence.", "00400100.")


def flat_identifier(filters: Mapping[str, str]) -> dict:
    """Flat ``name -> value`` filters as an identifier: a scheduled step attribute, named by its
    keyword or as ``ScheduledProcedureStepSequence.<keyword>`` (or ``00400100.<tag>``), goes
    into the step item; anything else is a key of the item itself."""
    top: dict[str, object] = {}
    step: dict[str, object] = {}
    for name, value in filters.items():
        if name.startswith(_SPS_NAMES):
            step[name.split(".", 1)[1]] = value
        elif name in STEP_KEYWORDS:
            step[name] = value
        else:
            top[name] = value
    if step:
        top["ScheduledProcedureStepSequence"] = [step]
    return top


def keyed_identifier(filters: Mapping[str, str]) -> dict:
    """``flat_identifier(filters)`` that also asks for what makes an item's key (Study
    Instance UID and the step's ID), so that each response names its item (items.item_key)."""
    identifier = flat_identifier(filters)
    identifier.setdefault("StudyInstanceUID", "")
    steps = identifier.get("ScheduledProcedureStepSequence")
    if not isinstance(steps, list) or not steps or not isinstance(steps[0], Mapping):
        steps = identifier["ScheduledProcedureStepSequence"] = [{}]
    steps[0] = {"ScheduledProcedureStepID": "", **steps[0]}
    return identifier
