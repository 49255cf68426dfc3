"""The Storage Commitment Push Model SCP (PS3.4 J.3): N-ACTION in, N-EVENT-REPORT out.

An N-ACTION (Action Type 1, Request Storage Commitment) is kept as a pending report
(``arc.commitments.accept``) and answered with success; a worker thread then checks the
instances (in the index, blob checksum intact) and sends the N-EVENT-REPORT: on the same
association while the requester keeps it open, else on a new association to the address
configured for the requester's AE title (``commitment_peers``, ``serve dimse
--commitment-peer AE=HOST:PORT``). A report that cannot be delivered (no address known, peer
down) is logged and stays pending: ``CommitmentService.deliver_pending`` retries them, and the
service does so every ``commitment_retry_interval`` seconds while the archive is open.
"""

from __future__ import annotations

import queue
import threading
import time
import weakref
from io import BytesIO

from pydicom.dataset import Dataset
from pynetdicom import AE, build_role, evt
from pynetdicom.dimse_primitives import N_EVENT_REPORT
from pynetdicom.dsutils import encode
from pynetdicom.pdu_primitives import A_RELEASE

from ..errors import PacsError
from ..workflow.commitment import STORAGE_COMMITMENT_CLASS, STORAGE_COMMITMENT_INSTANCE, PendingReport
from .dimse_common import LOG, AssocStates, request_prefix, uid_label

#: PS3.4 J.3.2: the one action of the Push Model
REQUEST_STORAGE_COMMITMENT = 1
#: PS3.7 C.5: N-ACTION failures we answer with
INVALID_ARGUMENT_VALUE = 0x0115
NO_SUCH_ACTION = 0x0123
NO_SUCH_SOP_INSTANCE = 0x0112
PROCESSING_FAILURE = 0x0110
SOP_CLASS_NOT_SUPPORTED = 0x0122

__all__ = ["CommitmentService", "REQUEST_STORAGE_COMMITMENT"]


def _status(code: int, comment: str | None = None) -> Dataset:
    ds = Dataset()
    ds.Status = code
    if comment:
        ds.ErrorComment = comment.replace("\\", "/")[:64]
    return ds


class BadRequest(ValueError):
    """The Action Information is not a storage commitment request; says what is wrong."""


def references(info: Dataset | None) -> tuple[str, list[tuple[str, str]]]:
    """(Transaction UID, [(SOP Class UID, SOP Instance UID)]) of an Action Information
    (PS3.4 Table J.3-1); BadRequest naming the attribute that is missing or empty."""
    if info is None:
        raise BadRequest("the Action Information is missing")
    transaction = str(info.get("TransactionUID", "") or "").strip()
    if not transaction:
        raise BadRequest("TransactionUID (0008,1195) is missing or empty")
    items = info.get("ReferencedSOPSequence")
    if not items:
        raise BadRequest("ReferencedSOPSequence (0008,1199) is missing or empty")
    refs = []
    for i, item in enumerate(items, 1):
        sop_class = str(item.get("ReferencedSOPClassUID", "") or "").strip()
        sop_instance = str(item.get("ReferencedSOPInstanceUID", "") or "").strip()
        if not sop_class or not sop_instance:
            missing = "ReferencedSOPClassUID" if not sop_class else "ReferencedSOPInstanceUID"
            raise BadRequest(f"ReferencedSOPSequence item {i}: {missing} is missing or empty")
        refs.append((sop_class, sop_instance))
    return transaction, refs


