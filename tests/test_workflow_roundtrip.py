"""Scheduling to archive, the way a modality does it (docs/workflow.md): DCMTK's findscu -W
gets the worklist item, pynetdicom reports the performed procedure step (N-CREATE, then N-SET
COMPLETED), DCMTK's storescu stores the images, pynetdicom asks for storage commitment and
receives the N-EVENT-REPORT on its association. Every step is checked on the archive too."""

from __future__ import annotations

import threading

import pydicom
import pytest
from pydicom.dataset import Dataset

from .dimse_helpers import dcmtk, run
from .factories import CT_IMAGE, make_instance, to_bytes
from .workflow_helpers import create_attributes, dimse_server, final_modifications, series_item, wait_until
from .worklist_items import make_item

pytestmark = [
    pytest.mark.interop,
    pytest.mark.skipif(
        dcmtk("findscu") is None or dcmtk("storescu") is None, reason="DCMTK's findscu and storescu are not installed"
    ),
]
pynetdicom = pytest.importorskip("pynetdicom")
from pynetdicom import AE, evt  # noqa: E402
from pynetdicom.sop_class import ModalityPerformedProcedureStep, StorageCommitmentPushModel  # noqa: E402

ROOT = "1.2.826.0.1.3680043.9.7777.80"
STUDY = f"{ROOT}.1"
SERIES = f"{ROOT}.1.1"
MPPS_UID = f"{ROOT}.9.1"
IMAGES = [f"{ROOT}.1.1.{i}" for i in (1, 2, 3)]


def findscu_worklist(port: int, out_dir) -> list[Dataset]:
    """The modality's worklist query: its AE title and modality, every attribute it needs back."""
    out_dir.mkdir(parents=True, exist_ok=True)
    keys = [
        "PatientName",
        "PatientID",
        "PatientBirthDate",
        "PatientSex",
        "StudyInstanceUID",
        "AccessionNumber",
        "RequestedProcedureID",
        "ScheduledProcedureStepSequence[0].Modality=CT",
        "ScheduledProcedureStepSequence[0].ScheduledStationAETitle=CT01",
        "ScheduledProcedureStepSequence[0].ScheduledProcedureStepID",
        "ScheduledProcedureStepSequence[0].ScheduledProcedureStepStatus",
    ]
    args = ["findscu", "-W", "-aet", "CT01", "-aec", "PACSCORE", "-X", "-od", str(out_dir)]
    for key in keys:
        args += ["-k", key]
    proc = run([*args, "127.0.0.1", str(port)], timeout=60)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return [pydicom.dcmread(f) for f in sorted(out_dir.glob("rsp*.dcm"))]


def test_a_modality_gets_its_worklist_reports_mpps_stores_and_gets_its_commitment(arc, tmp_path):
    arc.worklist.add(make_item(patient_id="P-80", study=STUDY, step_id="SPS-80", station="CT01", name="Roe^Ann"))
    arc.worklist.add(make_item(patient_id="P-81", study=f"{ROOT}.2", step_id="SPS-81", station="MR01", modality="MR"))
    reports: list[tuple[int, Dataset]] = []
    got_report = threading.Event()

    def on_report(event):
        reports.append((event.event_type, event.event_information))
        got_report.set()
        ok = Dataset()
        ok.Status = 0x0000
        return ok, None

    with dimse_server(arc) as port:
        # 1. the worklist, as DCMTK's findscu -W asks for it
        (item,) = findscu_worklist(port, tmp_path / "worklist")
        step = item.ScheduledProcedureStepSequence[0]
        assert (item.PatientID, item.StudyInstanceUID, step.ScheduledProcedureStepID) == ("P-80", STUDY, "SPS-80")
        assert step.ScheduledProcedureStepStatus == "SCHEDULED"

        ae = AE(ae_title="CT01")
        ae.add_requested_context(ModalityPerformedProcedureStep)
        ae.add_requested_context(StorageCommitmentPushModel)
        assoc = ae.associate("127.0.0.1", port, ae_title="PACSCORE", evt_handlers=[(evt.EVT_N_EVENT_REPORT, on_report)])
        assert assoc.is_established
        try:
            # 2. the performed procedure step starts, from the worklist item's values
            scheduled = Dataset()
            scheduled.StudyInstanceUID = item.StudyInstanceUID
            scheduled.ScheduledProcedureStepID = step.ScheduledProcedureStepID
            scheduled.AccessionNumber = item.AccessionNumber
            scheduled.RequestedProcedureID = item.RequestedProcedureID
            attrs = create_attributes(
                ScheduledStepAttributesSequence=[scheduled], PatientName=item.PatientName, PatientID=item.PatientID
            )
            status, _ = assoc.send_n_create(attrs, ModalityPerformedProcedureStep, MPPS_UID)
            assert status.Status == 0x0000
            assert arc.worklist.find(
                {
                    "PatientID": "P-80",
                    "ScheduledProcedureStepSequence": [{"ScheduledProcedureStepStatus": "IN PROGRESS"}],
                }
            )

            # 3. the images, stored by DCMTK's storescu
            files = []
            for n, sop in enumerate(IMAGES, 1):
                ds = make_instance(sop=sop, study=STUDY, series=SERIES, patient_id="P-80", instance_number=str(n))
                path = tmp_path / f"img{n}.dcm"
                path.write_bytes(to_bytes(ds))
                files.append(str(path))
            proc = run(["storescu", "-aet", "CT01", "-aec", "PACSCORE", "127.0.0.1", str(port), *files], timeout=60)
            assert proc.returncode == 0, proc.stdout + proc.stderr
            assert sorted(r.sop_instance_uid for r in arc.instances(study=STUDY)) == IMAGES

            # 4. the step completes, listing what it made
            done = final_modifications("COMPLETED", [series_item(SERIES, *((CT_IMAGE, sop) for sop in IMAGES))])
            status, _ = assoc.send_n_set(done, ModalityPerformedProcedureStep, MPPS_UID)
            assert status.Status == 0x0000

            # 5. storage commitment for the images, answered on this association
            request = Dataset()
            request.TransactionUID = f"{ROOT}.7.1"
            request.ReferencedSOPSequence = []
            for sop in IMAGES:
                ref = Dataset()
                ref.ReferencedSOPClassUID = CT_IMAGE
                ref.ReferencedSOPInstanceUID = sop
                request.ReferencedSOPSequence.append(ref)
            status, _ = assoc.send_n_action(request, 1, StorageCommitmentPushModel, "1.2.840.10008.1.20.1.1")
            assert status.Status == 0x0000
            wait_until(got_report.is_set, "the storage commitment report")
        finally:
            assoc.release()

        # the worklist now says the step is done (a findscu -W for COMPLETED finds it)
        (after,) = findscu_worklist(port, tmp_path / "worklist-after")
        assert after.ScheduledProcedureStepSequence[0].ScheduledProcedureStepStatus == "COMPLETED"

    ((event_type, info),) = reports
    assert event_type == 1 and info.TransactionUID == f"{ROOT}.7.1"
    assert [r.ReferencedSOPInstanceUID for r in info.ReferencedSOPSequence] == IMAGES
    assert "FailedSOPSequence" not in info
    performed = arc.mpps.get(MPPS_UID)
    assert (performed.status, performed.calling_ae, performed.scheduled_steps) == (
        "COMPLETED",
        "CT01",
        [(STUDY, "SPS-80")],
    )
    wait_until(lambda: arc.commitments.pending() == [], "the delivered report to be forgotten")
