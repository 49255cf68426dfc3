"""Storage commitment, Push Model (pacscore/workflow/commitment.py, adapters/dimse_commitment.py):
which instances are committed (in the index, blob checksum intact), the N-EVENT-REPORT on the
requesting association or on a new one to the configured address, reports kept until they are
delivered, and malformed requests refused (PS3.4 J.3). pynetdicom plays the requester."""

from __future__ import annotations

import contextlib
import logging
import threading
import time
from collections.abc import Iterator

import pytest
from pydicom.dataset import Dataset

import pacscore
from pacscore.workflow.commitment import Commitments

from .factories import CT_IMAGE, MR_IMAGE, make_instance, to_bytes
from .workflow_helpers import WAIT, dimse_server, wait_until

pynetdicom = pytest.importorskip("pynetdicom")
from pynetdicom import AE, evt  # noqa: E402
from pynetdicom.sop_class import StorageCommitmentPushModel  # noqa: E402

WELL_KNOWN = "1.2.840.10008.1.20.1.1"
ROOT = "1.2.826.0.1.3680043.9.7777.70"
GOOD = [f"{ROOT}.1.1.{i}" for i in (1, 2)]
DAMAGED = f"{ROOT}.1.1.3"
UNKNOWN = f"{ROOT}.9.9.9"


def fill(arc: pacscore.Archive) -> None:
    for sop in [*GOOD, DAMAGED]:
        arc.store(to_bytes(make_instance(sop=sop, study=f"{ROOT}.1", series=f"{ROOT}.1.1")))


def damage(arc: pacscore.Archive, sop: str) -> None:
    (key,) = [k for k in arc.blobs.keys() if k.startswith(sop + "_")]
    data = arc.blobs.get(key)
    arc.blobs.put(key, data[:-1] + bytes([data[-1] ^ 0xFF]))


def request(transaction: str, refs: list[tuple[str, str]]) -> Dataset:
    ds = Dataset()
    ds.TransactionUID = transaction
    items = []
    for sop_class, sop in refs:
        item = Dataset()
        item.ReferencedSOPClassUID = sop_class
        item.ReferencedSOPInstanceUID = sop
        items.append(item)
    ds.ReferencedSOPSequence = items
    return ds


class Reports:
    """The N-EVENT-REPORTs a requester receives (a pynetdicom EVT_N_EVENT_REPORT handler)."""

    def __init__(self) -> None:
        self.received: list[tuple[int, Dataset, str]] = []  # (event type, event information, how)
        self.lock = threading.Lock()

    def handler(self, how: str):
        def on_report(event):
            with self.lock:
                self.received.append((event.event_type, event.event_information, how))
            ok = Dataset()
            ok.Status = 0x0000
            return ok, None

        return on_report

    def wait(self, count: int = 1, timeout: float = WAIT) -> list[tuple[int, Dataset, str]]:
        wait_until(lambda: len(self.received) >= count, f"{count} N-EVENT-REPORT(s)", timeout)
        return self.received


def associate(port: int, reports: Reports | None = None, title: str = "MODALITY1"):
    ae = AE(ae_title=title)
    ae.add_requested_context(StorageCommitmentPushModel)
    handlers = [(evt.EVT_N_EVENT_REPORT, reports.handler("same association"))] if reports else []
    assoc = ae.associate("127.0.0.1", port, ae_title="PACSCORE", evt_handlers=handlers)
    assert assoc.is_established
    return assoc


def n_action(assoc, info: Dataset | None, action_type: int = 1, instance: str = WELL_KNOWN) -> Dataset:
    status, _reply = assoc.send_n_action(info, action_type, StorageCommitmentPushModel, instance)
    return status


@contextlib.contextmanager
def listener(reports: Reports, title: str = "MODALITY1") -> Iterator[int]:
    """The requester's own SCP for reports on a new association; yields its port."""
    ae = AE(ae_title=title)
    ae.add_supported_context(StorageCommitmentPushModel, scu_role=True, scp_role=True)
    server = ae.start_server(
        ("127.0.0.1", 0), block=False, evt_handlers=[(evt.EVT_N_EVENT_REPORT, reports.handler("new association"))]
    )
    try:
        yield server.server_address[1]
    finally:
        server.shutdown()


