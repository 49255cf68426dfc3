"""TM and DT keys answered from the index (schema 6, docs/storage-layout.md) give exactly the
reference's answers: the matching vectors' time cases, partial and retired stored values, leap
seconds, UTC offsets, empty and invalid values, and Hypothesis over whole archives. The sortable
forms keep time order; an archive of schema 5 answers correctly read-only, without the entries,
and gets them at its first writable open, exactly as a fresh index has them."""

from __future__ import annotations

import json
import tempfile

import lmdb
import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

import pacscore
from pacscore import values
from pacscore.errors import QueryError
from pacscore.index import timekeys
from pacscore.index.lmdb_index import SCHEMA_VERSION, Index
from pacscore.index.migrations import STEPS, TIME_ENTRIES_SCHEMA, to_time_entries
from pacscore.index.secondary import UNINDEXABLE, prefix
from pacscore.query.temporal import key_bounds

from .expected_warnings import BAD_TIMES
from .factories import make_instance
from .test_vectors import ALL, expected, needs_vectors

#: stored values that are not TM or DT, on purpose
pytestmark = BAD_TIMES

STUDY_TIME = 0x00080030
ACQUISITION_DT = 0x0008002A


# ---------------------------------------------------------------- strategies


@st.composite
def tm_values(draw) -> str:
    """A valid TM value of any precision, a leap second included."""
    out = f"{draw(st.integers(0, 23)):02d}"
    for top in (59, 60):
        if not draw(st.booleans()):
            return out
        out += f"{draw(st.integers(0, top)):02d}"
    if draw(st.booleans()):
        out += "." + "".join(draw(st.lists(st.sampled_from("0123456789"), min_size=1, max_size=6)))
    return out


OFFSETS = ["", "+0000", "-0500", "+0530", "+1400", "-1200"]


@st.composite
def dt_values(draw) -> str:
    """A valid DT value of any precision, with or without a UTC offset."""
    out = str(draw(st.sampled_from([1, 2019, 2020, 9999]))).zfill(4)
    parts = [(1, 12), (1, 28)]
    for low, high in parts:
        if not draw(st.booleans()):
            return out + draw(st.sampled_from(OFFSETS))
        out += f"{draw(st.integers(low, high)):02d}"
    if draw(st.booleans()):
        out += draw(tm_values())
    return out + draw(st.sampled_from(OFFSETS))


#: stored TM values the index cannot file by instant, or files specially
ODD_TIMES = ["", None, "2500", "12:00:00", "10:30", "235960", "235960.5", "0700\\1300", "1200\\", " 0800 ", "0830"]
ODD_DATETIMES = ["", None, "2020+9999", "20200230", "2020-0500", "20200101\\20210101", "0001+1400", "9999"]


def range_keys(single):
    """Single values, closed and open ranges (reversed ones included: invalid) and OR lists."""
    one = st.one_of(
        single,
        st.tuples(single, single).map("-".join),
        single.map(lambda v: "-" + v),
        single.map(lambda v: v + "-"),
    )
    return st.one_of(one, st.lists(one, min_size=2, max_size=3).map("\\".join))


# ---------------------------------------------------------------- the sortable forms


@pytest.mark.parametrize(
    "value, form",
    [
        ("08", "080000.000000"),
        ("0830", "083000.000000"),
        ("083000", "083000.000000"),
        ("083000.5", "083000.500000"),
        ("08:30:00", "083000.000000"),  # the retired form files like the current one
        ("235960", "240000.000000"),  # a leap second counts as the next midnight's instant
        ("2500", ""),  # not a time: filed with the values the index cannot file
        ("8", ""),
    ],
)
def test_tm_values_file_under_their_first_instant(value, form):
    assert timekeys.stored_form("TM", value) == form


@given(tm_values(), tm_values())
@example("235959.999999", "235960")
@example("08", "080000.000001")
def test_tm_forms_sort_like_their_instants(a, b):
    fa, fb = timekeys.stored_form("TM", a), timekeys.stored_form("TM", b)
    ia, ib = values.parse_tm(a)[0], values.parse_tm(b)[0]
    assert (fa < fb, fa == fb) == (ia < ib, ia == ib)


