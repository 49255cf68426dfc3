"""Scan segments (index/segments.py): always the exact copy of a level's records, in key order,
through random batches of puts and deletes, splits, upgrades from version 1 and damage."""

from __future__ import annotations

import os
import tempfile

import lmdb
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import pacscore
from pacscore.index import segments
from pacscore.index.lmdb_index import LEVEL_BYTE, LEVEL_DB, SCHEMA_VERSION, Index
from pacscore.index.secondary import GRAM_INDEXED
from pacscore.maintenance import verify
from pacscore.query.execute import Executor
from pacscore.query.keys import build_query
from pacscore.query.options import MatchOptions

from .factories import make_instance

keys = st.binary(min_size=1, max_size=6)
record_values = st.binary(max_size=40)
batches = st.lists(st.dictionaries(keys, st.one_of(st.none(), record_values), max_size=25), max_size=8)


def _open_env(tmp: str):
    env = lmdb.open(tmp, max_dbs=4, map_size=1 << 26)
    with env.begin(write=True) as txn:
        seg = env.open_db(b"segments", txn=txn)
        level = env.open_db(b"study", txn=txn)
    return env, seg, level


@settings(max_examples=80, deadline=None)
@given(batches, st.integers(40, 400))
def test_batches_keep_the_segments_equal_to_the_records(batches, target):
    """Every batch is written to a plain level database and to the segments; the two always hold
    the same (key, record) pairs in the same order, whatever splits and empty segments occur."""
    old = segments.TARGET_BYTES, segments.SPLIT_BYTES
    segments.TARGET_BYTES, segments.SPLIT_BYTES = target, 2 * target  # tiny: many splits
    try:
        with tempfile.TemporaryDirectory() as tmp:
            env, seg, level = _open_env(tmp)
            model: dict[bytes, bytes] = {}
            for batch in batches:
                with env.begin(write=True) as txn:
                    for key, rec in batch.items():
                        if rec is None:
                            txn.delete(key, db=level)
                            model.pop(key, None)
                        else:
                            txn.put(key, rec, db=level)
                            model[key] = rec
                    segments.apply(txn, seg, "STUDY", batch)
                with env.begin(buffers=True) as txn:
                    assert segments.check(txn, seg, level, "STUDY") == []
                    got = [(k, bytes(r)) for v in segments.values(txn, seg, "STUDY") for k, r in segments.entries(v)]
                    assert got == sorted(model.items())
                    # no segment above the split size, none of another level visible
                    assert all(
                        len(bytes(v)) <= segments.SPLIT_BYTES or len(segments.decode(v)) == 1
                        for v in segments.values(txn, seg, "STUDY")
                    )
                    assert list(segments.values(txn, seg, "SERIES")) == []
            env.close()
    finally:
        segments.TARGET_BYTES, segments.SPLIT_BYTES = old


def test_encode_and_entries_round_trip():
    items = [(b"1.2", b"rec-a"), (b"1.3", b""), (b"\xc3\xa9\x00x", bytes(range(256)))]
    assert segments.decode(segments.encode(items)) == items
    assert segments.decode(b"") == []


@pytest.mark.parametrize("cut", [1, 5, 8, 10])
def test_a_damaged_segment_is_named_not_misread(cut):
    value = segments.encode([(b"1.2", b"record bytes"), (b"1.3", b"more")])[:-cut]
    with pytest.raises(segments.SegmentError, match="segment entry"):
        segments.decode(value)


def test_compiled_scan_rejects_a_damaged_segment():
    _match = pytest.importorskip("pacscore._ext._match")
    if os.environ.get("PACSCORE_PURE") == "1":
        pytest.skip("pure mode")
    value = segments.encode([(b"1.2", b"record bytes")])
    rt = _match.RecordTest(())
    assert rt.scan_segment(value) == [(b"1.2", b"record bytes")]
    assert rt.scan_segment(b"") == []
    with pytest.raises(ValueError, match="runs past the end"):
        rt.scan_segment(value[:-1])
    with pytest.raises(ValueError, match="header cut"):
        rt.scan_segment(value + b"\x01")


def _store(arc, n_studies: int, per_study: int = 2) -> None:
    for s in range(n_studies):
        for i in range(per_study):
            arc.store(
                make_instance(
                    sop=f"1.2.9.{s}.{i}",
                    study=f"1.2.9.{s}",
                    series=f"1.2.9.{s}.0",
                    patient_id=f"P{s % 7}",
                    patient_name=f"Name{s % 5}^Given",
                    study_date=f"2020{1 + s % 12:02d}15",
                )
            )


