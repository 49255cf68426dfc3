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
from pathlib import Path

import pytest

import pacscore
from pacscore import StorageError, maintenance
from pacscore.blobs import register_blobstore
from pacscore.blobs.file import FileBlobStore, local_path_from_url
from pacscore.cli import main as cli
from pacscore.index import pending

from .factories import make_instance, pydicom_test_files


def fill(arc, n=20, study="1.5"):
    for i in range(n):
        arc.store(
            make_instance(
                sop=f"{study}.{i % 3}.{i}",
                study=study,
                series=f"{study}.{i % 3}",
                patient_id="P" + study,
                patient_name=f"N{i % 2}^X",
            )
        )


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
        blobs = {
            r.sop_instance_uid: arc.get(r.sop_instance_uid)
            for r in arc.instances(study=[a["0020000D"]["Value"][0] for a in answers])
        }
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
        assert [
            a for a in restored.find(query, level="STUDY", format="json") if a["0020000D"]["Value"][0] != "1.6"
        ] == answers
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
    proc = subprocess.Popen(
        [sys.executable, "-c", CHILD.format(tests=tests, folder=str(folder))], stdout=subprocess.PIPE, text=True
    )
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


# -- verify: capability flags, short read transactions, mirror sides, exit status ---------------


class NoListingStore(FileBlobStore):
    """A store that cannot enumerate its blobs (an object store without a list permission)."""

    scheme = "nolist"
    supports_listing = False

    @classmethod
    def from_url(cls, url, root):
        store = cls(local_path_from_url(url, Path(root), "blobs"))
        store.url = url
        return store

    def keys(self):
        raise NotImplementedError("this store cannot list its blobs")


class DownStore(FileBlobStore):
    """A side whose every call fails, as a dead disk or an unreachable bucket does."""

    scheme = "downfile"
    error: type = OSError

    @classmethod
    def from_url(cls, url, root):
        store = cls(local_path_from_url(url, Path(root), "copy"))
        store.url = url
        return store

    def _fail(self, *args, **kwargs):
        raise self.error(f"{self.url} is unreachable")

    put = put_many = get = open = delete = exists = size = keys = _fail


def _stale_entry(arc, keys):
    """A journal entry as a writer that died would have left it (its pid is gone)."""
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    token = pending.PREFIX + f"{pending._HOST}/{dead.pid}//0".encode()
    arc._write(lambda w: pending.record(w.txn, arc.index.db("meta"), token, keys))


def test_verify_store_that_cannot_list_is_noted_not_a_crash(tmp_path):
    register_blobstore("nolist", NoListingStore)
    with pacscore.open(tmp_path / "a", blobs="nolist:blobs") as arc:
        fill(arc, 5)
        report = arc.verify()  # before: keys() raised out of verify
        assert report.ok and report.instances == 5
        assert any("cannot list" in note and "orphan search skipped" in note for note in report.notes)
        assert "cannot list" in report.summary()
        # the journal still names the orphans of a writer that died
        arc.blobs.put("1.9.9.1_00000000000000cc", b"left by a killed writer")
        _stale_entry(arc, ["1.9.9.1_00000000000000cc"])
        report = arc.verify()
        assert report.orphans == ["1.9.9.1_00000000000000cc"] and report.status == "orphans"
        assert not report.damaged and report.exit_status == 3
        repaired = arc.verify(repair=True)
        assert repaired.journal_cleaned == 1 and repaired.ok, repaired.summary()
        assert not arc.blobs.exists("1.9.9.1_00000000000000cc")
        assert arc.get("1.5.0.0")


def _active_readers(env) -> list[str]:
    """Rows of LMDB's reader table of this process with a snapshot open (txnid not '-')."""
    rows = [row.split() for row in env.readers().splitlines()[1:]]
    return [" ".join(r) for r in rows if len(r) == 3 and r[0] == str(os.getpid()) and r[2] != "-"]


def test_verify_reads_no_blob_inside_a_read_transaction(tmp_path, monkeypatch):
    """Before, one read transaction was held across every blob read of a verify (hours on a
    large archive: the writers' freed pages cannot be reused meanwhile and the file grows)."""
    monkeypatch.setattr(maintenance, "ENTRY_CHUNK", 7, raising=False)
    with pacscore.open(tmp_path / "a") as arc:
        fill(arc, 20)
        store = arc.blobs
        reads, held = [], []
        for name in ("size", "get"):
            real = getattr(store, name)

            def watched(key, *args, _real=real):
                reads.append(key)
                held.extend(_active_readers(arc.index.env))
                return _real(key, *args)

            monkeypatch.setattr(store, name, watched)
        report = arc.verify()
        assert report.ok and report.instances == 20  # every chunk boundary crossed once
        assert len(reads) == 40 and held == []


def test_verify_forgets_damage_of_an_instance_deleted_meanwhile(tmp_path, monkeypatch):
    with pacscore.open(tmp_path / "a") as arc:
        fill(arc, 4)
        victim = "1.5.1.1"
        key = next(k for k in arc.blobs.keys() if k.startswith(victim + "_"))
        real_size = arc.blobs.size

        def size(k):
            if k == key:  # deleted by another user while verify is on its way to it
                assert arc.delete(instance=victim) == 1
            return real_size(k)

        monkeypatch.setattr(arc.blobs, "size", size)
        report = arc.verify()
        assert report.ok and not report.missing, report.summary()