class CommitmentService:
    """The N-ACTION handler of one archive's storage commitment SCP, and the delivery of its
    reports. ``peers`` maps requester AE titles to (host, port)."""

    def __init__(
        self,
        archive,
        peers: dict[str, tuple[str, int]] | None = None,
        *,
        retry_interval: float | None = 60.0,
        max_pdu: int = 16382,
        tls_args: tuple | None = None,
        timeout: float = 30,
        log_phi: bool = False,
        state: AssocStates | None = None,
    ) -> None:
        self.archive = archive
        self.peers = {str(k).strip(): (str(h), int(p)) for k, (h, p) in (peers or {}).items()}
        self.retry_interval = retry_interval
        self.max_pdu = max_pdu
        self.tls_args = tls_args
        self.timeout = timeout
        #: log transaction UIDs (else a short tag of each)
        self.log_phi = log_phi
        #: DimseService.state: counts the N-ACTIONs and names the association in the log
        self.state = state
        self._lock = threading.Lock()
        #: transactions an N-ACTION worker is answering: retries leave them alone
        self._in_flight: set[str] = set()
        self._retry_thread: threading.Thread | None = None

    def bindings(self) -> list[tuple]:
        self._start_retries()
        return [(evt.EVT_N_ACTION, self.on_n_action)]

    def _label(self, transaction: str) -> str:
        return uid_label(transaction, self.log_phi)

    # -- N-ACTION ---------------------------------------------------------------------------
    def on_n_action(self, event) -> tuple[Dataset, Dataset | None]:
        req = event.request
        if str(req.RequestedSOPClassUID) != STORAGE_COMMITMENT_CLASS:
            return _status(SOP_CLASS_NOT_SUPPORTED, f"N-ACTION of {req.RequestedSOPClassUID} is not served"), None
        if str(req.RequestedSOPInstanceUID) != STORAGE_COMMITMENT_INSTANCE:
            return _status(NO_SUCH_SOP_INSTANCE, f"use the well-known instance {STORAGE_COMMITMENT_INSTANCE}"), None
        if req.ActionTypeID != REQUEST_STORAGE_COMMITMENT:
            return _status(NO_SUCH_ACTION, f"action type {req.ActionTypeID}: only 1 is defined"), None
        assoc = event.assoc
        who = request_prefix(self.state, assoc)
        requester = (getattr(assoc.requestor, "ae_title", "") or "").strip()
        responder = (getattr(assoc.acceptor, "ae_title", "") or "").strip() or "PACSCORE"
        try:
            transaction, refs = references(event.action_information)
        except BadRequest as exc:
            LOG.warning("%sstorage commitment from %s refused: %s", who, requester or "?", exc)
            return _status(INVALID_ARGUMENT_VALUE, str(exc)), None
        except Exception as exc:  # the Action Information could not be decoded
            LOG.warning("%sstorage commitment from %s: undecodable Action Information", who, requester or "?")
            return _status(INVALID_ARGUMENT_VALUE, f"the Action Information cannot be decoded: {exc}"), None
        with self._lock:  # before it is kept: a retry pass must not take it from this association
            self._in_flight.add(transaction)
        try:
            self.archive.commitments.accept(transaction, refs, requester, responder, claim=True)
        except PacsError as exc:
            with self._lock:
                self._in_flight.discard(transaction)
            LOG.error("%sstorage commitment %s could not be kept: %s", who, self._label(transaction), exc)
            return _status(PROCESSING_FAILURE, "the archive could not keep the request (see the server log)"), None
        label, count = self._label(transaction), len(refs)
        LOG.info("%sstorage commitment %s from %s: %d instance(s)", who, label, requester or "?", count)
        threading.Thread(
            target=self._answer, args=(transaction, weakref.ref(assoc)), name=f"commitment {transaction}", daemon=True
        ).start()
        return _status(0x0000), None

    def _answer(self, transaction: str, assoc_ref) -> None:
        """Check the request and deliver its report (the worker thread of one N-ACTION)."""
        try:
            report = self.archive.commitments.resolve(transaction)
            if report is not None:
                self.deliver(report, assoc_ref())
        except Exception:
            LOG.exception("storage commitment %s: not answered; it stays pending", self._label(transaction))
        finally:
            with self._lock:
                self._in_flight.discard(transaction)

    # -- N-EVENT-REPORT ---------------------------------------------------------------------
    def deliver(self, report: PendingReport, assoc=None) -> bool:
        """Send ``report`` on ``assoc`` if it is still established, else on a new association
        to the requester's configured address; forget it once the requester answered success,
        else record why and keep it pending. Whether it was delivered."""
        result = report.result
        if result is None:
            return False
        info = result.event_information(report.responder)
        errors = []
        if assoc is not None and assoc.is_established:
            try:
                outcome = report_on_open_association(assoc, info, result.event_type, self.timeout)
            except Exception as exc:  # aborted meanwhile: try a new association
                outcome = f"the requesting association failed: {exc}"
            if outcome == DELIVERED:
                return self._delivered(report, "the requesting association")
            errors.append(outcome)
        address = self.peers.get(report.requester)
        if address is None:
            errors.append(f"no address is configured for AE {report.requester!r} (--commitment-peer)")
        else:
            try:
                if self._send_new(report, info, address):
                    return self._delivered(report, f"a new association to {address[0]}:{address[1]}")
                errors.append(f"{report.requester}@{address[0]}:{address[1]} did not accept it")
            except Exception as exc:
                errors.append(f"{report.requester}@{address[0]}:{address[1]}: {exc}")
        error = "; ".join(errors)
        label = self._label(report.transaction_uid)
        LOG.error("storage commitment %s: report not delivered, kept to retry: %s", label, error)
        try:
            self.archive.commitments.delivery_failed(report.transaction_uid, error)
        except PacsError:
            LOG.exception("storage commitment %s: the failed delivery could not be recorded", label)
        return False

    def _delivered(self, report: PendingReport, how: str) -> bool:
        result = report.result
        assert result is not None
        LOG.info(
            "storage commitment %s: reported on %s (event %d: %d committed, %d failed)",
            self._label(report.transaction_uid),
            how,
            result.event_type,
            len(result.committed),
            len(result.failed),
        )
        self.archive.commitments.delivered(report.transaction_uid)
        return True

    def _send_new(self, report: PendingReport, info: Dataset, address: tuple[str, int]) -> bool:
        """PS3.4 J.3.3: the SCP associates with the SCU, proposing the SCP role of the class."""
        ae = AE(ae_title=report.responder)
        ae.acse_timeout = ae.dimse_timeout = ae.network_timeout = self.timeout
        ae.add_requested_context(STORAGE_COMMITMENT_CLASS)
        role = build_role(STORAGE_COMMITMENT_CLASS, scu_role=False, scp_role=True)
        assoc = ae.associate(
            address[0],
            address[1],
            ae_title=report.requester,
            ext_neg=[role],
            max_pdu=self.max_pdu,
            tls_args=self.tls_args,
        )
        if not assoc.is_established:
            raise ConnectionError("association rejected or aborted")
        try:
            result = report.result
            assert result is not None
            return _succeeded(
                assoc.send_n_event_report(
                    info, result.event_type, STORAGE_COMMITMENT_CLASS, STORAGE_COMMITMENT_INSTANCE
                )
            )
        finally:
            assoc.release()

    def deliver_pending(self, *, known_peers_only: bool = False) -> int:
        """Try the pending reports once more on new associations (checking those not checked
        yet), all or only those whose requester has an address; how many got through."""
        delivered = 0
        for report in self.archive.commitments.pending():
            if known_peers_only and report.requester not in self.peers:
                continue
            with self._lock:
                if report.transaction_uid in self._in_flight:
                    continue
                self._in_flight.add(report.transaction_uid)
            if not self.archive.commitments.claim(report.transaction_uid):  # another process delivers it
                with self._lock:
                    self._in_flight.discard(report.transaction_uid)
                continue
            try:
                if report.result is None:
                    report = self.archive.commitments.resolve(report.transaction_uid) or report
                delivered += self.deliver(report)
            finally:
                with self._lock:
                    self._in_flight.discard(report.transaction_uid)
        return delivered

    # -- retries ----------------------------------------------------------------------------
    def _start_retries(self) -> None:
        """A daemon thread that retries the pending reports of the requesters with an address
        now and every retry_interval seconds, until the archive is closed (a report for an AE
        without one was logged when it failed; it waits for ``deliver_pending`` or a restart
        with the address configured)."""
        if self.retry_interval is None or self._retry_thread is not None:
            return
        interval = max(float(self.retry_interval), 0.05)
        me = weakref.ref(self)

        def run() -> None:
            stop = threading.Event()
            while True:
                service = me()
                if service is None or getattr(service.archive, "_closed", False):
                    return
                try:
                    service.deliver_pending(known_peers_only=True)
                except Exception:
                    if getattr(service.archive, "_closed", False):
                        return
                    LOG.exception("storage commitment: retrying the pending reports failed")
                del service
                stop.wait(interval)

        self._retry_thread = threading.Thread(target=run, name="pacscore-commitment-retry", daemon=True)
        self._retry_thread.start()


