"""Worklist items: what an item must hold, its key, and the forms it is kept and matched in.

An item is kept as DICOM JSON (PS3.18 F.2) with Unicode values, the form pydicom, the HTTP API
and the CLI all read and write. Matching reads a lighter form, the one the query layer's
compiled conditions take (pacscore/query/conditions.py): tag -> DICOM string, or for a
sequence a list of item dicts keyword -> string.

The attributes an item must carry are those a modality needs to find its step and to fill the
instances it makes (PS3.4 K.6.1.2, Table K.6-1, the Type 1 return keys among them).
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Mapping
from functools import lru_cache
from typing import Any

from pydicom.datadict import keyword_for_tag
from pydicom.dataset import Dataset

from ..values import parse_da, parse_dt, parse_tm
from .errors import WorklistError

#: Scheduled Procedure Step Sequence (0040,0100): one item per worklist item (K.6.1.2.2)
SPS = 0x00400100
T_STUDY_UID = 0x0020000D
T_STEP_ID = 0x00400009
T_STEP_STATUS = 0x00400020
T_STEP_DATE = 0x00400002
T_CHARSET = 0x00080005

#: the attributes every item needs, with the reason given when one is missing
REQUIRED = {
    0x00100020: "PatientID",
    T_STUDY_UID: "StudyInstanceUID",
}
REQUIRED_IN_STEP = {
    T_STEP_ID: "ScheduledProcedureStepID",
    0x00080060: "Modality",
    T_STEP_DATE: "ScheduledProcedureStepStartDate",
}
#: Scheduled Procedure Step Status (0040,0020): the defined terms of PS3.3 C.4.10
STATUSES = ("SCHEDULED", "ARRIVED", "READY", "STARTED", "IN PROGRESS", "COMPLETED", "DISCONTINUED")

_UID = re.compile(r"^(0|[1-9][0-9]*)(\.(0|[1-9][0-9]*))*$")
_HEX_TAG = re.compile(r"^[0-9A-Fa-f]{8}$")
_PN_GROUPS = ("Alphabetic", "Ideographic", "Phonetic")
#: the longest item key: it is an LMDB dupsort value in the index entries (at most 511 bytes)
MAX_KEY_BYTES = 400


@lru_cache(maxsize=4096)
def _tag_name(tag: int) -> str:
    return keyword_for_tag(tag) or f"{tag:08X}"


def to_json(item: object) -> dict:
    """An item given as a pydicom Dataset or a DICOM JSON dict, as checked DICOM JSON.

    Raises WorklistError naming the attribute at fault. The Specific Character Set is dropped:
    pydicom has decoded the values and they are kept as Unicode."""
    if isinstance(item, Dataset):
        try:
            data = item.to_json_dict()
        except Exception as exc:  # pydicom cannot decode some value of the item
            raise WorklistError(None, f"the item cannot be converted to DICOM JSON: {exc}") from None
    elif isinstance(item, Mapping):
        for name, attribute in item.items():
            if not isinstance(name, str) or not _HEX_TAG.match(name):
                raise WorklistError(
                    str(name), "not a DICOM JSON attribute: a DICOM JSON item is keyed by 8 hex digits (ggggeeee)"
                )
            if not isinstance(attribute, Mapping) or "vr" not in attribute:
                raise WorklistError(_tag_name(int(name, 16)), 'a DICOM JSON attribute is an object with a "vr"')
        try:  # a round trip through pydicom checks VRs and value types and gives one spelling
            data = Dataset.from_json(dict(item)).to_json_dict()
        except Exception as exc:
            raise WorklistError(None, f"malformed DICOM JSON: {exc}") from None
    else:
        raise WorklistError(None, f"an item is a pydicom Dataset or a DICOM JSON dict, not {type(item).__name__}")
    data = {name.upper(): value for name, value in data.items() if int(name, 16) != T_CHARSET}
    check(data)
    return data


def _first(attribute: Mapping | None) -> Any:
    values = (attribute or {}).get("Value") or []
    return values[0] if values else None


def check(data: dict) -> None:
    """Refuse an item a modality could not use: required attributes missing or empty, not
    exactly one scheduled step, an invalid UID, date, time or status."""
    for tag, name in REQUIRED.items():
        if not text_of(data.get(f"{tag:08X}")):
            raise WorklistError(name, "required in a worklist item, and not empty")
    steps = data.get(f"{SPS:08X}")
    if steps is None:
        raise WorklistError("ScheduledProcedureStepSequence", "required in a worklist item")
    if steps.get("vr") != "SQ":
        raise WorklistError("ScheduledProcedureStepSequence", f"must be a sequence (SQ), not {steps.get('vr')}")
    items = steps.get("Value") or []
    if len(items) != 1:
        raise WorklistError(
            "ScheduledProcedureStepSequence", f"must hold exactly one item (PS3.4 K.6.1.2.2), not {len(items)}"
        )
    step = items[0]
    for tag, name in REQUIRED_IN_STEP.items():
        if not text_of(step.get(f"{tag:08X}")):
            raise WorklistError(f"ScheduledProcedureStepSequence>{name}", "required in the step item, and not empty")
    uid = text_of(data[f"{T_STUDY_UID:08X}"])
    if len(uid) > 64 or not _UID.match(uid):
        raise WorklistError("StudyInstanceUID", f"{uid!r} is not a UID (digits and dots, at most 64 characters)")
    status = text_of(step.get(f"{T_STEP_STATUS:08X}"))
    if status and status not in STATUSES:
        raise WorklistError(
            "ScheduledProcedureStepSequence>ScheduledProcedureStepStatus",
            f"{status!r} is not one of {', '.join(STATUSES)}",
        )
    _check_temporal(data, "")
    _check_temporal(step, "ScheduledProcedureStepSequence>")
    if len(item_key(data).encode()) > MAX_KEY_BYTES:
        raise WorklistError("ScheduledProcedureStepSequence>ScheduledProcedureStepID", "too long for an item key")


_PARSERS: dict[str, Callable[[str], object]] = {"DA": parse_da, "TM": parse_tm, "DT": parse_dt}


def _check_temporal(data: Mapping, prefix: str) -> None:
    for name, attribute in data.items():
        parse = _PARSERS.get(attribute.get("vr"))
        if parse is None:
            continue
        for value in attribute.get("Value") or []:
            if value in (None, ""):
                continue
            try:
                parse(str(value))
            except ValueError as exc:
                raise WorklistError(prefix + _tag_name(int(name, 16)), str(exc)) from None


def text_of(attribute: Mapping | None) -> str:
    """The DICOM string of one DICOM JSON attribute ("" when absent or empty): values joined by
    backslash, a person name's groups by '='; sequences and binary values give ""."""
    if not attribute:
        return ""
    vr = attribute.get("vr")
    values = attribute.get("Value")
    if vr == "SQ" or not values:
        return ""
    if vr == "PN":
        return "\\".join(_pn_text(v) for v in values)
    return "\\".join("" if v is None else str(v) for v in values)


