"""Values the secondary index cannot file by their text (schema 4): they have their own entries,
apart from the empty and absent values, so that a plan skips the empty ones when they cannot
match (``empty_record_matches=False``) and still visits these; and an archive of schema 3 gets
them at its first writable open, with exactly the entries a fresh index has."""

from __future__ import annotations

import lmdb
import pytest
from pydicom.dataelem import DataElement
from pydicom.dataset import Dataset

import pacscore
from pacscore.index.lmdb_index import LEVEL_BYTE, SCHEMA_VERSION, Index
from pacscore.index.secondary import UNINDEXABLE, gram_prefix, prefix
from pacscore.query.execute import Executor
from pacscore.query.keys import build_query
from pacscore.query.options import MatchOptions

from .expected_warnings import BAD_DATES
from .factories import make_instance

#: the stored dates include ones that are not DA, on purpose (they are what is unindexable)
pytestmark = BAD_DATES

#: (PatientName, StudyDate, AccessionNumber) of the studies; None leaves the attribute out
STUDIES = [
    ("Smith^John", "20150304", "A1"),
    ("Smith^Anna", "20150305", "A2"),
    ("", "", ""),  # empty: matches any key by default, none otherwise
    (None, None, None),  # absent: likewise
    ("  ", "2015.03.04", "A1\\"),  # blank name (stored empty), retired date form, an empty piece
    ("=山田^太郎", "2015", " "),  # no alphabetic group, a date the index cannot file, blank
    ("Jones", "20191231", "A3"),
]
#: keyword -> (studies filed as empty or absent, studies filed as unindexable)
FILED = {
    "PatientName": ({b"1.5.2", b"1.5.3", b"1.5.4"}, {b"1.5.5"}),
    "StudyDate": ({b"1.5.2", b"1.5.3"}, {b"1.5.5"}),  # 2015.03.04 is filed as the date it is
    "AccessionNumber": ({b"1.5.2", b"1.5.3", b"1.5.5"}, {b"1.5.4"}),
}
KEYS = [
    ("PatientName", "PN", "SMITH*"),
    ("PatientName", "PN", "smith^john"),
    ("StudyDate", "DA", "20150304"),
    ("StudyDate", "DA", "20150101-20151231"),
    ("StudyDate", "DA", "20150301-"),
    ("AccessionNumber", "SH", "A1"),
    ("AccessionNumber", "SH", "A*"),
]
FIELDS = {"PatientName": 0, "StudyDate": 1, "AccessionNumber": 2}


def _store(arc) -> None:
    for i, (name, date, accession) in enumerate(STUDIES):
        arc.store(
            make_instance(
                sop=f"1.5.{i}.1.1",
                study=f"1.5.{i}",
                series=f"1.5.{i}.1",
                patient_id=f"P{i}",
                patient_name=name,
                study_date=date,
                AccessionNumber=accession,
                charset="ISO_IR 192",
            )
        )


#: SeriesDescription of the series of a second study: empty, absent, blank, text, a sequence
DESCRIPTIONS = ["", None, "   ", "CT CHEST", "MR BRAIN", "SEQ"]


def _store_series(arc) -> None:
    for i, description in enumerate(DESCRIPTIONS):
        ds = make_instance(
            sop=f"1.6.1.{i}.1",
            study="1.6.1",
            series=f"1.6.1.{i}",
            patient_id="Q",
            SeriesDescription=None if description == "SEQ" else description,
        )
        if description == "SEQ":  # a sequence where text belongs: its items' text can still match
            item = Dataset()
            item.CodeValue = "CHEST"
            ds.add(DataElement(0x0008103E, "SQ", [item]))
        arc.store(ds)


def _expected(keyword: str, vr: str, key: str, empty: bool) -> list[str]:
    return sorted(
        (
            f"1.5.{i}"
            for i, study in enumerate(STUDIES)
            if pacscore.match(vr, key, study[FIELDS[keyword]], empty_record_matches=empty)
        ),
        key=str.encode,
    )


def _idx_entries(folder) -> list[tuple[bytes, bytes]]:
    env = lmdb.open(str(folder / "index"), max_dbs=12, readonly=True, lock=False)
    try:
        with env.begin() as txn:
            return [(bytes(k), bytes(v)) for k, v in txn.cursor(db=env.open_db(b"idx", txn=txn, create=False))]
    finally:
        env.close()


@pytest.mark.parametrize("empty", [True, False])
@pytest.mark.parametrize("keyword,vr,key", KEYS)
def test_index_plans_answer_as_the_reference_with_and_without_empty_matches(tmp_path, keyword, vr, key, empty):
    with pacscore.open(tmp_path / "a") as arc:
        _store(arc)
        ident = {keyword: key, "StudyInstanceUID": ""}
        plan = arc.explain(ident, level="STUDY", empty_record_matches=empty)
        assert plan["plan"] == "index", plan
        got = [r["StudyInstanceUID"] for r in arc.find(ident, level="STUDY", format="dict", empty_record_matches=empty)]
        assert got == _expected(keyword, vr, key, empty)
        with arc.index.read() as txn:
            query = build_query(ident, "STUDY", "STUDY", MatchOptions(empty_record_matches=empty))
            with Executor(arc.index, txn, query) as executor:
                keys = set(executor.plan.keys)
        empties, unindexable = FILED[keyword]
        assert (empties <= keys) is empty  # the empty ones are candidates only when they can match
        assert not (empties & keys) or empty
        assert unindexable <= keys  # the values the index cannot file: always visited


