"""The compiled twins give exactly the pure answers: the record codec byte for byte, the wild
card kernel, and every accelerated condition test against the reference's ``cond.test``.

Skipped when the extension is not built or PACSCORE_PURE=1 forces the pure paths.
"""

import os
import struct

import pytest
from hypothesis import assume, example, given
from hypothesis import strategies as st

if os.environ.get("PACSCORE_PURE") == "1":
    pytest.skip("PACSCORE_PURE=1: the pure paths are in use", allow_module_level=True)
_records = pytest.importorskip("pacscore._ext._records")
_match = pytest.importorskip("pacscore._ext._match")

from pacscore.index import records as pure  # noqa: E402
from pacscore.query import fast  # noqa: E402
from pacscore.query.conditions import compile_condition  # noqa: E402
from pacscore.query.options import MatchOptions  # noqa: E402
from pacscore.query.reference import WildcardPattern  # noqa: E402

# ---------------------------------------------------------------- strategies

#: text that stresses the codec and the kernels: ASCII, padding, backslashes, carets, accents
#: (composed and decomposed), case pairs, astral code points and a lone surrogate
ALPHABET = st.sampled_from(list("abAB ^=\\\0*?xyZ.-19") + ["é", "e\u0301", "ß", "Ω", "ω", "\U0001f600", "İ", "ﬁ"])
texts = st.lists(ALPHABET, max_size=14).map("".join)
any_text = st.one_of(texts, st.text(max_size=10), st.just("\udc80"))
vrs = st.sampled_from(["AE", "AS", "CS", "DA", "LO", "LT", "PN", "SH", "ST", "TM", "UC", "UI", "UR", "UT", "IN", "X"])
tags = st.one_of(st.integers(0, 0xFFFFFFFF), st.sampled_from([0x00100010, 0x00080060, 0xFFFF0001]))
json_scalars = st.one_of(st.none(), texts, st.integers(-10, 10))
items = st.dictionaries(
    st.sampled_from(["CodeValue", "CodeMeaning", "x"]),
    st.one_of(json_scalars, st.lists(st.dictionaries(st.just("y"), texts, max_size=1), max_size=2)),
    max_size=3,
)
fields = st.one_of(
    st.tuples(vrs, any_text),
    st.tuples(st.just("SQ"), st.lists(items, max_size=3)),
)
records = st.dictionaries(tags, fields, max_size=12)


# ---------------------------------------------------------------- the record codec


@given(records)
@example({})
@example({0x00100010: ("PN", "Müller^Hans"), 0x0040A730: ("SQ", [])})
def test_encode_is_byte_identical(rec):
    assert _records.encode(rec) == pure.encode(rec)


@given(records)
def test_decode_gives_the_pure_answer_on_bytes_and_memoryviews(rec):
    raw = pure.encode(rec)
    assert _records.decode(raw) == pure.decode(raw)
    assert _records.decode(memoryview(raw)) == pure.decode(raw)


@given(records, st.lists(tags, max_size=4))
def test_get_and_get_value_give_the_pure_answers(rec, extra):
    raw = pure.encode(rec)
    for tag in [*rec, *extra, -1, 2**40]:
        expected = pure.get(raw, tag)
        assert _records.get(raw, tag) == expected
        assert _records.get(memoryview(raw), tag) == expected
        assert _records.get(bytearray(raw), tag) == expected
        assert _records.get_value(raw, tag) == pure.get_value(raw, tag)
        assert _records.get_value(memoryview(raw), tag) == pure.get_value(raw, tag)


def test_decode_refuses_an_unknown_version_like_the_pure_codec():
    raw = b"\x02" + pure.encode({1: ("CS", "A")})[1:]
    with pytest.raises(ValueError, match="unknown record version 2"):
        pure.decode(raw)
    with pytest.raises(ValueError, match="unknown record version 2"):
        _records.decode(raw)


