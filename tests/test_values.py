"""The value parsers of pacscore.values: padding, multi-values, PN, dates and times, numbers."""

from datetime import datetime, timedelta, timezone
from decimal import Decimal

import pytest

from pacscore.values import (
    DAY,
    HOUR,
    MINUTE,
    SECOND,
    combine_da_tm,
    fold_case,
    is_empty,
    nfc,
    normalize_pn,
    parse_at,
    parse_da,
    parse_dt,
    parse_number,
    parse_offset,
    parse_pn,
    parse_tm,
    pn_groups,
    split_range,
    split_values,
    strip_padding,
)

EPOCH = datetime(1, 1, 1, tzinfo=timezone.utc)


def micros(dt: datetime) -> int:
    delta = dt - EPOCH
    return (delta.days * 86400 + delta.seconds) * SECOND + delta.microseconds


# ---------------------------------------------------------------- padding and values


@pytest.mark.parametrize(
    "vr, raw, clean",
    [
        ("SH", "ACC123 ", "ACC123"),
        ("AE", "  STORESCP  ", "STORESCP"),
        ("CS", " CT", "CT"),
        ("UI", "1.2.3\0", "1.2.3"),
        ("LT", " Chest ", " Chest"),
        ("ST", "Note  ", "Note"),
        ("UR", " http://x ", " http://x"),
        ("UC", " a ", " a"),
        ("IS", " 7 ", "7"),
    ],
)
def test_strip_padding_follows_the_vr(vr, raw, clean):
    assert strip_padding(vr, raw) == clean


def test_split_values_splits_on_backslash_except_text_vrs():
    assert split_values("CS", "ORIGINAL \\PRIMARY\\ AXIAL") == ["ORIGINAL", "PRIMARY", "AXIAL"]
    assert split_values("LT", "a\\b ") == ["a\\b"]
    assert split_values("UR", "x\\y") == ["x\\y"]
    assert split_values("LO", "") == [""]


def test_is_empty_covers_absent_padding_only_and_empty_sequences():
    assert is_empty("LO", None) and is_empty("LO", "") and is_empty("LO", "   ")
    assert is_empty("SQ", []) and not is_empty("SQ", [{}])
    assert not is_empty("LO", "A") and not is_empty("LT", " x")


def test_nfc_precomposes_and_fold_case_keeps_one_code_point_per_character():
    assert nfc("Mu\u0308ller") == "Müller"
    assert fold_case("MÜLLER") == "müller"
    assert fold_case("STRAßE") == "straße"  # full casefold would give 'strasse' and break '?'
    assert len(fold_case("ẞİ")) == 2


# ---------------------------------------------------------------- person names


def test_parse_pn_trims_components_and_drops_trailing_empties():
    assert parse_pn("Doe ^John^^^") == (("Doe", "John"),)
    assert parse_pn("Wang^XiaoDong=王^小東=") == (("Wang", "XiaoDong"), ("王", "小東"))
    assert parse_pn("=王^小東") == ((), ("王", "小東"))
    assert parse_pn("") == () and parse_pn("^^==") == ()


def test_pn_groups_and_normalize_pn():
    assert pn_groups("Doe^John=ドウ") == ("Doe^John", "ドウ")
    assert normalize_pn("Doe ^John^^=") == "Doe^John"


def test_parse_pn_strict_refuses_too_many_groups_or_components():
    with pytest.raises(ValueError, match="component groups"):
        parse_pn("a=b=c=d", strict=True)
    with pytest.raises(ValueError, match="components"):
        parse_pn("a^b^c^d^e^f", strict=True)
    assert parse_pn("a^b^c^d^e^^", strict=True) == (("a", "b", "c", "d", "e"),)


# ---------------------------------------------------------------- dates


def test_parse_da_gives_the_whole_day():
    floor, ceil = parse_da("20200115")
    assert floor == micros(datetime(2020, 1, 15, tzinfo=timezone.utc))
    assert ceil == floor + DAY - 1
    assert parse_da("2020.01.15") == (floor, ceil)  # retired ACR-NEMA form
    assert parse_da("20200115 ") == (floor, ceil)


@pytest.mark.parametrize(
    "text, reason",
    [
        ("2020011", "not a date"),
        ("20201301", "month 13"),
        ("20200230", "day 30"),
        ("00000101", "year 0000"),
        ("2020-01-15", "not a date"),
        ("*", "not a date"),
        ("２０２００１０１", "not a date"),  # full-width digits are not DICOM digits
    ],
)
def test_parse_da_rejects_bad_dates_with_a_reason(text, reason):
    with pytest.raises(ValueError, match=reason):
        parse_da(text)


# ---------------------------------------------------------------- times


@pytest.mark.parametrize(
    "text, floor, span",
    [
        ("10", 10 * HOUR, HOUR),
        ("1030", 10 * HOUR + 30 * MINUTE, MINUTE),
        ("103000", 10 * HOUR + 30 * MINUTE, SECOND),
        ("103000.5", 10 * HOUR + 30 * MINUTE + 500_000, 100_000),
        ("103000.123456", 10 * HOUR + 30 * MINUTE + 123_456, 1),
        ("10:30:00", 10 * HOUR + 30 * MINUTE, SECOND),
        ("10:30", 10 * HOUR + 30 * MINUTE, MINUTE),
        ("235960", 23 * HOUR + 59 * MINUTE + 60 * SECOND, SECOND),  # leap second
    ],
)
def test_parse_tm_interval_covers_its_precision(text, floor, span):
    assert parse_tm(text) == (floor, floor + span - 1)


