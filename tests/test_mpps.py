"""Modality Performed Procedure Step (pacscore/workflow/mpps.py, adapters/dimse_mpps.py):
transitions, refused transitions, unknown steps, malformed attribute lists, the linked
worklist items, through the Python API and through pynetdicom as the modality (PS3.4 F.7)."""

from __future__ import annotations

import logging
import shutil
import tempfile
from pathlib import Path

import pytest
from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, rule
from pydicom.dataset import Dataset

import pacscore
from pacscore.errors import StorageError
from pacscore.workflow import NoSuchProcedureStep, ProcedureStepError
from pacscore.workflow.mpps_rules import CREATE_REQUIRED, SET_NOT_ALLOWED

from .expected_warnings import BAD_DATES, BAD_UIDS
from .workflow_helpers import (
    create_attributes,
    dimse_server,
    final_modifications,
    scheduled_item,
    series_item,
    wait_until,
)
from .worklist_items import make_item as worklist_item

STEP = "1.2.826.0.1.3680043.9.7777.60.1"
STUDY = "1.2.826.0.1.3680043.9.7777.50"
CT = "1.2.840.10008.5.1.4.1.1.2"


# -- transitions ------------------------------------------------------------------------------
def test_a_created_step_is_in_progress_and_read_back_with_its_attributes(arc):
    step = arc.mpps.create(STEP, create_attributes(), calling_ae="MODALITY1")
    assert step.status == "IN PROGRESS"
    got = arc.mpps.get(STEP)
    assert (got.status, got.calling_ae, got.sop_instance_uid) == ("IN PROGRESS", "MODALITY1", STEP)
    assert str(got.dataset.PatientName) == "Doe^Jane"
    assert got.scheduled_steps == [(STUDY, "SPS-1")]
    assert [s.sop_instance_uid for s in arc.mpps.list()] == [STEP]
    assert STEP in arc.mpps


def test_a_step_accepts_updates_in_progress_then_completes_and_is_final(arc):
    arc.mpps.create(STEP, create_attributes())
    more = Dataset()
    more.PerformedSeriesSequence = [series_item("1.2.3.4.1", (CT, "1.2.3.4.1.1"))]
    assert arc.mpps.set(STEP, more).status == "IN PROGRESS"
    done = arc.mpps.set(STEP, final_modifications())
    assert done.status == "COMPLETED"
    assert done.dataset.PerformedSeriesSequence[0].SeriesInstanceUID == "1.2.3.4.1"
    assert done.dataset.PerformedProcedureStepEndTime == "084500"
    assert arc.mpps.list(status="COMPLETED") == [arc.mpps.get(STEP)]
    assert arc.mpps.list(status="IN PROGRESS") == []


@pytest.mark.parametrize("final", ["COMPLETED", "DISCONTINUED"])
def test_a_final_step_may_no_longer_be_updated_status_0110_error_id_a710(arc, final):
    arc.mpps.create(STEP, create_attributes())
    arc.mpps.set(STEP, final_modifications(final))
    before = arc.mpps.get(STEP)
    for again in (final_modifications("IN PROGRESS"), final_modifications(final), Dataset()):
        with pytest.raises(ProcedureStepError) as err:
            arc.mpps.set(STEP, again)
        assert (err.value.status, err.value.error_id) == (0x0110, 0xA710)
        assert err.value.reason == "Performed Procedure Step Object may no longer be updated"
    assert arc.mpps.get(STEP) == before


def test_a_final_status_needs_the_end_date_and_time(arc):
    arc.mpps.create(STEP, create_attributes())
    ending = Dataset()
    ending.PerformedProcedureStepStatus = "COMPLETED"
    with pytest.raises(ProcedureStepError, match="PerformedProcedureStepEndDate") as err:
        arc.mpps.set(STEP, ending)
    assert err.value.status == 0x0121  # created empty by the N-CREATE (Type 2), no value yet
    assert arc.mpps.get(STEP).status == "IN PROGRESS"


