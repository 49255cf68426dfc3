"""The Modality Worklist over DIMSE (pacscore/adapters/dimse_worklist.py, PS3.4 K.4): a modality
simulated by DCMTK's ``findscu -W`` and by pynetdicom gets its worklist; bad identifiers get
A900, a C-FIND-CANCEL stops the responses with FE00, and the Q/R models still answer beside it.

Nothing waits a fixed time: the servers listen on ports the OS picked before the test talks."""

from __future__ import annotations

import time

import pydicom
import pytest
from pydicom.dataset import Dataset
from pynetdicom import AE
from pynetdicom.sop_class import ModalityWorklistInformationFind, StudyRootQueryRetrieveInformationModelFind

import pacscore
from pacscore.adapters import dimse

from .dimse_helpers import dcmtk, run
from .expected_warnings import BAD_DATES
from .worklist_items import make_item

UID = "1.2.826.0.1.3680043.9.8"


@pytest.fixture
def served(tmp_path):
    with pacscore.open(tmp_path / "arc") as arc:
        arc.worklist.add(make_item("P1", f"{UID}.1", "S1", "CT", "20260315", "093000", "CT01", "Müller^Jörg"))
        arc.worklist.add(make_item("P2", f"{UID}.2", "S2", "MR", "20260315", "140000", "MR01", "Roe^Jane"))
        arc.worklist.add(make_item("P3", f"{UID}.3", "S3", "CT", "20260316", "080000", "CT02", "Doe^Anna"))
        server = dimse.serve(arc, port=0, block=False)
        try:
            yield arc, server.server_address[1]
        finally:
            server.shutdown()


def associate(port: int, *contexts: str):
    ae = AE("MODALITY")
    ae.acse_timeout = ae.dimse_timeout = ae.network_timeout = 60
    for cx in contexts:
        ae.add_requested_context(cx)
    assoc = ae.associate("127.0.0.1", port, ae_title="PACSCORE")
    assert assoc.is_established
    return assoc


def worklist_identifier(**step: str) -> Dataset:
    ds = Dataset()
    ds.PatientName = ""
    ds.PatientID = ""
    ds.AccessionNumber = ""
    ds.StudyInstanceUID = ""
    item = Dataset()
    item.Modality = ""
    item.ScheduledStationAETitle = ""
    item.ScheduledProcedureStepStartDate = ""
    item.ScheduledProcedureStepID = ""
    for keyword, value in step.items():
        setattr(item, keyword, value)
    ds.ScheduledProcedureStepSequence = [item]
    return ds


def find(port: int, ident: Dataset) -> tuple[list[int], list[Dataset]]:
    assoc = associate(port, ModalityWorklistInformationFind)
    try:
        statuses, results = [], []
        for status, identifier in assoc.send_c_find(ident, ModalityWorklistInformationFind):
            statuses.append(status.Status)
            if status.Status in (0xFF00, 0xFF01):
                results.append(identifier)
            else:
                last = status
        return statuses, results + ([last] if statuses[-1] != 0 else [])
    finally:
        assoc.release()


def test_a_modality_gets_its_steps_by_modality_and_date(served):
    _arc, port = served
    statuses, results = find(port, worklist_identifier(Modality="CT", ScheduledProcedureStepStartDate="20260315"))
    assert statuses == [0xFF00, 0]
    [ds] = results
    assert ds.PatientID == "P1" and ds.PatientName == "Müller^Jörg" and ds.SpecificCharacterSet == "ISO_IR 192"
    step = ds.ScheduledProcedureStepSequence[0]
    assert (step.Modality, step.ScheduledStationAETitle, step.ScheduledProcedureStepID) == ("CT", "CT01", "S1")
    assert "ScheduledProcedureStepDescription" not in step  # not requested


def test_the_station_title_and_date_range_filter_and_all_items_come_back_for_universal_keys(served):
    _arc, port = served
    _, results = find(port, worklist_identifier(ScheduledStationAETitle="CT*"))
    assert sorted(ds.PatientID for ds in results) == ["P1", "P3"]
    _, results = find(port, worklist_identifier(ScheduledProcedureStepStartDate="20260316-"))
    assert [ds.PatientID for ds in results] == ["P3"]
    _, results = find(port, worklist_identifier())
    assert sorted(ds.PatientID for ds in results) == ["P1", "P2", "P3"]


def test_a_step_status_set_by_mpps_filters_the_worklist(served):
    arc, port = served
    assert arc.worklist.set_step_status(f"{UID}.1", "S1", "COMPLETED")
    _, results = find(port, worklist_identifier(ScheduledProcedureStepStatus="SCHEDULED"))
    assert sorted(ds.PatientID for ds in results) == ["P2", "P3"]


@BAD_DATES
def test_a_bad_date_is_refused_with_a900_naming_it(served):
    _arc, port = served
    statuses, results = find(port, worklist_identifier(ScheduledProcedureStepStartDate="20261399"))
    assert statuses == [0xA900]
    assert "ScheduledProcedureStepStartDate" in results[0].ErrorComment


def test_the_query_retrieve_models_still_answer_beside_the_worklist(served):
    _arc, port = served
    assoc = associate(port, StudyRootQueryRetrieveInformationModelFind, ModalityWorklistInformationFind)
    try:
        ds = Dataset()
        ds.QueryRetrieveLevel = "STUDY"
        ds.StudyInstanceUID = ""
        statuses = [s.Status for s, _ in assoc.send_c_find(ds, StudyRootQueryRetrieveInformationModelFind)]
        assert statuses == [0]  # the archive holds no study yet
        wl = [s.Status for s, _ in assoc.send_c_find(worklist_identifier(), ModalityWorklistInformationFind)]
        assert wl == [0xFF00, 0xFF00, 0xFF00, 0]
    finally:
        assoc.release()