def committed(info: Dataset) -> list[str]:
    return [i.ReferencedSOPInstanceUID for i in info.get("ReferencedSOPSequence", [])]


def failed(info: Dataset) -> dict[str, int]:
    return {i.ReferencedSOPInstanceUID: i.FailureReason for i in info.get("FailedSOPSequence", [])}


# -- which instances are committed --------------------------------------------------------------
def test_only_indexed_instances_of_the_stored_class_with_intact_blobs_are_committed(arc):
    fill(arc)
    damage(arc, DAMAGED)
    missing_blob = GOOD[1]
    (key,) = [k for k in arc.blobs.keys() if k.startswith(missing_blob + "_")]
    arc.blobs.delete(key)
    refs = [(CT_IMAGE, GOOD[0]), (CT_IMAGE, missing_blob), (CT_IMAGE, DAMAGED), (CT_IMAGE, UNKNOWN)]
    refs.append((MR_IMAGE, GOOD[0]))  # stored as CT
    result = arc.commitments.check("2.25.1", refs)
    assert result.committed == ((CT_IMAGE, GOOD[0]),)
    assert result.failed == (
        (CT_IMAGE, missing_blob, 0x0110),
        (CT_IMAGE, DAMAGED, 0x0110),
        (CT_IMAGE, UNKNOWN, 0x0112),
        (MR_IMAGE, GOOD[0], 0x0119),
    )
    assert result.event_type == 2
    info = result.event_information("PACSCORE")
    assert info.TransactionUID == "2.25.1" and info.RetrieveAETitle == "PACSCORE"
    assert committed(info) == [GOOD[0]] and failed(info)[UNKNOWN] == 0x0112


def test_with_a_mirrored_store_one_intact_copy_commits_and_none_fails(tmp_path):
    with pacscore.open(tmp_path / "arc", blobs="mirror:file:blobs|file:copy") as arc:
        fill(arc)
        (key,) = [k for k in arc.blobs.primary.keys() if k.startswith(DAMAGED + "_")]
        data = arc.blobs.primary.get(key)
        arc.blobs.primary.put(key, data[:-1] + bytes([data[-1] ^ 0xFF]))
        assert arc.commitments.check("2.25.5", [(CT_IMAGE, DAMAGED)]).committed == ((CT_IMAGE, DAMAGED),)
        arc.blobs.secondary.delete(key)  # now no intact copy is left
        assert arc.commitments.check("2.25.6", [(CT_IMAGE, DAMAGED)]).failed == ((CT_IMAGE, DAMAGED, 0x0110),)


def test_all_committed_is_event_type_1_without_a_failed_sequence(arc):
    fill(arc)
    result = arc.commitments.check("2.25.2", [(CT_IMAGE, sop) for sop in GOOD])
    assert result.event_type == 1
    assert "FailedSOPSequence" not in result.event_information()


def test_reports_are_kept_until_delivered_and_survive_reopening(tmp_path):
    with pacscore.open(tmp_path / "arc") as arc:
        fill(arc)
        assert arc.commitments.pending() == []
        assert arc.index.optional_db("commitment") is None  # reading made nothing
        report = arc.commitments.request("2.25.3", [(CT_IMAGE, GOOD[0])], "MODALITY1")
        assert report.result is not None and report.result.event_type == 1
        arc.commitments.delivery_failed("2.25.3", "peer down")
    with pacscore.open(tmp_path / "arc") as arc:
        (kept,) = arc.commitments.pending("MODALITY1")
        assert (kept.transaction_uid, kept.attempts, kept.last_error) == ("2.25.3", 1, "peer down")
        assert kept.result == report.result
        assert arc.commitments.delivered("2.25.3") is True
        assert arc.commitments.pending() == []
        assert arc.commitments.delivered("2.25.3") is False


