"""``pacscore worklist add|list|remove`` (pacscore/cli_worklist.py): DCMTK/Orthanc ``.wl`` files
(made by DCMTK's dump2dcm, with and without the Part-10 header) and DICOM JSON files are added,
listed, filtered and removed; bad files are refused by name and leave the worklist unchanged."""

from __future__ import annotations

import json
import subprocess

import pytest

import pacscore
from pacscore.cli import main as cli

from .dimse_helpers import dcmtk, serve_dimse_process
from .worklist_items import make_item

#: a worklist item in dcmdump's text form, in ISO_IR 100 (Latin-1), as a RIS writes for wlmscpfs
DUMP = """\
(0008,0005) CS [ISO_IR 100]
(0008,0050) SH [ACC-WL1]
(0010,0010) PN [M\xfcller^J\xf6rg]
(0010,0020) LO [WL1]
(0020,000d) UI [1.2.826.0.1.3680043.9.9.1]
(0040,0100) SQ (Sequence with undefined length)
(fffe,e000) na (Item with undefined length)
(0008,0060) CS [MR]
(0040,0001) AE [MR01]
(0040,0002) DA [20260401]
(0040,0003) TM [0815]
(0040,0009) SH [SPS-WL1]
(fffe,e00d) na (ItemDelimitationItem)
(fffe,e0dd) na (SequenceDelimitationItem)
"""

needs_dump2dcm = pytest.mark.skipif(dcmtk("dump2dcm") is None, reason="DCMTK's dump2dcm is not installed")


@pytest.fixture
def archive(tmp_path):
    folder = tmp_path / "arc"
    assert cli(["init", "--archive", str(folder)]) == 0
    return folder


def wl(*args: str) -> list[str]:
    return ["worklist", args[0], "--archive", *args[1:]]


def dump2dcm(tmp_path, name: str, *options: str):
    dump = tmp_path / "item.dump"
    dump.write_bytes(DUMP.encode("latin-1"))
    out = tmp_path / name
    subprocess.run([dcmtk("dump2dcm"), *options, str(dump), str(out)], check=True, capture_output=True, timeout=60)
    return out


@needs_dump2dcm
@pytest.mark.parametrize("options", [(), ("-F",)], ids=["part10", "raw-dataset"])
def test_add_reads_a_dcmtk_wl_file_and_list_shows_it(archive, tmp_path, capsys, options):
    path = dump2dcm(tmp_path, "item.wl", *options)
    assert cli(wl("add", str(archive), str(path))) == 0
    assert "added 1.2.826.0.1.3680043.9.9.1:SPS-WL1" in capsys.readouterr().out
    assert cli(wl("list", str(archive))) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0].split() == ["KEY", "PatientID", "PatientName", "Modality", "Station", "Date", "Time", "Status"]
    assert out[1].split() == [
        "1.2.826.0.1.3680043.9.9.1:SPS-WL1",
        "WL1",
        "Müller^Jörg",  # decoded from Latin-1
        "MR",
        "MR01",
        "20260401",
        "0815",
        "SCHEDULED",
    ]


def test_add_reads_dicom_json_files_of_one_item_or_a_list(archive, tmp_path, capsys):
    one = tmp_path / "one.json"
    one.write_text(json.dumps(make_item("J1", "1.2.3.1", "S1").to_json_dict()))
    many = tmp_path / "many.json"
    many.write_text(json.dumps([make_item(f"J{i}", f"1.2.3.{i}", f"S{i}").to_json_dict() for i in (2, 3)]))
    assert cli(wl("add", str(archive), str(one), str(many))) == 0
    out = capsys.readouterr().out
    assert "added 1.2.3.2:S2 from " + str(many) + "[0]" in out
    with pacscore.open(archive) as arc:
        assert arc.worklist.keys() == ["1.2.3.1:S1", "1.2.3.2:S2", "1.2.3.3:S3"]


def test_list_filters_with_the_worklist_rules_and_prints_json(archive, tmp_path, capsys):
    with pacscore.open(archive) as arc:
        arc.worklist.add(make_item("P1", "1.2.3.1", "S1", "CT", "20260315", name="Doe^John"))
        arc.worklist.add(make_item("P2", "1.2.3.2", "S2", "MR", "20260316", name="Roe^Jane"))
    capsys.readouterr()
    assert cli(wl("list", str(archive), "Modality=MR")) == 0
    rows = capsys.readouterr().out.splitlines()[1:]
    assert [r.split()[1] for r in rows] == ["P2"]
    assert cli(wl("list", str(archive), "--json", "PatientName=doe*", "ScheduledProcedureStepStartDate=20260301-")) == 0
    [item] = json.loads(capsys.readouterr().out)
    assert item["00100020"]["Value"] == ["P1"] and "00400100" in item  # the whole stored item