def test_archive_writes_and_deletes_keep_segments_exact(tmp_path, monkeypatch):
    monkeypatch.setattr(segments, "TARGET_BYTES", 600)
    monkeypatch.setattr(segments, "SPLIT_BYTES", 1200)
    with pacscore.open(tmp_path / "a") as arc:
        _store(arc, 40)
        arc.delete(study="1.2.9.3")
        arc.delete(instance="1.2.9.5.0")
        arc.delete(series="1.2.9.7.0")
        report = verify(arc)
        assert report.segment_problems == [] and report.ok
        with arc.index.read() as txn:
            n = sum(1 for _ in segments.values(txn, arc.index.db("segments"), "STUDY"))
        assert n > 5  # the small sizes did split
        got = [
            r["StudyInstanceUID"]
            for r in arc.find({"PatientName": "*ame3*", "StudyInstanceUID": ""}, level="STUDY", format="dict")
        ]
        plan = arc.explain({"PatientName": "*ame3*"}, level="STUDY")
        assert plan["plan"] == "scan" and plan["segments"] is True
        assert arc.explain({"SOPClassUID": "1.2*"}, level="IMAGE", relational=True)["segments"] is False
        want = sorted((f"1.2.9.{s}" for s in range(40) if s % 5 == 3 and s not in (3, 7)), key=str.encode)
        assert got == want


def _downgrade_to_version_1(folder) -> None:
    """What an archive written before scan segments existed looks like."""
    env = lmdb.open(str(folder / "index"), max_dbs=12)
    with env.begin(write=True) as txn:
        txn.drop(env.open_db(b"segments", txn=txn), delete=True)
        txn.put(b"schema", b"1", db=env.open_db(b"meta", txn=txn))
    env.close()


def test_a_version_1_archive_is_upgraded_at_open(tmp_path):
    folder = tmp_path / "old"
    with pacscore.open(folder) as arc:
        _store(arc, 12)
        before = [
            r["StudyInstanceUID"]
            for r in arc.find({"PatientName": "*ame1*", "StudyInstanceUID": ""}, level="STUDY", format="dict")
        ]
    _downgrade_to_version_1(folder)
    index = Index(folder / "index", readonly=True)  # read-only: no upgrade, scans the level databases
    try:
        assert not index.segmented
        query = build_query({"PatientName": "*ame1*"}, "STUDY", "STUDY", MatchOptions())
        with index.read() as txn:
            assert [m.key.decode() for m in Executor(index, txn, query).matches()] == before
    finally:
        index.close()
    with pacscore.open(folder) as arc:
        assert arc.index.segmented
        assert verify(arc).segment_problems == []
        assert [
            r["StudyInstanceUID"]
            for r in arc.find({"PatientName": "*ame1*", "StudyInstanceUID": ""}, level="STUDY", format="dict")
        ] == before
        with arc.index.read() as txn:
            assert txn.get(b"schema", db=arc.index.db("meta")) == str(SCHEMA_VERSION).encode()


def test_an_archive_of_a_newer_schema_is_refused(tmp_path):
    folder = tmp_path / "new"
    with pacscore.open(folder) as arc:
        _store(arc, 1)
    env = lmdb.open(str(folder / "index"), max_dbs=12)
    with env.begin(write=True) as txn:
        txn.put(b"schema", str(SCHEMA_VERSION + 1).encode(), db=env.open_db(b"meta", txn=txn))
    env.close()
    with pytest.raises(pacscore.StorageError, match=f"schema version {SCHEMA_VERSION + 1}"):
        pacscore.open(folder)


def _downgrade_to_version_2(folder) -> int:
    """What an archive written before the trigram entries existed looks like; returns how many
    entries were taken out."""
    env = lmdb.open(str(folder / "index"), max_dbs=12)
    removed = 0
    with env.begin(write=True) as txn:
        idx = env.open_db(b"idx", txn=txn, dupsort=True)
        cur = txn.cursor(db=idx)
        for level in GRAM_INDEXED:
            head = LEVEL_BYTE[level] + b"\xff\xfe"
            while cur.set_range(head) and bytes(cur.key()).startswith(head):
                removed += cur.count()
                cur.delete(dupdata=True)
        txn.put(b"schema", b"2", db=env.open_db(b"meta", txn=txn))
    env.close()
    return removed