# -- refused requests ---------------------------------------------------------------------------
def test_a_duplicate_sop_instance_uid_is_0111_and_keeps_the_first_step(arc):
    arc.mpps.create(STEP, create_attributes())
    with pytest.raises(ProcedureStepError) as err:
        arc.mpps.create(STEP, create_attributes(PatientName="Other^Name"))
    assert err.value.status == 0x0111
    assert str(arc.mpps.get(STEP).dataset.PatientName) == "Doe^Jane"


@pytest.mark.parametrize("keyword", CREATE_REQUIRED)
def test_a_missing_required_attribute_is_0120_naming_it_and_nothing_is_stored(arc, keyword):
    with pytest.raises(ProcedureStepError, match=keyword) as err:
        arc.mpps.create(STEP, create_attributes(**{keyword: None}))
    assert err.value.status == 0x0120
    assert err.value.attribute is not None
    assert arc.mpps.list() == []


@pytest.mark.parametrize("keyword", ["PerformedProcedureStepID", "Modality", "PerformedProcedureStepStartDate"])
def test_a_required_attribute_without_value_is_0121(arc, keyword):
    with pytest.raises(ProcedureStepError, match=keyword) as err:
        arc.mpps.create(STEP, create_attributes(**{keyword: ""}))
    assert err.value.status == 0x0121


def test_a_scheduled_step_item_without_study_instance_uid_is_0120(arc):
    item = scheduled_item()
    del item.StudyInstanceUID
    with pytest.raises(ProcedureStepError, match=r"StudyInstanceUID.*item 1") as err:
        arc.mpps.create(STEP, create_attributes(ScheduledStepAttributesSequence=[item]))
    assert err.value.status == 0x0120


#: times that are not TM (PS3.5 Section 6.2), sent on purpose
BAD_TIMES = pytest.mark.filterwarnings("ignore:Invalid value for VR TM:UserWarning:pydicom\\.valuerep")


@BAD_DATES
@BAD_TIMES
@pytest.mark.parametrize(
    ("keyword", "value"),
    [
        ("PerformedProcedureStepStatus", "COMPLETED"),  # F.7.2.1.3: created IN PROGRESS only
        ("PerformedProcedureStepStatus", "STARTED"),
        ("PerformedProcedureStepStartDate", "20261399"),
        ("PerformedProcedureStepStartDate", "2026-12-06"),
        ("PerformedProcedureStepStartTime", "256000"),
        ("PerformedProcedureStepEndTime", "12:00"),
    ],
)
def test_an_invalid_value_is_0106_naming_the_attribute(arc, keyword, value):
    with pytest.raises(ProcedureStepError, match=keyword) as err:
        arc.mpps.create(STEP, create_attributes(**{keyword: value}))
    assert err.value.status == 0x0106
    assert arc.mpps.list() == []


@BAD_UIDS
def test_a_scheduled_study_instance_uid_that_is_no_uid_is_0106(arc):
    with pytest.raises(ProcedureStepError, match="StudyInstanceUID") as err:
        arc.mpps.create(STEP, create_attributes(ScheduledStepAttributesSequence=[scheduled_item(study="1.2.x")]))
    assert err.value.status == 0x0106


@pytest.mark.parametrize("keyword", ["PatientID", "PerformedProcedureStepStartDate", "ScheduledStepAttributesSequence"])
def test_n_set_of_an_attribute_fixed_at_creation_is_0106_and_changes_nothing(arc, keyword):
    arc.mpps.create(STEP, create_attributes())
    before = arc.mpps.get(STEP)
    assert keyword in SET_NOT_ALLOWED
    change = Dataset()
    setattr(change, keyword, getattr(create_attributes(), keyword))
    with pytest.raises(ProcedureStepError, match=keyword) as err:
        arc.mpps.set(STEP, change)
    assert err.value.status == 0x0106
    assert arc.mpps.get(STEP) == before


def test_n_set_with_an_unknown_status_is_0106(arc):
    arc.mpps.create(STEP, create_attributes())
    with pytest.raises(ProcedureStepError, match="PerformedProcedureStepStatus") as err:
        arc.mpps.set(STEP, final_modifications("DONE"))
    assert err.value.status == 0x0106
    assert arc.mpps.get(STEP).status == "IN PROGRESS"


