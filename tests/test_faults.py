"""Faults the archive must survive: a full LMDB map, a full disk, damaged blobs, stale reader
slots of killed processes, and two processes writing one archive at once.

Each test states what is lost (nothing acknowledged) and what state the archive is left in
(``verify`` clean, still writable). Figures are in docs/reliability.md.
"""

from __future__ import annotations

import errno
import os
import shutil
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

import pacscore
from pacscore import StorageError
from pacscore.blobs import register_blobstore
from pacscore.blobs.file import FileBlobStore, local_path_from_url
from pacscore.index import lmdb_index

from .factories import make_instance, to_bytes

TESTS = os.path.dirname(__file__)
SMALL_MAP = 64 * 1024


def _inst(i: int, study: str = "1.5", comment: str | None = None):
    extra = {"PatientComments": comment} if comment else {}
    return make_instance(
        sop=f"{study}.{i % 5}.{i}",
        study=study,
        series=f"{study}.{i % 5}",
        patient_id="P" + study,
        patient_name=f"N{i % 3}^X",
        **extra,
    )


def _count(arc) -> int:
    return arc.count({}, level="IMAGE", relational=True)


# -- the LMDB map fills up ---------------------------------------------------------------------


def test_map_full_grows_and_loses_nothing(tmp_path, monkeypatch):
    monkeypatch.setattr(lmdb_index, "INITIAL_MAP_SIZE", SMALL_MAP)
    folder = tmp_path / "a"
    sent = {}
    with pacscore.open(folder) as arc:
        assert arc.index.env.info()["map_size"] == SMALL_MAP
        for i in range(300):  # one instance per transaction: many growths on the way
            ds = _inst(i, comment="c" * 200)
            data = to_bytes(ds)
            sent[ds.SOPInstanceUID] = data
            assert arc.store(data).status == "stored"
        # and a batch that needs several doublings inside one write transaction
        batch = [to_bytes(_inst(i, study="1.6", comment="d" * 2000)) for i in range(200)]
        report = arc.store_many(batch)
        assert len(report.stored) == 200 and not report.rejected
        grown = arc.index.env.info()["map_size"]
        assert grown >= 8 * SMALL_MAP
        assert _count(arc) == 500
        for uid, data in sent.items():
            assert arc.get(uid) == data
        assert arc.verify().ok
    # reopening with the small default keeps the data (the map is sized from the file)
    with pacscore.open(folder) as arc:
        assert arc.index.env.info()["map_size"] >= (folder / "index" / "data.mdb").stat().st_size
        assert _count(arc) == 500
        arc.store(_inst(999, study="1.7"))
        assert _count(arc) == 501 and arc.verify().ok


def test_explicit_tiny_map_size_grows(tmp_path):
    with pacscore.open(tmp_path / "a") as arc:
        arc.index.close()
        arc.index = lmdb_index.Index(tmp_path / "a" / "index", map_size=SMALL_MAP)
        arc.index.extra_index_tags = {}
        for i in range(150):
            arc.store(_inst(i, comment="e" * 500))
        assert arc.index.env.info()["map_size"] > SMALL_MAP
        assert _count(arc) == 150 and arc.verify().ok


GROWER = textwrap.dedent("""
    import sys
    sys.path.insert(0, {tests!r})
    import pacscore
    from pacscore.index import lmdb_index
    lmdb_index.INITIAL_MAP_SIZE = {small}
    from factories import make_instance
    with pacscore.open({folder!r}) as arc:
        for i in range({n}):
            arc.store(make_instance(sop=f"1.9.{{i}}", study="1.9", series="1.9.1", PatientComments="g" * 400))
""")


def test_map_grown_by_another_process_is_adopted(tmp_path, monkeypatch):
    monkeypatch.setattr(lmdb_index, "INITIAL_MAP_SIZE", SMALL_MAP)
    folder = tmp_path / "a"
    with pacscore.open(folder) as arc:  # a long-lived reader/writer (a DIMSE server, say)
        arc.store(_inst(0))
        subprocess.run(
            [sys.executable, "-c", GROWER.format(tests=TESTS, small=SMALL_MAP, folder=str(folder), n=300)],
            check=True,
            timeout=60,
        )
        assert _count(arc) == 301  # raises lmdb.MapResizedError today
        arc.store(_inst(1))
        assert arc.get("1.9.299")


# -- the disk fills up -------------------------------------------------------------------------


