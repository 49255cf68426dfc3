"""Properties of the reference matcher, checked by Hypothesis against independent models."""

import re
import unicodedata
from datetime import date, datetime, time, timedelta, timezone

import pytest
from hypothesis import assume, given
from hypothesis import strategies as st

from pacscore.errors import QueryError
from pacscore.query.oracle import match
from pacscore.query.reference import WildcardPattern
from pacscore.values import parse_pn, pn_groups

# ---------------------------------------------------------------- strategies

#: Characters that trip regex, SQL LIKE and byte-oriented matchers, plus non-ASCII and newlines.
TRICKY = list("ab*?.^$\\[](){}|+%_=\n\r\t é𠀀ßẞİ") + ["\u0301"]
patterns = st.text(st.sampled_from(TRICKY), max_size=12)
texts = st.text(st.sampled_from(TRICKY), max_size=24)
plain = st.sampled_from([c for c in TRICKY if c not in "*?\\"])
pn_text = st.text(st.sampled_from(list("abAB^= *?éÉ")), max_size=10)


def regex_model(pattern: str) -> re.Pattern:
    """The C.2.2.2.4 wild card meaning, built independently of pacscore's matcher."""
    body = "".join(".*" if c == "*" else "." if c == "?" else re.escape(c) for c in pattern)
    return re.compile(body, re.DOTALL)


def nfc(s: str) -> str:
    return unicodedata.normalize("NFC", s)


# ---------------------------------------------------------------- wild cards


@given(patterns, texts)
def test_wildcard_pattern_agrees_with_an_anchored_regex(pattern, text):
    compiled = WildcardPattern(pattern)
    expected = bool(regex_model(pattern).fullmatch(text))
    assert compiled.match(text) == expected
    assert compiled.match_steps(text)[0] == expected  # the general path, also without '?'


@given(patterns, texts)
def test_wildcard_key_on_lt_agrees_with_the_regex_model(pattern, text):
    pattern, text = nfc(pattern).rstrip(" \0"), nfc(text).rstrip(" \0")
    assume(pattern)
    expected = bool(regex_model(pattern).fullmatch(text)) or pattern.strip("*") == ""
    assert match("LT", pattern, text, empty_record_matches=False) == expected


@given(
    st.text(plain, min_size=1, max_size=8).map(lambda s: s + "*"),
    st.lists(st.text(plain, max_size=8), min_size=1, max_size=4),
)
def test_wildcard_applies_to_each_stored_value(pattern, values):
    pattern, values = nfc(pattern).strip(" "), [nfc(v).strip(" ") for v in values]
    assume(pattern.strip("*") and "\\".join(values).strip(" "))
    expected = any(regex_model(pattern).fullmatch(v) for v in values)
    assert match("LO", pattern, "\\".join(values), empty_record_matches=False) == expected


@given(st.sampled_from(["LO", "SH", "PN", "LT", "CS"]), pn_text, pn_text, st.booleans())
def test_appending_a_star_never_removes_matches(vr, pattern, value, all_groups):
    pattern = pattern.rstrip(" ")
    options = {"pn_match_all_groups": all_groups}
    if match(vr, pattern, value, **options):
        assert match(vr, pattern + "*", value, **options)


@given(pn_text)
def test_pn_groups_fast_path_equals_full_normalisation(value):
    assert pn_groups(value) == tuple("^".join(g) for g in parse_pn(value))


@given(patterns, texts)
def test_wildcard_work_is_bounded(pattern, text):
    segments = pattern.count("*") + 1
    _, steps = WildcardPattern(pattern).match_steps(text)
    assert steps <= (len(text) + 2) * (segments + 1)


@pytest.mark.parametrize(
    "pattern, text, expected",
    [
        ("*a*a*a*a*a*a*a*b", "a" * 5000, False),
        ("*a*a*a*a*a*a*a*a", "a" * 5000, True),
        ("*a?a*a?a*a?a*a?c*a", "a" * 5000, False),
        ("*" + "?" * 50 + "b*", "a" * 5000, False),
        ("*aaaaaaaaab*", "a" * 5000, False),
        ("*ab*ab*ab*ab*ab*ac", "ab" * 2500 + "c", False),
    ],
)
def test_pathological_patterns_take_linear_steps(pattern, text, expected):
    # a backtracking regex needs about len(text) ** stars steps here; count ours instead of timing
    found, steps = WildcardPattern(pattern).match_steps(text)
    assert found is expected
    assert steps <= 2 * len(text) * (pattern.count("*") + 1)


