"""The index never loses a match: an attribute indexed after instances were stored finds them all,
because its entries are backfilled from the records; the list of indexed attributes lives in the
index, so every handle and every process writes and plans with the same one."""

from __future__ import annotations

import json
import tempfile

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import pacscore
from pacscore.cli import main as cli
from pacscore.errors import ConfigError, QueryError
from pacscore.index.lmdb_index import INDEXED_TAGS, Index

from .factories import make_instance

STATION = 0x00081010
BODY_PART = 0x00180015


def stations(arc):
    arc.store(
        make_instance(sop="1.3.1.1", study="1.3.1", series="1.3.1.1", StationName="STATION1", BodyPartExamined="CHEST")
    )
    arc.store(
        make_instance(sop="1.3.2.1", study="1.3.2", series="1.3.2.1", StationName="STATION2", BodyPartExamined="HEAD")
    )
    arc.store(make_instance(sop="1.3.3.1", study="1.3.3", series="1.3.3.1", StationName="", BodyPartExamined=None))


def sops(arc, identifier, level="SERIES", **options):
    """The unique keys of the matches (StationName and BodyPartExamined are series attributes;
    relational: keys at any level without the unique keys above)."""
    return sorted(
        r[_UNIQUE[level]] for r in arc.find(identifier, level=level, format="dict", relational=True, **options)
    )


_UNIQUE = {"STUDY": "StudyInstanceUID", "SERIES": "SeriesInstanceUID", "IMAGE": "SOPInstanceUID"}


def test_an_extra_tag_given_at_open_of_an_archive_with_instances_is_refused_naming_the_command(tmp_path):
    with pacscore.open(tmp_path / "a") as arc:
        stations(arc)
        assert sops(arc, {"StationName": "STATION1"}) == ["1.3.1.1", "1.3.3.1"]
    with pytest.raises(ConfigError, match=r"StationName.*pacscore reindex --archive .* --add StationName"):
        pacscore.open(tmp_path / "a", extra_tags=["StationName"])
    with pacscore.open(tmp_path / "a") as arc:  # nothing changed, nothing lost
        assert arc.extra_tags == []
        assert sops(arc, {"StationName": "STATION1"}) == ["1.3.1.1", "1.3.3.1"]


def test_configure_backfills_a_new_tag_and_the_plan_uses_it(tmp_path):
    with pacscore.open(tmp_path / "a") as arc:
        stations(arc)
        before = sops(arc, {"StationName": "STATION1"}, empty_record_matches=False)
        assert before == ["1.3.1.1"]
        arc.configure(extra_tags=["StationName"])
        assert arc.extra_tags == [STATION]
        assert arc.explain({"StationName": "STATION1"}, level="SERIES", relational=True)["plan"] == "index"
        assert sops(arc, {"StationName": "STATION1"}, empty_record_matches=False) == before
        assert sops(arc, {"StationName": "STATION1"}) == ["1.3.1.1", "1.3.3.1"]
    with pacscore.open(tmp_path / "a", extra_tags=["StationName"]) as arc:  # indexed now: accepted
        arc.store(make_instance(sop="1.3.4.1", study="1.3.4", series="1.3.4.1", StationName="STATION1"))
        assert sops(arc, {"StationName": "STATION1"}, empty_record_matches=False) == ["1.3.1.1", "1.3.4.1"]


def test_removing_a_tag_drops_its_entries_and_answers_stay(tmp_path):
    with pacscore.open(tmp_path / "a", extra_tags=["StationName", "BodyPartExamined"]) as arc:
        stations(arc)
        assert sops(arc, {"BodyPartExamined": "HEAD"}) == ["1.3.2.1", "1.3.3.1"]
        arc.configure(extra_tags=["StationName"])
        assert arc.extra_tags == [STATION]
        assert arc.explain({"BodyPartExamined": "HEAD"}, level="SERIES", relational=True)["plan"] != "index"
        assert sops(arc, {"BodyPartExamined": "HEAD"}) == ["1.3.2.1", "1.3.3.1"]
        with arc.index.read() as txn:
            head = b"I" + BODY_PART.to_bytes(4, "big")
            cur = txn.cursor(db=arc.index.db("idx"))
            assert not (cur.set_range(head) and bytes(cur.key()).startswith(head))


def test_a_handle_opened_before_a_tag_was_added_indexes_its_new_instances(tmp_path):
    early = pacscore.open(tmp_path / "a")
    try:
        stations(early)
        with pacscore.open(tmp_path / "a") as other:
            other.configure(extra_tags=["StationName"])
        early.store(make_instance(sop="1.3.5.1", study="1.3.5", series="1.3.5.1", StationName="STATION9"))
        assert early.explain({"StationName": "STATION9"}, level="SERIES", relational=True)["plan"] == "index"
        assert sops(early, {"StationName": "STATION9"}, empty_record_matches=False) == ["1.3.5.1"]
    finally:
        early.close()


