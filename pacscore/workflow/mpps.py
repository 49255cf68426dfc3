"""Modality Performed Procedure Steps (PS3.4 Annex F) kept in the archive: ``arc.mpps``.

A modality creates a step IN PROGRESS (N-CREATE), adds to it while it runs and ends it
COMPLETED or DISCONTINUED (N-SET); a final step is never changed again. Each step is one JSON
record (its attributes as DICOM JSON) in the ``mpps`` database of the index's environment,
written in one transaction, so a crash keeps the step as it was or as it became, never half.

After the commit, the worklist items the step names (Scheduled Step Attributes Sequence:
Study Instance UID + Scheduled Procedure Step ID) take its status through
``arc.worklist.set_step_status``, so worklist queries can filter on it. That update is a
second transaction: a failure there is logged and leaves the step as committed.

>>> step = arc.mpps.create("1.2.3.4", ds)        # ds: Dataset or DICOM JSON; status IN PROGRESS
>>> arc.mpps.set("1.2.3.4", {"00400252": {"vr": "CS", "Value": ["COMPLETED"]}, ...})
>>> arc.mpps.get("1.2.3.4").status
'COMPLETED'
"""

from __future__ import annotations

import copy
import datetime
import logging
from dataclasses import dataclass
from typing import Any

from pydicom.dataset import Dataset

from .errors import DUPLICATE_SOP_INSTANCE, INVALID_ATTRIBUTE_VALUE, NoSuchProcedureStep, ProcedureStepError
from .mpps_rules import IN_PROGRESS, check_create, check_set, scheduled_steps
from .store import JsonRecords

log = logging.getLogger("pacscore.workflow")

#: the named database of the performed procedure steps
DB_NAME = "mpps"


@dataclass(frozen=True)
class PerformedStep:
    """One performed procedure step as stored: its status, its attributes, who reported it."""

    sop_instance_uid: str
    status: str
    attributes: dict  # DICOM JSON
    created: str  # ISO 8601, UTC
    updated: str
    calling_ae: str | None = None

    @property
    def dataset(self) -> Dataset:
        """The step's attributes as a pydicom Dataset."""
        return Dataset.from_json(self.attributes)

    @property
    def scheduled_steps(self) -> list[tuple[str | None, str]]:
        """(StudyInstanceUID, ScheduledProcedureStepID) of the worklist items it performs."""
        return scheduled_steps(self.dataset)


def _now() -> str:
    return datetime.datetime.now(datetime.UTC).isoformat(timespec="milliseconds")


def _as_dataset(attributes: object, what: str) -> Dataset:
    """A Dataset from a Dataset or a DICOM JSON dict, text decoded by its character set."""
    if isinstance(attributes, Dataset):
        ds = attributes
    elif isinstance(attributes, dict):
        try:
            ds = Dataset.from_json(attributes)
        except Exception as exc:
            raise ProcedureStepError(INVALID_ATTRIBUTE_VALUE, f"{what} is not valid DICOM JSON: {exc}") from None
    else:
        raise TypeError(f"{what} must be a pydicom Dataset or a DICOM JSON dict, not {type(attributes).__name__}")
    try:
        ds = copy.deepcopy(ds)  # the caller's dataset is left as it was
        ds.decode()
    except Exception as exc:
        raise ProcedureStepError(INVALID_ATTRIBUTE_VALUE, f"{what} cannot be decoded: {exc}") from None
    return ds


def _to_json(ds: Dataset, what: str) -> dict:
    if "SpecificCharacterSet" in ds:
        ds.SpecificCharacterSet = "ISO_IR 192"  # decoded: what is kept is Unicode
    try:
        return ds.to_json_dict()
    except Exception as exc:
        raise ProcedureStepError(INVALID_ATTRIBUTE_VALUE, f"{what} cannot be stored: {exc}") from None


def _check_uid(uid: object) -> str:
    if not isinstance(uid, str) or not uid.strip():
        raise ProcedureStepError(INVALID_ATTRIBUTE_VALUE, f"a SOP Instance UID must be a non-empty string, not {uid!r}")
    uid = uid.strip().rstrip("\0")
    if len(uid) > 64:
        raise ProcedureStepError(INVALID_ATTRIBUTE_VALUE, f"SOP Instance UID {uid!r} is longer than 64 characters")
    return uid


