"""The compact index (schema 7): an instance's record and header kept as one zstd frame
compressed with a dictionary trained on the archive, ``Archive.compact()`` rewriting the index
with full pages and a fresh dictionary. Every answer stays what it was without compression; an
archive of an older schema keeps working; a missing or damaged dictionary is reported, never
guessed around; a compact killed at any point loses no acknowledged instance."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

import pacscore
from pacscore.cli import main as cli
from pacscore.errors import StorageError
from pacscore.index import compression
from pacscore.index.compact import TMP_SUFFIX
from pacscore.index.lmdb_index import SCHEMA_VERSION, Index
from pacscore.testing.generate import first_instances

ROOT = Path(__file__).resolve().parents[1]
TRAIN_AT = 60  # small archives get a dictionary too (the default waits for 1,000 instances)
INSTANCES = first_instances(240, seed=7)


@pytest.fixture
def small_train(monkeypatch):
    monkeypatch.setattr(compression, "TRAIN_AT", TRAIN_AT)


def store(folder: Path, data: list[bytes]) -> None:
    with pacscore.open(folder) as arc:
        for i in range(0, len(data), 50):  # batches: the dictionary comes after the first ones
            report = arc.store_many(data[i : i + 50], workers=1)
            assert not report.rejected


QUERIES = [
    ({"PatientName": "", "PatientID": "", "StudyDate": "", "ModalitiesInStudy": ""}, "STUDY"),
    ({"Modality": "", "SeriesDescription": "", "NumberOfSeriesRelatedInstances": ""}, "SERIES"),
    (
        {"SOPInstanceUID": "", "SOPClassUID": "", "InstanceNumber": "", "ContentDate": "", "ContentTime": ""},
        "IMAGE",
    ),
    ({"SOPClassUID": "1.2.840.10008.5.1.4.1.1.2", "InstanceNumber": ""}, "IMAGE"),
    ({"InstanceNumber": "1-3", "SOPInstanceUID": ""}, "IMAGE"),
]


def answers(folder: Path) -> dict:
    """Everything a user can read of an archive: query answers at every level, each instance's
    header (as DICOM JSON) and stored bytes."""
    with pacscore.open(folder, readonly=True) as arc:
        out: dict = {repr(q): list(arc.find(q, level=level, format="json", relational=True)) for q, level in QUERIES}
        sops = sorted(
            r["SOPInstanceUID"] for r in arc.find({"SOPInstanceUID": ""}, level="IMAGE", format="dict", relational=True)
        )
        out["metadata"] = {sop: arc.metadata(sop) for sop in sops}
        out["bytes"] = {sop: arc.get(sop) for sop in sops[::17]}
    return out


@pytest.fixture(scope="module")
def reference(tmp_path_factory) -> dict:
    """The answers of the same instances stored without any compression (TRAIN_AT as shipped)."""
    folder = tmp_path_factory.mktemp("plain") / "arc"
    store(folder, INSTANCES)
    with _index(folder) as index, index.env.begin() as txn:
        assert compression.current(txn, index.db("meta"), "instance") is None
    return answers(folder)


class _index:
    def __init__(self, folder: Path, readonly: bool = True) -> None:
        self.index = Index(folder / "index", readonly=readonly)

    def __enter__(self) -> Index:
        return self.index

    def __exit__(self, *exc) -> None:
        self.index.close()


def forms(folder: Path) -> tuple[int, int, int]:
    """(compressed instance values, plain instance records, headers in the header database)."""
    with _index(folder) as index, index.env.begin() as txn:
        values = [bytes(v) for v in txn.cursor(db=index.db("instance")).iternext(keys=False)]
        headers = txn.stat(index.db("header"))["entries"]
    packed = sum(compression.is_compressed(v) for v in values)
    return packed, len(values) - packed, headers


def dictionary_ids(folder: Path) -> list[int]:
    with _index(folder) as index, index.env.begin() as txn:
        return compression.dictionaries(txn, index.db("meta"))


def test_instances_after_the_first_dictionary_are_compressed_bundles_with_the_same_answers(
    tmp_path, small_train, reference
):
    folder = tmp_path / "arc"
    store(folder, INSTANCES)
    packed, plain, headers = forms(folder)
    assert packed > 0 and plain > 0  # the batches before the dictionary stay as they were
    assert headers == plain  # the compressed ones carry their header in their bundle
    assert len(dictionary_ids(folder)) == 1
    assert answers(folder) == reference


def test_compact_rewrites_every_instance_compressed_with_full_pages_and_the_same_answers(
    tmp_path, small_train, reference
):
    folder = tmp_path / "arc"
    store(folder, INSTANCES)
    first = dictionary_ids(folder)
    with pacscore.open(folder) as arc:
        report = arc.compact()
        assert report.trained == ["instance"]
        assert report.bytes_after < report.bytes_before
        assert report.entries["instance"] == len(INSTANCES)
    assert forms(folder) == (len(INSTANCES), 0, 0)
    retrained = dictionary_ids(folder)
    assert len(retrained) == 1 and retrained != first  # trained again; the old one is gone
    assert answers(folder) == reference
    assert not folder.joinpath("index" + TMP_SUFFIX).exists()


def test_an_archive_keeps_working_after_compact_stores_deletes_and_a_second_compact(tmp_path, small_train):
    folder = tmp_path / "arc"
    store(folder, INSTANCES[:120])
    with pacscore.open(folder) as arc:
        arc.compact()
        arc.store_many(INSTANCES[120:], workers=1)
        gone = next(arc.find({"SOPInstanceUID": ""}, level="IMAGE", format="dict", relational=True))["SOPInstanceUID"]
        arc.delete(instance=gone)
        arc.compact()
        assert arc.count({}, level="IMAGE", relational=True) == len(INSTANCES) - 1
        with pytest.raises(pacscore.NotFound):
            arc.get(gone)
        assert arc.verify().status == "clean"


def test_a_backup_of_a_compressed_archive_carries_its_dictionary(tmp_path, small_train, reference):
    folder = tmp_path / "arc"
    store(folder, INSTANCES)
    with pacscore.open(folder) as arc:
        arc.compact()
        arc.backup(tmp_path / "backup")
    restored, report = pacscore.restore(tmp_path / "backup", tmp_path / "restored")
    restored.close()
    assert report.status == "clean"
    assert answers(tmp_path / "restored") == reference


def test_compact_keeps_the_worklist_databases_of_the_environment(tmp_path, small_train):
    from .worklist_items import make_item

    folder = tmp_path / "arc"
    store(folder, INSTANCES[:100])
    with pacscore.open(folder) as arc:
        key = arc.worklist.add(
            make_item("P1", "1.2.826.0.1.3680043.2.1125.9.1", "S1", "CT", "20260315", "093000", "CT01", "Doe^John")
        )
        query = {"PatientID": "P1", "PatientName": ""}  # answered through the worklist's own index
        before = arc.worklist.find(query, format="json")
        assert len(before) == 1
        report = arc.compact()
        assert report.entries["worklist"] == 1 and report.entries["worklist_idx"] > 0
        assert arc.worklist.keys() == [key]
        assert arc.worklist.find(query, format="json") == before


def test_compact_without_enough_instances_keeps_the_older_form(tmp_path, reference):
    folder = tmp_path / "arc"
    store(folder, INSTANCES)
    with pacscore.open(folder) as arc:
        report = arc.compact()
    assert report.trained == []
    assert forms(folder) == (0, len(INSTANCES), len(INSTANCES))
    assert answers(folder) == reference


def test_an_archive_of_schema_5_is_read_as_it_is_then_upgraded_to_7_at_the_first_writable_open(
    tmp_path, monkeypatch, reference
):
    folder = tmp_path / "arc"
    store(folder, INSTANCES)  # no dictionary: records and zlib headers, what schema 5 wrote
    with _index(folder, readonly=False) as index, index.env.begin(write=True) as txn:
        txn.put(b"schema", b"5", db=index.db("meta"))
    monkeypatch.setattr(compression, "TRAIN_AT", TRAIN_AT)
    assert answers(folder) == reference  # read-only: left as it is
    with _index(folder) as index, index.env.begin() as txn:
        assert bytes(txn.get(b"schema", db=index.db("meta"))) == b"5"
    with pacscore.open(folder):
        pass
    with _index(folder) as index, index.env.begin() as txn:
        assert bytes(txn.get(b"schema", db=index.db("meta"))) == str(SCHEMA_VERSION).encode() == b"7"
    assert len(dictionary_ids(folder)) == 1  # trained by the upgrade; the values wait for compact
    assert forms(folder) == (0, len(INSTANCES), len(INSTANCES))
    assert answers(folder) == reference
    with pacscore.open(folder) as arc:
        arc.compact()
    assert forms(folder) == (len(INSTANCES), 0, 0)
    assert answers(folder) == reference


def test_upgrade_passes_over_a_version_without_a_step(monkeypatch):
    from pacscore.index import migrations

    ran = []
    monkeypatch.setattr(migrations, "STEPS", {5: lambda t, d: ran.append(5), 7: lambda t, d: ran.append(7)})
    migrations.upgrade(None, {}, 4)
    assert ran == [5, 7]
    ran.clear()
    migrations.upgrade(None, {}, 6)
    assert ran == [7]


@pytest.mark.parametrize("damage", ["missing", "corrupted"])
def test_a_missing_or_corrupted_dictionary_is_a_clear_error_and_stores_nothing(tmp_path, small_train, damage):
    folder = tmp_path / "arc"
    store(folder, INSTANCES[:200])
    (dict_id,) = dictionary_ids(folder)
    key = compression.DICT_PREFIX + dict_id.to_bytes(4, "big")
    with _index(folder, readonly=False) as index, index.env.begin(write=True) as txn:
        if damage == "missing":
            txn.delete(key, db=index.db("meta"))
        else:
            stored = bytearray(txn.get(key, db=index.db("meta")))
            stored[100] ^= 0xFF
            txn.put(key, bytes(stored), db=index.db("meta"))
    reason = "is missing" if damage == "missing" else "fails its checksum"
    with pacscore.open(folder) as arc:
        with pytest.raises(StorageError, match=f"compression dictionary {dict_id} {reason}"):
            list(arc.find({"SOPInstanceUID": "", "InstanceNumber": ""}, level="IMAGE", relational=True))
        with pytest.raises(StorageError, match=f"compression dictionary {dict_id}"):
            arc.store_many(INSTANCES[200:], workers=1)
        with pytest.raises(StorageError, match=f"compression dictionary {dict_id}"):
            arc.compact()
    with _index(folder) as index, index.env.begin() as txn:  # nothing of the refused batch was written
        assert txn.stat(index.db("instance"))["entries"] == 200


def test_a_damaged_compressed_value_is_reported_not_decoded(tmp_path, small_train):
    folder = tmp_path / "arc"
    store(folder, INSTANCES[:200])
    with _index(folder, readonly=False) as index, index.env.begin(write=True) as txn:
        for key, raw in txn.cursor(db=index.db("instance")).iternext():
            if compression.is_compressed(raw):
                txn.put(bytes(key), bytes(raw)[:-20], db=index.db("instance"))
                sop = bytes(key).decode()
                break
    with pacscore.open(folder, readonly=True) as arc, pytest.raises(StorageError, match="the index is damaged"):
        arc.header(sop)


def test_compact_refuses_while_another_handle_has_the_archive_open(tmp_path, small_train):
    folder = tmp_path / "arc"
    store(folder, INSTANCES[:100])
    with pacscore.open(folder) as arc, pacscore.open(folder, readonly=True) as other:
        with pytest.raises(StorageError, match="another Archive of this process"):
            arc.compact()
        assert other.count({}, level="IMAGE", relational=True) == 100
    with pacscore.open(folder, readonly=True) as arc, pytest.raises(StorageError, match="read-only"):
        arc.compact()


KILLER = """
import os, signal, sys
sys.path.insert(0, {root!r})
import pacscore
from pacscore.index import compact, compression
compression.TRAIN_AT = {train_at}
die = lambda *a, **k: os.kill(os.getpid(), signal.SIGKILL)
where = {where!r}
if where == "copying":  # midway through the copy: after the first databases
    real, calls = compact._copy_db, []
    def copy_db(*a, **k):
        calls.append(1)
        if len(calls) == 4:
            die()
        return real(*a, **k)
    compact._copy_db = copy_db
    hook = None
