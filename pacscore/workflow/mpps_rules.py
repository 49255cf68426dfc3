"""The attribute rules of the Modality Performed Procedure Step SOP Class (PS3.4 F.7.2), as data
and small checks: what an N-CREATE must carry, what an N-SET may change, what a step needs
before it is final. Kept apart from storage so the rules read beside Table F.7.2-1.

What is checked, and why no more: the attributes of Requirement Type 1 for N-CREATE (absent:
0x0120 Missing Attribute; empty: 0x0121 Missing Attribute Value), the values an SCP must
judge (the status, dates, times and UIDs it keeps: 0x0106 Invalid Attribute Value), the
attributes N-SET may not touch, and the final-state Type 1 end date and time. Type 2
attributes an SCU leaves out are accepted (many modalities omit some; the step is still
useful), as docs/conformance-dimse.md states.
"""

from __future__ import annotations

import datetime
import re
from collections.abc import Iterable
from typing import Any

from pydicom.datadict import keyword_for_tag, tag_for_keyword
from pydicom.dataset import Dataset
from pydicom.multival import MultiValue
from pydicom.sequence import Sequence

from .errors import (
    INVALID_ATTRIBUTE_VALUE,
    MAY_NO_LONGER_BE_UPDATED,
    MAY_NO_LONGER_BE_UPDATED_ID,
    MISSING_ATTRIBUTE,
    MISSING_ATTRIBUTE_VALUE,
    PROCESSING_FAILURE,
    ProcedureStepError,
)

IN_PROGRESS = "IN PROGRESS"
COMPLETED = "COMPLETED"
DISCONTINUED = "DISCONTINUED"
#: PS3.3 C.4.14: the values of Performed Procedure Step Status (0040,0252)
STATUSES = (IN_PROGRESS, COMPLETED, DISCONTINUED)
#: F.7.2.2.3: a step in one of these states may no longer be updated
FINAL = (COMPLETED, DISCONTINUED)

#: Table F.7.2-1, Req. Type N-CREATE 1: present with a value
CREATE_REQUIRED = (
    "ScheduledStepAttributesSequence",
    "PerformedProcedureStepID",
    "PerformedStationAETitle",
    "PerformedProcedureStepStartDate",
    "PerformedProcedureStepStartTime",
    "PerformedProcedureStepStatus",
    "Modality",
)
#: Table F.7.2-1, inside each Scheduled Step Attributes Sequence item: Type 1
SCHEDULED_ITEM_REQUIRED = ("StudyInstanceUID",)

#: Table F.7.2-1, Req. Type N-SET "Not allowed": fixed once the step is created
SET_NOT_ALLOWED = (
    "ScheduledStepAttributesSequence",
    "PatientName",
    "PatientID",
    "IssuerOfPatientID",
    "IssuerOfPatientIDQualifiersSequence",
    "PatientBirthDate",
    "PatientSex",
    "ReferencedPatientSequence",
    "AdmissionID",
    "IssuerOfAdmissionIDSequence",
    "ServiceEpisodeID",
    "ServiceEpisodeDescription",
    "IssuerOfServiceEpisodeIDSequence",
    "StudyID",
    "Modality",
    "PerformedStationAETitle",
    "PerformedStationName",
    "PerformedLocation",
    "PerformedProcedureStepStartDate",
    "PerformedProcedureStepStartTime",
    "PerformedProcedureStepID",
)
#: Table F.7.2-1, "Requirement Type Final State" 1: needed before COMPLETED or DISCONTINUED
FINAL_REQUIRED = ("PerformedProcedureStepEndDate", "PerformedProcedureStepEndTime")

_DATES = ("PerformedProcedureStepStartDate", "PerformedProcedureStepEndDate")
_TIMES = ("PerformedProcedureStepStartTime", "PerformedProcedureStepEndTime")
_UID = re.compile(r"[0-9]+(\.[0-9]+)*")
_TM = re.compile(r"(\d\d)(?:(\d\d)(?:(\d\d)(?:\.\d{1,6})?)?)?")


def tag(keyword: str) -> int:
    value = tag_for_keyword(keyword)
    assert value is not None, keyword
    return int(value)


def _label(keyword: str) -> str:
    t = tag(keyword)
    return f"{keyword} ({t >> 16:04X},{t & 0xFFFF:04X})"


def value_of(ds: Dataset, keyword: str) -> Any:
    """The element's value, or None when absent; a value that cannot be decoded is 0x0106."""
    try:
        return ds.get(keyword)
    except Exception as exc:  # pydicom decodes lazily: bad bytes fail here
        raise ProcedureStepError(
            INVALID_ATTRIBUTE_VALUE, f"{_label(keyword)} cannot be decoded: {exc}", tag(keyword)
        ) from None


def _has_value(value: object) -> bool:
    if value is None:
        return False
    if isinstance(value, (list, tuple, MultiValue, Sequence)):
        return len(value) > 0
    return str(value).strip() != ""


