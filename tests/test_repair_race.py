"""Maintenance never destroys what a writer is committing (issue 16).

A writer journals its blobs (index/pending.py) in a committed transaction before it writes them
and until the commit that indexes them; repair decides under the writer lock and leaves every
journaled blob of a live writer alone; the journal of a writer that died names its orphans, so
the next writable open removes them without walking the store. Each test below builds the
interleaving that lost data (or left orphans) before the journal existed.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time

import pytest

import pacscore
from pacscore import maintenance
from pacscore.index import pending

from .factories import make_instance, to_bytes

TESTS = os.path.dirname(__file__)


def _inst(i: int, study: str = "1.5", comment: str | None = None):
    extra = {"PatientComments": comment} if comment else {}
    return make_instance(
        sop=f"{study}.{i % 3}.{i}", study=study, series=f"{study}.{i % 3}", patient_id="P" + study, **extra
    )


def _journal(arc) -> list[pending.Pending]:
    with arc.index.read() as txn:
        return list(pending.entries(txn, arc.index.db("meta")))


def _blob_keys(folder) -> set[str]:
    """The blob keys on disk, read without opening the archive (an open cleans the journal)."""
    from pacscore.blobs.file import FileBlobStore

    with FileBlobStore(folder / "blobs") as store:
        return set(store.keys())


# -- the exact interleaving: repair between the blob write and the index commit -----------------


def test_repair_between_blob_write_and_commit_keeps_the_bytes(tmp_path):
    """verify(repair=True) runs after put_many returned and before the index commit: the blobs
    are unreferenced then. Before the journal, repair deleted them and the committed entries
    had no bytes (get raised 'missing')."""
    with pacscore.open(tmp_path / "a") as arc:
        arc.store(_inst(0))
        store = arc.blobs
        real_put_many = store.put_many
        reports = []

        def put_many_then_repair(items):
            items = list(items)
            real_put_many(items)
            reports.append((arc.verify(repair=True), [key for key, _ in items]))

        store.put_many = put_many_then_repair
        sent = {f"1.5.{i % 3}.{i}": to_bytes(_inst(i)) for i in range(1, 6)}
        report = arc.store_many(list(sent.values()), batch_size=5)
        del store.put_many
        assert sorted(report.stored) == sorted(sent)
        ((during, keys),) = reports
        assert sorted(during.in_flight) == sorted(keys) and not during.orphans, during.summary()
        assert during.removed_orphans == 0 and not during.damaged
        for uid, data in sent.items():
            assert arc.get(uid) == data  # checksum verified: the bytes are there
        after = arc.verify()
        assert after.ok and not after.orphans and not after.in_flight, after.summary()
        assert _journal(arc) == []


def test_repair_inside_a_single_store_and_a_replacement(tmp_path):
    """The same window for store() (a batch of one) and for a replacement (new bytes for a
    stored SOP Instance UID: the new blob is in flight, the old one is discarded after)."""
    with pacscore.open(tmp_path / "a") as arc:
        first = to_bytes(_inst(1))
        second = to_bytes(_inst(1, comment="new content"))
        store = arc.blobs
        real_put_many = store.put_many

        def put_many_then_repair(items):
            real_put_many(items)
            arc.verify(repair=True)

        store.put_many = put_many_then_repair
        assert arc.store(first).status == "stored"
        assert arc.get("1.5.1.1") == first
        assert arc.store(second).status == "replaced"
        del store.put_many
        assert arc.get("1.5.1.1") == second
        assert len(list(arc.blobs.keys())) == 1  # the replaced blob is gone
        assert arc.verify().ok and _journal(arc) == []


def test_a_failed_commit_keeps_the_blob_another_writer_indexed(tmp_path):
    """Two writers store the same bytes (same blob key); the first's commit fails after the
    second committed. Before, the failing writer discarded the blob the other one's entry
    points at; now a blob with an entry is never removed."""
    folder = tmp_path / "a"
    data = to_bytes(_inst(7))
    with pacscore.open(folder) as arc, pacscore.open(folder) as other:
        store = arc.blobs
        real_put_many = store.put_many

        def put_many_then_other_commits(items):
            real_put_many(items)
            assert other.store(data).status == "stored"

        def failing_write(fn):
            raise pacscore.StorageError("index write failed: simulated")

        store.put_many = put_many_then_other_commits
        write = arc._write
        calls = []

        def write_then_fail(fn, durable=True):
            calls.append(fn)
            if len(calls) == 2:  # the commit that indexes the batch (the first is the journal)
                return failing_write(fn)
            return write(fn, durable)

        arc._write = write_then_fail
        with pytest.raises(pacscore.StorageError, match="simulated"):
            arc.store(data)
        del store.put_many
        del arc._write
        assert other.get("1.5.1.7") == data
        assert arc.verify().ok and _journal(arc) == []


# -- a repair loop in one process beside a storing process ----------------------------------------

SLOW_WRITER = textwrap.dedent("""
    import sys, time
    sys.path.insert(0, {tests!r})
    import pacscore
    from factories import make_instance
    with pacscore.open({folder!r}) as arc:
        store = arc.blobs
        real_put_many = store.put_many

        def put_many(items):
            real_put_many(items)
            time.sleep(0.002)  # widen the window between blob and commit (the race, not a check)

        store.put_many = put_many
        for i in range({n}):
            uid = f"1.8.{{i % 4}}.{{i}}"
            arc.store(make_instance(sop=uid, study="1.8", series=f"1.8.{{i % 4}}"))
            print(uid, flush=True)