@pytest.mark.parametrize("codec", [pure, _records], ids=["pure", "compiled"])
def test_truncated_records_raise_instead_of_reading_past_the_buffer(codec):
    raw = pure.encode({1: ("CS", "ABC"), 2: ("CS", "DEF")})
    for cut in range(len(raw) - 1):
        for call in (lambda b: codec.get(b, 2), lambda b: codec.decode(b)):
            with pytest.raises((struct.error, ValueError)):
                call(raw[:cut])


# ---------------------------------------------------------------- the wild card kernel

patterns = st.text(st.sampled_from(list("ab*?^") + ["é", "\U0001f600"]), max_size=10)
subjects = st.text(st.sampled_from(list("ab^") + ["é", "\U0001f600"]), max_size=14)


@given(patterns, subjects)
@example("a*b?", "aab\U0001f600")
@example("*a*a*a*a*a*b", "a" * 60)
def test_wildcard_kernel_equals_the_reference_pattern(pattern, text):
    assert _match.wildcard_match(pattern, text) == WildcardPattern(pattern).match(text)


@pytest.mark.timeout(60)  # backtracking would take for ever on this; a hang guard, not a speed target
def test_wildcard_kernel_has_no_backtracking_blow_up():
    text = "a" * 20000
    assert not _match.wildcard_match("*a*a*a*a*a*a*a*a*b", text)


# ---------------------------------------------------------------- accelerated conditions

OPTIONS = [MatchOptions(), MatchOptions(empty_record_matches=False), MatchOptions(pn_case_insensitive=False)]
key_alphabet = st.sampled_from(list("aAbB*?^ \\=") + ["é", "e\u0301", "ß", "Σ", "ς", "µ", "İ", "i", "ǅ", "Ж"])
keys = st.lists(key_alphabet, min_size=1, max_size=8).map("".join)
stored_alphabet = st.sampled_from(
    list("aAbB^ \\=\0")
    + [
        "é",
        "e\u0301",
        "ß",
        "É",
        "\u0338",
        "山",
        "σ",
        "Σ",
        "ς",
        "μ",
        "ı",
        "İ",
        "ǆ",
        "ж",
        "ſ",
        "\u212a",
        "\u00a0",
        "\x85",
        "\u0308",
    ]
)
stored_values = st.one_of(st.none(), st.lists(stored_alphabet, max_size=12).map("".join))
ACCEL_VRS = ["AE", "AS", "CS", "LO", "LT", "PN", "SH", "ST", "UC", "UI", "UR", "UT"]


def _condition(vr, key, options):
    try:
        return compile_condition("K", 0x00100010, vr, key, options)
    except Exception:  # invalid keys are the reference's business, not ours
        return None


@given(st.sampled_from(ACCEL_VRS), keys, st.lists(stored_values, min_size=1, max_size=6), st.sampled_from(OPTIONS))
@example("CS", "CT\\MR", ["MR ", " CT", "ct", "", None, "\\", "PT\\MR"], MatchOptions())
@example("PN", "doe*", ["Doe^John", "DOE", "Doe ^John", "Doé", "^Doe", "x=doe"], MatchOptions())
@example("PN", "Doe^*", ["Doe", "Doe^", "doe^j"], MatchOptions())
@example(
    "PN", "*der*^s*", ["VAN DER BERG^SOPHIA", " van der ^ s ", "Smith-Jones^Elizabeth^^Dr.^", "=der^s"], MatchOptions()
)
@example("PN", "a^^*", ["a^^b", "a^ ^b", "a", "a^=x", "A\\a^b^^"], MatchOptions(pn_case_insensitive=False))
@example("PN", "*a*", ["Ba=山^田", "B=\u0338a", "Ba=\u0338", "x=山\\Ab=é", "é=a"], MatchOptions())
@example("PN", "*ö*", ["Ströh^Jö", "STRÖH", "Stro\u0308h", "Ö=x", "ö\u0338"], MatchOptions())
@example("PN", "σ*^ж?", ["ΣΑΣ^Жx", "ςa^жж", "Σ^Ж", "σ^ж\u0308"], MatchOptions())
@example("LO", "*Ü?", ["xÜy", "xüy", "xU\u0308y", "Üß"], MatchOptions())
@example("UI", "1.2\\1.3", ["1.2", "1.3 ", "1.4", ""], MatchOptions(empty_record_matches=False))
@example("LO", "*a?", [" xab", "ab", "a\\ab"], MatchOptions())
def test_accelerated_tests_equal_the_reference(vr, key, stored, options):
    cond = _condition(vr, key, options)
    assume(cond is not None)
    test = fast.accelerate(cond, options)
    assume(test is not None)
    for value in stored:
        expected = cond.test(value)
        assert test(value) == expected, (vr, key, value)
        rec = pure.encode({} if value is None else {0x00100010: (vr, value)})
        assert test.test_record(rec) == expected, (vr, key, value)


