"""Event hooks (pacscore/events.py, docs/workflow.md): stored, deleted and study-stable hooks,
from the Python API, DIMSE C-STORE and STOW-RS, and the documented auto-routing example run
against a real storage SCP with a modality simulated by DCMTK's storescu.

Nothing here waits a fixed time: the study-stable tests use quiet periods of a fraction of a
second and poll for the events with a deadline that only bounds a failure."""

from __future__ import annotations

import io
import logging
import re
import threading
import time
from pathlib import Path

import pydicom
import pytest

import pacscore
from pacscore.events import DeletedEvent, Origin, StoredEvent, StudyStableEvent

from .expected_warnings import VR_MISMATCH
from .factories import make_instance, to_bytes

ROOT = Path(__file__).resolve().parent.parent
WAIT = 20.0  # seconds: a deadline for a failure message, not a measurement


def wait_until(predicate, what: str, timeout: float = WAIT) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.02)


def instance(sop: str, study: str = "1.2.3", series: str | None = None, **extra) -> bytes:
    return to_bytes(make_instance(sop=sop, study=study, series=series or f"{study}.1", **extra))


def stable_threads() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name.startswith("pacscore-study-stable")]


# -- stored ---------------------------------------------------------------------------------
def test_stored_hook_hears_every_status_after_the_commit(tmp_path):
    seen: list[tuple[StoredEvent, bytes]] = []
    with pacscore.open(tmp_path / "arc") as arc:

        @arc.on_stored
        def note(event):
            seen.append((event, arc.get(event.sop_instance_uid)))  # committed: readable from the hook

        first, other = instance("1.2.3.1.1"), instance("1.2.3.1.1", PatientName="Doe^Jane")
        assert arc.store(first).status == "stored"
        assert arc.store(first).status == "duplicate"
        assert arc.store(other).status == "replaced"
        statuses = [(e.status, e.source, e.calling_ae, data) for e, data in seen]
        assert statuses == [
            ("stored", "api", None, first),
            ("duplicate", "api", None, first),
            ("replaced", "api", None, other),
        ]
        event = seen[0][0]
        assert (event.sop_instance_uid, event.study_instance_uid, event.series_instance_uid) == (
            "1.2.3.1.1",
            "1.2.3",
            "1.2.3.1",
        )
        assert event.patient_key == "P1\x00" and event.moved is None
    with pacscore.open(tmp_path / "arc", on_conflict="keep") as keeper:
        kept: list[StoredEvent] = []
        keeper.on_stored(kept.append)
        assert keeper.store(first).status == "kept"
        assert [e.status for e in kept] == ["kept"]
        assert keeper.get("1.2.3.1.1") == other  # the stored bytes stay


def test_stored_event_reports_a_move_where_the_instance_is_now(tmp_path):
    with pacscore.open(tmp_path / "arc") as arc:
        arc.store(instance("1.2.3.1.1", study="1.2.3"))
        events: list[StoredEvent] = []
        arc.on_stored(events.append)
        arc.store(instance("1.2.3.1.1", study="1.2.4"))
        (event,) = events
        assert event.status == "replaced" and event.study_instance_uid == "1.2.4"
        assert event.moved is not None and (event.moved.from_study, event.moved.to_study) == ("1.2.3", "1.2.4")


@VR_MISMATCH  # the bytes that are not DICOM, read as a bare data set
def test_store_many_gives_one_event_per_instance_after_each_batch_and_none_for_rejects(tmp_path):
    with pacscore.open(tmp_path / "arc") as arc:
        committed_when_told: list[bool] = []

        def check(event):
            committed_when_told.append(bool(arc.instances(instance=event.sop_instance_uid)))

        arc.on_stored(check)
        events: list[StoredEvent] = []
        arc.on_stored(events.append)
        sources = [instance(f"1.2.3.1.{i}") for i in range(5)] + [b"not DICOM at all", instance("1.2.3.1.0")]
        report = arc.store_many(sources, workers=1, batch_size=2)
        assert len(report.stored) == 5 and len(report.rejected) == 1 and report.duplicates == ["1.2.3.1.0"]
        assert sorted((e.sop_instance_uid, e.status) for e in events) == sorted(
            [(f"1.2.3.1.{i}", "stored") for i in range(5)] + [("1.2.3.1.0", "duplicate")]
        )
        assert {e.source for e in events} == {"api"}
        assert committed_when_told == [True] * 6