""")


def test_repair_loop_beside_a_storing_process(tmp_path):
    folder = tmp_path / "a"
    n = 150
    with pacscore.open(folder) as arc:
        arc.store(_inst(0))
        proc = subprocess.Popen(
            [sys.executable, "-c", SLOW_WRITER.format(tests=TESTS, folder=str(folder), n=n)],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        rounds, seen_in_flight = 0, 0
        try:
            first = proc.stdout.readline().strip()  # the writer is up: repair from now on
            while proc.poll() is None and rounds < 5000:
                report = arc.verify(repair=True, checksums=False)
                assert not report.damaged, report.summary()
                seen_in_flight += len(report.in_flight)
                rounds += 1
            out, err = proc.communicate(timeout=120)
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
        assert proc.returncode == 0, err[-2000:]
        acknowledged = [first] + out.split()
        assert len(acknowledged) == n and rounds > 0
        for uid in acknowledged:
            assert arc.get(uid)  # every acknowledged instance kept its bytes
        final = arc.verify()
        assert final.ok and final.instances == n + 1 and not final.orphans, final.summary()
        assert _journal(arc) == []


# -- writers that die: their orphans are removed at the next writable open -------------------------

KILLED = textwrap.dedent("""
    import os, signal, sys
    sys.path.insert(0, {tests!r})
    import pacscore
    from factories import make_instance
    arc = pacscore.open({folder!r})
    for i in range(3):
        arc.store(make_instance(sop=f"1.9.0.{{i}}", study="1.9", series="1.9.0"))
    store = arc.blobs

    def die(*args, **kwargs):
        print("dying", flush=True)
        os.kill(os.getpid(), signal.SIGKILL)

    if {where!r} == "store":
        real_put_many = store.put_many

        def put_many(items):
            real_put_many(items)
            die()

        store.put_many = put_many
        arc.store_many([make_instance(sop=f"1.9.1.{{i}}", study="1.9", series="1.9.1") for i in range(5)],
                       workers=1)
    else:
        store.delete = die
        arc.delete(series="1.9.0")
""")


def _run_killed(folder, where: str) -> None:
    proc = subprocess.run(
        [sys.executable, "-c", KILLED.format(tests=TESTS, folder=str(folder), where=where)],
        check=False,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == -signal.SIGKILL and "dying" in proc.stdout, proc.stderr[-2000:]


def test_writer_killed_between_blob_and_commit_leaves_no_orphan_after_open(tmp_path):
    folder = tmp_path / "a"
    _run_killed(folder, "store")
    assert len(_blob_keys(folder)) == 8  # 3 indexed + 5 written by the killed batch, never indexed
    with pacscore.open(folder) as arc:  # the writable open cleans up, no verify, no human
        assert _journal(arc) == []
        assert len(list(arc.blobs.keys())) == 3
        report = arc.verify()
        assert report.ok and report.instances == 3 and not report.orphans, report.summary()
        for i in range(3):
            assert arc.get(f"1.9.0.{i}")
        arc.store(make_instance(sop="1.9.1.0", study="1.9", series="1.9.1"))  # the lost batch can come again
        assert arc.verify().ok


def test_deleter_killed_between_commit_and_blob_removal_leaves_no_orphan_after_open(tmp_path):
    folder = tmp_path / "a"
    _run_killed(folder, "delete")
    assert len(_blob_keys(folder)) == 3  # the entries are gone, their blobs are not
    with pacscore.open(folder) as arc:
        assert _journal(arc) == [] and list(arc.blobs.keys()) == []
        report = arc.verify()
        assert report.ok and report.instances == 0, report.summary()


PAUSED = textwrap.dedent("""
    import sys
    sys.path.insert(0, {tests!r})
    import pacscore
    from factories import make_instance
    with pacscore.open({folder!r}) as arc:
        store = arc.blobs
        real_put_many = store.put_many

        def put_many(items):
            real_put_many(items)
            print("written", flush=True)
            sys.stdin.readline()  # wait between blob and commit until the test says go

        store.put_many = put_many
        arc.store_many([make_instance(sop=f"1.6.0.{{i}}", study="1.6", series="1.6.0") for i in range(4)],
                       workers=1)
        print("committed", flush=True)