def _pn_text(value: object) -> str:
    if not isinstance(value, Mapping):
        return "" if value is None else str(value)
    groups = [str(value.get(g) or "") for g in _PN_GROUPS]
    while groups and not groups[-1]:
        groups.pop()
    return "=".join(groups)


def item_key(data: Mapping) -> str:
    """The key of an item: ``StudyInstanceUID:ScheduledProcedureStepID``. A UID holds no ':', so
    the key splits back at its first one; the pair names one scheduled step (PS3.3 C.4.10)."""
    step = (data[f"{SPS:08X}"].get("Value") or [{}])[0]
    return f"{text_of(data.get(f'{T_STUDY_UID:08X}'))}:{text_of(step.get(f'{T_STEP_ID:08X}'))}"


def step_of(data: Mapping) -> dict:
    """The scheduled step item of a stored item (check() made sure there is exactly one)."""
    return data[f"{SPS:08X}"]["Value"][0]


class Fields:
    """tag -> value of one DICOM JSON data set in the form compiled conditions test: a DICOM
    string, or for a sequence a list of items keyword -> string (query/conditions.py); None
    when absent. Binary values read as absent (return keys only, docs/matching.md §4).

    Each value is converted when a condition first reads it: a query reads a few attributes
    of each item, and converting whole items was most of a scan's time."""

    __slots__ = ("_data", "_cache")

    def __init__(self, data: Mapping) -> None:
        self._data = data
        self._cache: dict[int, object] = {}

    def get(self, tag: int, default: object = None) -> object:
        try:
            return self._cache[tag]
        except KeyError:
            pass
        attribute = self._data.get(f"{tag:08X}")
        value = None if attribute is None else _field(attribute)
        self._cache[tag] = value
        return default if value is None else value


def fields(data: Mapping) -> Fields:
    """The matcher's view of a DICOM JSON data set (see Fields)."""
    return Fields(data)


def _field(attribute: Mapping) -> object:
    if "InlineBinary" in attribute or "BulkDataURI" in attribute:
        return None
    if attribute.get("vr") == "SQ":
        return [
            {_tag_name(int(n, 16)): v for n, a in item.items() if (v := _field(a)) is not None}
            for item in attribute.get("Value") or []
            if isinstance(item, Mapping)
        ]
    return text_of(attribute)


def encode(data: Mapping) -> bytes:
    return json.dumps(data, ensure_ascii=False, separators=(",", ":"), sort_keys=True).encode()


def decode(raw: bytes) -> dict:
    return json.loads(bytes(raw))
