"""MPPS and storage commitment, in-process and over DIMSE (pytest-benchmark).

    pytest benchmarks/bench_workflow.py --benchmark-enable    # measure
    pytest benchmarks/bench_workflow.py                        # run once each, as plain tests

A performed procedure step from N-CREATE to COMPLETED (two write transactions each, plus the
worklist item's status), a storage commitment check of a 100-instance study (every blob read
and its checksum computed), and the same over a pynetdicom association to ``serve()``: an
N-CREATE + N-SET pair, and an N-ACTION until its N-EVENT-REPORT arrives. Each asserts its answer.
"""

from __future__ import annotations

import itertools
import threading

import pytest
from pydicom.dataset import Dataset

import pacscore
from tests.factories import CT_IMAGE, make_instance, to_bytes
from tests.workflow_helpers import create_attributes, dimse_server, final_modifications, scheduled_item

STUDY = "1.2.826.0.1.3680043.9.7777.90"
INSTANCES = 100
PIXELS = 256  # a 256 x 256 16-bit image: 128 KiB per instance


def _image(i: int) -> bytes:
    ds = make_instance(sop=f"{STUDY}.1.{i}", study=STUDY, series=f"{STUDY}.1")
    ds.Rows = ds.Columns = PIXELS
    ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 16, 12, 11, 0
    ds.SamplesPerPixel, ds.PhotometricInterpretation = 1, "MONOCHROME2"
    ds.PixelData = bytes(range(256)) * (PIXELS * PIXELS * 2 // 256)
    return to_bytes(ds)


@pytest.fixture(scope="module")
def arc(tmp_path_factory):
    with pacscore.open(tmp_path_factory.mktemp("workflow")) as archive:
        archive.store_many([_image(i) for i in range(INSTANCES)])
        archive.worklist.add_many(_worklist_item(i) for i in range(1000))
        yield archive


def _worklist_item(i: int) -> Dataset:
    ds = Dataset()
    ds.PatientID = f"P{i}"
    ds.StudyInstanceUID = f"{STUDY}.5.{i}"
    step = Dataset()
    step.Modality = "CT"
    step.ScheduledProcedureStepStartDate = "20261206"
    step.ScheduledProcedureStepID = f"SPS-{i}"
    ds.ScheduledProcedureStepSequence = [step]
    return ds


REFS = [(CT_IMAGE, f"{STUDY}.1.{i}") for i in range(INSTANCES)]
_numbers = itertools.count()


def _attributes(n: int) -> Dataset:
    i = n % 1000
    return create_attributes(ScheduledStepAttributesSequence=[scheduled_item(f"{STUDY}.5.{i}", f"SPS-{i}")])


def test_a_step_from_n_create_to_completed(benchmark, arc):
    def perform() -> str:
        n = next(_numbers)
        uid = f"{STUDY}.7.{n}"
        arc.mpps.create(uid, _attributes(n))
        return arc.mpps.set(uid, final_modifications()).status

    assert benchmark(perform) == "COMPLETED"


def test_a_commitment_check_of_a_100_instance_study(benchmark, arc):
    result = benchmark(arc.commitments.check, "2.25.9", REFS)
    assert len(result.committed) == INSTANCES and result.event_type == 1


def test_n_create_and_n_set_over_dimse(benchmark, arc):
    from pynetdicom import AE
    from pynetdicom.sop_class import ModalityPerformedProcedureStep as MPPS

    with dimse_server(arc) as port:
        ae = AE(ae_title="BENCH")
        ae.add_requested_context(MPPS)
        assoc = ae.associate("127.0.0.1", port, ae_title="PACSCORE")
        try:

            def perform() -> tuple[int, int]:
                n = next(_numbers)
                uid = f"{STUDY}.8.{n}"
                created, _ = assoc.send_n_create(_attributes(n), MPPS, uid)
                done, _ = assoc.send_n_set(final_modifications(), MPPS, uid)
                return created.Status, done.Status

            assert benchmark(perform) == (0, 0)
        finally:
            assoc.release()


def test_a_commitment_request_until_its_report_over_dimse(benchmark, arc):
    from pynetdicom import AE, evt
    from pynetdicom.sop_class import StorageCommitmentPushModel

    arrived = threading.Event()

    def on_report(event):
        arrived.set()
        ok = Dataset()
        ok.Status = 0x0000
        return ok, None

    request = Dataset()
    request.ReferencedSOPSequence = []
    for sop_class, sop in REFS:
        ref = Dataset()
        ref.ReferencedSOPClassUID, ref.ReferencedSOPInstanceUID = sop_class, sop
        request.ReferencedSOPSequence.append(ref)
    with dimse_server(arc) as port:
        ae = AE(ae_title="BENCH")
        ae.add_requested_context(StorageCommitmentPushModel)
        assoc = ae.associate("127.0.0.1", port, ae_title="PACSCORE", evt_handlers=[(evt.EVT_N_EVENT_REPORT, on_report)])
        try:

            def commit() -> bool:
                arrived.clear()
                request.TransactionUID = f"2.25.{next(_numbers)}"
                status, _ = assoc.send_n_action(request, 1, StorageCommitmentPushModel, "1.2.840.10008.1.20.1.1")
                return status.Status == 0 and arrived.wait(60)

            assert benchmark(commit)
        finally:
            assoc.release()