def test_a_failing_hook_is_logged_by_name_and_neither_fails_the_store_nor_stops_other_hooks(tmp_path, caplog):
    with pacscore.open(tmp_path / "arc") as arc:

        def broken_hook(event):
            raise RuntimeError("the hook broke")

        after: list[StoredEvent] = []
        arc.on_stored(broken_hook)
        arc.on_stored(after.append)
        with caplog.at_level(logging.ERROR, logger="pacscore.events"):
            result = arc.store(instance("1.2.3.1.1"))
        assert result.status == "stored"
        assert [e.sop_instance_uid for e in after] == ["1.2.3.1.1"]
        assert arc.get("1.2.3.1.1") == instance("1.2.3.1.1")
        (record,) = [r for r in caplog.records if r.name == "pacscore.events"]
        assert "broken_hook" in record.getMessage() and "StoredEvent" in record.getMessage()
        assert record.exc_info is not None and "the hook broke" in str(record.exc_info[1])


def test_remove_hook_unregisters_from_every_event(tmp_path):
    with pacscore.open(tmp_path / "arc") as arc:
        heard: list[object] = []
        kept: list[object] = []

        def listener(event):
            heard.append(event)

        assert arc.on_stored(listener) is listener and arc.on_deleted(listener) is listener
        arc.on_stored(kept.append)
        arc.store(instance("1.2.3.1.1"))
        assert len(heard) == 1
        assert arc.remove_hook(listener) is True
        assert arc.remove_hook(listener) is False
        arc.store(instance("1.2.3.1.2"))
        arc.delete(instance="1.2.3.1.2")
        assert len(heard) == 1
        assert [e.sop_instance_uid for e in kept] == ["1.2.3.1.1", "1.2.3.1.2"]  # the other hook still hears


def test_bad_origin_and_bad_quiet_period_are_refused_by_name_and_change_nothing(tmp_path):
    with pytest.raises(ValueError, match="unknown event source 'hl7'"):
        Origin("hl7")
    with pacscore.open(tmp_path / "arc") as arc:
        data = instance("1.2.3.1.1")
        arc.store(data)
        with pytest.raises(ValueError, match=r"seconds > 0 \(got 0\)"):
            arc.on_study_stable(print, seconds=0)
        assert f"pacscore-study-stable {arc.folder}" not in [t.name for t in stable_threads()]
        assert arc.remove_hook(print) is False  # nothing was registered
        assert [r.sop_instance_uid for r in arc.instances(study="1.2.3")] == ["1.2.3.1.1"]
        assert arc.get("1.2.3.1.1") == data


# -- deleted --------------------------------------------------------------------------------
def test_deleted_hook_hears_each_removed_instance_after_the_commit(tmp_path):
    with pacscore.open(tmp_path / "arc") as arc:
        for sop, series in (("1.2.3.1.1", "1.2.3.1"), ("1.2.3.2.1", "1.2.3.2"), ("1.2.3.2.2", "1.2.3.2")):
            arc.store(instance(sop, series=series))
        gone: list[tuple[DeletedEvent, int]] = []
        arc.on_deleted(lambda e: gone.append((e, len(arc.instances(study="1.2.3")))))
        assert arc.delete(series="1.2.3.2") == 2
        assert sorted(e.sop_instance_uid for e, _ in gone) == ["1.2.3.2.1", "1.2.3.2.2"]
        assert {n for _, n in gone} == {1}  # the hook sees the archive after the commit
        event = gone[0][0]
        assert (event.study_instance_uid, event.series_instance_uid, event.patient_key) == (
            "1.2.3",
            "1.2.3.2",
            "P1\x00",
        )
        assert arc.delete(instance="no.such.uid") == 0
        assert len(gone) == 2


# -- study stable ---------------------------------------------------------------------------
def test_a_study_is_announced_once_per_quiet_period_and_again_after_new_content(tmp_path):
    with pacscore.open(tmp_path / "arc") as arc:
        stable: list[StudyStableEvent] = []

        @arc.on_study_stable(seconds=0.2)
        def note(event):
            stable.append(event)

        before = time.time()
        arc.store(instance("1.2.3.1.1", study="1.2.3"))
        arc.store(instance("1.2.3.1.2", study="1.2.3"))
        arc.store(instance("1.2.4.1.1", study="1.2.4", patient_id="P2"))
        wait_until(lambda: len(stable) >= 2, "two stable studies")
        by_study = {e.study_instance_uid: e for e in stable}
        assert by_study["1.2.3"].instances == ("1.2.3.1.1", "1.2.3.1.2")
        assert by_study["1.2.4"].instances == ("1.2.4.1.1",) and by_study["1.2.4"].patient_key == "P2\x00"
        assert before <= by_study["1.2.3"].last_stored_at <= time.time()
        # a duplicate is no new content: it starts no quiet period. The study stored after it
        # becomes stable later than a period the duplicate would have started, and the timer
        # announces in deadline order, so an event for 1.2.3 would come first.
        arc.store(instance("1.2.3.1.1", study="1.2.3"))
        arc.store(instance("1.2.5.1.1", study="1.2.5"))
        wait_until(lambda: len(stable) >= 3, "the third study")
        assert [e.study_instance_uid for e in stable[2:]] == ["1.2.5"]
        # new content makes a stable study stable again, with only the new instances
        arc.store(instance("1.2.3.1.3", study="1.2.3"))
        wait_until(lambda: len(stable) >= 4, "study 1.2.3 again")
        assert (stable[3].study_instance_uid, stable[3].instances) == ("1.2.3", ("1.2.3.1.3",))
        assert len(stable) == 4