elif where == "before swap":
    hook = die
else:  # right after the new file took the old one's place
    real_fsync = compact._fsync_dir
    def fsync_then_die(path):
        real_fsync(path)
        die()
    compact._fsync_dir = fsync_then_die
    hook = None
with pacscore.open({folder!r}) as arc:
    compact.compact(arc.index, before_swap=hook)
print("not killed")
"""


@pytest.mark.parametrize("where", ["copying", "before swap", "after swap"])
def test_a_compact_killed_at_any_point_loses_no_acknowledged_instance(tmp_path, small_train, reference, where):
    folder = tmp_path / "arc"
    store(folder, INSTANCES)
    code = textwrap.dedent(KILLER).format(root=str(ROOT), train_at=TRAIN_AT, where=where, folder=str(folder))
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert proc.returncode == -9, proc.stdout + proc.stderr
    assert answers(folder) == reference
    with pacscore.open(folder) as arc:  # and the archive goes on: stores, compacts again
        assert arc.verify().status == "clean"
        arc.compact()
    assert forms(folder) == (len(INSTANCES), 0, 0)
    assert answers(folder) == reference
    assert not folder.joinpath("index" + TMP_SUFFIX).exists()


def test_reindex_compact_on_the_command_line(tmp_path, small_train, capsys):
    folder = tmp_path / "arc"
    store(folder, INSTANCES[:150])
    assert cli(["reindex", "--archive", str(folder), "--compact"]) == 0
    assert "index compacted" in capsys.readouterr().out
    assert forms(folder) == (150, 0, 0)


def test_the_compression_is_the_same_in_both_implementations():
    """Compression works on the bytes of records, never on their fields: nothing to twin, but
    a bundle round-trips whatever the record codec in use."""
    record = b"\x01" + os.urandom(300)
    header = os.urandom(500)
    assert compression.unbundle(compression.bundle(record, header)) == (record, header)
    with pytest.raises(StorageError, match="not a bundle"):
        compression.unbundle(record + header)


def test_a_bundle_leaves_its_key_out_only_when_that_is_reversible():
    key = b"2.25.1234567890"
    record, header = b"\x01rec" + key + b"x", b"HDR" + key + key
    keyed = compression.bundle(record, header, key)
    assert keyed[0] == compression.KEYED_BUNDLE and key not in keyed
    assert compression.unbundle(keyed, key) == (record, header)
    with pytest.raises(StorageError, match="without its key"):
        compression.unbundle(keyed)
    clash = header + compression.KEY_MARK  # the mark itself occurs: the bundle stays whole
    whole = compression.bundle(record, clash, key)
    assert whole[0] == compression.BUNDLE
    assert compression.unbundle(whole, key) == (record, clash)