""")


def test_open_and_repair_leave_a_live_writers_blobs_alone(tmp_path):
    """Another process is between its blob put and its commit: opening the archive (the
    clean-up) and verify(repair=True) both see its blobs as in flight and keep them."""
    folder = tmp_path / "a"
    with pacscore.open(folder) as arc:
        arc.store(_inst(0))
    proc = subprocess.Popen(
        [sys.executable, "-c", PAUSED.format(tests=TESTS, folder=str(folder))],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stdout.readline().strip() == "written"
        with pacscore.open(folder) as arc:
            report = arc.verify(repair=True)
            assert len(report.in_flight) == 4 and not report.orphans, report.summary()
            assert len(list(arc.blobs.keys())) == 5
            (entry,) = _journal(arc)
            assert entry.pid == proc.pid and pending.is_live(entry)
        proc.stdin.write("\n")
        proc.stdin.flush()
        assert proc.stdout.readline().strip() == "committed"
        proc.wait(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    with pacscore.open(folder) as arc:
        for i in range(4):
            assert arc.get(f"1.6.0.{i}")
        assert arc.verify().ok and _journal(arc) == []


# -- liveness of journal entries -----------------------------------------------------------------


def _entry(pid: int, start: str = "", host: str | None = None, age: float = 0.0, token: bytes = b"pending/x"):
    return pending.Pending(token, host or pending._HOST, pid, start, time.time() - age, ("k_1",))


def test_journal_entry_liveness():
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    assert not pending.is_live(_entry(dead.pid))  # the writer's pid is gone
    parent = os.getppid()
    assert pending.is_live(_entry(parent, pending._start_time(parent)))
    if pending._start_time(parent):  # /proc tells start times apart
        assert not pending.is_live(_entry(parent, "1"))  # a recycled pid is not the writer
    assert pending.is_live(_entry(12345, host="elsewhere", age=60))
    assert not pending.is_live(_entry(12345, host="elsewhere", age=pending.OTHER_HOST_GRACE + 1))
    token = pending.new_token()  # this process: its own registry
    assert pending.is_live(_entry(os.getpid(), token=token))
    pending.forget(token)
    assert not pending.is_live(_entry(os.getpid(), token=token))


def test_journal_entry_left_by_this_process_is_cleaned(tmp_path):
    """A write that failed here and could not remove its blobs (the store refused the delete)
    leaves its entry; it is stale once the call returned, so verify(repair=True) removes it."""
    with pacscore.open(tmp_path / "a") as arc:
        arc.store(_inst(0))
        store = arc.blobs
        real_delete = store.delete

        def refuse(key):
            raise OSError("read-only file system")

        store.delete = refuse
        assert arc.delete(instance="1.5.0.0") == 1
        (entry,) = _journal(arc)
        assert not pending.is_live(entry) and len(list(store.keys())) == 1
        store.delete = real_delete
        report = arc.verify(repair=True)
        assert report.journal_cleaned == 1 and report.ok, report.summary()
        assert list(store.keys()) == [] and _journal(arc) == []


def test_remove_unreferenced_keeps_referenced_and_in_flight_blobs(tmp_path):
    with pacscore.open(tmp_path / "a") as arc:
        arc.store(_inst(0))
        (indexed,) = list(arc.blobs.keys())
        arc.blobs.put("1.5.9.9_00000000000000aa", b"in flight")
        arc.blobs.put("1.5.9.8_00000000000000bb", b"orphan")
        token = pending.new_token()
        try:
            arc._write(lambda w: pending.record(w.txn, arc.index.db("meta"), token, ["1.5.9.9_00000000000000aa"]))
            outcome = maintenance.remove_unreferenced(
                arc.index, arc.blobs.delete, [indexed, "1.5.9.9_00000000000000aa", "1.5.9.8_00000000000000bb"]
            )
        finally:
            pending.forget(token)
        assert outcome.referenced == [indexed] and outcome.in_flight == ["1.5.9.9_00000000000000aa"]
        assert outcome.removed == ["1.5.9.8_00000000000000bb"]
        assert sorted(arc.blobs.keys()) == sorted([indexed, "1.5.9.9_00000000000000aa"])
        # the writer is gone now (its token forgotten): its blob is an orphan of the journal,
        # found from the journal alone (the clean-up at open never walks the store)
        real_keys = arc.blobs.keys

        def no_walk():
            raise AssertionError("the clean-up listed the store")

        arc.blobs.keys = no_walk
        assert maintenance.clean_pending(arc) == 1
        arc.blobs.keys = real_keys
        assert list(arc.blobs.keys()) == [indexed] and _journal(arc) == []


def test_backup_and_restore_carry_no_journal(tmp_path):
    """A backup taken while a writer is in its window must not carry the writer's entry: a
    restored archive sharing the blob store could otherwise remove blobs the source indexed."""
    with pacscore.open(tmp_path / "a") as arc:
        arc.store(_inst(0))
        store = arc.blobs
        real_put_many = store.put_many

        def put_many_then_backup(items):
            real_put_many(items)
            arc.backup(tmp_path / "backup")

        store.put_many = put_many_then_backup
        arc.store(_inst(1))
        del store.put_many
        assert _journal(arc) == []
    from pacscore.index.lmdb_index import Index

    copy = Index(tmp_path / "backup" / "index", readonly=True)
    try:
        with copy.read() as txn:
            assert list(pending.entries(txn, copy.db("meta"))) == []
    finally:
        copy.close()
    restored, report = pacscore.restore(tmp_path / "backup", tmp_path / "b")
    with restored:
        assert report.ok and report.instances == 1 and _journal(restored) == []


def test_a_store_that_cannot_delete_leaves_orphans_reported_not_journaled(tmp_path):
    """A write-once store (supports_deletes False): a delete leaves the blob, the journal does
    not keep asking for its removal at every open, verify reports it as an orphan (nothing
    lost) and repair says why it stays."""
    with pacscore.open(tmp_path / "a") as arc:
        arc.store(_inst(0))
        store = arc.blobs

        def refuse(key):
            raise AssertionError("a write-once store is never asked to delete")

        store.supports_deletes = False
        store.delete = refuse
        assert arc.delete(instance="1.5.0.0") == 1
        assert _journal(arc) == [] and len(list(store.keys())) == 1
        report = arc.verify(repair=True)
        assert report.status == "orphans" and report.exit_status == 3 and not report.removed_orphans
        assert any("cannot delete" in note for note in report.notes), report.summary()


# -- blobs stored under hashed keys (UIDs that are not digits and dots) ------------------------------


@pytest.mark.filterwarnings("ignore:Invalid value for VR UI:UserWarning")
def test_repair_keeps_the_blob_of_an_instance_stored_under_a_hashed_key(tmp_path):
    """A UID that is not digits and dots gets a hashed blob key (archive._blob_key), which does
    not name its UID: the check "does an entry reference this blob?" must still find the entry,
    or a repair that lists the blob as a candidate deletes a stored instance's bytes."""
    from pacscore.maintenance import remove_unreferenced

    with pacscore.open(tmp_path / "a") as arc:
        arc.store(make_instance(sop="a-hash/uid with space", study="1.7", series="1.7.1"))
        arc.store(make_instance(sop="1.7.1.2", study="1.7", series="1.7.1"))
        keys = sorted(arc.blobs.keys())
        hashed = [k for k in keys if k.startswith("u-")]
        assert len(hashed) == 1
        outcome = remove_unreferenced(arc.index, arc.blobs.delete, keys)
        assert sorted(outcome.referenced) == keys and outcome.removed == []
        assert arc.get("a-hash/uid with space")[128:132] == b"DICM"
        report = arc.verify(repair=True)
        assert report.ok and report.removed_orphans == 0, report.summary()
        arc.blobs.put("u-orphan-0123456789abcdef_0123456789abcdef", b"left by a crash")
        assert (
            "u-orphan-0123456789abcdef_0123456789abcdef"
            in remove_unreferenced(arc.index, arc.blobs.delete, ["u-orphan-0123456789abcdef_0123456789abcdef"]).removed
        )
        assert arc.get("a-hash/uid with space")[128:132] == b"DICM"