def test_a_request_kept_before_its_check_is_checked_when_resolved(arc):
    fill(arc)
    accepted = arc.commitments.accept("2.25.4", [(CT_IMAGE, GOOD[0]), (CT_IMAGE, UNKNOWN)], "MODALITY1")
    assert accepted.result is None
    resolved = arc.commitments.resolve("2.25.4")
    assert resolved is not None and resolved.result is not None
    assert resolved.result.failed == ((CT_IMAGE, UNKNOWN, 0x0112),)
    assert arc.commitments.resolve("2.25.404") is None


# -- over DIMSE ---------------------------------------------------------------------------------
def test_the_report_comes_on_the_requesting_association_while_it_is_open(arc):
    fill(arc)
    damage(arc, DAMAGED)
    reports = Reports()
    with dimse_server(arc) as port:
        assoc = associate(port, reports)
        try:
            refs = [(CT_IMAGE, GOOD[0]), (CT_IMAGE, GOOD[1]), (CT_IMAGE, DAMAGED), (CT_IMAGE, UNKNOWN)]
            assert n_action(assoc, request("2.25.10", refs)).Status == 0x0000
            ((event_type, info, how),) = reports.wait()
        finally:
            assoc.release()
    assert (event_type, how, info.TransactionUID) == (2, "same association", "2.25.10")
    assert committed(info) == GOOD
    assert failed(info) == {DAMAGED: 0x0110, UNKNOWN: 0x0112}
    wait_until(lambda: arc.commitments.pending() == [], "the delivered report to be forgotten")


def test_the_report_goes_to_the_configured_address_once_the_requester_left(arc, monkeypatch):
    fill(arc)
    released = threading.Event()
    resolve = Commitments.resolve

    def resolve_after_release(self, transaction_uid):
        assert released.wait(WAIT), "the requester did not release"
        return resolve(self, transaction_uid)

    monkeypatch.setattr(Commitments, "resolve", resolve_after_release)
    reports = Reports()
    with contextlib.ExitStack() as stack:
        peer_port = stack.enter_context(listener(reports))
        port = stack.enter_context(dimse_server(arc, commitment_peers={"MODALITY1": ("127.0.0.1", peer_port)}))
        assoc = associate(port)
        assert n_action(assoc, request("2.25.11", [(CT_IMAGE, GOOD[0])])).Status == 0x0000
        assoc.release()
        released.set()
        ((event_type, info, how),) = reports.wait()
    assert (event_type, how, committed(info)) == (1, "new association", [GOOD[0]])
    assert info.RetrieveAETitle == "PACSCORE"
    wait_until(lambda: arc.commitments.pending() == [], "the delivered report to be forgotten")


@pytest.mark.parametrize("delay", [0.0, 0.0005, 0.001, 0.002, 0.003, 0.005, 0.01, 0.02, 0.05])
def test_a_requester_that_releases_at_once_is_released_and_reported(arc, monkeypatch, caplog, delay):
    """Orthanc and DCMTK-based SCUs release as soon as they have the N-ACTION response, so the
    report's worker meets the release before, while and after it is answered (the delays sweep
    that window). The server must answer every release (a worker that took the A-RELEASE
    request off the queue left it unanswered: the requester aborted), and a report that crosses
    the release must go to the new association at once, not after the DIMSE timeout (30 s).
    The server's log says how each association ended: pynetdicom's requester itself cannot
    answer a report that arrives after it sent its A-RELEASE-RQ, so its own state proves nothing."""
    fill(arc)
    resolve = Commitments.resolve

    def resolve_later(self, transaction_uid):
        time.sleep(delay)
        return resolve(self, transaction_uid)

    monkeypatch.setattr(Commitments, "resolve", resolve_later)
    caplog.set_level(logging.INFO, logger="pacscore.dimse")
    reports = Reports()
    rounds = 3
    with contextlib.ExitStack() as stack:
        peer_port = stack.enter_context(listener(reports))
        port = stack.enter_context(dimse_server(arc, commitment_peers={"MODALITY1": ("127.0.0.1", peer_port)}))
        for round_ in range(rounds):
            ae = AE(ae_title="MODALITY1")
            ae.acse_timeout = 10
            ae.add_requested_context(StorageCommitmentPushModel)
            handlers = [(evt.EVT_N_EVENT_REPORT, reports.handler("same association"))]
            assoc = ae.associate("127.0.0.1", port, ae_title="PACSCORE", evt_handlers=handlers)
            assert assoc.is_established
            assert n_action(assoc, request(f"2.25.12.{round_}", [(CT_IMAGE, GOOD[0])])).Status == 0x0000
            assoc.release()
            reports.wait(round_ + 1, timeout=10)  # a bound on a failure: a held report waits 30 s

        def ended() -> list[str]:
            return [
                r.getMessage()
                for r in caplog.records
                if ": released after" in r.getMessage() or ": aborted" in r.getMessage()
            ]

        wait_until(lambda: len(ended()) >= rounds, "the server to log how each association ended")
    assert all(": released after" in line for line in ended()), ended()
    assert len(reports.received) == rounds
    wait_until(lambda: arc.commitments.pending() == [], "the delivered reports to be forgotten")