@given(dt_values(), dt_values())
@example("0001+1400", "0001")
@example("9999-1200", "99991231235960")
def test_dt_forms_sort_like_their_utc_instants(a, b):
    fa, fb = timekeys.stored_form("DT", a), timekeys.stored_form("DT", b)
    ia, ib = values.parse_dt(a)[0], values.parse_dt(b)[0]
    assert len(fa) == len(fb) == timekeys.DT_DIGITS
    assert (fa < fb, fa == fb) == (ia < ib, ia == ib)


# ---------------------------------------------------------------- archives


def _store_times(arc, times, tag_keyword="StudyTime") -> None:
    """One study (and one instance) per value; None leaves the attribute out."""
    for i, value in enumerate(times):
        extra = {} if tag_keyword == "StudyTime" else ({tag_keyword: value} if value is not None else {})
        arc.store(
            make_instance(
                sop=f"1.7.{i}.1.1",
                study=f"1.7.{i}",
                series=f"1.7.{i}.1",
                study_time=value if tag_keyword == "StudyTime" else "101500",
                **extra,
            )
        )


def _found(arc, key, level="STUDY", keyword="StudyTime", **options) -> list[int]:
    unique = "StudyInstanceUID" if level == "STUDY" else "SOPInstanceUID"
    options.setdefault("relational", level != "STUDY")
    rows = arc.find({keyword: key, unique: ""}, level=level, format="dict", **options)
    return sorted(int(r[unique].split(".")[2]) for r in rows)


def _expected(vr, times, key, **options) -> list[int]:
    return [i for i, value in enumerate(times) if pacscore.match(vr, key, value, **options)]


def _plan(arc, key, level="STUDY", keyword="StudyTime", **options) -> str:
    options.setdefault("relational", level != "STUDY")
    return arc.explain({keyword: key}, level=level, **options)["plan"]


def _filters(vr: str, key: str) -> bool:
    """A valid key that is not universal: every value a single value or a range in order."""
    parts = [v for v in values.split_values(vr, values.strip_padding(vr, key)) if v]
    bounds = [key_bounds(vr, v) for v in parts]
    return bool(parts) and all(b is not None and (None in b or b[0] <= b[1]) for b in bounds)


TM_VECTORS = [v for v in ALL if v["vr"] == "TM"]
DT_VECTORS = [v for v in ALL if v["vr"] == "DT"]
#: beside each vector's value: values before, inside and after any key of the vectors
CONTROL_TIMES = ["00", "095959", "1030", "110059.999999", "235959.999999", None, ""]


@needs_vectors
@pytest.mark.parametrize("vector", TM_VECTORS, ids=[v["id"] for v in TM_VECTORS])
def test_tm_vectors_through_the_time_index(tmp_path, vector):
    times = [vector["value"], *CONTROL_TIMES]
    options = vector.get("options", {})
    with pacscore.open(tmp_path / "a") as arc:
        _store_times(arc, times)
        got = _found(arc, vector["key"], **options)
        assert (0 in got) is expected(vector), vector["rule"]
        assert got == _expected("TM", times, vector["key"], **options)
        if _filters("TM", vector["key"]):
            assert _plan(arc, vector["key"], **options) == "index"


@needs_vectors
@pytest.mark.parametrize("vector", DT_VECTORS, ids=[v["id"] for v in DT_VECTORS])
def test_dt_vectors_through_the_time_index(tmp_path, vector):
    times = [vector["value"], "20200101", "2007", "20081231235959+1400", None, ""]
    options = vector.get("options", {})
    with pacscore.open(tmp_path / "a", extra_tags=["AcquisitionDateTime"]) as arc:
        _store_times(arc, times, "AcquisitionDateTime")
        got = _found(arc, vector["key"], "IMAGE", "AcquisitionDateTime", **options)
        assert (0 in got) is expected(vector), vector["rule"]
        assert got == _expected("DT", times, vector["key"], **options)
        if _filters("DT", vector["key"]):
            assert _plan(arc, vector["key"], "IMAGE", "AcquisitionDateTime", **options) == "index"