@pytest.mark.parametrize("error", [OSError, StorageError])
def test_verify_mirror_with_its_second_side_down_reports_that_side(tmp_path, error):
    with pacscore.open(tmp_path / "a", blobs="mirror:file:blobs|file:copy") as arc:
        fill(arc, 6)
        arc.blobs.primary.put("1.9.9.2_00000000000000dd", b"orphan")
        down = DownStore(tmp_path / "a" / "copy")
        down.url, down.error = "downfile:copy", error
        arc.blobs.secondary = down
        report = arc.verify()  # before: the secondary's keys() raised out of verify
        assert not report.damaged and report.status == "degraded" and report.exit_status == 4
        primary, secondary = report.sides
        assert primary.healthy and secondary.down and "unreachable" in secondary.first_error
        assert secondary.unchecked == 6 - maintenance.DOWN_AFTER
        assert report.orphans == ["1.9.9.2_00000000000000dd"]
        assert any("downfile:copy" in note for note in report.notes)
        text = report.summary()
        assert "side downfile:copy" in text and "DEGRADED" in text
        repaired = arc.verify(repair=True)  # removes the orphan from the side that has it
        assert repaired.removed_orphans == 1 and not arc.blobs.primary.exists("1.9.9.2_00000000000000dd")
        for uid in ("1.5.0.0", "1.5.1.1", "1.5.2.5"):
            assert arc.get(uid)  # read from the live side


def test_verify_mirror_names_the_side_that_lost_a_copy(tmp_path):
    with pacscore.open(tmp_path / "a", blobs="mirror:file:blobs|file:copy") as arc:
        fill(arc, 4)
        keys = sorted(arc.blobs.primary.keys())
        arc.blobs.secondary.delete(keys[0])
        data = arc.blobs.primary.get(keys[1])
        arc.blobs.primary.put(keys[1], data[:-1] + bytes([data[-1] ^ 1]))
        report = arc.verify()
        assert not report.damaged and report.status == "degraded", report.summary()
        primary, secondary = report.sides
        assert secondary.missing == [keys[0].rpartition("_")[0]] and not secondary.corrupted
        assert primary.corrupted == [keys[1].rpartition("_")[0]] and not primary.missing
        arc.blobs.secondary.delete(keys[1])  # now no intact copy of that one is left
        assert arc.verify().corrupted == [keys[1].rpartition("_")[0]]


def test_verify_exit_status_tells_orphans_from_damage(tmp_path, capsys):
    folder = str(tmp_path / "a")
    with pacscore.open(folder, blobs="mirror:file:blobs|file:copy") as arc:
        fill(arc, 3)
    assert cli(["verify", "--archive", folder]) == 0
    with pacscore.open(folder) as arc:
        arc.blobs.primary.put("1.9.9.3_00000000000000ee", b"orphan")
    capsys.readouterr()
    assert cli(["verify", "--archive", folder]) == 3
    assert "ORPHANS ONLY: nothing lost" in capsys.readouterr().out
    assert cli(["verify", "--archive", folder, "--repair"]) == 0
    register_blobstore("downfile", DownStore)
    assert (
        cli(["verify", "--archive", folder, "--blobs", f"mirror:{(tmp_path / 'a' / 'blobs').as_uri()}|downfile:copy"])
        == 4
    )
    assert "DEGRADED" in capsys.readouterr().out
    with pacscore.open(folder, blobs="mirror:file:blobs|file:copy") as arc:
        lost = min(arc.blobs.primary.keys())
        for store in (arc.blobs.primary, arc.blobs.secondary):
            store.delete(lost)
    assert cli(["verify", "--archive", folder]) == 1
    assert "DAMAGED" in capsys.readouterr().out


def test_segment_check_streams_a_level_instead_of_loading_it(tmp_path):
    """segments.check merges the segments and the records in key order: its memory is one
    segment, not two copies of the level (before: ~2.5x the level's bytes, traced)."""
    import tracemalloc

    import lmdb

    from pacscore.index import segments

    env = lmdb.open(str(tmp_path / "env"), max_dbs=2, map_size=1 << 28)
    seg, level = env.open_db(b"segments"), env.open_db(b"study")
    n, width = 4000, 2500  # a 10 MB level
    with env.begin(write=True) as txn:
        for i in range(n):
            txn.put(b"1.2.%06d" % i, bytes([i % 251]) * width, db=level)
        segments.rebuild(txn, seg, level, "STUDY")
    with env.begin() as txn:  # bytes, not buffers: the worst case for memory
        tracemalloc.start()
        try:
            problems = segments.check(txn, seg, level, "STUDY")
            peak = tracemalloc.get_traced_memory()[1]
        finally:
            tracemalloc.stop()
    assert problems == []
    assert peak < n * width / 10, peak  # a few segments' worth, not the level
    # and it still sees every kind of disagreement
    with env.begin(write=True) as txn:
        txn.put(b"1.2.000007", b"changed", db=level)
        txn.delete(b"1.2.000100", db=level)
        txn.put(b"1.2.999999", b"new", db=level)
    with env.begin() as txn:
        (problem,) = segments.check(txn, seg, level, "STUDY")
    assert "1 missing, 1 extra, 1 different, 4000 vs 4000 entries" in problem
    env.close()