def test_a_version_2_archive_gets_its_trigram_entries_at_open(tmp_path):
    folder = tmp_path / "v2"
    key = {"SeriesDescription": "*ESC 1*", "SeriesInstanceUID": ""}
    with pacscore.open(folder) as arc:
        for i in range(12):
            arc.store(
                make_instance(
                    sop=f"1.2.7.{i}.1",
                    study="1.2.7",
                    series=f"1.2.7.{i}",
                    SeriesDescription=f"DESC {i}" if i % 4 else None,
                )
            )
        before = [r["SeriesInstanceUID"] for r in arc.find(key, level="SERIES", relational=True, format="dict")]
    assert before == ["1.2.7.0", "1.2.7.1", "1.2.7.10", "1.2.7.11", "1.2.7.4", "1.2.7.8"]
    assert _downgrade_to_version_2(folder) > 12
    index = Index(folder / "index", readonly=True)  # read-only: no upgrade, no trigram plan
    try:
        assert not index.grams
        query = build_query(key, "SERIES", "STUDY", MatchOptions(relational=True))
        with index.read() as txn:
            executor = Executor(index, txn, query)
            assert executor.plan.kind == "scan"
            assert [m.key.decode() for m in executor.matches()] == before
    finally:
        index.close()
    with pacscore.open(folder) as arc:
        assert arc.index.grams
        steps = arc.explain(key, level="SERIES", relational=True)["steps"]
        assert steps == ["SeriesDescription: 6 candidates (trigrams)"]
        assert [r["SeriesInstanceUID"] for r in arc.find(key, level="SERIES", relational=True, format="dict")] == before
        with arc.index.read() as txn:
            assert txn.get(b"schema", db=arc.index.db("meta")) == str(SCHEMA_VERSION).encode()


def test_verify_finds_and_repairs_segments_that_disagree(tmp_path):
    with pacscore.open(tmp_path / "a") as arc:
        _store(arc, 6)
        index = arc.index
        with index.env.begin(write=True) as txn:  # damage: one study record missing from its segment
            seg = index.db("segments")
            cur = txn.cursor(db=seg)
            assert cur.set_range(b"S")
            items = segments.decode(cur.value())
            txn.put(bytes(cur.key()), segments.encode(items[1:]), db=seg)
        report = verify(arc)
        assert not report.ok and report.damaged
        assert any("1 missing" in p for p in report.segment_problems), report.segment_problems
        assert "scan segments:     1 problems" in report.summary()
        repaired = verify(arc, repair=True)
        assert repaired.rebuilt_segments == ["STUDY"] and repaired.ok
        assert verify(arc).segment_problems == []
        with index.read() as txn:
            for level in segments.SEGMENTED_LEVELS:
                assert segments.check(txn, index.db("segments"), index.db(LEVEL_DB[level]), level) == []


def test_the_scan_rate_benchmark_measures_real_scans(tmp_path, capsys):
    """benchmarks.scan_rate times scans (not index plans) and counts what find() returns."""
    from benchmarks import scan_rate

    with pacscore.open(tmp_path / "a") as arc:
        _store(arc, 9)
        arc.store(
            make_instance(
                sop="1.2.8.1",
                study="1.2.8",
                series="1.2.8.0",
                patient_name=None,
                study_date="20150601",
                study_time="090000",
            )
        )
        rows = scan_rate.measure(arc, runs=2)
        for row, (_, identifier, level, options) in zip(rows, scan_rate.SCANS):
            assert row["plan"] == "scan" and row["records"] >= row["matches"]
            assert row["matches"] == len(list(arc.find(identifier, level=level, format="dict", **options)))
        assert rows[0]["matches"] == 1  # only the study without a name
    assert scan_rate.main([str(tmp_path / "a"), "--runs", "1"]) == 0
    assert "M records/s" in capsys.readouterr().out


@pytest.mark.parametrize("cut", [2, 20])
def test_a_write_into_a_damaged_segment_names_the_damage(cut):
    """A commit splices the segments it touches; one whose bytes are cut is refused with a
    SegmentError naming where, not rewritten around the damage."""
    value = segments.encode([(b"1.2", b"record bytes"), (b"1.3", b"more")])
    damaged = value[:-cut] if cut < len(value) - 6 else value[:3]
    with pytest.raises(segments.SegmentError, match="segment entry"):
        segments._spliced(damaged, [(b"1.9", b"new")])