def test_the_safe_code_points_are_nfc_and_fold_like_the_reference():
    """The kernels match stored text made of ASCII and these code points without normalising
    it: each must be its own NFC, must not compose with anything before it, and the kernel's
    fold must be values._fold_char."""
    import unicodedata

    from pacscore.values import fold_case

    safe = [chr(cp) for cp in _match.safe_code_points()]
    assert "é" in safe and "Ж" in safe and "\u0301" not in safe and "\u0338" not in safe and "山" not in safe
    starters = [chr(cp) for cp in range(0x20, 0x7F)] + safe
    for ch in safe:
        assert unicodedata.is_normalized("NFC", ch)
        for before in starters:
            assert unicodedata.is_normalized("NFC", before + ch), (before, ch)
    for ch in safe:  # each letter, as a one-letter wild card, against its cases: kernel == reference
        if not ch.isalpha():
            continue
        cond = compile_condition("K", 0x00100010, "PN", "?" + ch + "*", MatchOptions())
        test = fast.accelerate(cond, MatchOptions())
        assert test is not None, ch
        for stored in {"x" + ch, "X" + ch.upper(), "x" + ch.lower(), "x" + fold_case(ch), "xa"}:
            rec = pure.encode({0x00100010: ("PN", stored)})
            assert test.test_record(rec) == cond.test(stored), (ch, stored)


@pytest.mark.parametrize(
    ("vr", "key"),
    [
        ("CS", "CT"),
        ("CS", "CT\\MR"),
        ("UI", "1.2.3"),
        ("UI", "1.2\\1.3"),
        ("LO", "A*"),
        ("SH", "?B*"),
        ("PN", "SMI*"),
        ("PN", "*ohn*"),
        ("PN", "D?e^J*"),
    ],
)
def test_common_keys_are_accelerated(vr, key):
    cond = compile_condition("K", 0x00100010, vr, key, MatchOptions())
    assert fast.accelerate(cond, MatchOptions()) is not None


@pytest.mark.parametrize(
    ("vr", "key"),
    [("DA", "2020.01.01-"), ("DA", "20200101\\20200102"), ("PN", "Doe^John"), ("PN", "a*=b*"), ("IS", "7")],
)
def test_other_keys_keep_the_reference(vr, key):
    cond = compile_condition("K", 0x00100010, vr, key, MatchOptions())
    assert fast.accelerate(cond, MatchOptions()) is None


# dates: digits in YYYYMMDD shape, many of them not real days, plus the retired form and padding
date_digits = st.builds(
    lambda y, m, d: f"{y:04d}{m:02d}{d:02d}",
    st.sampled_from([0, 1, 1900, 2000, 2019, 2020, 2100, 9999]),
    st.integers(0, 13),
    st.integers(0, 32),
)
stored_dates = st.one_of(
    st.none(),
    date_digits,
    date_digits.map(lambda d: f"{d[:4]}.{d[4:6]}.{d[6:]}"),
    date_digits.map(lambda d: d + " "),
    date_digits.map(lambda d: " " + d),
    st.tuples(date_digits, date_digits).map("\\".join),
    st.sampled_from(["", " ", "2020", "202001011", "２０２００１０１", "2020-01-01", "\0"]),
)
date_keys = st.one_of(
    date_digits,
    st.tuples(date_digits, date_digits).map("-".join),
    date_digits.map(lambda d: d + "-"),
    date_digits.map(lambda d: "-" + d),
    date_digits.map(lambda d: f"{d[:4]}.{d[4:6]}.{d[6:]}-"),
)


