"""Storage commitment (PS3.4 Annex J, Push Model): which instances the archive takes
responsibility for, and the reports owed to the requesters: ``arc.commitments``.

An instance is committed only when it is in the index and its blob passes its checksum (the
check ``Archive.verify`` makes, on each full copy: ``maintenance.check_instance``); otherwise
it fails with the reason Table J.3-2 gives: 0x0112 no such object instance, 0x0119 a SOP Class
other than the one stored, 0x0110 a blob missing or damaged. Every result is kept as a
pending report (the ``commitment`` database of the index's environment) before anyone tries to
deliver it, and removed only once delivered: a report that cannot reach its requester stays
there to be retried, never dropped.

>>> result = arc.commitments.check("2.25.1", [(ct_class, sop_uid)])
>>> result.event_type          # 1: all committed; 2: failures exist
1
"""

from __future__ import annotations

import datetime
import logging
import time
from collections.abc import Iterable
from dataclasses import dataclass

from pydicom.dataset import Dataset

from ..maintenance import check_instance
from .errors import CLASS_INSTANCE_CONFLICT, NO_SUCH_SOP_INSTANCE, PROCESSING_FAILURE
from .store import JsonRecords

log = logging.getLogger("pacscore.workflow")

#: the Storage Commitment Push Model SOP Class and its well-known SOP Instance (PS3.4 J.3.5)
STORAGE_COMMITMENT_CLASS = "1.2.840.10008.1.20.1"
STORAGE_COMMITMENT_INSTANCE = "1.2.840.10008.1.20.1.1"
#: Event Type IDs of the N-EVENT-REPORT (PS3.4 Table J.3-3)
ALL_COMMITTED = 1
FAILURES_EXIST = 2
#: the named database of the reports not yet delivered
DB_NAME = "commitment"
#: how long one process owns the delivery of a report before another may retry it (seconds)
CLAIM_SECONDS = 120.0


@dataclass(frozen=True)
class CommitmentResult:
    """The answer to one commitment request: what is committed and what failed, and why."""

    transaction_uid: str
    committed: tuple[tuple[str, str], ...]  # (SOP Class UID, SOP Instance UID)
    failed: tuple[tuple[str, str, int], ...]  # (SOP Class UID, SOP Instance UID, Failure Reason)

    @property
    def event_type(self) -> int:
        return FAILURES_EXIST if self.failed else ALL_COMMITTED

    def event_information(self, retrieve_ae_title: str | None = None) -> Dataset:
        """The N-EVENT-REPORT Event Information (PS3.4 Table J.3-4)."""
        ds = Dataset()
        ds.TransactionUID = self.transaction_uid
        if retrieve_ae_title and self.committed:
            ds.RetrieveAETitle = retrieve_ae_title
        if self.committed:
            ds.ReferencedSOPSequence = [_ref(cls, uid) for cls, uid in self.committed]
        if self.failed:
            ds.FailedSOPSequence = [_ref(cls, uid, reason) for cls, uid, reason in self.failed]
        return ds

    def to_json(self) -> dict:
        return {
            "transaction_uid": self.transaction_uid,
            "committed": [list(c) for c in self.committed],
            "failed": [list(f) for f in self.failed],
        }

    @classmethod
    def from_json(cls, data: dict) -> CommitmentResult:
        return cls(
            data["transaction_uid"],
            tuple((c, u) for c, u in data["committed"]),
            tuple((c, u, int(r)) for c, u, r in data["failed"]),
        )


def _ref(sop_class: str, sop_instance: str, reason: int | None = None) -> Dataset:
    item = Dataset()
    item.ReferencedSOPClassUID = sop_class
    item.ReferencedSOPInstanceUID = sop_instance
    if reason is not None:
        item.FailureReason = reason
    return item


@dataclass(frozen=True)
class PendingReport:
    """A commitment request whose report its requester has not received yet; ``result`` is
    None until the instances are checked."""

    transaction_uid: str
    references: tuple[tuple[str, str], ...]
    requester: str  # the calling AE title of the N-ACTION
    responder: str  # the AE title it was sent to: ours when the report goes out
    created: str
    result: CommitmentResult | None = None
    attempts: int = 0
    last_error: str | None = None


def _now() -> str:
    return datetime.datetime.now(datetime.UTC).isoformat(timespec="milliseconds")