class FillingBlobStore(FileBlobStore):
    """A file store whose disk is 'full' after ``budget`` more puts (class-wide, so a test
    can free space again): put raises OSError(ENOSPC) as a full file system would."""

    scheme = "fillingfile"
    budget: int | None = None

    @classmethod
    def from_url(cls, url: str, root: Path) -> FillingBlobStore:
        store = cls(local_path_from_url(url, Path(root), "blobs"))
        store.url = url
        return store

    def put(self, key: str, data: bytes) -> None:
        cls = type(self)
        if cls.budget is not None:
            if cls.budget <= 0:
                raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(self.path))
            cls.budget -= 1
        super().put(key, data)

    def put_many(self, items) -> None:
        for key, data in items:
            self.put(key, data)


@pytest.fixture
def filling_store():
    register_blobstore("fillingfile", FillingBlobStore)
    FillingBlobStore.budget = None
    yield FillingBlobStore
    FillingBlobStore.budget = None


def test_disk_full_simulated_blob_store(tmp_path, filling_store):
    with pacscore.open(tmp_path / "a", blobs="fillingfile:blobs") as arc:
        for i in range(10):
            arc.store(_inst(i))
        filling_store.budget = 3
        stored, errors = [], []
        for i in range(10, 20):
            try:
                stored.append(arc.store(_inst(i)).sop_instance_uid)
            except StorageError as exc:
                errors.append(str(exc))
        assert len(stored) == 3 and len(errors) == 7
        assert all("No space left on device" in e and "blob store write failed" in e for e in errors)
        # a batch that hits the full disk half way: the whole batch is refused, none indexed
        filling_store.budget = 4
        with pytest.raises(StorageError, match="No space left"):
            arc.store_many([to_bytes(_inst(i, study="1.6")) for i in range(10)], batch_size=10)
        assert arc.count({"StudyInstanceUID": "1.6"}, level="IMAGE", relational=True) == 0
        assert _count(arc) == 13
        report = arc.verify()
        assert report.ok and not report.orphans, report.summary()  # no blob without its entry
        # space freed: the archive takes writes again, the refused instances included
        filling_store.budget = None
        for i in range(10, 20):
            arc.store(_inst(i))
        assert arc.store_many([to_bytes(_inst(i, study="1.6")) for i in range(10)]).stored
        assert _count(arc) == 30 and arc.verify().ok


@pytest.fixture
def tiny_fs(tmp_path):
    """A 1 MiB tmpfs (root only; skipped where mounting is not allowed)."""
    mnt = tmp_path / "tiny"
    mnt.mkdir()
    if not shutil.which("mount") or os.geteuid() != 0:
        pytest.skip("needs root to mount a tmpfs")
    proc = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=1m", "tmpfs", str(mnt)], capture_output=True)
    if proc.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs: {proc.stderr.decode().strip()}")
    try:
        yield mnt
    finally:
        subprocess.run(["umount", "-l", str(mnt)], check=False)


def _fill(path: Path) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT)
    try:
        while True:
            os.write(fd, b"\0" * 65536)
    except OSError as exc:
        assert exc.errno == errno.ENOSPC
    try:
        while True:
            os.write(fd, b"\0" * 512)
    except OSError:
        pass
    os.close(fd)


def test_disk_full_real_tmpfs_blobs(tiny_fs):
    """Archive and blobs on a 1 MiB file system, filled by the instances themselves."""
    stored = {}
    with pacscore.open(tiny_fs / "a") as arc:
        error = None
        for i in range(500):
            ds = _inst(i)
            ds.add_new(0x00091010, "OB", b"\0" * 20000)  # ~20 kB per instance
            data = to_bytes(ds)
            try:
                arc.store(data)
                stored[ds.SOPInstanceUID] = data
            except StorageError as exc:
                error = exc
                break
        assert (error is not None and error.errno == errno.ENOSPC) or "No space left" in str(error), error
        assert 10 < len(stored) < 500
        report = arc.verify()
        assert report.ok and report.instances == len(stored), report.summary()
        # free space by deleting some instances, then store again
        victims = sorted(stored)[:10]
        for uid in victims:
            arc.delete(instance=uid)
            del stored[uid]
        arc.store(_inst(1000))
        assert _count(arc) == len(stored) + 1
        for uid, data in stored.items():
            assert arc.get(uid) == data
        assert arc.verify().ok