@given(date_keys, st.lists(stored_dates, min_size=1, max_size=6), st.sampled_from(OPTIONS))
@example(
    "20200101-20201231",
    ["20200101", "20201231 ", "20210101", "20200230", "2020.06.01", "19991231\\20200505", "", None, "00000101"],
    MatchOptions(),
)
@example("20200229", ["20200229", "20200228", "2020.02.29"], MatchOptions(empty_record_matches=False))
def test_date_kernel_equals_the_reference(key, stored, options):
    cond = _condition("DA", key, options)
    assume(cond is not None)
    test = fast.accelerate(cond, options)
    assume(test is not None)
    for value in stored:
        expected = cond.test(value)
        assert test(value) == expected, (key, value)
        rec = pure.encode({} if value is None else {0x00100010: ("DA", value)})
        assert test.test_record(rec) == expected, (key, value)


@pytest.mark.parametrize("key", ["20200101", "20200101-", "-20201231", "20200101-20201231"])
def test_plain_date_keys_are_accelerated(key):
    cond = compile_condition("K", 0x00100010, "DA", key, MatchOptions())
    assert fast.accelerate(cond, MatchOptions()) is not None


times = st.one_of(
    st.builds(lambda h, m, sec: f"{h:02d}{m:02d}{sec:02d}", st.integers(0, 25), st.integers(0, 61), st.integers(0, 61)),
    st.builds(lambda h, m: f"{h:02d}{m:02d}", st.integers(0, 24), st.integers(0, 60)),
    st.builds(lambda h: f"{h:02d}", st.integers(0, 24)),
    st.builds(
        lambda t, f: f"{t}.{f}",
        st.sampled_from(["000000", "235959", "120060", "1200"]),
        st.text("0123456789", min_size=0, max_size=7),
    ),
    st.sampled_from(["10:00", "10:00:30.5", "", " ", "1", "12345", "0800 ", "\\1000", "1000\\2300", "１０"]),
)
stored_times = st.one_of(st.none(), times)
combined_keys = st.sampled_from(
    [
        ("20200101-20201231", "080000-120000"),
        ("20200101-", "1000-"),
        ("-20201231", "-1000"),
        ("20200229-20200301", "2359-0001"),
        ("20200101-20200101", "10-10"),
        ("19991231-20000101", "235959.5-000000.25"),
    ]
)


#: the days the keys above start or end on, where whole-day and time-of-day answers differ
bound_dates = st.sampled_from(["20200101", "20201231", "20200229", "20200301", "19991231", "20000101", "20200101 "])


@given(
    combined_keys,
    st.lists(st.tuples(st.one_of(bound_dates, stored_dates), stored_times), min_size=1, max_size=6),
    st.sampled_from(OPTIONS),
    st.sampled_from(["+0000", "+0530", "-1000"]),
)
@example(
    ("20200101-20201231", "080000-120000"),
    [
        ("20200101", "090000"),
        ("20200101", "070000"),
        ("20201231", "12"),
        ("20201231", None),
        ("2020.06.15", "10:00"),
        ("20200615", "25"),
        (None, "1000"),
        ("", ""),
        ("20200230", "1000"),
        ("20200615\\20190101", "1000\\0600"),
        ("20200101", None),
        ("20200101", " "),
        ("20201231", "1201"),
        ("20201231", "120000.999999"),
        ("20201231", "120001"),
    ],
    MatchOptions(),
    "+0000",
)
def test_combined_kernel_equals_the_reference(key, stored, options, local):
    from dataclasses import replace

    from pacscore.query.conditions import compile_conditions

    options = replace(options, combined_datetime=True, local_timezone=local)
    conds = compile_conditions(
        [("StudyDate", 0x00080020, "DA", key[0]), ("StudyTime", 0x00080030, "TM", key[1])], options
    )
    assume(len(conds) == 1 and conds[0].kind == "combined")
    cond = conds[0]
    test = fast.accelerate(cond, options)
    assert test is not None
    for date, time_ in stored:
        expected = cond.test(date, time_)
        assert test(date, time_) == expected, (key, date, time_)
        fields = {}
        if date is not None:
            fields[0x00080020] = ("DA", date)
        if time_ is not None:
            fields[0x00080030] = ("TM", time_)
        assert test.test_record(pure.encode(fields)) == expected, (key, date, time_)