class Commitments:
    """Storage commitment for one archive (``arc.commitments``)."""

    def __init__(self, archive) -> None:
        self._archive = archive
        self._pending = JsonRecords(archive, DB_NAME)

    def check(self, transaction_uid: str, references: Iterable[tuple[str, str]]) -> CommitmentResult:
        """Which of ``references`` ((SOP Class UID, SOP Instance UID) pairs) the archive
        commits to; reads every blob once to verify its checksum."""
        committed: list[tuple[str, str]] = []
        failed: list[tuple[str, str, int]] = []
        for sop_class, sop_instance in references:
            reason = self._reason(str(sop_class), str(sop_instance))
            if reason is None:
                committed.append((sop_class, sop_instance))
            else:
                failed.append((sop_class, sop_instance, reason))
        return CommitmentResult(str(transaction_uid), tuple(committed), tuple(failed))

    def _reason(self, sop_class: str, sop_instance: str) -> int | None:
        """None when the instance is committed, else its Failure Reason (PS3.4 J.3.3.1)."""
        refs = self._archive.instances(instance=sop_instance) if sop_instance else []
        if not refs:
            return NO_SUCH_SOP_INSTANCE
        if refs[0].sop_class_uid != sop_class:
            return CLASS_INSTANCE_CONFLICT
        state = check_instance(self._archive, sop_instance)  # verify's check, checksum included
        if state == "gone":  # deleted since
            return NO_SUCH_SOP_INSTANCE
        if state != "ok":
            log.error("storage commitment: instance %s is not committed: its blob is %s", sop_instance, state)
            return PROCESSING_FAILURE
        return None

    # -- the reports owed to requesters -----------------------------------------------------
    def accept(
        self,
        transaction_uid: str,
        references: Iterable[tuple[str, str]],
        requester: str,
        responder: str = "PACSCORE",
        *,
        claim: bool = False,
    ) -> PendingReport:
        """Keep a commitment request (durable before it is answered), its report owed to
        ``requester``; ``resolve`` checks it. A request with a pending transaction UID replaces it.
        ``claim``: this process delivers it (see ``claim``)."""
        report = PendingReport(
            str(transaction_uid), tuple((str(c), str(u)) for c, u in references), requester, responder, _now()
        )
        kept = _report_json(report)
        if claim:  # the N-ACTION's own worker delivers it: retries in other processes wait
            kept["claimed_until"] = time.time() + CLAIM_SECONDS
        self._pending.update(report.transaction_uid, lambda _current: kept)
        return report

    def resolve(self, transaction_uid: str) -> PendingReport | None:
        """The pending report with its result, checking its instances now if that was not done
        yet (a restart between the request and the check resumes here); None if not pending."""
        data = self._pending.get(transaction_uid)
        if data is None:
            return None
        report = _report(data)
        if report.result is not None:
            return report
        result = self.check(transaction_uid, report.references)

        def change(current: dict | None) -> dict | None:
            return None if current is None else {**current, "result": result.to_json()}

        updated = self._pending.update(transaction_uid, change)
        return None if updated is None else _report(updated)

    def request(
        self, transaction_uid: str, references: Iterable[tuple[str, str]], requester: str, responder: str = "PACSCORE"
    ) -> PendingReport:
        """``accept`` then ``resolve``: the pending report with its result."""
        self.accept(transaction_uid, references, requester, responder)
        report = self.resolve(transaction_uid)
        assert report is not None  # just kept
        return report

    def pending(self, requester: str | None = None) -> list[PendingReport]:
        """The reports not yet delivered (all, or those owed to ``requester``)."""
        reports = [_report(data) for _uid, data in self._pending.items()]
        return [r for r in reports if requester is None or r.requester == requester]

    def delivered(self, transaction_uid: str) -> bool:
        """Forget a report once its requester has it; whether it was pending."""
        return self._pending.delete(transaction_uid)

    def delivery_failed(self, transaction_uid: str, error: str) -> None:
        """Count a failed attempt to deliver a report and keep why (it stays pending, free for
        the next retry to claim)."""

        def change(current: dict | None) -> dict | None:
            if current is None:
                return None
            attempts = int(current.get("attempts", 0)) + 1
            return {**current, "attempts": attempts, "last_error": error, "claimed_until": 0}

        self._pending.update(transaction_uid, change)

    def claim(self, transaction_uid: str, seconds: float = CLAIM_SECONDS) -> bool:
        """Take the delivery of a pending report for ``seconds``: whether it was free. Several
        processes serve one archive (``serve dimse --processes``) and each retries the pending
        reports; the claim, taken in a write transaction, lets one of them deliver each."""
        now = time.time()
        taken: list[bool] = []

        def change(current: dict | None) -> dict | None:
            if current is None or float(current.get("claimed_until", 0)) > now:
                taken.append(False)
                return current
            taken.append(True)
            return {**current, "claimed_until": now + seconds}

        if self._pending.get(transaction_uid) is None:
            return False
        self._pending.update(transaction_uid, change)
        return taken[-1]


def _report_json(report: PendingReport) -> dict:
    return {
        "transaction_uid": report.transaction_uid,
        "references": [list(r) for r in report.references],
        "requester": report.requester,
        "responder": report.responder,
        "created": report.created,
        "result": None if report.result is None else report.result.to_json(),
        "attempts": report.attempts,
        "last_error": report.last_error,
    }


def _report(data: dict) -> PendingReport:
    result = data.get("result")
    return PendingReport(
        transaction_uid=data["transaction_uid"],
        references=tuple((c, u) for c, u in data.get("references", ())),
        requester=data["requester"],
        responder=data.get("responder", "PACSCORE"),
        created=data.get("created", ""),
        result=None if result is None else CommitmentResult.from_json(result),
        attempts=int(data.get("attempts", 0)),
        last_error=data.get("last_error"),
    )