class SlowWorklist:
    """Delegates to a worklist; iter_find() yields one response every 20 ms (for C-CANCEL)."""

    def __init__(self, worklist):
        self._worklist = worklist
        self.produced = 0

    def __getattr__(self, name):
        return getattr(self._worklist, name)

    def iter_find(self, *args, **kw):
        for row in self._worklist.iter_find(*args, **kw):
            time.sleep(0.02)
            self.produced += 1
            yield row


class SlowArchive:
    def __init__(self, arc):
        self._arc = arc
        self.worklist = SlowWorklist(arc.worklist)

    def __getattr__(self, name):
        return getattr(self._arc, name)


def test_c_find_cancel_stops_the_worklist_responses(tmp_path):
    with pacscore.open(tmp_path / "arc") as arc:
        for i in range(12):
            arc.worklist.add(make_item(f"P{i}", f"{UID}.{i}", f"S{i}"))
        slow = SlowArchive(arc)
        ae = dimse.make_ae("PACSCORE")
        server = ae.start_server(("127.0.0.1", 0), block=False, evt_handlers=dimse.handlers(slow))
        try:
            assoc = associate(server.server_address[1], ModalityWorklistInformationFind)
            cx = assoc.accepted_contexts[0]
            statuses = []
            for status, _ in assoc.send_c_find(worklist_identifier(), ModalityWorklistInformationFind, msg_id=9):
                statuses.append(status.Status)
                if len(statuses) == 1:
                    assoc.send_c_cancel(9, cx.context_id)
            assoc.release()
        finally:
            server.shutdown()
    assert statuses[0] == 0xFF00 and statuses[-1] == 0xFE00
    assert len(statuses) - 1 < 12 and slow.worklist.produced < 12


def test_max_results_refuses_a_broad_worklist_query_with_a700(tmp_path):
    with pacscore.open(tmp_path / "arc") as arc:
        for i in range(3):
            arc.worklist.add(make_item(f"P{i}", f"{UID}.{i}", f"S{i}"))
        server = dimse.serve(arc, port=0, block=False, max_results=2)
        try:
            statuses, results = find(server.server_address[1], worklist_identifier())
        finally:
            server.shutdown()
    assert statuses == [0xA700] and "too many matches" in results[0].ErrorComment


# -- DCMTK ---------------------------------------------------------------------------------------
needs_findscu = pytest.mark.skipif(dcmtk("findscu") is None, reason="DCMTK's findscu is not installed")


def findscu_worklist(port: int, keys: list[str], out_dir, *extra: str) -> tuple[object, list[Dataset]]:
    out_dir.mkdir(parents=True, exist_ok=True)
    args = ["findscu", "-W", *extra, "-aet", "MODALITY", "-aec", "PACSCORE", "-X", "-od", str(out_dir)]
    for key in keys:
        args += ["-k", key]
    proc = run([*args, "127.0.0.1", str(port)], timeout=60)
    return proc, [pydicom.dcmread(f) for f in sorted(out_dir.glob("rsp*.dcm"))]


@needs_findscu
def test_findscu_worklist_query_by_modality_and_station(served, tmp_path):
    _arc, port = served
    keys = [
        "PatientName",
        "PatientID",
        "StudyInstanceUID",
        "ScheduledProcedureStepSequence[0].Modality=CT",
        "ScheduledProcedureStepSequence[0].ScheduledStationAETitle=CT02",
        "ScheduledProcedureStepSequence[0].ScheduledProcedureStepStartDate",
        "ScheduledProcedureStepSequence[0].ScheduledProcedureStepID",
    ]
    proc, found = findscu_worklist(port, keys, tmp_path / "rsp")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    [ds] = found
    assert ds.PatientID == "P3" and ds.StudyInstanceUID == f"{UID}.3"
    step = ds.ScheduledProcedureStepSequence[0]
    assert (step.Modality, step.ScheduledProcedureStepStartDate, step.ScheduledProcedureStepID) == (
        "CT",
        "20260316",
        "S3",
    )


@needs_findscu
def test_findscu_worklist_date_range_and_unicode_name(served, tmp_path):
    _arc, port = served
    keys = [
        "PatientName",
        "PatientID",
        "ScheduledProcedureStepSequence[0].ScheduledProcedureStepStartDate=20260301-20260315",
        "ScheduledProcedureStepSequence[0].Modality",
    ]
    proc, found = findscu_worklist(port, keys, tmp_path / "rsp")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert sorted(ds.PatientID for ds in found) == ["P1", "P2"]
    assert {str(ds.PatientName) for ds in found} == {"Müller^Jörg", "Roe^Jane"}


@needs_findscu
def test_findscu_worklist_bad_date_is_refused(served, tmp_path):
    _arc, port = served
    keys = ["PatientID", "ScheduledProcedureStepSequence[0].ScheduledProcedureStepStartDate=2026XX01"]
    proc, found = findscu_worklist(port, keys, tmp_path / "rsp", "-v")
    assert found == []
    log = proc.stdout + proc.stderr
    assert "Final Find Response (Error: DataSetDoesNotMatchSOPClass)" in log, log  # DCMTK's name of A900