def _succeeded(answer: tuple) -> bool:
    """Whether ``send_n_event_report``'s (status, reply) says the peer took the report."""
    status = answer[0]
    return status is not None and int(getattr(status, "Status", 0xFFFF)) == 0x0000


#: report_on_open_association's answer when the requester took the report
DELIVERED = "delivered"
#: how often the wait for the requester's N-EVENT-REPORT response looks for a release or abort
_LOOK_EVERY = 0.01


def _release_requested(assoc) -> bool:
    """Whether an A-RELEASE request waits at the head of the association's queue. Only looks:
    taking it off the queue would leave the requester's release unanswered (the reactor
    answers it once it runs again)."""
    return isinstance(assoc.dul.peek_next_pdu(), A_RELEASE)


def _gone(assoc) -> bool:
    return not assoc.is_established or assoc.is_aborted or not assoc.dul.is_alive() or _release_requested(assoc)


def report_on_open_association(assoc, info: Dataset, event_type: int, timeout: float) -> str:
    """Send an N-EVENT-REPORT on the requester's association from a worker thread; DELIVERED
    or why not.

    A requester may release the association as soon as it has the N-ACTION response (Orthanc
    and DCMTK-based SCUs do; PS3.4 J.3.3 lets the SCP report on a new association then).
    pynetdicom's ``send_n_event_report`` pauses the association's reactor and waits for the
    response for the whole DIMSE timeout: a release request that crosses the report stays
    unanswered meanwhile. So this pauses the reactor as pynetdicom does (the N-ACTION response
    is then already queued before the report), gives up before sending when a release request
    is waiting, and while waiting for the answer looks for a release request or an abort, handing
    the association back to the reactor (which answers the release) as soon as one comes. Any
    request that arrives meanwhile is put back, in order, for the reactor."""
    context = assoc._get_valid_context(STORAGE_COMMITMENT_CLASS, "", None)
    syntax = context.transfer_syntax[0]
    data = encode(info, syntax.is_implicit_VR, syntax.is_little_endian, syntax.is_deflated)
    if data is None:
        raise ValueError("the Event Information cannot be encoded")
    req = N_EVENT_REPORT()
    req.MessageID = 1
    req.AffectedSOPClassUID = STORAGE_COMMITMENT_CLASS
    req.AffectedSOPInstanceUID = STORAGE_COMMITMENT_INSTANCE
    req.EventTypeID = event_type
    req.EventInformation = BytesIO(data)
    assoc._reactor_checkpoint.clear()
    wake = getattr(assoc, "_wake", None)  # dimse_fastpath's reactor sleeps until woken
    put_back: list = []
    try:
        if wake is not None:
            wake.set()
        while not assoc._is_paused:
            if not assoc.is_alive():
                return "the requesting association ended"
            time.sleep(0.0001)
        if _gone(assoc):
            return "the requester released the association before the report"
        assoc.dimse.send_msg(req, context.context_id)
        deadline = time.monotonic() + timeout
        while True:
            try:
                context_id, msg = assoc.dimse.msg_queue.get(timeout=_LOOK_EVERY)
            except queue.Empty:
                if _gone(assoc):
                    return "the requester released the association instead of answering the report"
                if time.monotonic() > deadline:
                    return f"no answer on the requesting association within {timeout:g} s"
                continue
            if msg is None:
                return "the requesting association was aborted"
            if not isinstance(msg, N_EVENT_REPORT) or msg.MessageIDBeingRespondedTo != req.MessageID:
                put_back.append((context_id, msg))
                continue
            status = 0xFFFF if msg.Status is None else int(msg.Status)
            return DELIVERED if status == 0x0000 else f"the requester answered the report with status 0x{status:04X}"
    finally:
        if put_back:
            with assoc.dimse.msg_queue.mutex:
                assoc.dimse.msg_queue.queue.extendleft(reversed(put_back))
        assoc._reactor_checkpoint.set()
        if wake is not None:
            wake.set()