def test_disk_full_real_tmpfs_index(tiny_fs, tmp_path):
    """The index's file system fills up (blobs elsewhere): commits fail with StorageError, no
    blob is left behind, and after space is freed the same archive object writes again."""
    blobs = tmp_path / "blobs"
    with pacscore.open(tiny_fs / "a", blobs=blobs.as_uri()) as arc:
        for i in range(50):
            arc.store(_inst(i))
        _fill(tiny_fs / "filler")
        errors = []
        for i in range(50, 300):
            try:
                arc.store(_inst(i, comment="x" * 3000))
            except StorageError as exc:
                errors.append(str(exc))
        assert errors and all(e.startswith("index write failed") for e in errors), errors[:3]
        survivors = _count(arc)
        assert survivors >= 50
        report = arc.verify()
        assert report.ok and not report.orphans, report.summary()  # failed commits left no blobs
        (tiny_fs / "filler").unlink()
        arc.store(_inst(1000, study="1.6"))
        assert _count(arc) == survivors + 1 and arc.verify().ok
    with pacscore.open(tiny_fs / "a") as arc:
        arc.store(_inst(1001, study="1.6"))
        assert _count(arc) == survivors + 2 and arc.verify().ok


# -- corrupted or missing blobs ----------------------------------------------------------------