def test_a_study_deleted_in_its_quiet_period_is_not_announced(tmp_path):
    with pacscore.open(tmp_path / "arc") as arc:
        stable: list[StudyStableEvent] = []
        arc.on_study_stable(stable.append, seconds=1.0)
        arc.store(instance("1.2.3.1.1", study="1.2.3"))
        arc.delete(study="1.2.3")  # well inside the second
        arc.store(instance("1.2.4.1.1", study="1.2.4"))
        wait_until(lambda: bool(stable), "study 1.2.4")
        assert [e.study_instance_uid for e in stable] == ["1.2.4"]


def test_close_stops_the_stable_timer_and_leaves_no_thread(tmp_path):
    arc = pacscore.open(tmp_path / "arc")
    name = f"pacscore-study-stable {arc.folder}"
    stable: list[StudyStableEvent] = []
    arc.on_study_stable(stable.append, seconds=3600)
    arc.on_study_stable(stable.append, seconds=0.1)  # one timer thread for every stable hook
    assert [t.name for t in stable_threads()].count(name) == 1
    arc.store(instance("1.2.3.1.1"))  # the hour-long period is still pending at close()
    wait_until(lambda: bool(stable), "the short period")
    arc.close()
    assert name not in [t.name for t in threading.enumerate()]
    assert len(stable) == 1
    with pytest.raises(RuntimeError, match="archive is closed"):
        arc.on_study_stable(stable.append, seconds=1)


def test_a_failing_stable_hook_is_logged_and_the_timer_goes_on(tmp_path, caplog):
    with pacscore.open(tmp_path / "arc") as arc:
        stable: list[StudyStableEvent] = []

        def failing_router(event):
            raise ConnectionError("the destination is down")

        arc.on_study_stable(failing_router, seconds=0.1)
        arc.on_study_stable(stable.append, seconds=0.1)
        with caplog.at_level(logging.ERROR, logger="pacscore.events"):
            arc.store(instance("1.2.3.1.1", study="1.2.3"))
            wait_until(lambda: bool(stable), "the first study")
            arc.store(instance("1.2.4.1.1", study="1.2.4"))
            wait_until(lambda: len(stable) == 2, "the second study")
            wait_until(lambda: sum("failing_router" in r.getMessage() for r in caplog.records) == 2, "two logs")


# -- the adapters -----------------------------------------------------------------------------
def test_stow_rs_tells_the_hooks_source_stow(tmp_path):
    from pacscore.adapters.web_core import DicomWebService
    from pacscore.adapters.web_http import WebRequest

    with pacscore.open(tmp_path / "arc") as arc:
        events: list[StoredEvent] = []
        arc.on_stored(events.append)
        body = b"".join(
            b"--b\r\nContent-Type: application/dicom\r\n\r\n" + data + b"\r\n"
            for data in (instance("1.2.3.1.1"), instance("1.2.3.1.1"))
        )
        request = WebRequest(
            "POST",
            "/studies",
            headers={"content-type": 'multipart/related; type="application/dicom"; boundary=b'},
            body=[body + b"--b--"],
            base_url="http://x/dw",
        )
        answer = DicomWebService(arc).handle(request)
        assert answer.status == 200, answer.body
        assert [(e.status, e.source, e.calling_ae) for e in events] == [
            ("stored", "stow", None),
            ("duplicate", "stow", None),
        ]


def test_c_store_tells_the_hooks_source_dimse_and_the_calling_ae(tmp_path):
    AE = pytest.importorskip("pynetdicom").AE
    from pacscore.adapters import dimse

    with pacscore.open(tmp_path / "arc") as arc:
        events: list[StoredEvent] = []
        arc.on_stored(events.append)
        server = dimse.serve(arc, "PACSCORE", 0, "127.0.0.1", block=False)
        try:
            ae = AE(ae_title="MODALITY1")
            ae.add_requested_context("1.2.840.10008.5.1.4.1.1.2", "1.2.840.10008.1.2.1")
            assoc = ae.associate("127.0.0.1", server.server_address[1], ae_title="PACSCORE")
            assert assoc.is_established
            try:
                ds = pydicom.dcmread(io.BytesIO(instance("1.2.3.1.1")))
                assert assoc.send_c_store(ds).Status == 0x0000
            finally:
                assoc.release()
        finally:
            server.shutdown()
        assert [(e.sop_instance_uid, e.status, e.source, e.calling_ae) for e in events] == [
            ("1.2.3.1.1", "stored", "dimse", "MODALITY1")
        ]