def test_an_unknown_step_is_0112_a_key_error(arc):
    with pytest.raises(NoSuchProcedureStep) as err:
        arc.mpps.set(STEP, final_modifications())
    assert err.value.status == 0x0112
    assert isinstance(err.value, KeyError)
    with pytest.raises(KeyError, match=STEP):
        arc.mpps.get(STEP)
    assert arc.mpps.list() == []
    assert arc.index.optional_db("mpps") is None  # refused: nothing written, not even the database
    arc.mpps.create(STEP, create_attributes())
    with pytest.raises(NoSuchProcedureStep):
        arc.mpps.set(STEP + ".9", final_modifications())


def test_malformed_attribute_lists_are_refused_by_name(arc):
    with pytest.raises(ProcedureStepError, match="not valid DICOM JSON") as err:
        arc.mpps.create(STEP, {"00400252": {"vr": "CS", "Value": "IN PROGRESS"}})  # Value must be a list
    assert err.value.status == 0x0106
    with pytest.raises(TypeError, match="Dataset or a DICOM JSON dict"):
        arc.mpps.create(STEP, b"\x00\x01")  # type: ignore[arg-type]
    with pytest.raises(ProcedureStepError, match="SOP Instance UID"):
        arc.mpps.create("", create_attributes())
    assert arc.mpps.list() == []


def test_dicom_json_attributes_are_accepted(arc):
    step = arc.mpps.create(STEP, create_attributes().to_json_dict())
    assert step.status == "IN PROGRESS"
    assert arc.mpps.set(STEP, final_modifications().to_json_dict()).status == "COMPLETED"


# -- the archive's files ------------------------------------------------------------------------
def test_reading_steps_never_creates_their_database(tmp_path):
    with pacscore.open(tmp_path / "arc") as arc:
        assert arc.mpps.list() == []
        with pytest.raises(KeyError):
            arc.mpps.get(STEP)
        assert arc.index.optional_db("mpps") is None
    with pacscore.open(tmp_path / "arc", readonly=True) as ro:
        assert ro.mpps.list() == []
        with pytest.raises(StorageError, match="read-only"):
            ro.mpps.create(STEP, create_attributes())
        assert ro.index.optional_db("mpps") is None


def test_steps_survive_reopening(tmp_path):
    with pacscore.open(tmp_path / "arc") as arc:
        arc.mpps.create(STEP, create_attributes())
        arc.mpps.set(STEP, final_modifications("DISCONTINUED"))
    with pacscore.open(tmp_path / "arc", readonly=True) as again:
        assert again.mpps.get(STEP).status == "DISCONTINUED"


# -- the linked worklist items ----------------------------------------------------------------
class RecordingWorklist:
    """Stands in for ``arc.worklist`` where only the calls matter."""

    def __init__(self, fail: bool = False) -> None:
        self.calls: list[tuple[str | None, str, str]] = []
        self.fail = fail

    def set_step_status(self, study_instance_uid, scheduled_procedure_step_id, status) -> bool:
        self.calls.append((study_instance_uid, scheduled_procedure_step_id, status))
        if self.fail:
            raise RuntimeError("worklist down")
        return True


def test_each_status_change_reaches_the_scheduled_steps_it_names(arc, monkeypatch):
    worklist = RecordingWorklist()
    monkeypatch.setattr(type(arc), "worklist", worklist, raising=False)
    two = [scheduled_item(step_id="SPS-1"), scheduled_item(step_id="SPS-2"), scheduled_item(step_id="")]
    arc.mpps.create(STEP, create_attributes(ScheduledStepAttributesSequence=two))
    more = Dataset()
    more.PerformedSeriesSequence = []
    arc.mpps.set(STEP, more)  # no status change: nothing to tell
    arc.mpps.set(STEP, final_modifications())
    assert worklist.calls == [
        (STUDY, "SPS-1", "IN PROGRESS"),
        (STUDY, "SPS-2", "IN PROGRESS"),
        (STUDY, "SPS-1", "COMPLETED"),
        (STUDY, "SPS-2", "COMPLETED"),
    ]