@pytest.mark.parametrize(
    "local, key",
    [
        ("+1400", "-20191231230000+0000"),  # 12:00 at +14:00 is 22:00 UTC the day before
        ("-1200", "20200102000000+0000-"),  # 12:00 at -12:00 is midnight UTC the day after
        ("+0000", "20200101220000+0500"),  # the key's own offset: 17:00 UTC
        ("+0530", "2020"),
    ],
)
def test_offsetless_datetimes_are_found_in_any_local_zone(tmp_path, local, key):
    """A DT value without an offset is filed as if in UTC; the plan widens its range by the
    largest offsets, so a value written in any zone is still a candidate."""
    times = ["20200101120000", "20200101170000+0000", "20191231220000+0000", "20200101", None]
    with pacscore.open(tmp_path / "a", extra_tags=["AcquisitionDateTime"]) as arc:
        _store_times(arc, times, "AcquisitionDateTime")
        assert _plan(arc, key, "IMAGE", "AcquisitionDateTime", local_timezone=local) == "index"
        got = _found(arc, key, "IMAGE", "AcquisitionDateTime", local_timezone=local)
        assert got == _expected("DT", times, key, local_timezone=local)
        assert 0 in got or local == "+0000"


@pytest.mark.parametrize("key", ["-0800", "0800-1200", "1200-", "08", "0800", "-0800\\1300-", "103000.5-103001"])
@pytest.mark.parametrize("empty", [True, False])
def test_studytime_ranges_are_planned_on_the_index(tmp_path, key, empty):
    times = ["08", "0830", "080059.999999", "080100", "235960", "1200", "12:00:00", "2500", "", None, *ODD_TIMES]
    with pacscore.open(tmp_path / "a") as arc:
        _store_times(arc, times)
        plan = arc.explain({"StudyTime": key}, level="STUDY", empty_record_matches=empty)
        assert plan["plan"] == "index" and plan["steps"][0].startswith("StudyTime: ")
        assert plan["candidates"] < len(times)  # the range narrowed the level
        assert _found(arc, key, empty_record_matches=empty) == _expected("TM", times, key, empty_record_matches=empty)


def test_timezone_adjustment_leaves_time_keys_to_the_matcher(tmp_path):
    """Under timezone adjustment times compare on the 24-hour circle in each record's zone:
    no index range holds that, so the level is scanned, with the same answers."""
    times = ["0030", "2330", "1200", None]
    with pacscore.open(tmp_path / "a") as arc:
        _store_times(arc, times)
        ident = {"StudyTime": "0000-0100", "TimezoneOffsetFromUTC": "+0100", "StudyInstanceUID": ""}
        assert arc.explain(ident, level="STUDY", timezone_adjustment=True)["plan"] == "scan"
        rows = arc.find(ident, level="STUDY", format="dict", timezone_adjustment=True)
        key = {"StudyTime": "0000-0100", "TimezoneOffsetFromUTC": "+0100"}
        want = [
            f"1.7.{i}"
            for i, t in enumerate(times)
            if pacscore.match("combined", key, {"StudyTime": t}, timezone_adjustment=True)
        ]
        assert sorted(r["StudyInstanceUID"] for r in rows) == want
        assert "1.7.1" in want  # 23:30 written at +01:00 is 22:30 UTC: in the window moved to UTC


def test_a_bad_time_key_is_refused_by_name_and_bad_stored_times_change_nothing(tmp_path):
    times = ["2500", "0800", "12:00:00", "0800\\"]
    with pacscore.open(tmp_path / "a") as arc:
        _store_times(arc, times)
        with pytest.raises(QueryError, match="StudyTime") as err:
            list(arc.find({"StudyTime": "1200-1000"}, level="STUDY", invalid_keys="error"))
        assert "midnight" in str(err.value)
        with pytest.raises(QueryError, match="StudyTime"):
            list(arc.find({"StudyTime": "0800-25"}, level="STUDY", invalid_keys="error"))
        # the invalid stored time is kept as it was sent and filed apart; it matches no range
        with arc.index.read() as txn:
            head = prefix("STUDY", STUDY_TIME)
            assert txn.get(head + UNINDEXABLE, db=arc.index.db("idx")) == b"1.7.0"
        assert _found(arc, "-") == [0, 1, 2, 3]
        assert _found(arc, "0000-") == [1, 2, 3]
        assert (
            next(arc.find({"StudyInstanceUID": "1.7.0", "StudyTime": ""}, level="STUDY", format="dict"))["StudyTime"]
            == "2500"
        )


@settings(max_examples=40)
@given(
    st.lists(st.one_of(tm_values(), st.sampled_from(ODD_TIMES)), min_size=1, max_size=8),
    st.lists(range_keys(tm_values()), min_size=1, max_size=4),
    st.fixed_dictionaries({"empty_record_matches": st.booleans(), "multiple_value_matching": st.booleans()}),
)
def test_time_index_answers_equal_the_reference(times, keys, options):
    with tempfile.TemporaryDirectory() as tmp, pacscore.open(tmp) as arc:
        _store_times(arc, times)
        for key in keys:
            assert _found(arc, key, **options) == _expected("TM", times, key, **options)


