"""The Modality Performed Procedure Step SCP (PS3.4 F.7): N-CREATE and N-SET onto ``arc.mpps``.

This module only translates: the request's attribute or modification list goes to
``ProcedureSteps.create`` / ``set``, a refusal comes back as the status it carries (with Error
Comment, Error ID and, for N-SET, the Attribute Identifier List). The rules are in
pacscore/workflow/mpps_rules.py.
"""

from __future__ import annotations

import time

from pydicom.datadict import keyword_for_tag
from pydicom.dataset import Dataset
from pydicom.uid import generate_uid
from pynetdicom import evt
from pynetdicom.dimse_primitives import N_SET
from pynetdicom.sop_class import ModalityPerformedProcedureStep

from ..errors import PacsError
from ..workflow.errors import INVALID_ATTRIBUTE_VALUE, PROCESSING_FAILURE, NoSuchProcedureStep, ProcedureStepError
from .dimse_common import LOG, AssocStates, request_prefix, uid_label

MPPS_CLASS = str(ModalityPerformedProcedureStep)
#: the Error Comment of a step the archive could not write (the log has why: the peer is not
#: told the server's paths)
NOT_KEPT = "the archive could not store the step (see the server log)"
#: Refused: SOP Class not supported (PS3.7 C.5.x)
SOP_CLASS_NOT_SUPPORTED = 0x0122

__all__ = ["MPPS_CLASS", "MppsHandlers"]


def failure(
    code: int, comment: str, *, error_id: int | None = None, attribute: int | None = None, n_set: bool = False
) -> Dataset:
    """A failure status: Error Comment (LO, 64 characters at most), Error ID, and the Attribute
    Identifier List where the response has one (N-SET, not N-CREATE)."""
    ds = Dataset()
    ds.Status = code
    ds.ErrorComment = comment.replace("\\", "/")[:64]
    if error_id is not None:
        ds.ErrorID = error_id
    if attribute is not None and n_set and hasattr(N_SET(), "AttributeIdentifierList"):
        ds.AttributeIdentifierList = [attribute]
    return ds


def _calling_ae(assoc) -> str:
    return (getattr(assoc.requestor, "ae_title", "") or "").strip()


class MppsHandlers:
    """The N-CREATE and N-SET handlers of one archive's MPPS SCP."""

    def __init__(self, archive, *, log_phi: bool = False, state: AssocStates | None = None) -> None:
        self.archive = archive
        self.state = state
        #: log the steps' UIDs and the refused values (else a tag and the attribute's name)
        self.log_phi = log_phi

    def _why(self, exc: ProcedureStepError | NoSuchProcedureStep) -> str:
        """A refusal as the log gives it: the status and the reason with ``log_phi`` (it may
        quote a value or a UID), else the status and the attribute's keyword."""
        if self.log_phi:
            return f"0x{exc.status:04X} {exc.reason}"
        if exc.attribute is None:
            return f"0x{exc.status:04X}"
        return f"0x{exc.status:04X} ({keyword_for_tag(exc.attribute) or f'{exc.attribute:08X}'})"

    def bindings(self) -> list[tuple]:
        return [(evt.EVT_N_CREATE, self.on_n_create), (evt.EVT_N_SET, self.on_n_set)]

    def on_n_create(self, event) -> tuple[Dataset, Dataset | None]:
        req = event.request
        if str(req.AffectedSOPClassUID) != MPPS_CLASS:
            return failure(SOP_CLASS_NOT_SUPPORTED, f"N-CREATE of {req.AffectedSOPClassUID} is not served"), None
        given = req.AffectedSOPInstanceUID
        uid = str(given) if given else generate_uid()
        who = request_prefix(self.state, event.assoc)
        started = time.perf_counter()
        try:
            attributes = event.attribute_list
            step = self.archive.mpps.create(uid, attributes, calling_ae=_calling_ae(event.assoc))
        except (ProcedureStepError, NoSuchProcedureStep) as exc:
            LOG.warning("%sN-CREATE MPPS %s refused: %s", who, uid_label(uid, self.log_phi), self._why(exc))
            return failure(exc.status, exc.reason, error_id=exc.error_id), None
        except PacsError as exc:
            LOG.error("%sN-CREATE MPPS %s not stored: %s", who, uid_label(uid, self.log_phi), exc)
            return failure(PROCESSING_FAILURE, NOT_KEPT), None
        except Exception as exc:  # the attribute list could not be decoded
            LOG.warning("%sN-CREATE MPPS %s: undecodable attribute list", who, uid_label(uid, self.log_phi))
            return failure(INVALID_ATTRIBUTE_VALUE, f"the attribute list cannot be decoded: {exc}"), None
        took = (time.perf_counter() - started) * 1000
        LOG.info("%sN-CREATE MPPS %s IN PROGRESS (%.1f ms)", who, uid_label(uid, self.log_phi), took)
        answer = step.dataset
        if not given:  # PS3.7 10.1.5.1.4: the SCP gives the UID it created
            answer.AffectedSOPInstanceUID = uid
        return _success(), answer

    def on_n_set(self, event) -> tuple[Dataset, Dataset | None]:
        req = event.request
        if str(req.RequestedSOPClassUID) != MPPS_CLASS:
            return failure(
                SOP_CLASS_NOT_SUPPORTED, f"N-SET of {req.RequestedSOPClassUID} is not served", n_set=True
            ), None
        uid = str(req.RequestedSOPInstanceUID or "")
        who = request_prefix(self.state, event.assoc)
        started = time.perf_counter()
        try:
            step = self.archive.mpps.set(uid, event.modification_list)
        except (ProcedureStepError, NoSuchProcedureStep) as exc:
            LOG.warning("%sN-SET MPPS %s refused: %s", who, uid_label(uid, self.log_phi), self._why(exc))
            return failure(exc.status, exc.reason, error_id=exc.error_id, attribute=exc.attribute, n_set=True), None
        except PacsError as exc:
            LOG.error("%sN-SET MPPS %s not stored: %s", who, uid_label(uid, self.log_phi), exc)
            return failure(PROCESSING_FAILURE, NOT_KEPT, n_set=True), None
        except Exception as exc:
            LOG.warning("%sN-SET MPPS %s: undecodable modification list", who, uid_label(uid, self.log_phi))
            return failure(INVALID_ATTRIBUTE_VALUE, f"the modification list cannot be decoded: {exc}", n_set=True), None
        took = (time.perf_counter() - started) * 1000
        LOG.info("%sN-SET MPPS %s %s (%.1f ms)", who, uid_label(uid, self.log_phi), step.status, took)
        return _success(), step.dataset


def _success() -> Dataset:
    ds = Dataset()
    ds.Status = 0x0000
    return ds