# ---------------------------------------------------------------- TM and DT kernels (schema 6)

from pacscore import values as _values  # noqa: E402
from pacscore.query import temporal  # noqa: E402

#: DT text near the forms the reader takes: dates of every precision, times, offsets (valid
#: and not), and the ambiguous hyphen
dt_texts = st.one_of(
    st.builds(
        lambda d, t, o: d + t + o,
        st.one_of(date_digits, date_digits.map(lambda d: d[:6]), date_digits.map(lambda d: d[:4])),
        st.one_of(st.just(""), times),
        st.sampled_from(["", "+0000", "-0500", "+1400", "+1401", "-1201", "+0560", "-05", "+05:00", "&0100"]),
    ),
    st.sampled_from(["", "0001+1400", "9999-1200", "2020-", "20200101T1000", "20200101 ", "２０２０"]),
)


@given(times)
@example("235960.5")
@example("120060.")
def test_the_tm_reader_twins_agree_and_give_the_reference_instant(text):
    raw = text.encode("utf-8")
    got = _match.tm_floor(raw)
    assert got == temporal.tm_floor_pure(raw)
    if got is not None:
        assert got == _values.parse_tm(text)[0]


@given(dt_texts, st.sampled_from([0, -12 * _values.HOUR, 14 * _values.HOUR, 5 * _values.HOUR + 30 * _values.MINUTE]))
@example("20200229235960.999999-1200", 0)
@example("20190229", 0)
@example("2020-0500", 0)
def test_the_dt_reader_twins_agree_and_give_the_reference_instant(text, offset):
    raw = text.encode("utf-8")
    got = _match.dt_floor(raw, offset)
    assert got == temporal.dt_floor_pure(raw, offset)
    if got is not None:
        assert got == _values.parse_dt(text, offset)[0]


time_keys = st.one_of(
    times,
    st.tuples(times, times).map("-".join),
    times.map(lambda t: t + "-"),
    times.map(lambda t: "-" + t),
)
datetime_keys = st.one_of(
    dt_texts,
    st.tuples(dt_texts, dt_texts).map("-".join),
    dt_texts.map(lambda t: t + "-"),
    dt_texts.map(lambda t: "-" + t),
)


@given(
    st.sampled_from(["TM", "DT"]).flatmap(
        lambda vr: st.tuples(
            st.just(vr),
            time_keys if vr == "TM" else datetime_keys,
            st.lists(stored_times if vr == "TM" else st.one_of(st.none(), dt_texts), min_size=1, max_size=6),
        )
    ),
    st.sampled_from(OPTIONS),
    st.sampled_from(["+0000", "+0530", "-1000", "+1400"]),
)
@example(
    ("TM", "-0800", ["0800", "080059.999999", "0801", "08", "2500", "08:00", "", None, "0700\\0900"]),
    MatchOptions(),
    "+0000",
)
@example(("TM", "1200-", ["235960", "235960.5", "1159", "12"]), MatchOptions(empty_record_matches=False), "+0000")
@example(
    ("DT", "2020-2021", ["20191231230000-0100", "2020", "20211231235959", "2022+1400", None]), MatchOptions(), "+0530"
)
def test_time_kernels_equal_the_reference(case, options, local):
    from dataclasses import replace

    vr, key, stored = case
    options = replace(options, local_timezone=local)
    cond = _condition(vr, key, options)
    assume(cond is not None and cond.kind != "never")
    test = fast.accelerate(cond, options)
    assume(test is not None)
    for value in stored:
        expected = cond.test(value)
        assert test(value) == expected, (key, value)
        rec = pure.encode({} if value is None else {0x00100010: (vr, value)})
        assert test.test_record(rec) == expected, (key, value)