def test_remove_deletes_by_key_and_names_unknown_keys(archive, capsys):
    with pacscore.open(archive) as arc:
        arc.worklist.add(make_item("P1", "1.2.3.1", "S1"))
    assert cli(wl("remove", str(archive), "1.2.3.1:S1", "1.2.3.9:S9")) == 2
    captured = capsys.readouterr()
    assert "removed 1.2.3.1:S1" in captured.out and "no worklist item '1.2.3.9:S9'" in captured.err
    with pacscore.open(archive) as arc:
        assert len(arc.worklist) == 0


def test_bad_files_are_refused_by_name_and_write_nothing(archive, tmp_path, capsys):
    text = tmp_path / "notes.wl"
    text.write_text("(0010,0020) LO [not binary]\n" * 10)
    bad_json = tmp_path / "bad.json"
    bad_json.write_text("{not json")
    no_step = tmp_path / "nostep.json"
    item = make_item("P9", "1.2.3.9", "S9")
    del item.ScheduledProcedureStepSequence
    no_step.write_text(json.dumps(item.to_json_dict()))
    good = tmp_path / "good.json"
    good.write_text(json.dumps(make_item("P1", "1.2.3.1", "S1").to_json_dict()))
    args = [str(text), str(bad_json), str(no_step), str(tmp_path / "missing.wl"), str(good)]
    assert cli(wl("add", str(archive), *args)) == 1
    out = capsys.readouterr().out
    assert f"refused {text}: not a DICOM file" in out
    assert f"refused {bad_json}: not JSON" in out
    assert f"refused {no_step}: ScheduledProcedureStepSequence: required" in out
    assert f"refused {tmp_path / 'missing.wl'}: " in out
    assert "added 1.2.3.1:S1" in out
    assert cli(wl("add", str(archive), str(good))) == 1  # a duplicate key
    assert "replace=True" in capsys.readouterr().out
    assert cli([*wl("add", str(archive), str(good)), "--replace"]) == 0
    with pacscore.open(archive) as arc:
        assert arc.worklist.keys() == ["1.2.3.1:S1"]


def test_a_bad_filter_exits_2_naming_the_key(archive, capsys):
    assert cli(wl("list", str(archive), "ScheduledProcedureStepStartDate=2026-13")) == 2
    assert "ScheduledProcedureStepStartDate" in capsys.readouterr().err


def test_worklist_commands_need_an_archive(tmp_path, capsys):
    assert cli(wl("list", str(tmp_path / "none"))) == 2
    assert "no archive" in capsys.readouterr().err
    assert not (tmp_path / "none").exists()


def test_items_added_by_the_cli_are_served_by_serve_dimse(archive, tmp_path):
    """The round trip a site runs: `worklist add`, then `serve dimse`; a modality asks (C-FIND
    of the Modality Worklist model) and gets the item."""
    from pydicom.dataset import Dataset
    from pynetdicom import AE
    from pynetdicom.sop_class import ModalityWorklistInformationFind

    path = tmp_path / "item.json"
    path.write_text(json.dumps(make_item("SERVED", "1.2.3.7", "S7", "US", station="US01").to_json_dict()))
    assert cli(wl("add", str(archive), str(path))) == 0
    with serve_dimse_process(archive) as (_proc, port, _logged):
        ae = AE("US01")
        ae.add_requested_context(ModalityWorklistInformationFind)
        assoc = ae.associate("127.0.0.1", port, ae_title="PACSCORE")
        assert assoc.is_established
        ident = Dataset()
        ident.PatientID = ""
        step = Dataset()
        step.ScheduledStationAETitle = "US01"
        ident.ScheduledProcedureStepSequence = [step]
        answers = [(s.Status, i) for s, i in assoc.send_c_find(ident, ModalityWorklistInformationFind)]
        assoc.release()
    assert [status for status, _ in answers] == [0xFF00, 0]
    assert answers[0][1].PatientID == "SERVED"