def require(ds: Dataset, keywords: Iterable[str], where: str = "") -> None:
    """Each keyword present (else 0x0120) with a value (else 0x0121)."""
    for keyword in keywords:
        if keyword not in ds:
            raise ProcedureStepError(MISSING_ATTRIBUTE, f"{_label(keyword)}{where} is missing", tag(keyword))
        if not _has_value(value_of(ds, keyword)):
            raise ProcedureStepError(MISSING_ATTRIBUTE_VALUE, f"{_label(keyword)}{where} has no value", tag(keyword))


def _invalid(keyword: str, value: object, why: str) -> ProcedureStepError:
    return ProcedureStepError(INVALID_ATTRIBUTE_VALUE, f"{_label(keyword)} {value!r}: {why}", tag(keyword))


def check_values(ds: Dataset) -> None:
    """The values this SCP keeps and acts on are well formed (0x0106 naming the attribute)."""
    status = value_of(ds, "PerformedProcedureStepStatus")
    if status is not None and str(status).strip() not in STATUSES:
        raise _invalid("PerformedProcedureStepStatus", status, f"not one of {', '.join(STATUSES)}")
    for keyword in _DATES:
        value = value_of(ds, keyword)
        if _has_value(value) and not _is_date(str(value)):
            raise _invalid(keyword, value, "not a date (YYYYMMDD)")
    for keyword in _TIMES:
        value = value_of(ds, keyword)
        if _has_value(value) and not _is_time(str(value)):
            raise _invalid(keyword, value, "not a time (HHMMSS.FFFFFF)")
    items = value_of(ds, "ScheduledStepAttributesSequence")
    for item in items or ():
        study = value_of(item, "StudyInstanceUID")
        if _has_value(study) and not (len(str(study)) <= 64 and _UID.fullmatch(str(study))):
            raise _invalid("StudyInstanceUID", study, "not a UID (in ScheduledStepAttributesSequence)")


def _is_date(text: str) -> bool:
    if not re.fullmatch(r"\d{8}", text):
        return False
    try:
        datetime.date(int(text[:4]), int(text[4:6]), int(text[6:]))
    except ValueError:
        return False
    return True


def _is_time(text: str) -> bool:
    m = _TM.fullmatch(text.strip())
    if m is None:
        return False
    hh, mm, ss = (int(g) if g else 0 for g in m.groups())
    return hh < 24 and mm < 60 and ss < 61


def check_create(ds: Dataset) -> str:
    """An N-CREATE's attribute list against F.7.2.1; returns the status (IN PROGRESS)."""
    require(ds, CREATE_REQUIRED)
    items = value_of(ds, "ScheduledStepAttributesSequence")
    for i, item in enumerate(items or ()):
        require(item, SCHEDULED_ITEM_REQUIRED, f" in ScheduledStepAttributesSequence item {i + 1}")
    check_values(ds)
    status = str(value_of(ds, "PerformedProcedureStepStatus")).strip()
    if status != IN_PROGRESS:  # F.7.2.1.3: only IN PROGRESS is created, else 0106
        raise _invalid("PerformedProcedureStepStatus", status, "an N-CREATE must create an IN PROGRESS step")
    return status


def check_set(current_status: str, modifications: Dataset, merged: Dataset) -> str:
    """An N-SET's modification list against F.7.2.2 on a step in ``current_status``; ``merged``
    is the step as it would be after it. Returns the new status."""
    if current_status in FINAL:  # F.7.2.2.3 and Table F.7.2-2
        raise ProcedureStepError(
            PROCESSING_FAILURE,
            MAY_NO_LONGER_BE_UPDATED,
            error_id=MAY_NO_LONGER_BE_UPDATED_ID,
            detail=f" (it is {current_status})",
        )
    for elem_tag in modifications.keys():
        keyword = keyword_for_tag(elem_tag)
        if keyword in SET_NOT_ALLOWED:
            raise ProcedureStepError(
                INVALID_ATTRIBUTE_VALUE,
                f"{_label(keyword)} may not be changed by N-SET (PS3.4 Table F.7.2-1)",
                int(elem_tag),
            )
    check_values(modifications)
    if "PerformedProcedureStepStatus" in modifications:
        require(modifications, ("PerformedProcedureStepStatus",))
    status = str(value_of(merged, "PerformedProcedureStepStatus") or current_status).strip()
    if status in FINAL:
        require(merged, FINAL_REQUIRED, f" (needed to set the step {status})")
    return status


def scheduled_steps(ds: Dataset) -> list[tuple[str | None, str]]:
    """(StudyInstanceUID, ScheduledProcedureStepID) of each scheduled step the performed step
    names: the worklist items whose status it drives. An item without a Scheduled Procedure
    Step ID is an unscheduled step (F.7.2.1.2 Note 3) and names none."""
    out: list[tuple[str | None, str]] = []
    for item in value_of(ds, "ScheduledStepAttributesSequence") or ():
        step_id = str(value_of(item, "ScheduledProcedureStepID") or "").strip()
        if step_id:
            study = str(value_of(item, "StudyInstanceUID") or "").strip() or None
            if (study, step_id) not in out:
                out.append((study, step_id))
    return out