@settings(max_examples=30)
@given(
    st.lists(st.one_of(dt_values(), st.sampled_from(ODD_DATETIMES)), min_size=1, max_size=6),
    st.lists(range_keys(dt_values()), min_size=1, max_size=3),
    st.booleans(),
    st.sampled_from(["+0000", "-1200", "+1400", "+0100"]),
)
def test_datetime_index_answers_equal_the_reference(times, keys, empty, local):
    opts = {"empty_record_matches": empty, "local_timezone": local}
    with tempfile.TemporaryDirectory() as tmp, pacscore.open(tmp, extra_tags=["AcquisitionDateTime"]) as arc:
        _store_times(arc, times, "AcquisitionDateTime")
        for key in keys:
            assert _found(arc, key, "IMAGE", "AcquisitionDateTime", **opts) == _expected("DT", times, key, **opts)


# ---------------------------------------------------------------- schema 5 -> 6


def _old_form(value: str) -> list[str]:
    """How schema 5 filed a TM or DT value: the text of each value, padding removed."""
    return [v.strip(" \x00") for v in value.split("\\")]


def _idx_entries(folder) -> set[tuple[bytes, bytes]]:
    env = lmdb.open(str(folder / "index"), max_dbs=12, readonly=True, lock=False)
    try:
        with env.begin() as txn:
            return {(bytes(k), bytes(v)) for k, v in txn.cursor(db=env.open_db(b"idx", txn=txn, create=False))}
    finally:
        env.close()


def _downgrade_to_version_5(folder, stored: dict[bytes, str | None]) -> None:
    """What schema 5 wrote for the same records: no StudyTime entries, an extra DT tag filed by
    its text (``stored``: instance key -> its AcquisitionDateTime), schema 5."""
    env = lmdb.open(str(folder / "index"), max_dbs=12)
    with env.begin(write=True) as txn:
        idx = env.open_db(b"idx", txn=txn, dupsort=True)
        cur = txn.cursor(db=idx)
        for head in (prefix("STUDY", STUDY_TIME), prefix("IMAGE", ACQUISITION_DT)):
            while cur.set_range(head) and bytes(cur.key()).startswith(head):
                cur.delete(dupdata=True)
        for key, value in stored.items():
            head = prefix("IMAGE", ACQUISITION_DT)
            if value is None or value == "":
                txn.put(head, key, db=idx, dupdata=True)
                continue
            for form in _old_form(value):
                txn.put(head + (form.encode() if form else UNINDEXABLE), key, db=idx, dupdata=True)
        txn.put(b"schema", b"5", db=env.open_db(b"meta", txn=txn))
    env.close()


def test_the_time_entries_step_is_named_for_its_version():
    assert TIME_ENTRIES_SCHEMA == 6 <= SCHEMA_VERSION
    assert STEPS[TIME_ENTRIES_SCHEMA] is to_time_entries


def test_a_schema_5_archive_answers_read_only_and_gets_its_time_entries_at_open(tmp_path):
    folder = tmp_path / "v5"
    times = ["08", "0830", "12:00:00", "2500", "", None, "235960", "0700\\1300"]
    datetimes = ["2020", "20200101120000-0500", "20200230", "", None, "20200101\\20210101", "20191231", "2020+9999"]
    with pacscore.open(folder, extra_tags=["AcquisitionDateTime"]) as arc:
        for i, (t, dt) in enumerate(zip(times, datetimes, strict=True)):
            extra = {} if dt is None else {"AcquisitionDateTime": dt}
            arc.store(make_instance(sop=f"1.7.{i}.1.1", study=f"1.7.{i}", series=f"1.7.{i}.1", study_time=t, **extra))
    fresh = _idx_entries(folder)
    _downgrade_to_version_5(folder, {f"1.7.{i}.1.1".encode(): dt for i, dt in enumerate(datetimes)})
    assert _idx_entries(folder) != fresh
    keys = ["-0800", "0800-1200", "1200-", "08"]
    dt_keys = ["2020-", "-20200101", "20200101120000-0500-20200102"]
    index = Index(folder / "index", readonly=True)
    try:
        assert not index.time_entries
    finally:
        index.close()
    with pacscore.open(folder, readonly=True) as arc:  # no upgrade: the matcher decides alone
        for key in keys:
            assert _plan(arc, key) == "scan"
            assert _found(arc, key) == _expected("TM", times, key)
        for key in dt_keys:
            assert _found(arc, key, "IMAGE", "AcquisitionDateTime") == _expected("DT", datetimes, key)
    with pacscore.open(folder) as arc:
        assert arc.index.time_entries
        with arc.index.read() as txn:
            assert txn.get(b"schema", db=arc.index.db("meta")) == str(SCHEMA_VERSION).encode()
        for key in keys:
            assert _plan(arc, key) == "index"
            assert _found(arc, key) == _expected("TM", times, key)
        for key in dt_keys:
            assert _plan(arc, key, "IMAGE", "AcquisitionDateTime") == "index"
            assert _found(arc, key, "IMAGE", "AcquisitionDateTime") == _expected("DT", datetimes, key)
        assert arc.extra_tags == [ACQUISITION_DT]
    assert _idx_entries(folder) == fresh  # the upgrade made exactly the entries a fresh index has


