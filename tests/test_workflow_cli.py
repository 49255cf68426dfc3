"""``pacscore workflow mpps | pending | retry`` (pacscore/cli_workflow.py): the steps and the
undelivered storage commitment reports an archive keeps, and a retry that delivers them."""

from __future__ import annotations

import json

import pytest

import pacscore
from pacscore.cli import main

from .factories import CT_IMAGE, make_instance, to_bytes
from .workflow_helpers import create_attributes, final_modifications

STEP = "1.2.826.0.1.3680043.9.7777.85.1"
SOP = "1.2.826.0.1.3680043.9.7777.85.2.1"


@pytest.fixture
def folder(tmp_path):
    with pacscore.open(tmp_path / "arc") as arc:
        arc.mpps.create(STEP, create_attributes())
        arc.mpps.create(STEP + ".2", create_attributes())
        arc.mpps.set(STEP + ".2", final_modifications("DISCONTINUED"))
        arc.store(to_bytes(make_instance(sop=SOP, study="1.2.826.0.1.3680043.9.7777.85", series="1.2.3.85")))
        arc.commitments.request("2.25.85", [(CT_IMAGE, SOP)], "CT01")
    return str(tmp_path / "arc")


def test_mpps_lists_the_steps_and_filters_on_status(folder, capsys):
    assert main(["workflow", "mpps", "--archive", folder]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0].split()[:2] == ["SOPInstanceUID", "Status"]
    rows = [line.split()[:3] for line in out[1:]]
    assert rows == [[STEP, "IN", "PROGRESS"], [STEP + ".2", "DISCONTINUED", "MODALITY1"]]
    assert main(["workflow", "mpps", "--archive", folder, "--status", "DISCONTINUED", "--json"]) == 0
    (step,) = json.loads(capsys.readouterr().out)
    assert step["SOPInstanceUID"] == STEP + ".2" and step["00400252"]["Value"] == ["DISCONTINUED"]


def test_pending_lists_the_undelivered_reports(folder, capsys):
    assert main(["workflow", "pending", "--archive", folder, "--json"]) == 0
    (report,) = json.loads(capsys.readouterr().out)
    assert (report["transaction_uid"], report["requester"], report["instances"], report["checked"]) == (
        "2.25.85",
        "CT01",
        1,
        True,
    )


def test_retry_delivers_to_the_peer_given_and_says_what_is_left(folder, capsys):
    pytest.importorskip("pynetdicom")
    from .test_commitment import Reports, committed, listener

    assert main(["workflow", "retry", "--archive", folder]) == 1  # no address for CT01: kept
    assert "0 report(s) delivered, 1 pending" in capsys.readouterr().out
    reports = Reports()
    with listener(reports, "CT01") as port:
        assert main(["workflow", "retry", "--archive", folder, "--peer", f"CT01=127.0.0.1:{port}"]) == 0
        ((event_type, info, how),) = reports.wait()
    assert (event_type, how, committed(info)) == (1, "new association", [SOP])
    assert "1 report(s) delivered, 0 pending" in capsys.readouterr().out
    with pacscore.open(folder, readonly=True) as arc:
        assert arc.commitments.pending() == []


def test_an_archive_that_is_not_there_is_named(tmp_path, capsys):
    assert main(["workflow", "mpps", "--archive", str(tmp_path / "nothing")]) == 2
    assert "no archive" in capsys.readouterr().err
    assert not (tmp_path / "nothing").exists()
