"""What ingest reports: "kept" under on_conflict="keep", replacements that move an instance to
another patient, study or series, sequences too large for a level record (MAX_SEQUENCE_BYTES),
the exit status of ``pacscore ingest`` and the level names of ``stats``."""

from __future__ import annotations

import logging

import pytest
from pydicom.dataset import Dataset
from pydicom.sequence import Sequence

import pacscore
from pacscore import ingest
from pacscore.archive import Move
from pacscore.cli import main as cli

from .factories import make_instance, to_bytes


def test_on_conflict_keep_reports_kept(tmp_path):
    first = to_bytes(make_instance(sop="1.9.1", patient_name="A"))
    second = to_bytes(make_instance(sop="1.9.1", patient_name="B"))
    with pacscore.open(tmp_path / "a", on_conflict="keep") as arc:
        assert arc.store(first).status == "stored"
        assert arc.store(first).status == "duplicate"  # the same bytes are still a duplicate
        assert arc.store(second).status == "kept"
        report = arc.store_many([second, first], workers=1)
        assert report.kept == ["1.9.1"] and report.duplicates == ["1.9.1"] and report.stored == []
        assert "kept 1" in str(report)
        assert arc.get("1.9.1") == first


def _study_record(arc, study_uid: str) -> bytes:
    with arc.index.read() as txn:
        return bytes(txn.get(study_uid.encode(), db=arc.index.db("study")))


def test_a_replacement_that_moves_an_instance_is_reported_and_logged(tmp_path, caplog):
    first = make_instance(sop="1.5.1", study="1.5", series="1.5.1", patient_id="P1")
    moved = make_instance(sop="1.5.1", study="1.6", series="1.6.1", patient_id="P2", patient_name="Roe^Jane")
    with pacscore.open(tmp_path / "a") as arc:
        arc.store(first)
        with caplog.at_level(logging.WARNING, logger="pacscore.archive"):
            result = arc.store(moved)
        assert result.status == "replaced"
        assert result.moved == Move("1.5.1", "P1\x00", "1.5", "1.5.1", "P2\x00", "1.6", "1.6.1")
        assert str(result.moved) == (
            "instance 1.5.1 moved: patient 'P1' -> 'P2', study '1.5' -> '1.6', series '1.5.1' -> '1.6.1'"
        )
        logged = [r for r in caplog.records if r.levelno == logging.WARNING and "1.5.1 moved" in r.getMessage()]
        assert len(logged) == 1 and "study '1.5' -> '1.6'" in logged[0].getMessage()
        assert "P1" not in logged[0].getMessage()  # a patient ID is PHI: the report has it, not the log
        # a replacement in place is no move
        assert (
            arc.store(
                make_instance(sop="1.5.1", study="1.6", series="1.6.1", patient_id="P2", patient_name="Roe^J")
            ).moved
            is None
        )
        report = arc.store_many(
            [to_bytes(make_instance(sop="1.5.1", study="1.6", series="1.6.2", patient_id="P2"))], workers=1
        )
        assert report.replaced == ["1.5.1"] and len(report.moved) == 1
        assert str(report.moved[0]) == "instance 1.5.1 moved: series '1.6.1' -> '1.6.2'"
        assert "moved 1" in str(report)


def test_a_move_into_a_series_of_another_study_reports_where_it_landed(tmp_path):
    """The writer keeps a known series in its first study: the report says where it really went."""
    with pacscore.open(tmp_path / "a") as arc:
        arc.store(make_instance(sop="2.1", study="2.0", series="2.0.1"))
        arc.store(make_instance(sop="3.1", study="3.0", series="3.0.1"))
        result = arc.store(make_instance(sop="2.1", study="9.9", series="3.0.1", instance_number="2"))
        assert result.moved is not None and (result.moved.to_study, result.moved.to_series) == ("3.0", "3.0.1")


def _instance_with_sequence(items: int) -> Dataset:
    ds = make_instance(sop="1.7.1", study="1.7", series="1.7.1")
    seq = Sequence()
    for i in range(items):
        item = Dataset()
        item.CodeValue = f"C{i:05d}"
        item.CodingSchemeDesignator = "99TEST"
        item.CodeMeaning = f"meaning number {i}"
        seq.append(item)
    ds.ProcedureCodeSequence = seq  # a study attribute (PS3.4 C.6.2.1.2 lists it at STUDY)
    return ds


@pytest.mark.parametrize("items", [400, 20])
def test_max_sequence_bytes_keeps_large_sequences_out_of_level_records(tmp_path, items):
    ds = _instance_with_sequence(items)
    data = to_bytes(ds)
    parsed = ingest.parse(data)
    in_records = any(0x00081032 in level for level in parsed.levels.values())
    size = ingest._json_size(
        [
            dict(CodeValue=f"C{i:05d}", CodingSchemeDesignator="99TEST", CodeMeaning=f"meaning number {i}")
            for i in range(items)
        ]
    )
    assert in_records == (size <= ingest.MAX_SEQUENCE_BYTES)
    assert in_records == (items == 20)
    with pacscore.open(tmp_path / "a") as arc:
        arc.store(data)
        study = _study_record(arc, "1.7")
        assert len(study) < ingest.MAX_SEQUENCE_BYTES + 4096  # 400 items made a 51 KB record
        assert arc.get("1.7.1") == data  # the blob keeps the whole sequence
        assert len(arc.header("1.7.1").ProcedureCodeSequence) == items  # and so does the header
        got = arc.find({"StudyInstanceUID": "1.7", "ProcedureCodeSequence": ""}, level="STUDY", format="dict")
        assert len(list(got)) == 1


def test_cli_ingest_exit_status(tmp_path, capsys):
    src = tmp_path / "src"
    src.mkdir()
    (src / "a.dcm").write_bytes(to_bytes(make_instance(sop="1.2.1")))
    assert cli(["ingest", "--archive", str(tmp_path / "arc"), "-q", str(src)]) == 0
    assert "stored 1" in capsys.readouterr().out
    (src / "b.txt").write_text("not dicom")
    assert cli(["ingest", "--archive", str(tmp_path / "arc"), "-q", str(src)]) == 1
    out = capsys.readouterr().out
    assert "duplicates 1" in out and "rejected 1" in out and "b.txt" in out
    (tmp_path / "file").write_text("x")
    assert cli(["ingest", "--archive", str(tmp_path / "file"), "-q", str(src)]) == 2  # no archive there
    assert "error" in capsys.readouterr().err


def test_stats_names_the_levels(tmp_path):
    with pacscore.open(tmp_path / "a") as arc:
        arc.store(make_instance(sop="1.2.1"))
        stats = arc.stats()
    assert (stats["patients"], stats["studies"], stats["series"], stats["instances"]) == (1, 1, 1, 1)
    assert "studys" not in stats
