"""The matching vectors (tests/vectors/matching.json; docs/matching.md §1), every one but the hierarchical ones, through
the public oracle; and the compiled Conditions the archive uses, on the same vectors."""

import json
import logging
import os
from pathlib import Path

import pytest

from pacscore.errors import QueryError
from pacscore.query.conditions import compile_condition, compile_conditions
from pacscore.query.options import MatchOptions
from pacscore.query.oracle import match


def _vectors_file() -> Path | None:
    """The vectors: $PACSCORE_VECTORS, a copy under tests/, or the shared folder beside the repo."""
    here = Path(__file__).resolve().parent
    candidates = [
        os.environ.get("PACSCORE_VECTORS"),
        here / "vectors" / "matching.json",
        here.parent.parent / "shared" / "vectors" / "matching.json",
    ]
    for candidate in candidates:
        if candidate and Path(candidate).is_file():
            return Path(candidate)
    return None


VECTORS_FILE = _vectors_file()
ALL = json.loads(VECTORS_FILE.read_text(encoding="utf-8")) if VECTORS_FILE else []
VECTORS = [v for v in ALL if v["vr"] != "hierarchical" and v["type"] != "hierarchical"]
needs_vectors = pytest.mark.skipif(VECTORS_FILE is None, reason="matching.json not found (set PACSCORE_VECTORS)")


def expected(vector: dict) -> bool:
    return vector["recommended"] if vector["expected"] == "impl" else vector["expected"]


@needs_vectors
def test_every_non_hierarchical_vector_is_run():
    assert len({v["id"] for v in VECTORS}) == len(VECTORS) > 0
    assert all(v["expected"] in (True, False) or v["recommended"] in (True, False) for v in VECTORS)


@needs_vectors
@pytest.mark.parametrize("vector", VECTORS, ids=[v["id"] for v in VECTORS])
def test_vector(vector):
    got = match(vector["vr"], vector["key"], vector["value"], vector.get("item_vrs"), **vector.get("options", {}))
    assert got is expected(vector), vector["rule"]


def _invalid_ids() -> list[str]:
    return ["UNI-013", "UID-009", "WC-038", "DT-007", "DT-012", "SV-AS-003"]


@needs_vectors
@pytest.mark.parametrize("vector_id", _invalid_ids())
def test_invalid_vector_keys_raise_with_the_error_policy(vector_id, caplog):
    vector = next(v for v in VECTORS if v["id"] == vector_id)
    with caplog.at_level(logging.WARNING, logger="pacscore.query"):
        assert match(vector["vr"], vector["key"], vector["value"]) is False
    assert "matches nothing" in caplog.text
    with pytest.raises(QueryError) as info:
        match(vector["vr"], vector["key"], vector["value"], invalid_keys="error")
    assert info.value.reason


def test_unknown_option_names_raise_query_error():
    with pytest.raises(QueryError, match="unknown matching option"):
        match("CS", "CT", "CT", case_insensitive=True)


def test_more_than_one_sequence_key_item_logs_a_warning(caplog):
    with caplog.at_level(logging.WARNING, logger="pacscore.query"):
        assert match("SQ", [{"CodeValue": "A"}, {"CodeValue": "B"}], [{"CodeValue": "A"}])
    assert "only the first is used" in caplog.text


# ---------------------------------------------------------------- compiled conditions

STUDY_DATE, STUDY_TIME, TZ = 0x00080020, 0x00080030, 0x00080201


def test_universal_keys_compile_to_none():
    options = MatchOptions()
    assert compile_condition("PatientName", 0x00100010, "PN", "", options) is None
    assert compile_condition("PatientName", 0x00100010, "PN", "*", options) is None
    assert compile_condition("StudyDate", STUDY_DATE, "DA", "-", options) is None
    assert compile_condition("Rows", 0x00280010, "US", "512", options) is None  # return key only
    assert compile_condition("ProcedureCodeSequence", 0x00081032, "SQ", [{}], options) is None


@pytest.mark.parametrize(
    "vr, key, kind, key_values",
    [
        ("CS", " CT ", "single", ("CT",)),
        ("CS", "CT\\MR", "single", ("CT", "MR")),
        ("UI", "1.2.3\\1.2.4\\", "uid_list", ("1.2.3", "1.2.4")),
        ("LO", "AB*", "wildcard", ("AB*",)),
        ("PN", "Doe ^John^^", "single", ("doe^john",)),
        ("DA", "20200101-", "range", ("20200101-",)),
        ("AT", "(0010,0010)", "single", ("00100010",)),
    ],
)
def test_condition_kind_and_key_values(vr, key, kind, key_values):
    condition = compile_condition("X", 0x00100010, vr, key, MatchOptions())
    assert (condition.kind, condition.key_values, condition.tags) == (kind, key_values, (0x00100010,))


def test_kinds_of_negotiated_and_invalid_keys():
    assert (
        compile_condition("X", 1 << 16, "CS", "CT\\PT", MatchOptions(multiple_value_matching=True)).kind
        == "multi_value"
    )
    assert compile_condition("X", 1 << 16, "LO", '""', MatchOptions(empty_value_matching=True)).kind == "empty_value"
    assert compile_condition("X", 1 << 16, "DA", "2020", MatchOptions()).kind == "never"
    with pytest.raises(QueryError) as info:
        compile_condition("StudyDate", STUDY_DATE, "DA", "20200131-20200101", MatchOptions(invalid_keys="error"))
    assert info.value.attribute == "StudyDate" and "reversed" in info.value.reason