def test_a_failing_worklist_update_is_logged_and_the_step_stays_committed(arc, monkeypatch, caplog):
    monkeypatch.setattr(type(arc), "worklist", RecordingWorklist(fail=True), raising=False)
    with caplog.at_level(logging.ERROR, logger="pacscore.workflow"):
        arc.mpps.create(STEP, create_attributes())
    assert arc.mpps.get(STEP).status == "IN PROGRESS"
    assert "could not be set IN PROGRESS" in caplog.text


# -- over DIMSE, pynetdicom as the modality ------------------------------------------------------
def mpps_association(port: int):
    from pynetdicom import AE
    from pynetdicom.sop_class import ModalityPerformedProcedureStep

    ae = AE(ae_title="MODALITY1")
    ae.add_requested_context(ModalityPerformedProcedureStep)
    assoc = ae.associate("127.0.0.1", port, ae_title="PACSCORE")
    assert assoc.is_established
    return assoc


def test_n_create_and_n_set_over_dimse_give_the_standard_statuses(arc):
    pytest.importorskip("pynetdicom")
    from pynetdicom.sop_class import ModalityPerformedProcedureStep as MPPS

    with dimse_server(arc) as port:
        assoc = mpps_association(port)
        try:
            status, attrs = assoc.send_n_create(create_attributes(), MPPS, STEP)
            assert status.Status == 0x0000
            assert attrs.PerformedProcedureStepStatus == "IN PROGRESS"
            status, _ = assoc.send_n_create(create_attributes(), MPPS, STEP)
            assert status.Status == 0x0111
            status, _ = assoc.send_n_create(create_attributes(Modality=None), MPPS, STEP + ".2")
            assert status.Status == 0x0120
            assert "Modality" in status.ErrorComment
            status, _ = assoc.send_n_set(final_modifications(), MPPS, STEP + ".3")
            assert status.Status == 0x0112
            status, attrs = assoc.send_n_set(final_modifications(), MPPS, STEP)
            assert status.Status == 0x0000
            assert attrs.PerformedProcedureStepStatus == "COMPLETED"
            status, _ = assoc.send_n_set(final_modifications(), MPPS, STEP)
            assert (status.Status, status.ErrorID) == (0x0110, 0xA710)
            assert status.ErrorComment == "Performed Procedure Step Object may no longer be updated"
            change = Dataset()
            change.PatientID = "X"
            status, _ = assoc.send_n_set(change, MPPS, STEP)
            assert status.Status == 0x0110  # final first: nothing may change any more
        finally:
            assoc.release()
    assert arc.mpps.get(STEP).calling_ae == "MODALITY1"
    assert arc.mpps.get(STEP).status == "COMPLETED"


def test_n_create_without_a_sop_instance_uid_gets_one_from_the_scp(arc):
    pytest.importorskip("pynetdicom")
    from pynetdicom.sop_class import ModalityPerformedProcedureStep as MPPS

    with dimse_server(arc) as port:
        assoc = mpps_association(port)
        try:
            # pynetdicom sends no Affected SOP Instance UID when given none
            status, _ = assoc.send_n_create(create_attributes(), MPPS, None)
            assert status.Status == 0x0000
        finally:
            assoc.release()
    (step,) = arc.mpps.list()
    assert step.sop_instance_uid.startswith("1.2.826.0.1.3680043.8.498.")  # pydicom's generate_uid root