def test_an_unknown_requester_is_logged_and_its_report_kept_for_a_retry(arc, monkeypatch, caplog):
    from pacscore.adapters.dimse_commitment import CommitmentService

    fill(arc)
    released = threading.Event()
    resolve = Commitments.resolve

    def resolve_after_release(self, transaction_uid):
        assert released.wait(WAIT), "the requester did not release"
        return resolve(self, transaction_uid)

    monkeypatch.setattr(Commitments, "resolve", resolve_after_release)
    with caplog.at_level(logging.ERROR, logger="pacscore.dimse"), dimse_server(arc) as port:  # no address for MODALITY9
        assoc = associate(port, title="MODALITY9")
        assert n_action(assoc, request("2.25.12", [(CT_IMAGE, GOOD[0])])).Status == 0x0000
        assoc.release()
        released.set()
        wait_until(lambda: any(r.attempts for r in arc.commitments.pending()), "the failed delivery")
    (kept,) = arc.commitments.pending()
    assert kept.requester == "MODALITY9" and "MODALITY9" in (kept.last_error or "")
    assert "kept to retry" in caplog.text and "MODALITY9" in caplog.text
    reports = Reports()
    with listener(reports, "MODALITY9") as peer_port:
        service = CommitmentService(arc, {"MODALITY9": ("127.0.0.1", peer_port)}, retry_interval=None)
        assert service.deliver_pending() == 1
        ((event_type, info, how),) = reports.wait()
    assert (event_type, how, info.TransactionUID) == (1, "new association", "2.25.12")
    assert arc.commitments.pending() == []


def test_the_server_retries_pending_reports_until_the_peer_answers(arc):
    fill(arc)
    arc.commitments.request("2.25.13", [(CT_IMAGE, GOOD[1])], "MODALITY1")  # kept by an earlier run
    reports = Reports()
    with listener(reports) as peer_port:
        options = {"commitment_peers": {"MODALITY1": ("127.0.0.1", peer_port)}, "commitment_retry_interval": 0.1}
        with dimse_server(arc, **options):
            ((event_type, info, how),) = reports.wait()
            wait_until(lambda: arc.commitments.pending() == [], "the delivered report to be forgotten")
    assert (event_type, how, info.TransactionUID, committed(info)) == (1, "new association", "2.25.13", [GOOD[1]])


@pytest.mark.parametrize(
    ("info", "action_type", "instance", "code", "comment"),
    [
        (request("", [(CT_IMAGE, GOOD[0])]), 1, WELL_KNOWN, 0x0115, "TransactionUID"),
        (request("2.25.20", []), 1, WELL_KNOWN, 0x0115, "ReferencedSOPSequence"),
        (request("2.25.21", [(CT_IMAGE, "")]), 1, WELL_KNOWN, 0x0115, "ReferencedSOPInstanceUID"),
        (request("2.25.22", [(CT_IMAGE, GOOD[0])]), 2, WELL_KNOWN, 0x0123, "action type 2"),
        (request("2.25.23", [(CT_IMAGE, GOOD[0])]), 1, "1.2.3.4", 0x0112, WELL_KNOWN),
        (None, 1, WELL_KNOWN, 0x0115, "TransactionUID"),  # no Action Information at all
    ],
)
def test_a_malformed_request_is_refused_by_name_and_kept_nowhere(arc, info, action_type, instance, code, comment):
    fill(arc)
    with dimse_server(arc) as port:
        assoc = associate(port)
        try:
            status = n_action(assoc, info, action_type, instance)
        finally:
            assoc.release()
    assert status.Status == code
    assert comment in status.ErrorComment
    assert arc.commitments.pending() == []