def test_pathological_pattern_through_the_public_matcher():
    assert match("LO", "*a*a*a*a*a*a*a*b", "a" * 5000) is False


# ---------------------------------------------------------------- ranges against an interval model

dates = st.dates(min_value=date(1900, 1, 1), max_value=date(2100, 12, 31))
maybe_dates = st.one_of(st.none(), dates)


@given(maybe_dates, maybe_dates, dates)
def test_da_range_agrees_with_the_interval_model(lo, hi, stored):
    assume(lo is not None or hi is not None)
    key = f"{lo:%Y%m%d}" if lo else ""
    key += "-" + (f"{hi:%Y%m%d}" if hi else "")
    reversed_ = lo is not None and hi is not None and lo > hi
    expected = not reversed_ and (lo is None or lo <= stored) and (hi is None or stored <= hi)
    assert match("DA", key, f"{stored:%Y%m%d}") == expected


times = st.times()
precisions = st.sampled_from([1, 2, 3, 4, 6, 9])  # HH, HHMM, HHMMSS, .F, .FFF, .FFFFFF


def tm_text(t: time, precision: int) -> str:
    text = f"{t:%H%M%S}.{t.microsecond:06d}"
    return text[: {1: 2, 2: 4, 3: 6}.get(precision, 7 + precision - 3)]