def test_the_worklist_item_follows_the_step_and_queries_filter_on_it(arc):
    from .worklist_items import step_key

    arc.worklist.add(worklist_item(patient_id="P-50", study=STUDY, step_id="SPS-1"))
    arc.worklist.add(worklist_item(patient_id="P-51", study=STUDY + ".1", step_id="SPS-9"))

    def patients(status: str) -> list[str]:
        return sorted(ds.PatientID for ds in arc.worklist.find(step_key(ScheduledProcedureStepStatus=status)))

    assert patients("SCHEDULED") == ["P-50", "P-51"]
    arc.mpps.create(STEP, create_attributes())
    assert (patients("IN PROGRESS"), patients("SCHEDULED")) == (["P-50"], ["P-51"])
    arc.mpps.set(STEP, final_modifications("DISCONTINUED"))
    assert (patients("DISCONTINUED"), patients("IN PROGRESS")) == (["P-50"], [])
    other = STEP + ".2"
    arc.mpps.create(other, create_attributes(ScheduledStepAttributesSequence=[scheduled_item(STUDY + ".1", "SPS-9")]))
    arc.mpps.set(other, final_modifications("COMPLETED"))
    assert patients("COMPLETED") == ["P-51"]


def test_an_unscheduled_step_leaves_the_worklist_alone(arc, caplog):

    key = arc.worklist.add(worklist_item(patient_id="P-50", study=STUDY, step_id="SPS-1"))
    with caplog.at_level(logging.INFO, logger="pacscore.workflow"):
        arc.mpps.create(STEP, create_attributes(ScheduledStepAttributesSequence=[scheduled_item(step_id="SPS-404")]))
    assert "names no worklist item" in caplog.text
    assert arc.worklist.get(key).ScheduledProcedureStepSequence[0].ScheduledProcedureStepStatus == "SCHEDULED"


# -- any sequence of requests agrees with a model of the state table (PS3.4 F.1.5) -------------
class StepsAgainstTheStateTable(RuleBasedStateMachine):
    """N-CREATEs and N-SETs in any order on a few steps, each scheduled on the worklist: the
    archive's answers, its steps and its worklist statuses follow a plain dict of statuses."""

    UIDS = tuple(f"{STEP}.{i}" for i in range(3))

    def __init__(self) -> None:
        super().__init__()
        self.folder = tempfile.mkdtemp(prefix="pacscore-mpps-")
        self.arc = pacscore.open(Path(self.folder) / "arc")
        self.model: dict[str, str] = {}
        for i in range(len(self.UIDS)):
            self.arc.worklist.add(worklist_item(patient_id=f"P-{i}", study=f"{STUDY}.{i}", step_id=f"SPS-{i}"))

    @staticmethod
    def scheduled(i: int) -> list[Dataset]:
        return [scheduled_item(study=f"{STUDY}.{i}", step_id=f"SPS-{i}")]

    @rule(i=st.integers(0, 2))
    def n_create(self, i: int) -> None:
        uid = self.UIDS[i]
        try:
            self.arc.mpps.create(uid, create_attributes(ScheduledStepAttributesSequence=self.scheduled(i)))
        except ProcedureStepError as err:
            assert uid in self.model and err.status == 0x0111
        else:
            assert uid not in self.model
            self.model[uid] = "IN PROGRESS"

    @rule(i=st.integers(0, 2), status=st.sampled_from([None, "IN PROGRESS", "COMPLETED", "DISCONTINUED"]))
    def n_set(self, i: int, status: str | None) -> None:
        uid = self.UIDS[i]
        modifications = final_modifications(status) if status else Dataset()
        try:
            step = self.arc.mpps.set(uid, modifications)
        except NoSuchProcedureStep:
            assert uid not in self.model
        except ProcedureStepError as err:
            assert self.model[uid] in ("COMPLETED", "DISCONTINUED")
            assert (err.status, err.error_id) == (0x0110, 0xA710)
        else:
            assert self.model.get(uid) == "IN PROGRESS"
            assert step.status == (status or "IN PROGRESS")
            self.model[uid] = step.status

    @invariant()
    def the_archive_agrees(self) -> None:
        assert {s.sop_instance_uid: s.status for s in self.arc.mpps.list()} == self.model
        for i, uid in enumerate(self.UIDS):
            item = self.arc.worklist.get(f"{STUDY}.{i}:SPS-{i}")
            assert item.ScheduledProcedureStepSequence[0].ScheduledProcedureStepStatus == self.model.get(
                uid, "SCHEDULED"
            )

    def teardown(self) -> None:
        self.arc.close()
        shutil.rmtree(self.folder, ignore_errors=True)