def test_serve_dimse_takes_commitment_peers_and_refuses_a_malformed_one(capsys):
    import argparse

    from pacscore import cli_serve

    parser = argparse.ArgumentParser(prog="pacscore")
    cli_serve.add_dimse_cli(parser.add_subparsers(dest="protocol"))
    args = parser.parse_args(
        ["dimse", "--archive", "a", "--commitment-peer", "CT01=10.0.0.21:11113", "--commitment-peer", "CT02=[::1]:104"]
    )
    config = cli_serve.dimse_config(args)
    assert config.handlers.commitment_peers == {"CT01": ("10.0.0.21", 11113), "CT02": ("::1", 104)}
    with pytest.raises(SystemExit):
        parser.parse_args(["dimse", "--archive", "a", "--commitment-peer", "CT01"])
    assert "expected AE=host:port, got 'CT01'" in capsys.readouterr().err


def test_a_request_the_archive_cannot_keep_is_0110_and_gets_no_report(tmp_path):
    with pacscore.open(tmp_path / "arc") as arc:
        fill(arc)
    reports = Reports()
    with pacscore.open(tmp_path / "arc", readonly=True) as ro, dimse_server(ro) as port:
        assoc = associate(port, reports)
        try:
            status = n_action(assoc, request("2.25.30", [(CT_IMAGE, GOOD[0])]))
        finally:
            assoc.release()
        assert status.Status == 0x0110 and "could not keep the request" in status.ErrorComment
        assert ro.commitments.pending() == [] and reports.received == []


def test_orthanc_as_the_requester_gets_its_report_on_a_new_association():
    """Orthanc's storage commitment SCU releases the association after the N-ACTION and takes
    the report on its own port: benchmarks/orthanc_commitment.py runs it in a loopback-only
    network namespace against `pacscore serve dimse --commitment-peer ORTHANC=...`."""
    import json
    import subprocess
    import sys
    from pathlib import Path

    from benchmarks import orthanc_commitment, orthanc_peer

    why = orthanc_peer.can_isolate()
    if why is not None:
        pytest.skip(why)
    root = Path(__file__).resolve().parent.parent
    proc = subprocess.run(
        [sys.executable, "-m", "benchmarks.orthanc_commitment"], cwd=root, capture_output=True, text=True, timeout=300
    )
    out = json.loads(proc.stdout) if proc.stdout.startswith("{") else {}
    assert proc.returncode == 0 and "report" in out, proc.stdout[-3000:] + proc.stderr[-3000:]
    report = out["report"]
    assert report["Status"] == "Failure" and report["RemoteAET"] == "PACSCORE"
    assert sorted(s["SOPInstanceUID"] for s in report["Success"]) == orthanc_commitment.STORED[:2]
    failures = {f["SOPInstanceUID"]: f["FailureReason"] for f in report["Failures"]}
    assert failures == {orthanc_commitment.DAMAGED: 0x0110, orthanc_commitment.NEVER_STORED: 0x0112}
    assert "reported on a new association" in out["pacscore_log"]


def test_one_process_at_a_time_claims_the_delivery_of_a_report(arc):
    """``serve dimse --processes``: each process retries the pending reports; a claim taken in a
    write transaction lets one of them deliver each (until it fails, or the claim expires)."""
    fill(arc)
    arc.commitments.accept("2.25.40", [(CT_IMAGE, GOOD[0])], "CT01", claim=True)  # an N-ACTION's worker has it
    assert arc.commitments.claim("2.25.40") is False
    arc.commitments.delivery_failed("2.25.40", "peer down")  # the worker gave up: free again
    assert arc.commitments.claim("2.25.40") is True
    assert arc.commitments.claim("2.25.40") is False
    assert arc.commitments.claim("2.25.40", seconds=0) is False  # still held by the first claim
    assert arc.commitments.claim("2.25.404") is False  # not pending