@pytest.mark.parametrize(
    "text, reason",
    [
        ("24", "hour 24"),
        ("1060", "minute 60"),
        ("103061", "second 61"),
        ("103000.1234567", "not a time"),
        ("1", "not a time"),
        ("103000.", "not a time"),
        ("10h", "not a time"),
        ("", "not a time"),
    ],
)
def test_parse_tm_rejects_bad_times(text, reason):
    with pytest.raises(ValueError, match=reason):
        parse_tm(text)


# ---------------------------------------------------------------- date-times and offsets


def test_parse_offset():
    assert parse_offset("+0100") == HOUR
    assert parse_offset("-0530") == -(5 * HOUR + 30 * MINUTE)
    for bad in ("0100", "+01", "+0160", "+1500", "-1300", "Z"):
        with pytest.raises(ValueError):
            parse_offset(bad)


def test_parse_dt_partial_precision_down_to_the_year():
    start = micros(datetime(2008, 1, 1, tzinfo=timezone.utc))
    end = micros(datetime(2009, 1, 1, tzinfo=timezone.utc)) - 1
    assert parse_dt("2008") == (start, end)
    assert parse_dt("200802")[1] == micros(datetime(2008, 3, 1, tzinfo=timezone.utc)) - 1  # leap February
    assert parse_dt("20080229")[1] - parse_dt("20080229")[0] == DAY - 1
    assert parse_dt("19980128103000.0000") == (parse_dt("19980128103000")[0], parse_dt("19980128103000")[0] + 99)


def test_parse_dt_applies_offsets():
    utc = micros(datetime(1998, 1, 28, 10, 30, tzinfo=timezone.utc))
    assert parse_dt("19980128103000")[0] == utc
    assert parse_dt("19980128073000-0300")[0] == utc
    assert parse_dt("19980128113000+0100")[0] == utc
    assert parse_dt("19980128113000", default_offset=HOUR)[0] == utc
    aware = datetime(2020, 1, 1, 11, 30, tzinfo=timezone(timedelta(hours=-2)))
    assert parse_dt("20200101113000-0200")[0] == micros(aware)


@pytest.mark.parametrize(
    "text, reason",
    [
        ("20", "not a date-time"),
        ("2020133", "not a date-time"),
        ("202013", "month 13"),
        ("20200101250000", "hour 25"),
        ("20200101+2500", "outside"),
        ("2020.01.01", "not a date-time"),
        ("20200101120000.1234567", "not a date-time"),
    ],
)
def test_parse_dt_rejects_bad_values(text, reason):
    with pytest.raises(ValueError, match=reason):
        parse_dt(text)


# ---------------------------------------------------------------- ranges


def test_split_range_forms():
    assert split_range("DA", "20200101-20200131") == ("20200101", "20200131")
    assert split_range("DA", "-20200131") == (None, "20200131")
    assert split_range("DA", "20200101-") == ("20200101", None)
    assert split_range("DA", "-") == (None, None)
    assert split_range("TM", "1000 - 1100") == ("1000", "1100")


def test_split_range_dt_uses_the_unique_valid_hyphen():
    assert split_range("DT", "20200101100000-0500-20200101120000-0500") == (
        "20200101100000-0500",
        "20200101120000-0500",
    )
    assert split_range("DT", "-20200101-0500") == (None, "20200101-0500")
    assert split_range("DT", "20200101-0500-") == ("20200101-0500", None)


def test_split_range_refuses_ambiguous_and_invalid_ranges():
    with pytest.raises(ValueError, match="ambiguous"):
        split_range("DT", "2007-0100-0200")
    with pytest.raises(ValueError, match="month 13"):
        split_range("DA", "20201301-20201231")
    with pytest.raises(ValueError, match="not a DA range"):
        split_range("DA", "2020-01-01")


def test_combine_da_tm():
    day = parse_da("20060705")[0]
    assert combine_da_tm("20060705", "1000") == (day + 10 * HOUR, day + 10 * HOUR + MINUTE - 1)
    assert combine_da_tm("20060705", None) == (day, day + DAY - 1)
    assert combine_da_tm("20060705", "", offset=HOUR) == (day - HOUR, day + DAY - 1 - HOUR)


# ---------------------------------------------------------------- numbers and tags


def test_parse_number():
    assert parse_number("IS", "+7") == parse_number("IS", "007") == Decimal(7)
    assert parse_number("DS", " 7.0 ") == Decimal(7)
    assert parse_number("DS", "1e3") == Decimal(1000)
    assert parse_number("DS", ".5") == Decimal("0.5")
    for vr, bad in (("IS", "7.5"), ("IS", "1-10"), ("DS", "NaN"), ("DS", "Infinity"), ("DS", "1,5"), ("IS", "")):
        with pytest.raises(ValueError, match=f"valid {vr}"):
            parse_number(vr, bad)


def test_parse_at():
    assert parse_at("00100010") == parse_at("(0010,0010)") == parse_at("0010,0010") == 0x00100010
    assert parse_at("7fe00010") == 0x7FE00010
    with pytest.raises(ValueError, match="attribute tag"):
        parse_at("PatientName")