@pytest.mark.parametrize(
    "vr, key",
    [
        ("TM", "-0800"),
        ("TM", "0800-1200"),
        ("TM", "1200-"),
        ("TM", "08"),
        ("DT", "2020-"),
        ("DT", "20200101120000+0100"),
    ],
)
def test_plain_time_keys_are_accelerated(vr, key):
    cond = compile_condition("K", 0x00100010, vr, key, MatchOptions())
    assert fast.accelerate(cond, MatchOptions()) is not None


# ---------------------------------------------------------------- JSON response rows

from pacscore.query import json_rows  # noqa: E402
from pacscore.query.results import json_attribute  # noqa: E402

ROW_VRS = ["AE", "CS", "DA", "DS", "IS", "LO", "LT", "PN", "SH", "ST", "TM", "UI", "UN", "UR", "UT", "IN", "SQ", "US"]
row_texts = st.lists(st.sampled_from(list("ab ^=\\01.+-e") + ["é", "Ω", " 7", "x"]), max_size=10).map("".join)
row_records = st.dictionaries(
    st.sampled_from([0x00100010, 0x00080020, 0x00201208, 0x0020000D, 0x00081030]),
    st.one_of(
        st.tuples(st.sampled_from(ROW_VRS[:-2]), row_texts), st.tuples(st.just("SQ"), st.lists(items, max_size=2))
    ),
    max_size=5,
)
row_specs = st.lists(
    st.one_of(
        st.tuples(
            st.just(json_rows.CONSTANT),
            st.sampled_from(["00080005", "00080052"]),
            st.sampled_from(["CS", "LO"]),
            row_texts,
        ),
        st.tuples(
            st.sampled_from([json_rows.UNIQUE, json_rows.KEY]),
            st.sampled_from(["A", "B", "C", "D"]),
            st.integers(0, 1),
            st.sampled_from([0x00100010, 0x00080020, 0x00201208, 0x0020000D, 0x00081030]),
            st.sampled_from(ROW_VRS),
        ),
    ),
    max_size=6,
).map(tuple)


@given(row_specs, row_records, st.one_of(st.none(), row_records))
@example(
    (
        (json_rows.CONSTANT, "00080005", "CS", "ISO_IR 192"),
        (json_rows.KEY, "00100010", 0, 0x00100010, "PN"),
        (json_rows.KEY, "00201208", 0, 0x00201208, "IS"),
        (json_rows.UNIQUE, "0020000D", 1, 0x0020000D, "UI"),
    ),
    {0x00100010: ("PN", "Doe^J=ド^ジ\\\\a==b"), 0x00201208: ("IS", " 7\\+3\\x\\")},
    None,
)
def test_json_rows_equal_the_pure_rows(specs, first, second):
    recs = (pure.encode(first), None if second is None else pure.encode(second))
    call = (json_rows.CALL, "00080201", lambda match: None if match is None else {"vr": "SH"})
    for row_specs_ in (specs, specs + (call,)):
        try:
            expected = json_rows.json_row(row_specs_, recs, None, json_attribute)
        except Exception as exc:  # then the compiled twin must fail too
            with pytest.raises(type(exc)):
                _records.json_row(row_specs_, recs, None, json_attribute)
            continue
        got = _records.json_row(row_specs_, recs, None, json_attribute)
        assert got == expected
        assert list(got) == list(expected)
    # rows of a list of own records (no CALL spec): each slot of a spec reads the same record
    own = [recs[0]] + ([recs[1]] if recs[1] is not None else [])
    try:
        expected_rows = json_rows.json_rows(specs, own, json_attribute)
    except Exception as exc:
        with pytest.raises(type(exc)):
            _records.json_rows(specs, own, json_attribute)
        return
    got_rows = _records.json_rows(specs, own, json_attribute)
    assert got_rows == expected_rows
    assert [list(r) for r in got_rows] == [list(r) for r in expected_rows]
    assert got_rows == [json_rows.json_row(specs, (rec, rec), None, json_attribute) for rec in own]


