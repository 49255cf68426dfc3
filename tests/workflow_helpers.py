"""MPPS attribute lists and a running DIMSE server for tests/test_mpps.py,
tests/test_commitment.py and tests/test_workflow_roundtrip.py."""

from __future__ import annotations

import contextlib
import time
from collections.abc import Iterator

from pydicom.dataset import Dataset

WAIT = 30.0  # seconds: a deadline that only bounds a failure, never a measurement


def wait_until(predicate, what: str, timeout: float = WAIT) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.02)


def scheduled_item(study: str = "1.2.826.0.1.3680043.9.7777.50", step_id: str = "SPS-1") -> Dataset:
    item = Dataset()
    item.StudyInstanceUID = study
    item.AccessionNumber = "ACC-1"
    item.RequestedProcedureID = "RP-1"
    item.RequestedProcedureDescription = "CT head"
    item.ScheduledProcedureStepID = step_id
    item.ScheduledProcedureStepDescription = "CT head plain"
    item.ScheduledProtocolCodeSequence = []
    item.ReferencedStudySequence = []
    return item


def create_attributes(**changes) -> Dataset:
    """An N-CREATE attribute list of PS3.4 Table F.7.2-1 (Type 1 and 2), IN PROGRESS; a
    keyword given as None is left out."""
    ds = Dataset()
    ds.SpecificCharacterSet = "ISO_IR 192"
    values = {
        "ScheduledStepAttributesSequence": [scheduled_item()],
        "PatientName": "Doe^Jane",
        "PatientID": "P-50",
        "PatientBirthDate": "19700101",
        "PatientSex": "F",
        "ReferencedPatientSequence": [],
        "PerformedProcedureStepID": "PPS-1",
        "PerformedStationAETitle": "MODALITY1",
        "PerformedStationName": "CT1",
        "PerformedLocation": "Room 1",
        "PerformedProcedureStepStartDate": "20261206",
        "PerformedProcedureStepStartTime": "083000",
        "PerformedProcedureStepStatus": "IN PROGRESS",
        "PerformedProcedureStepEndDate": "",
        "PerformedProcedureStepEndTime": "",
        "PerformedProcedureStepDescription": "CT head plain",
        "PerformedProcedureTypeDescription": "",
        "ProcedureCodeSequence": [],
        "Modality": "CT",
        "StudyID": "S-50",
        "PerformedProtocolCodeSequence": [],
        "PerformedSeriesSequence": [],
        **changes,
    }
    for keyword, value in values.items():
        if value is not None:
            setattr(ds, keyword, value)
    return ds


def series_item(series: str, *sops: tuple[str, str]) -> Dataset:
    item = Dataset()
    item.PerformingPhysicianName = ""
    item.ProtocolName = "Head"
    item.OperatorsName = ""
    item.SeriesInstanceUID = series
    item.SeriesDescription = ""
    item.RetrieveAETitle = ""
    refs = []
    for sop_class, sop in sops:
        ref = Dataset()
        ref.ReferencedSOPClassUID = sop_class
        ref.ReferencedSOPInstanceUID = sop
        refs.append(ref)
    item.ReferencedImageSequence = refs
    item.ReferencedNonImageCompositeSOPInstanceSequence = []
    return item


def final_modifications(status: str = "COMPLETED", series: list[Dataset] | None = None) -> Dataset:
    """An N-SET modification list that ends a step (end date and time: Final State Type 1)."""
    ds = Dataset()
    ds.PerformedProcedureStepStatus = status
    ds.PerformedProcedureStepEndDate = "20261206"
    ds.PerformedProcedureStepEndTime = "084500"
    if series is not None:
        ds.PerformedSeriesSequence = series
    return ds


@contextlib.contextmanager
def dimse_server(arc, **options) -> Iterator[int]:
    """``pacscore.adapters.dimse.serve`` on a free port of the OS; yields the port."""
    from pacscore.adapters import dimse

    server = dimse.serve(arc, "PACSCORE", 0, "127.0.0.1", block=False, **options)
    try:
        yield server.server_address[1]
    finally:
        server.shutdown()