class ProcedureSteps:
    """The performed procedure steps of one archive (``arc.mpps``)."""

    def __init__(self, archive) -> None:
        self._archive = archive
        self._records = JsonRecords(archive, DB_NAME)

    # -- reading ----------------------------------------------------------------------------
    def get(self, sop_instance_uid: str) -> PerformedStep:
        """The step with this SOP Instance UID (NoSuchProcedureStep, a KeyError, if none)."""
        uid = _check_uid(sop_instance_uid)
        rec = self._records.get(uid)
        if rec is None:
            raise NoSuchProcedureStep(f"no performed procedure step {uid}")
        return _step(uid, rec)

    def list(self, status: str | None = None) -> list[PerformedStep]:
        """Every step (in SOP Instance UID order), or those with ``status``."""
        steps = [_step(uid, rec) for uid, rec in self._records.items()]
        return [s for s in steps if status is None or s.status == status]

    def __contains__(self, sop_instance_uid: object) -> bool:
        return isinstance(sop_instance_uid, str) and self._records.get(sop_instance_uid.strip()) is not None

    # -- N-CREATE / N-SET -------------------------------------------------------------------
    def create(
        self, sop_instance_uid: str, attributes: Dataset | dict, *, calling_ae: str | None = None
    ) -> PerformedStep:
        """Create a step IN PROGRESS (PS3.4 F.7.2.1). ProcedureStepError carries the status of a
        refusal: 0x0111 the UID exists, 0x0120/0x0121 a required attribute is missing or empty,
        0x0106 a value is invalid; nothing is stored then."""
        uid = _check_uid(sop_instance_uid)
        ds = _as_dataset(attributes, "the N-CREATE attributes")
        status = check_create(ds)
        now = _now()
        record = {
            "status": status,
            "attributes": _to_json(ds, "the N-CREATE attributes"),
            "created": now,
            "updated": now,
            "calling_ae": calling_ae,
        }

        def change(current: dict | None) -> dict:
            if current is not None:
                raise ProcedureStepError(DUPLICATE_SOP_INSTANCE, f"performed procedure step {uid} exists already")
            return record

        self._records.update(uid, change)
        step = _step(uid, record)
        self._link_worklist(step)
        return step

    def set(self, sop_instance_uid: str, modifications: Dataset | dict) -> PerformedStep:
        """Apply an N-SET modification list (PS3.4 F.7.2.2) to a step IN PROGRESS. Refusals:
        NoSuchProcedureStep (0x0112); ProcedureStepError 0x0110 with Error ID 0xA710 on a final
        step, 0x0106 for an attribute N-SET may not change or an invalid value, 0x0121 for a
        final status without the end date and time; the step is left as it was."""
        uid = _check_uid(sop_instance_uid)
        mods = _as_dataset(modifications, "the N-SET modifications")
        if self._records.get(uid) is None:  # (steps are never removed) and no database is created for it
            raise NoSuchProcedureStep(f"no performed procedure step {uid}")
        before: list[str] = []

        def change(current: dict | None) -> dict:
            if current is None:
                raise NoSuchProcedureStep(f"no performed procedure step {uid}")
            merged = Dataset.from_json(current["attributes"])
            for elem in mods:
                merged[elem.tag] = elem
            status = check_set(current["status"], mods, merged)
            before.append(current["status"])
            return {
                **current,
                "status": status,
                "attributes": _to_json(merged, "the N-SET modifications"),
                "updated": _now(),
            }

        record = self._records.update(uid, change)
        step = _step(uid, record)
        if step.status != before[0]:
            self._link_worklist(step)
        return step

    def _link_worklist(self, step: PerformedStep) -> None:
        """The worklist items the step performs take its status (after the step's commit)."""
        targets = step.scheduled_steps
        worklist = getattr(self._archive, "worklist", None)
        if not targets or worklist is None:
            return
        for study, step_id in targets:
            try:
                found = worklist.set_step_status(study, step_id, step.status)
            except Exception:
                log.exception(
                    "performed procedure step %s: the worklist item (study %s, step %s) could not be set %s",
                    step.sop_instance_uid,
                    study,
                    step_id,
                    step.status,
                )
                continue
            if not found:
                log.info(
                    "performed procedure step %s names no worklist item (study %s, step %s)",
                    step.sop_instance_uid,
                    study,
                    step_id,
                )


def _step(uid: str, rec: dict[str, Any]) -> PerformedStep:
    return PerformedStep(
        sop_instance_uid=uid,
        status=rec.get("status", IN_PROGRESS),
        attributes=rec["attributes"],
        created=rec.get("created", ""),
        updated=rec.get("updated", ""),
        calling_ae=rec.get("calling_ae"),
    )