def _tracked_containers(obj) -> list:
    """The containers in ``obj`` (itself included) that the cyclic GC tracks."""
    import gc

    found = [obj] if gc.is_tracked(obj) else []
    children = obj.values() if isinstance(obj, dict) else obj if isinstance(obj, list) else ()
    for child in children:
        if isinstance(child, (dict, list)):
            found += _tracked_containers(child)
    return found


def test_compiled_rows_of_plain_values_are_left_out_of_the_cyclic_gc():
    """Rows of text, numbers and names hold no container the GC would need to see: they are
    untracked (a broad query no longer pays collections over them). A row with a sequence keeps
    the GC's view of it; a dict a caller puts a list into is tracked again by CPython itself."""
    import gc

    specs = (
        (json_rows.CONSTANT, "00080005", "CS", "ISO_IR 192"),
        (json_rows.KEY, "00100010", 0, 0x00100010, "PN"),
        (json_rows.KEY, "00201208", 0, 0x00201208, "IS"),
        (json_rows.KEY, "00080020", 0, 0x00080020, "DA"),
        (json_rows.UNIQUE, "0020000D", 0, 0x0020000D, "UI"),
    )
    rec = pure.encode({0x00100010: ("PN", "Doe^J=ド"), 0x00201208: ("IS", "7"), 0x0020000D: ("UI", "1.2")})
    row = _records.json_row(specs, (rec,), None, json_attribute)
    assert row == json_rows.json_row(specs, (rec,), None, json_attribute)
    assert _tracked_containers(row) == []
    row["00100010"]["Value"].append("x")  # still a plain value: fine untracked
    row["00080020"]["Extra"] = []
    assert gc.is_tracked(row["00080020"])
    with_sequence = pure.encode({0x00081030: ("SQ", [{"CodeValue": "1"}])})
    row = _records.json_row(((json_rows.KEY, "00081030", 0, 0x00081030, "SQ"),), (with_sequence,), None, json_attribute)
    assert gc.is_tracked(row) and gc.is_tracked(row["00081030"])
    # the list builder (own records) likewise: plain rows untracked, a row with a sequence tracked
    plain, with_seq = _records.json_rows(
        specs + ((json_rows.KEY, "00081030", 0, 0x00081030, "SQ"),), [rec, with_sequence], json_attribute
    )
    assert _tracked_containers(plain) == []
    assert gc.is_tracked(with_seq) and gc.is_tracked(with_seq["00081030"])


def test_a_record_tester_applies_every_condition_of_the_level():
    from types import SimpleNamespace

    options = MatchOptions()
    conds = [
        compile_condition("Modality", 0x00080060, "CS", "CT", options),
        compile_condition("SeriesDate", 0x00080021, "DA", "20200101-", options),
    ]
    query = SimpleNamespace(conditions={"SERIES": conds}, options=options)
    test = fast.record_tester(query, fallback=None)
    rec = pure.encode({0x00080060: ("CS", "CT"), 0x00080021: ("DA", "20210101")})
    assert test("SERIES", rec) and test("STUDY", rec)
    assert not test("SERIES", pure.encode({0x00080060: ("CS", "CT"), 0x00080021: ("DA", "19990101")}))
    assert not test("SERIES", pure.encode({0x00080060: ("CS", "MR")}))


def test_fetch_reads_tests_and_copies_the_candidates():
    """RecordTest.fetch: absent keys skipped, buffers copied, the record test applied."""
    cond = compile_condition("Modality", 0x00080060, "CS", "CT", MatchOptions())
    rt = _match.RecordTest([fast.accelerate(cond)])
    store = {
        b"1": pure.encode({0x00080060: ("CS", "CT")}),
        b"2": pure.encode({0x00080060: ("CS", "MR")}),
        b"3": memoryview(pure.encode({0x00080060: ("CS", "CT ")})),
    }

    def get(key, default, db):
        assert db == "the db"
        return store.get(key, default)

    got = rt.fetch(get, [b"1", b"2", b"3", b"4"], "the db")
    assert got == [(b"1", store[b"1"]), (b"3", bytes(store[b"3"]))]
    assert all(type(k) is bytes and type(r) is bytes for k, r in got)


# ---------------------------------------------------------------- ingest's element walk

_walk = pytest.importorskip("pacscore._ext._walk")