def test_the_upgrade_drops_studytime_from_the_extra_tags_now_that_it_is_a_default(tmp_path):
    folder = tmp_path / "v5"
    with pacscore.open(folder) as arc:
        _store_times(arc, ["0800", "1300"])
    fresh = _idx_entries(folder)
    env = lmdb.open(str(folder / "index"), max_dbs=12)
    with env.begin(write=True) as txn:  # schema 5 with StudyTime as an extra tag, filed by text
        meta, idx = env.open_db(b"meta", txn=txn), env.open_db(b"idx", txn=txn, dupsort=True)
        txn.put(b"indexed_tags", json.dumps([STUDY_TIME]).encode(), db=meta)
        cur = txn.cursor(db=idx)
        head = prefix("STUDY", STUDY_TIME)
        while cur.set_range(head) and bytes(cur.key()).startswith(head):
            cur.delete(dupdata=True)
        txn.put(head + b"0800", b"1.7.0", db=idx, dupdata=True)
        txn.put(head + b"1300", b"1.7.1", db=idx, dupdata=True)
        txn.put(b"schema", b"5", db=meta)
    env.close()
    with pacscore.open(folder) as arc:
        assert arc.extra_tags == []
        assert _found(arc, "-1200") == [0]
    assert _idx_entries(folder) == fresh


def test_a_datetime_tag_added_later_is_backfilled_by_instant(tmp_path):
    """``configure(extra_tags=...)`` on an archive that holds instances files their DT values by
    instant at once, so the first range key on it is planned on the index and loses nothing."""
    times = ["20200101120000-0500", "2019", "20200230", None, "20200101"]
    with pacscore.open(tmp_path / "a") as arc:
        _store_times(arc, times, "AcquisitionDateTime")
        assert _plan(arc, "2020-", "IMAGE", "AcquisitionDateTime") == "scan"
        arc.configure(extra_tags=["AcquisitionDateTime"])
        for key in ["2020-", "-20191231", "20200101170000+0000"]:
            assert _plan(arc, key, "IMAGE", "AcquisitionDateTime") == "index"
            assert _found(arc, key, "IMAGE", "AcquisitionDateTime") == _expected("DT", times, key)


def test_a_value_stored_under_another_vr_is_never_lost(tmp_path):
    """A file may carry an attribute under a VR that is not its dictionary VR (explicit VR).
    Keys are matched by the dictionary VR, so the index files a StudyTime sent as SH with the
    values it cannot file (every plan visits them), and an AccessionNumber sent as TM by its
    text, as the exact-value plan of an SH key reads it."""
    with pacscore.open(tmp_path / "a") as arc:
        ds = make_instance(sop="1.7.0.1.1", study="1.7.0", series="1.7.0.1", study_time=None, AccessionNumber=None)
        ds.add_new(0x00080030, "SH", "0800")
        ds.add_new(0x00080050, "TM", "0800")
        arc.store(ds)
        arc.store(make_instance(sop="1.7.1.1.1", study="1.7.1", series="1.7.1.1", study_time="0900"))
        assert _found(arc, "-0800") == [0]
        rows = arc.find({"AccessionNumber": "0800", "StudyInstanceUID": ""}, level="STUDY", format="dict")
        assert [r["StudyInstanceUID"] for r in rows] == ["1.7.0"]
