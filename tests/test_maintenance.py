"""verify, backup, restore, and crash safety (blob before index)."""
from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import textwrap
import threading
import time

import pytest

import pacscore
from pacscore import StorageError
from pacscore.cli import main as cli

from .factories import make_instance, pydicom_test_files


def fill(arc, n=20, study="1.5"):
    for i in range(n):
        arc.store(make_instance(sop=f"{study}.{i % 3}.{i}", study=study, series=f"{study}.{i % 3}",
                                patient_id="P" + study, patient_name=f"N{i % 2}^X"))


def test_verify_clean_archive_is_ok(tmp_path):
    with pacscore.open(tmp_path / "a") as arc:
        fill(arc)
        report = arc.verify()
    assert report.ok and not report.damaged and report.instances == 20


def test_verify_finds_missing_corrupted_and_orphans_and_repairs_orphans(tmp_path):
    with pacscore.open(tmp_path / "a") as arc:
        fill(arc)
        keys = sorted(arc.blobs.keys())
        arc.blobs.delete(keys[0])
        data = arc.blobs.get(keys[1])
        arc.blobs.put(keys[1], data[:-1] + bytes([data[-1] ^ 0xFF]))
        arc.blobs.put("1.9.9.9_0000000000000000", b"orphan")
        report = arc.verify()
        assert len(report.missing) == 1 and len(report.corrupted) == 1
        assert report.orphans == ["1.9.9.9_0000000000000000"]
        assert report.damaged
        corrupted_uid = report.corrupted[0]
        with pytest.raises(StorageError, match="corrupted"):
            arc.get(corrupted_uid)
        with pytest.raises(StorageError, match="missing"):
            arc.get(report.missing[0])
        repaired = arc.verify(repair=True)
        assert repaired.removed_orphans == 1
        assert "1.9.9.9_0000000000000000" not in set(arc.blobs.keys())
    assert cli(["verify", "--archive", str(tmp_path / "a")]) == 1


def test_backup_delete_restore_gives_identical_instances_and_answers(tmp_path):
    src = tmp_path / "a"
    with pacscore.open(src) as arc:
        fill(arc)
        arc.store_many(sorted(pydicom_test_files().glob("*.dcm"))[:30])
        query = {"PatientName": "", "StudyDate": "", "ModalitiesInStudy": "", "NumberOfStudyRelatedInstances": ""}
        answers = list(arc.find(query, level="STUDY", format="json"))
        blobs = {r.sop_instance_uid: arc.get(r.sop_instance_uid) for r in arc.instances(study=[a["0020000D"]["Value"][0] for a in answers])}
        first = arc.backup(tmp_path / "backup")
        assert first.copied == first.instances == len(blobs)
        arc.store(make_instance(sop="1.6.0.1", study="1.6", series="1.6.0"))
        second = arc.backup(tmp_path / "backup")
        assert second.copied == 1 and second.skipped == first.instances
    import shutil
    shutil.rmtree(src)
    restored, report = pacscore.restore(tmp_path / "backup", tmp_path / "b")
    with restored:
        assert report.ok and report.instances == len(blobs) + 1
        assert [a for a in restored.find(query, level="STUDY", format="json")
                if a["0020000D"]["Value"][0] != "1.6"] == answers
        for uid, data in blobs.items():
            assert restored.get(uid) == data
    with pytest.raises(pacscore.PacsError, match="already holds"):
        pacscore.restore(tmp_path / "backup", tmp_path / "b")
    with pytest.raises(pacscore.PacsError, match="not a pacscore backup"):
        pacscore.restore(tmp_path / "nothing", tmp_path / "c")


def test_backup_while_a_writer_and_readers_work(tmp_path):
    with pacscore.open(tmp_path / "a") as arc:
        fill(arc, 10)
        stop = threading.Event()
        errors = []

        def writer():
            i = 0
            while not stop.is_set():
                try:
                    arc.store(make_instance(sop=f"1.7.0.{i}", study="1.7", series="1.7.0"))
                    arc.count({}, level="STUDY")
                except Exception as exc:  # pragma: no cover - reported below
                    errors.append(exc)
                i += 1

        t = threading.Thread(target=writer)
        t.start()
        try:
            report = arc.backup(tmp_path / "backup")
        finally:
            stop.set()
            t.join()
        assert not errors
    restored, check = pacscore.restore(tmp_path / "backup", tmp_path / "b")
    with restored:
        assert check.ok and check.instances == report.instances


CHILD = textwrap.dedent("""
    import sys, pacscore
    sys.path.insert(0, {tests!r})
    from factories import make_instance
    arc = pacscore.open({folder!r})
    for i in range(100000):
        arc.store(make_instance(sop=f"1.8.{{i % 7}}.{{i}}", study="1.8", series=f"1.8.{{i % 7}}"))
        print(f"1.8.{{i % 7}}.{{i}}", flush=True)
""")


@pytest.mark.parametrize("seed", range(4))
def test_sigkill_during_ingest_loses_nothing_acknowledged(tmp_path, seed):
    folder = tmp_path / "a"
    tests = os.path.dirname(__file__)
    proc = subprocess.Popen([sys.executable, "-c", CHILD.format(tests=tests, folder=str(folder))],
                            stdout=subprocess.PIPE, text=True)
    acknowledged = []
    deadline = time.monotonic() + random.Random(seed).uniform(0.8, 2.5)
    while time.monotonic() < deadline:
        line = proc.stdout.readline()
        if not line:
            break
        acknowledged.append(line.strip())
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    with pacscore.open(folder) as arc:
        report = arc.verify(repair=True)
        assert not report.damaged, report.summary()
        for uid in acknowledged:
            assert arc.get(uid)  # readable, checksum verified
        assert arc.count({}, level="IMAGE", relational=True) >= len(acknowledged)
        assert arc.verify().ok


def test_cli_backup_and_restore(tmp_path, capsys):
    with pacscore.open(tmp_path / "a") as arc:
        fill(arc, 5)
    assert cli(["backup", "--archive", str(tmp_path / "a"), str(tmp_path / "bk"), "-q"]) == 0
    assert cli(["restore", str(tmp_path / "bk"), str(tmp_path / "b"), "-q"]) == 0
    assert "OK" in capsys.readouterr().out
    assert cli(["verify", "--archive", str(tmp_path / "b")]) == 0
    with pacscore.open(tmp_path / "b") as arc:
        assert arc.count({}, level="IMAGE", relational=True) == 5