TestStepsAgainstTheStateTable = StepsAgainstTheStateTable.TestCase
TestStepsAgainstTheStateTable.settings = settings(max_examples=25, stateful_step_count=15, deadline=None)


@BAD_DATES
def test_the_dimse_log_names_the_attribute_but_no_value_or_uid_without_log_phi(arc, caplog):
    pytest.importorskip("pynetdicom")
    from pynetdicom.sop_class import ModalityPerformedProcedureStep as MPPS

    with caplog.at_level(logging.INFO, logger="pacscore.dimse"), dimse_server(arc) as port:
        assoc = mpps_association(port)
        try:
            bad = create_attributes(PerformedProcedureStepStartDate="20261399")
            assert assoc.send_n_create(bad, MPPS, STEP)[0].Status == 0x0106
            assert assoc.send_n_create(create_attributes(), MPPS, STEP)[0].Status == 0x0000
        finally:
            assoc.release()

    def text() -> str:  # the release is logged from the server's thread, after the client's release
        return "\n".join(r.getMessage() for r in caplog.records if r.name == "pacscore.dimse")

    wait_until(lambda: "released after" in text(), "the association's last log line")
    assert "refused: 0x0106 (PerformedProcedureStepStartDate)" in text() and "IN PROGRESS" in text()
    assert "assoc 1 MODALITY1@127.0.0.1:" in text() and "released after 2 requests" in text()
    assert STEP not in text() and "20261399" not in text()


def test_a_step_the_archive_cannot_write_is_0110_over_dimse(tmp_path):
    pytest.importorskip("pynetdicom")
    from pynetdicom.sop_class import ModalityPerformedProcedureStep as MPPS

    pacscore.open(tmp_path / "arc").close()
    with pacscore.open(tmp_path / "arc", readonly=True) as ro, dimse_server(ro) as port:
        assoc = mpps_association(port)
        try:
            status, _ = assoc.send_n_create(create_attributes(), MPPS, STEP)
        finally:
            assoc.release()
        assert status.Status == 0x0110 and "could not store the step" in status.ErrorComment
        assert ro.mpps.list() == []


def test_text_in_another_character_set_is_kept_decoded(arc):
    pytest.importorskip("pynetdicom")
    from pynetdicom.sop_class import ModalityPerformedProcedureStep as MPPS

    with dimse_server(arc) as port:
        assoc = mpps_association(port)
        try:
            latin1 = create_attributes(SpecificCharacterSet="ISO_IR 100", PatientName="Müller^Jürgen")
            assert assoc.send_n_create(latin1, MPPS, STEP)[0].Status == 0x0000
            comment = Dataset()
            comment.SpecificCharacterSet = "ISO_IR 100"
            comment.CommentsOnThePerformedProcedureStep = "Kontrastmittel verzögert"
            assert assoc.send_n_set(comment, MPPS, STEP)[0].Status == 0x0000
        finally:
            assoc.release()
    ds = arc.mpps.get(STEP).dataset
    assert str(ds.PatientName) == "Müller^Jürgen"
    assert ds.CommentsOnThePerformedProcedureStep == "Kontrastmittel verzögert"
    assert ds.SpecificCharacterSet == "ISO_IR 192"


def test_backup_and_restore_keep_the_steps_and_the_pending_reports(tmp_path):
    with pacscore.open(tmp_path / "arc") as arc:
        arc.mpps.create(STEP, create_attributes())
        arc.mpps.set(STEP, final_modifications())
        arc.commitments.accept("2.25.99", [(CT, "1.2.3.4.5")], "CT01")
        arc.backup(tmp_path / "backup")
    pacscore.restore(tmp_path / "backup", tmp_path / "restored")
    with pacscore.open(tmp_path / "restored") as restored:
        assert [(s.sop_instance_uid, s.status) for s in restored.mpps.list()] == [(STEP, "COMPLETED")]
        assert [r.transaction_uid for r in restored.commitments.pending()] == ["2.25.99"]