@st.composite
def element_streams(draw):
    """Element headers of every shape (explicit short and long VRs, lower-case and binary
    VR bytes, items, delimiters, undefined lengths) with values, then possibly cut."""
    from pacscore import ingest

    big = draw(st.booleans())
    endian = ">" if big else "<"
    out = b""
    for _ in range(draw(st.integers(0, 6))):
        group = draw(st.sampled_from([0x0008, 0x7FE0, 0xFFFE, 0x0010]))
        elem = draw(st.sampled_from([0x0010, 0xE000, 0xE00D, 0xE0DD]))
        vr = draw(st.sampled_from(list(ingest._LONG_VRS) + [b"CS", b"PN", b"ab", b"\x00\x01", b"Z9"]))
        length = draw(st.one_of(st.integers(0, 12), st.just(0xFFFFFFFF), st.just(0xFFFF)))
        if group == 0xFFFE:
            out += struct.pack(endian + "HHI", group, elem, length)
        elif vr in ingest._LONG_VRS:
            out += struct.pack(endian + "HH", group, elem) + vr + b"\0\0" + struct.pack(endian + "I", length)
        else:
            out += struct.pack(endian + "HH", group, elem) + vr + struct.pack(endian + "H", length & 0xFFFF)
        out += draw(st.binary(max_size=12))
    cut = draw(st.integers(0, len(out)))
    return out[:cut] if draw(st.booleans()) else out, big


@given(element_streams(), st.booleans(), st.integers(0, 8))
def test_element_walk_equals_the_pure_walk(stream, implicit, start):
    from pacscore import ingest

    data, big = stream
    assert _walk.walk_problem(data, start, implicit, big) == ingest._walk_problem(data, start, implicit, big)


def test_element_walk_on_real_files():
    from pacscore import ingest

    from .factories import pydicom_test_files

    for path in sorted(pydicom_test_files().glob("*.dcm"))[:60]:
        data = path.read_bytes()
        for start in (132, 200):
            for cut in (len(data), len(data) - 1, len(data) // 2):
                for implicit in (False, True):
                    assert _walk.walk_problem(data[:cut], start, implicit, False) == ingest._walk_problem(
                        data[:cut], start, implicit, False
                    ), (path.name, start, cut)


# ---------------------------------------------------------------- index range walks

_ranges = pytest.importorskip("pacscore._ext._ranges")
from pacscore.query.ranges import walk_range_pure  # noqa: E402

range_keys = st.binary(max_size=5).map(lambda b: b"\x01\x02" + b) | st.binary(max_size=4)


@given(
    st.lists(st.tuples(range_keys, st.binary(min_size=1, max_size=3)), max_size=40),
    st.binary(max_size=3),
    st.binary(max_size=3),
    st.booleans(),
    st.integers(0, 12),
    st.booleans(),
)
def test_range_walks_equal_the_pure_walk(entries, start, end, prefix, cap, as_buffers):
    """Both walks add the same values and give up at the same point, over keys inside, before
    and after the head, in an LMDB-like walk of sorted (key, value) pairs (as memoryviews, as
    LMDB gives them in a buffers transaction, or as bytes)."""
    head = b"\x01\x02"
    lo = head + start
    walk = sorted(e for e in entries if e[0] >= lo)
    pairs = [(memoryview(k), memoryview(v)) if as_buffers else (k, v) for k, v in walk]
    hi = None if prefix else head + end
    want, got = set(), set()
    expected = walk_range_pure(iter(pairs), head, lo, hi, prefix, want, cap)
    assert _ranges.walk_range(iter(pairs), head, lo, hi, prefix, got, cap) == expected
    assert got == want


@given(st.lists(st.binary(max_size=6), max_size=30), st.booleans())
def test_values_of_equals_the_pure_copy(values, as_buffers):
    from pacscore.query.ranges import values_of_pure

    walk = [memoryview(v) if as_buffers else v for v in values]
    got = _ranges.values_of(iter(walk))
    assert got == values_of_pure(iter(walk)) == values
    assert all(type(v) is bytes for v in got)