def test_reindex_command_adds_and_removes(tmp_path, capsys):
    with pacscore.open(tmp_path / "a") as arc:
        stations(arc)
    assert cli(["reindex", "--archive", str(tmp_path / "a"), "--add", "StationName", "--add", "BodyPartExamined"]) == 0
    assert "StationName" in capsys.readouterr().out
    with pacscore.open(tmp_path / "a") as arc:
        assert arc.extra_tags == [STATION, BODY_PART]
    assert cli(["reindex", "--archive", str(tmp_path / "a"), "--remove", "StationName"]) == 0
    with pacscore.open(tmp_path / "a") as arc:
        assert arc.extra_tags == [BODY_PART]
    assert cli(["reindex", "--archive", str(tmp_path / "a"), "--add", "NoSuchKeyword"]) == 2
    assert "NoSuchKeyword" in capsys.readouterr().err


@pytest.mark.parametrize(
    "tag, message", [("ReferencedImageSequence", "sequence"), (0xFFFF0001, "not an attribute that can be indexed")]
)
def test_a_tag_that_cannot_be_indexed_is_refused(tmp_path, tag, message):
    with pacscore.open(tmp_path / "a") as arc:
        with pytest.raises(QueryError, match=message):
            arc.configure(extra_tags=[tag])
        assert arc.extra_tags == []


def test_an_archive_of_schema_4_gets_its_extra_tags_backfilled_at_the_first_writable_open(tmp_path):
    """Schema 4 kept the extra tags in the settings and never backfilled one added later: the
    upgrade builds the missing entries; a read-only open of such an archive does not plan on them."""
    folder = tmp_path / "a"
    with pacscore.open(folder) as arc:
        stations(arc)
    index = Index(folder / "index")
    with index.env.begin(write=True) as txn:  # what schema 4 left: the tag listed, no entries
        txn.put(b"settings", json.dumps({"extra_tags": [STATION]}).encode(), db=index.db("meta"))
        txn.delete(INDEXED_TAGS, db=index.db("meta"))
        txn.put(b"schema", b"4", db=index.db("meta"))
    index.close()
    with pacscore.open(folder, readonly=True) as arc:
        assert arc.extra_tags == []
        assert sops(arc, {"StationName": "STATION1"}, empty_record_matches=False) == ["1.3.1.1"]
    with pacscore.open(folder) as arc:
        assert arc.extra_tags == [STATION]
        assert arc.explain({"StationName": "STATION1"}, level="SERIES", relational=True)["plan"] == "index"
        assert sops(arc, {"StationName": "STATION1"}, empty_record_matches=False) == ["1.3.1.1"]
        assert "extra_tags" not in arc.index.settings()


# -- property: adding (or removing) a tag never changes any answer ------------------------------

VALUES = ["STATION1", "station1", "STATION2", "ST*", "", None, "  ", "A\\STATION1", "Ünïcode"]
BODY = ["CHEST", "HEAD", "", None, "CHEST\\HEAD"]
SEXES = ["M", "F", "O", "", None]
KEYS = [
    ("IMAGE", "StationName", ["STATION1", "station1", "ST*", "*1", "", "Ünïcode", "STATION?"]),
    ("IMAGE", "BodyPartExamined", ["CHEST", "HEAD", "C*", ""]),
    ("STUDY", "PatientSex", ["M", "F", "", "O"]),
    ("SERIES", "BodyPartExamined", ["CHEST", ""]),
]
TAGS = ["StationName", "BodyPartExamined", "PatientSex"]


@st.composite
def archives(draw):
    out = []
    for s in range(draw(st.integers(1, 5))):
        sex = draw(st.sampled_from(SEXES))
        for i in range(draw(st.integers(1, 3))):
            out.append(
                dict(
                    sop=f"1.4.{s}.{i}",
                    study=f"1.4.{s}",
                    series=f"1.4.{s}.1",
                    patient_id=f"P{s % 3}",
                    PatientSex=sex,
                    StationName=draw(st.sampled_from(VALUES)),
                    BodyPartExamined=draw(st.sampled_from(BODY)),
                )
            )
    return out


@settings(max_examples=25)
@given(archives(), st.lists(st.sampled_from(TAGS), min_size=1, max_size=3, unique=True), st.booleans())
def test_adding_or_removing_extra_tags_never_changes_an_answer(instances, tags, empty_matches):
    with tempfile.TemporaryDirectory() as tmp, pacscore.open(tmp) as arc:
        for inst in instances:
            arc.store(make_instance(**inst))
        queries = [(level, {kw: v}) for level, kw, vals in KEYS for v in vals]

        def answers():
            return [sops(arc, ident, level=level, empty_record_matches=empty_matches) for level, ident in queries]

        before = answers()
        arc.configure(extra_tags=tags)
        assert answers() == before
        arc.configure(extra_tags=tags[:1])
        assert answers() == before
