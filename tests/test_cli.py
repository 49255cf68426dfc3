"""The pacscore command: ingest, find (table and JSON), get, delete, stats, errors."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from pacscore.cli import main as cli

from .factories import make_instance, to_bytes


@pytest.fixture
def folder(tmp_path):
    src = tmp_path / "src"
    src.mkdir()
    for i, (name, date, mod) in enumerate(
        [("Smith^John", "20150304", "CT"), ("Smythe^Ann", "20160101", "MR"), ("Jones^Bob", "20170707", "US")]
    ):
        (src / f"{i}.dcm").write_bytes(
            to_bytes(
                make_instance(
                    sop=f"1.2.{i}.1.1",
                    study=f"1.2.{i}",
                    series=f"1.2.{i}.1",
                    patient_id=f"P{i}",
                    patient_name=name,
                    study_date=date,
                    modality=mod,
                )
            )
        )
    (src / "junk.txt").write_text("junk")
    arc = tmp_path / "arc"
    assert cli(["ingest", "--archive", str(arc), "-q", str(src)]) == 1  # junk.txt is rejected
    return arc


def test_ingest_reports_rejected_files(folder, tmp_path, capsys):
    assert cli(["ingest", "--archive", str(tmp_path / "again"), "-q", str(tmp_path / "src")]) == 1
    out = capsys.readouterr().out
    assert "stored 3" in out and "rejected 1" in out and "junk.txt" in out


def test_find_prints_a_table(folder, capsys):
    capsys.readouterr()
    assert (
        cli(
            [
                "find",
                "--archive",
                str(folder),
                "--level",
                "STUDY",
                "PatientName=SM*",
                "StudyDate=20150101-",
                "ModalitiesInStudy=",
            ]
        )
        == 0
    )
    out = capsys.readouterr().out
    assert "Smith^John" in out and "Smythe^Ann" in out and "Jones" not in out
    assert "(2 matches)" in out


def test_find_json_is_dicom_json(folder, capsys):
    capsys.readouterr()
    assert (
        cli(["find", "--archive", str(folder), "--json", "--level", "SERIES", "StudyInstanceUID=1.2.1", "Modality="])
        == 0
    )
    results = json.loads(capsys.readouterr().out)
    assert [r["00080060"]["Value"] for r in results] == [["MR"]]


def test_get_writes_the_bytes_and_delete_removes(folder, tmp_path, capsys):
    out = tmp_path / "x.dcm"
    assert cli(["get", "--archive", str(folder), "1.2.0.1.1", "-o", str(out)]) == 0
    assert out.read_bytes()[128:132] == b"DICM"
    assert cli(["delete", "--archive", str(folder), "--study", "1.2.0"]) == 0
    capsys.readouterr()
    assert cli(["stats", "--archive", str(folder), "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["instances"] == 2


@pytest.mark.parametrize(
    "args, message",
    [
        (["find", "--level", "FOO"], "unknown level"),
        (["find", "--level", "STUDY", "NoSuchKey=1"], "NoSuchKey"),
        (["get", "9.9.9"], "no instance"),
        (["find", "--level", "STUDY", "StudyDate=2020-13-01", "-o", "invalid_keys=error"], "StudyDate"),
    ],
)
def test_errors_are_clear_and_exit_2(folder, capsys, args, message):
    capsys.readouterr()
    assert cli([args[0], "--archive", str(folder), *args[1:]]) == 2
    assert message in capsys.readouterr().err


def test_python_dash_m_runs_the_command(folder):
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "pacscore",
            "find",
            "--archive",
            str(folder),
            "--level",
            "STUDY",
            "PatientID=P2",
            "PatientName=",
        ],
        capture_output=True,
        text=True,
        check=True,
    )
    assert "Jones^Bob" in proc.stdout