def tm_bounds(t: time, precision: int) -> tuple[timedelta, timedelta]:
    """Floor and ceiling of a TM written to a precision, computed with timedelta arithmetic."""
    base = timedelta(hours=t.hour)
    unit = timedelta(hours=1)
    if precision >= 2:
        base, unit = base + timedelta(minutes=t.minute), timedelta(minutes=1)
    if precision >= 3:
        base, unit = base + timedelta(seconds=t.second), timedelta(seconds=1)
    if precision >= 4:
        digits = precision - 3
        step = 10 ** (6 - digits)
        base, unit = base + timedelta(microseconds=t.microsecond // step * step), timedelta(microseconds=step)
    return base, base + unit - timedelta(microseconds=1)


@given(
    st.one_of(st.none(), st.tuples(times, precisions)),
    st.one_of(st.none(), st.tuples(times, precisions)),
    times,
    precisions,
)
def test_tm_range_agrees_with_the_interval_model(lo, hi, stored, stored_precision):
    assume(lo is not None or hi is not None)
    key = (tm_text(*lo) if lo else "") + "-" + (tm_text(*hi) if hi else "")
    low = tm_bounds(*lo)[0] if lo else None
    high = tm_bounds(*hi)[1] if hi else None
    value = tm_bounds(stored, stored_precision)[0]
    if low is not None and high is not None and low > high:
        expected = False  # reversed, or crossing midnight: invalid
    else:
        expected = (low is None or low <= value) and (high is None or value <= high)
    assert match("TM", key, tm_text(stored, stored_precision)) == expected


offsets = st.integers(min_value=-12 * 60, max_value=14 * 60).map(lambda m: timezone(timedelta(minutes=m)))
aware = st.builds(
    lambda dt, tz: dt.replace(tzinfo=tz),
    st.datetimes(min_value=datetime(1900, 1, 2), max_value=datetime(2100, 12, 30)),
    offsets,
)


def dt_text(dt: datetime) -> str:
    return f"{dt:%Y%m%d%H%M%S}.{dt.microsecond:06d}{dt:%z}"


@given(st.one_of(st.none(), aware), st.one_of(st.none(), aware), aware)
def test_dt_range_with_offsets_agrees_with_aware_datetimes(lo, hi, stored):
    assume(lo is not None or hi is not None)
    key = (dt_text(lo) if lo else "") + "-" + (dt_text(hi) if hi else "")
    if lo is not None and hi is not None and lo > hi:
        expected = False
    else:
        expected = (lo is None or lo <= stored) and (hi is None or stored <= hi)
    assert match("DT", key, dt_text(stored)) == expected


# ---------------------------------------------------------------- any valid value equals itself


def _text(alphabet: str, min_size: int = 1, max_size: int = 16):
    return st.text(st.sampled_from(list(alphabet)), min_size=min_size, max_size=max_size)


UPPER = "ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789"
LATIN = UPPER + "abcdefxyz .,-_%()éüß中"
pn_component = _text("ABCdefÉü中 -'", 0, 8)
uid = st.from_regex(r"[1-9][0-9]{0,4}(\.(0|[1-9][0-9]{0,4})){1,6}", fullmatch=True)

VALID = {
    "AE": _text(UPPER + "_-", 1, 16),
    "CS": _text(UPPER + "_ ", 1, 16),
    "SH": _text(LATIN, 1, 16),
    "LO": _text(LATIN, 1, 64),
    "UC": _text(LATIN, 1, 64),
    "ST": _text(LATIN + "\\\n\r", 1, 64),
    "LT": _text(LATIN + "\\\n\r", 1, 64),
    "UT": _text(LATIN + "\\\n\r", 1, 64),
    "UR": _text("abcxyz:/.=&%#~", 1, 64),
    "PN": st.lists(st.lists(pn_component, max_size=5).map("^".join), min_size=1, max_size=3).map("=".join),
    "DA": dates.map(lambda d: f"{d:%Y%m%d}"),
    "TM": st.tuples(times, precisions).map(lambda tp: tm_text(*tp)),
    "DT": st.builds(
        lambda dt, cut, zone: dt_text(dt)[:cut] + zone,
        aware,
        st.sampled_from([4, 6, 8, 10, 12, 14, 16, 21]),
        st.sampled_from(["", "+0000", "+0530", "+1400"]),
    ),
    "IS": st.integers(-(2**31), 2**31 - 1).map(str),
    "DS": st.decimals(allow_nan=False, allow_infinity=False, places=4, min_value=-1e6, max_value=1e6).map(str),
    "UI": uid,
    "AS": st.tuples(st.integers(0, 999), st.sampled_from("DWMY")).map(lambda t: f"{t[0]:03d}{t[1]}"),
    "AT": st.integers(0, 0xFFFFFFFF).map(lambda t: f"{t:08X}"),
}


@pytest.mark.parametrize("vr", sorted(VALID))
@given(data=st.data())
def test_any_valid_value_matches_itself_as_a_single_key(vr, data):
    value = data.draw(VALID[vr])
    assume(value.strip(" ") and "*" not in value and "?" not in value)
    assert match(vr, value, value, empty_record_matches=False)


# ---------------------------------------------------------------- UID lists


@given(st.lists(uid, min_size=1, max_size=5), st.one_of(uid, st.sampled_from(["1.2.3", ""])), st.booleans())
def test_uid_list_is_the_union_of_single_uids(uids, stored, pick):
    if pick:
        stored = uids[0]
    assert match("UI", "\\".join(uids), stored) == any(match("UI", u, stored) for u in uids)


# ---------------------------------------------------------------- invalid keys

INVALID = st.one_of(
    st.tuples(st.just("DA"), st.sampled_from(["*", "2020*", "20201301", "2020", "20200101-2020013x", "--"])),
    st.tuples(
        st.just("DA"),
        st.tuples(dates, dates).filter(lambda p: p[0] > p[1]).map(lambda p: f"{p[0]:%Y%m%d}-{p[1]:%Y%m%d}"),
    ),
    st.tuples(st.just("TM"), st.sampled_from(["2200-0200", "25", "10*", "1000-1100-1200", "1060"])),
    st.tuples(st.just("DT"), st.sampled_from(["2007-0100-0200", "2020*", "20200101-0500", "2020-2019"])),
    st.tuples(st.sampled_from(["UI", "IS", "DS", "AS", "AT"]), st.sampled_from(["1*", "?", "1.2.*", "04?Y"])),
    st.tuples(st.just("UI"), st.sampled_from(["1.2\\1.*", "\\"])),
)


@given(INVALID, st.sampled_from([None, "", "20200101", "1000", "1.2.3", "7", "anything"]))
def test_invalid_keys_match_nothing_with_nomatch(vr_key, stored):
    vr, key = vr_key
    assert match(vr, key, stored) is False


@given(INVALID)
def test_invalid_keys_raise_query_error_with_error(vr_key):
    vr, key = vr_key
    with pytest.raises(QueryError):
        match(vr, key, "x", invalid_keys="error")


@given(st.lists(st.sampled_from(["CT", "MR", "PT", "C*"]), min_size=2, max_size=3))
def test_multiple_value_matching_rejects_wildcards(values):
    key = "\\".join(values)
    if any("*" in v for v in values):
        with pytest.raises(QueryError, match="Multiple Value Matching"):
            match("CS", key, "CT", multiple_value_matching=True, invalid_keys="error")
    else:
        assert match("CS", key, "CT\\MR\\PT", multiple_value_matching=True)