def test_a_key_of_the_wrong_type_is_always_a_query_error():
    with pytest.raises(QueryError, match="must be a string"):
        compile_condition("PatientID", 0x00100020, "LO", {"a": 1}, MatchOptions())
    with pytest.raises(QueryError, match="sequence key"):
        compile_condition("ProcedureCodeSequence", 0x00081032, "SQ", "x", MatchOptions())


def test_combined_condition_reads_date_and_time():
    options = MatchOptions(combined_datetime=True)
    keys = [
        ("StudyDate", STUDY_DATE, "DA", "20060705-20060707"),
        ("StudyTime", STUDY_TIME, "TM", "1000-1800"),
        ("SpecificCharacterSet", 0x00080005, "CS", "ISO_IR 192"),
        ("Modality", 0x00080060, "CS", ""),
    ]
    [condition] = compile_conditions(keys, options)
    assert condition.kind == "combined" and condition.keyword == "combined:StudyDate+StudyTime"
    assert condition.tags == (STUDY_DATE, STUDY_TIME)
    assert condition.test("20060706", "2300") and not condition.test("20060707", "1900")
    assert condition.test("20060706", None) and condition.test(None, None)


def test_combined_is_not_used_for_ranges_of_different_forms():
    options = MatchOptions(combined_datetime=True)
    keys = [("StudyDate", STUDY_DATE, "DA", "20060705-"), ("StudyTime", STUDY_TIME, "TM", "1000-1800")]
    assert [c.kind for c in compile_conditions(keys, options)] == ["range", "range"]


def test_combined_allows_a_time_range_that_only_makes_sense_across_days():
    options = MatchOptions(combined_datetime=True)
    keys = [("StudyDate", STUDY_DATE, "DA", "20060705-20060707"), ("StudyTime", STUDY_TIME, "TM", "1800-1000")]
    [condition] = compile_conditions(keys, options)
    assert condition.test("20060706", "0300") and not condition.test("20060707", "1100")


def test_timezone_adjustment_reads_the_record_offset():
    options = MatchOptions(timezone_adjustment=True)
    [condition] = compile_conditions([("StudyTime", STUDY_TIME, "TM", "1000-1100")], options, timezone_offset="+0100")
    assert condition.tags == (STUDY_TIME, TZ)
    assert condition.test("093000", "+0000")
    assert condition.test("103000", "+0100")
    assert not condition.test("103000", "+0000")
    assert condition.test("093000", None)  # no record offset: local_timezone (UTC)


def test_timezone_adjustment_wraps_around_midnight():
    options = MatchOptions(timezone_adjustment=True)
    [condition] = compile_conditions([("StudyTime", STUDY_TIME, "TM", "0000-0100")], options, timezone_offset="+0200")
    assert condition.test("223000", "+0000") and not condition.test("003000", "+0000")


def test_timezone_adjustment_moves_the_date_with_combined_matching():
    options = MatchOptions(timezone_adjustment=True, combined_datetime=True)
    keys = [
        ("StudyDate", STUDY_DATE, "DA", "20200102-20200102"),
        ("StudyTime", STUDY_TIME, "TM", "0000-0100"),
        ("TimezoneOffsetFromUTC", TZ, "SH", "+0200"),
    ]
    [condition] = compile_conditions(keys, options)
    assert condition.tags == (STUDY_DATE, STUDY_TIME, TZ)
    assert condition.test("20200101", "2230", "+0000")
    assert not condition.test("20200102", "0030", "+0000")


def test_an_invalid_key_timezone_offset_matches_nothing_or_raises():
    options = MatchOptions(timezone_adjustment=True)
    conditions = compile_conditions([("StudyTime", STUDY_TIME, "TM", "1000-1100")], options, timezone_offset="+25")
    assert any(c.kind == "never" for c in conditions)
    with pytest.raises(QueryError):
        compile_conditions(
            [("StudyTime", STUDY_TIME, "TM", "1000")], options.replace(invalid_keys="error"), timezone_offset="+25"
        )


def test_sequence_condition_with_nested_item_keys():
    key = [{"CodeValue": "RPID1", "CodeMeaning": "CT*"}]
    condition = compile_condition("ProcedureCodeSequence", 0x00081032, "SQ", key, MatchOptions())
    assert condition.kind == "sequence"
    assert condition.test([{"CodeValue": "RPID1", "CodeMeaning": "CT Chest"}])
    # the keys must be satisfied by one item, not across items
    assert not condition.test([{"CodeValue": "RPID1", "CodeMeaning": "MR"}, {"CodeValue": "X", "CodeMeaning": "CT"}])
    assert condition.test(None) and condition.test([])
    assert not compile_condition("S", 1 << 16, "SQ", key, MatchOptions(empty_record_matches=False)).test([])


def test_the_oracle_refuses_hierarchical_cases_and_unknown_vrs():
    with pytest.raises(QueryError, match="archive"):
        match("hierarchical", {}, {})
    with pytest.raises(QueryError, match="unknown VR"):
        match("XX", "a", "a")


def test_docstring_examples_hold():
    import doctest

    import pacscore.query.conditions
    import pacscore.query.reference
    import pacscore.values

    for module in (pacscore.values, pacscore.query.reference, pacscore.query.conditions):
        assert doctest.testmod(module).failed == 0, module.__name__
