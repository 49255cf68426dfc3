"""Worklist items for the worklist tests: one scheduled step each, every required attribute."""

from __future__ import annotations

from pydicom.dataset import Dataset


def make_item(
    patient_id: str = "P1",
    study: str = "1.2.826.0.1.3680043.9.7.1",
    step_id: str = "SPS1",
    modality: str = "CT",
    date: str = "20260315",
    time: str = "093000",
    station: str = "CT01",
    name: str = "Doe^John",
    accession: str | None = None,
    physician: str = "Welby^Marcus",
    status: str | None = None,
) -> Dataset:
    """A worklist item as a modality would receive it (PS3.4 K.6.1.2, Table K.6-1)."""
    ds = Dataset()
    ds.SpecificCharacterSet = "ISO_IR 192"
    ds.PatientName = name
    ds.PatientID = patient_id
    ds.PatientBirthDate = "19700101"
    ds.PatientSex = "M"
    ds.AccessionNumber = accession if accession is not None else f"ACC-{patient_id}"
    ds.RequestedProcedureID = f"RP-{patient_id}"
    ds.RequestedProcedureDescription = "CT chest"
    ds.StudyInstanceUID = study
    step = Dataset()
    step.Modality = modality
    step.ScheduledStationAETitle = station
    step.ScheduledProcedureStepStartDate = date
    step.ScheduledProcedureStepStartTime = time
    step.ScheduledPerformingPhysicianName = physician
    step.ScheduledProcedureStepDescription = "chest without contrast"
    step.ScheduledProcedureStepID = step_id
    if status is not None:
        step.ScheduledProcedureStepStatus = status
    ds.ScheduledProcedureStepSequence = [step]
    return ds


def step_key(**keys: object) -> dict:
    """An identifier that asks for the patient and filters on the scheduled step keys."""
    return {"PatientID": "", "PatientName": "", "ScheduledProcedureStepSequence": [dict(keys)]}