def test_entries_of_unindexable_values_are_apart_from_the_empty_ones(tmp_path):
    with pacscore.open(tmp_path / "a") as arc:
        _store(arc)
    entries = _idx_entries(tmp_path / "a")
    for keyword, tag in (("PatientName", 0x00100010), ("StudyDate", 0x00080020), ("AccessionNumber", 0x00080050)):
        head = prefix("STUDY", tag)
        assert {v for k, v in entries if k == head} == FILED[keyword][0], keyword
        assert {v for k, v in entries if k == head + UNINDEXABLE} == FILED[keyword][1], keyword
    assert (prefix("STUDY", 0x00080050) + b"A1", b"1.5.4") in entries  # the other piece keeps its entry
    assert (prefix("STUDY", 0x00080020) + b"20150304", b"1.5.4") in entries


def _downgrade_to_version_3(folder) -> int:
    """What an archive written before the split looks like: every unindexable entry under the
    bare prefix (of the index or of the trigrams); returns how many entries moved."""
    env = lmdb.open(str(folder / "index"), max_dbs=12)
    moved = []
    with env.begin(write=True) as txn:
        idx = env.open_db(b"idx", txn=txn, dupsort=True)
        for k, v in txn.cursor(db=idx):
            k = bytes(k)
            width = 7 if k[1:3] == b"\xff\xfe" else 5
            if len(k) == width + 1 and k.endswith(UNINDEXABLE) and k[:1] in LEVEL_BYTE.values():
                moved.append((k, bytes(v)))
        for k, v in moved:
            txn.delete(k, v, db=idx)
            txn.put(k[:-1], v, db=idx, dupdata=True)
        txn.put(b"schema", b"3", db=env.open_db(b"meta", txn=txn))
    env.close()
    return len(moved)


def test_a_version_3_archive_gets_its_unindexable_entries_at_open(tmp_path):
    folder = tmp_path / "v3"
    with pacscore.open(folder) as arc:
        _store(arc)
        _store_series(arc)
    fresh = _idx_entries(folder)
    assert _downgrade_to_version_3(folder) >= 4
    assert _idx_entries(folder) != fresh
    ident = {"AccessionNumber": "A1", "StudyInstanceUID": ""}
    index = Index(folder / "index", readonly=True)  # read-only: no upgrade, the bare prefix holds both
    try:
        assert not index.splits_unindexable
        for empty in (True, False):
            query = build_query(ident, "STUDY", "STUDY", MatchOptions(empty_record_matches=empty))
            with index.read() as txn, Executor(index, txn, query) as executor:
                assert [m.key.decode() for m in executor.matches()] == _expected("AccessionNumber", "SH", "A1", empty)
    finally:
        index.close()
    with pacscore.open(folder) as arc:
        assert arc.index.splits_unindexable
        with arc.index.read() as txn:
            assert txn.get(b"schema", db=arc.index.db("meta")) == str(SCHEMA_VERSION).encode()
        for empty in (True, False):
            got = [
                r["StudyInstanceUID"] for r in arc.find(ident, level="STUDY", format="dict", empty_record_matches=empty)
            ]
            assert got == _expected("AccessionNumber", "SH", "A1", empty)
    assert _idx_entries(folder) == fresh  # the upgrade made exactly the entries a fresh index has


@pytest.mark.parametrize("empty", [True, False])
@pytest.mark.parametrize("key", ["*CHEST*", "*CT CH*", "MR BRAIN", "*HES*\\*BRA*"])
def test_trigram_plans_visit_empty_descriptions_only_when_they_can_match(tmp_path, key, empty):
    with pacscore.open(tmp_path / "a") as arc:
        _store_series(arc)
        ident = {"SeriesDescription": key, "SeriesInstanceUID": ""}
        opts = {"relational": True, "empty_record_matches": empty}
        assert arc.explain(ident, level="SERIES", **opts)["steps"][0].endswith("(trigrams)")
        got = [r["SeriesInstanceUID"] for r in arc.find(ident, level="SERIES", format="dict", **opts)]
        stored = [[{"CodeValue": "CHEST"}] if d == "SEQ" else d for d in DESCRIPTIONS]
        assert got == [
            f"1.6.1.{i}" for i, d in enumerate(stored) if pacscore.match("LO", key, d, empty_record_matches=empty)
        ]
        with arc.index.read() as txn:
            query = build_query(ident, "SERIES", "STUDY", MatchOptions(**opts))
            with Executor(arc.index, txn, query) as executor:
                keys = set(executor.plan.keys)
        assert ({b"1.6.1.0", b"1.6.1.1", b"1.6.1.2"} <= keys) is empty
        assert not ({b"1.6.1.0", b"1.6.1.1", b"1.6.1.2"} & keys) or empty
        assert b"1.6.1.5" in keys  # the sequence: always visited
    entries = _idx_entries(tmp_path / "a")
    head = gram_prefix("SERIES", 0x0008103E)
    assert {v for k, v in entries if k == head} == {b"1.6.1.0", b"1.6.1.1", b"1.6.1.2"}
    assert {v for k, v in entries if k == head + UNINDEXABLE} == {b"1.6.1.5"}