# -- the documented auto-routing example --------------------------------------------------------
def documented_block(page: Path, marker: str) -> str:
    """The ```python block of ``page`` that contains ``marker``."""
    blocks = re.findall(r"^```python\n(.*?)^```", page.read_text(encoding="utf-8"), flags=re.M | re.S)
    (block,) = [b for b in blocks if marker in b]
    return block


def storescu(port: int, *files: Path):
    """DCMTK's storescu as modality MODALITY1, sending ``files`` to PACSCORE on ``port``."""
    from .dimse_helpers import run

    return run(["storescu", "-aet", "MODALITY1", "-aec", "PACSCORE", "127.0.0.1", str(port), *map(str, files)])


def test_documented_auto_routing_forwards_each_stable_study_once_byte_identical(tmp_path):
    pynetdicom = pytest.importorskip("pynetdicom")
    from pacscore.adapters import dimse

    from .dimse_helpers import dataset_bytes, dcmtk

    if dcmtk("storescu") is None:
        pytest.skip("DCMTK's storescu is not on PATH")
    namespace: dict = {}
    exec(
        compile(documented_block(ROOT / "docs" / "workflow.md", "def auto_route"), "docs/workflow.md", "exec"),
        namespace,
    )

    received: list[tuple[str, bytes]] = []  # (SOP Instance UID, the data set as it came on the wire)

    def on_store(event):
        received.append((str(event.request.AffectedSOPInstanceUID), event.request.DataSet.getvalue()))
        return 0x0000

    dest_ae = pynetdicom.AE(ae_title="WORKSTATION")
    dest_ae.add_supported_context("1.2.840.10008.5.1.4.1.1.2", ["1.2.840.10008.1.2.1", "1.2.840.10008.1.2"])
    dest = dest_ae.start_server(("127.0.0.1", 0), block=False, evt_handlers=[(pynetdicom.evt.EVT_C_STORE, on_store)])
    files = tmp_path / "modality"
    files.mkdir()
    first = {
        f"1.2.3.{s}.{i}": instance(f"1.2.3.{s}.{i}", study="1.2.3", series=f"1.2.3.{s}") for s in (1, 2) for i in (1, 2)
    }
    first.update({f"1.2.4.1.{i}": instance(f"1.2.4.1.{i}", study="1.2.4", patient_id="P2") for i in (1, 2, 3)})
    for uid, data in first.items():
        (files / f"{uid}.dcm").write_bytes(data)
    try:
        with pacscore.open(tmp_path / "arc") as arc:
            routed: list[StudyStableEvent] = []
            namespace["auto_route"](arc, "WORKSTATION", "127.0.0.1", dest.server_address[1], seconds=0.3)
            arc.on_study_stable(routed.append, seconds=0.3)  # registered after the router: runs after it
            server = dimse.serve(arc, "PACSCORE", 0, "127.0.0.1", block=False)
            port = server.server_address[1]
            try:
                proc = storescu(port, *sorted(files.iterdir()))
                assert proc.returncode == 0, proc.stderr
                wait_until(lambda: len(routed) == 2, "two stable studies")
                assert sorted(uid for uid, _ in received) == sorted(first)  # each instance once
                for uid, data in received:
                    assert data == dataset_bytes(arc.get(uid)) == dataset_bytes(first[uid]), f"{uid} changed on the way"
                # the modality sends the first study again (duplicates) and a new one: only the
                # new study is routed; the duplicates start no quiet period, and one would end
                # before the new study's
                late = files / "late"
                late.mkdir()
                (late / "new.dcm").write_bytes(instance("1.2.5.1.1", study="1.2.5"))
                again = [files / f"{uid}.dcm" for uid in first if uid.startswith("1.2.3.")]
                proc = storescu(port, *again, late / "new.dcm")
                assert proc.returncode == 0, proc.stderr
                wait_until(lambda: len(routed) == 3, "the third study")
                assert routed[2].study_instance_uid == "1.2.5"
                assert sorted(uid for uid, _ in received) == sorted([*first, "1.2.5.1.1"])
            finally:
                server.shutdown()
    finally:
        dest.shutdown()