def test_damaged_blobs_are_reported_and_refused(tmp_path):
    with pacscore.open(tmp_path / "a") as arc:
        uids = [arc.store(_inst(i)).sop_instance_uid for i in range(8)]
        keys = {k.split("_")[0]: k for k in arc.blobs.keys()}
        missing, truncated, flipped, emptied = uids[:4]
        arc.blobs.delete(keys[missing])
        arc.blobs.put(keys[truncated], arc.blobs.get(keys[truncated])[:100])
        data = bytearray(arc.blobs.get(keys[flipped]))
        data[len(data) // 2] ^= 0x01  # one bit, same size
        arc.blobs.put(keys[flipped], bytes(data))
        arc.blobs.put(keys[emptied], b"")
        report = arc.verify()
        assert report.missing == [missing]
        assert sorted(report.wrong_size) == sorted([truncated, emptied])
        assert report.corrupted == [flipped]
        assert report.damaged and not report.ok
        fast = arc.verify(checksums=False)  # sizes only: the bit flip is not seen
        assert fast.missing == [missing] and not fast.corrupted
        with pytest.raises(StorageError, match="missing"):
            arc.get(missing)
        for uid in (truncated, flipped, emptied):
            with pytest.raises(StorageError, match="corrupted"):
                arc.get(uid)
        assert arc.get(flipped, verify=False) == bytes(data)  # the caller can still look
        # the index still answers from its own copy of the header
        assert arc.metadata(missing)["00080018"]["Value"] == [missing]
        assert arc.count({"SOPInstanceUID": missing}, level="IMAGE", relational=True) == 1
        # healthy instances are unaffected; deleting a damaged one clears the damage
        for uid in uids[4:]:
            assert arc.get(uid)
        assert arc.delete(instance=[missing, truncated, flipped, emptied]) == 4
        report = arc.verify()
        assert report.ok and report.instances == 4, report.summary()


def test_storing_the_same_bytes_again_heals_a_missing_or_truncated_blob(tmp_path):
    with pacscore.open(tmp_path / "a") as arc:
        sent = {}
        for i in range(3):
            data = to_bytes(_inst(i))
            sent[arc.store(data).sop_instance_uid] = data
        keys = {k.split("_")[0]: k for k in arc.blobs.keys()}
        missing, truncated, _ = sorted(sent)
        arc.blobs.delete(keys[missing])
        arc.blobs.put(keys[truncated], sent[truncated][:50])
        for uid in (missing, truncated):  # the modality sends it again
            arc.store(sent[uid])
        assert arc.get(missing) == sent[missing]
        assert arc.get(truncated) == sent[truncated]
        assert arc.verify().ok


def test_temp_files_left_by_a_crashed_put_are_not_blobs(tmp_path):
    with pacscore.open(tmp_path / "a") as arc:
        arc.store(_inst(0))
        blob = next(arc.blobs.path.rglob("1.5.*"))
        (blob.parent / ".tmp-1.5.0.1_deadbeef-000000").write_bytes(b"half a blob")
        assert arc.verify().ok
        assert len(list(arc.blobs.keys())) == 1


# -- stale reader slots ------------------------------------------------------------------------

READER = textwrap.dedent("""
    import sys, time, os
    import pacscore
    arc = pacscore.open({folder!r})
    txn = arc.index.read().__enter__()          # a read snapshot held open
    list(arc.find({{}}, level="IMAGE", relational=True))
    print(os.getpid(), flush=True)
    time.sleep(60)  # hold the snapshot until the test SIGKILLs us (60 s only bounds an orphan)
""")


def _reader_pids(table: str) -> set[int]:
    """The pids in LMDB's reader table dump ("pid thread txnid" rows)."""
    return {int(row.split()[0]) for row in table.splitlines()[1:] if row.split() and row.split()[0].isdigit()}


def test_stale_reader_slots_of_killed_processes_are_cleared(tmp_path):
    """LMDB resets its reader table when the last process closes it, so stale slots matter
    while some process keeps the archive open (a server): they pin old pages and fill the
    table. Here the test process is that server; killed readers' slots are cleared by the
    next ``pacscore.open`` anywhere."""
    folder = tmp_path / "a"
    with pacscore.open(folder) as arc:
        for i in range(5):
            arc.store(_inst(i))
        pids = []
        for _ in range(3):
            proc = subprocess.Popen(
                [sys.executable, "-c", READER.format(folder=str(folder))], stdout=subprocess.PIPE, text=True
            )
            pids.append(int(proc.stdout.readline()))
            proc.send_signal(signal.SIGKILL)
            proc.wait()
        # each child's open cleared the previous child's slot; the last one is stale now
        assert pids[-1] in _reader_pids(arc.index.env.readers())
        assert not set(pids[:-1]) & _reader_pids(arc.index.env.readers())
        subprocess.run(
            [sys.executable, "-c", f"import pacscore; pacscore.open({str(folder)!r}).close()"], check=True, timeout=60
        )
        assert not set(pids) & _reader_pids(arc.index.env.readers())
        # with the stale snapshot gone, rewriting reuses pages: the file stays bounded
        before = (folder / "index" / "data.mdb").stat().st_size
        for round_ in range(5):
            for i in range(5):
                arc.store(_inst(i, comment=f"round {round_} " * 50))
        assert (folder / "index" / "data.mdb").stat().st_size <= before + 512 * 1024
        assert _count(arc) == 5 and arc.verify().ok


# -- two processes writing at once ---------------------------------------------------------------

WRITER = textwrap.dedent("""
    import sys
    sys.path.insert(0, {tests!r})
    import pacscore
    from factories import make_instance
    with pacscore.open({folder!r}) as arc:
        for i in range({n}):
            uid = f"1.{tag}.{{i % 4}}.{{i}}"
            arc.store(make_instance(sop=uid, study="1.{tag}", series=f"1.{tag}.{{i % 4}}",
                                    patient_id="P{tag}"))
            if i % 10 == 0:
                arc.count({{}}, level="STUDY")
            print(uid, flush=True)
""")


def test_two_processes_write_one_archive(tmp_path):
    folder = tmp_path / "a"
    with pacscore.open(folder) as arc:
        arc.store(_inst(0))
    n = 150
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", WRITER.format(tests=TESTS, folder=str(folder), n=n, tag=tag)],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for tag in (21, 22)
    ]
    outputs = [p.communicate(timeout=120) for p in procs]
    for p, (_out, err) in zip(procs, outputs):
        assert p.returncode == 0, err[-2000:]
    acknowledged = [line for out, _ in outputs for line in out.split()]
    assert len(acknowledged) == 2 * n
    with pacscore.open(folder) as arc:
        for uid in acknowledged:
            assert arc.get(uid)
        assert _count(arc) == 2 * n + 1
        for tag in (21, 22):
            study = arc.find(
                {"StudyInstanceUID": f"1.{tag}", "NumberOfStudyRelatedInstances": ""}, level="STUDY", format="dict"
            )
            assert [s["NumberOfStudyRelatedInstances"] for s in study] == [str(n)]
        report = arc.verify()
        assert report.ok and not report.orphans, report.summary()


def test_writer_killed_while_another_keeps_writing(tmp_path):
    folder = tmp_path / "a"
    with pacscore.open(folder) as arc:
        arc.store(_inst(0))
    survivor = subprocess.Popen(
        [sys.executable, "-c", WRITER.format(tests=TESTS, folder=str(folder), n=200, tag=31)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    victim = subprocess.Popen(
        [sys.executable, "-c", WRITER.format(tests=TESTS, folder=str(folder), n=100000, tag=32)],
        stdout=subprocess.PIPE,
        text=True,
    )
    victim_acks = []
    deadline = time.monotonic() + 1.5
    while time.monotonic() < deadline:
        line = victim.stdout.readline()
        if not line:
            break
        victim_acks.append(line.strip())
    victim.send_signal(signal.SIGKILL)  # possibly inside a write transaction: LMDB's lock is robust
    victim.wait()
    out, err = survivor.communicate(timeout=120)
    assert survivor.returncode == 0, err[-2000:]
    with pacscore.open(folder) as arc:
        report = arc.verify(repair=True)
        assert not report.damaged, report.summary()
        for uid in out.split() + victim_acks:
            assert arc.get(uid)
        arc.store(_inst(1))
        assert arc.verify().ok
