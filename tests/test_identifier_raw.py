"""The identifier's values read from raw bytes (pacscore/query/identifier_raw.py) are the strings
pydicom's own conversion gives (keys.element_string), or the reader steps aside: per element, for
whole identifiers in both transfer syntaxes and the character sets, and under pydicom settings
that change what a conversion returns."""

from __future__ import annotations

import io
import warnings

import pytest
from hypothesis import given
from hypothesis import strategies as st
from pydicom import config
from pydicom.datadict import dictionary_VR
from pydicom.dataelem import RawDataElement
from pydicom.dataset import Dataset
from pynetdicom.dsutils import decode, encode

from pacscore.query import identifier_raw, keys
from pacscore.query.identifier_raw import fast_path_open, string_of

#: one query key of each VR the reader answers for, and some it leaves to pydicom
TAGS = {
    "PN": 0x00100010,
    "LO": 0x00100020,
    "SH": 0x00080050,
    "CS": 0x00080060,
    "DA": 0x00080020,
    "TM": 0x00080030,
    "DT": 0x0008002A,
    "UI": 0x0020000D,
    "AE": 0x00080054,
    "AS": 0x00101010,
    "LT": 0x00104000,
    "ST": 0x00080081,
    "UC": 0x00080119,
    "UT": 0x0008030E,
    "IS": 0x00201208,
    "DS": 0x00101020,
    "US": 0x00280010,
}
#: bytes that matter to a split and a strip, a few that must send the element to pydicom
VALUE_BYTES = st.lists(
    st.sampled_from(
        [b"A", b"b", b"1", b".", b"^", b"=", b"\\", b" ", b"\x00", b"*", b"?", b"-", b"\xe9", b"\t", b"\x1b"]
    ),
    max_size=14,
).map(b"".join)
CHARSETS = [None, "", "ISO_IR 6", "ISO_IR 100", "ISO_IR 192", "ISO 2022 IR 6", "ISO_IR 13", "ISO 2022 IR 87", "GB18030"]


def pydicom_string(ds: Dataset, tag: int) -> object:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return keys.element_string(ds[tag])


@pytest.mark.parametrize("vr", sorted(TAGS))
@given(value=VALUE_BYTES, explicit=st.booleans())
def test_a_raw_value_reads_as_pydicom_converts_it_or_not_at_all(vr, value, explicit):
    tag = TAGS[vr]
    raw_vr = dictionary_VR(tag) if explicit else None
    ds = Dataset({tag: RawDataElement(tag, raw_vr, len(value), value, 0, not explicit, True)})
    fast = string_of(ds.get_item(tag, keep_deferred=True))
    if fast is not None:
        assert fast == pydicom_string(ds, tag)
    if dictionary_VR(tag) in ("IS", "DS", "US"):
        assert fast is None


def identifier_strategy():
    element = st.tuples(st.sampled_from(sorted(TAGS)), VALUE_BYTES.filter(lambda b: len(b) % 2 == 0))
    return st.tuples(st.lists(element, max_size=8, unique_by=lambda e: e[0]), st.sampled_from(CHARSETS))


@given(identifier_strategy(), st.booleans())
def test_an_identifier_gives_the_same_pairs_read_raw_or_through_pydicom(spec, implicit):
    elements, charset = spec
    raw = {}
    for vr, value in elements:
        tag = TAGS[vr]
        if vr == "US":
            value = value[:2].ljust(2, b"\x00")
        raw[tag] = RawDataElement(tag, None, len(value), value, 0, True, True)
    raw[0x00080052] = RawDataElement(0x00080052, None, 6, b"STUDY ", 0, True, True)
    if charset is not None:
        cs = charset.encode().ljust(len(charset) + len(charset) % 2, b" ")
        raw[0x00080005] = RawDataElement(0x00080005, None, len(cs), cs, 0, True, True)
    # through the wire encoding, as a C-FIND identifier arrives
    wire = bytes(_encode_raw(raw, implicit))
    try:
        read = lambda: decode(io.BytesIO(wire), implicit, True)  # noqa: E731
        expected = _pairs(read(), fast=False)
    except Exception as exc:  # pydicom refuses it: the reader must refuse it the same way
        with pytest.raises(type(exc)):
            _pairs(read(), fast=True)
        return
    assert _pairs(read(), fast=True) == expected


def _pairs(ds: Dataset, *, fast: bool):
    saved = keys.fast_path_open
    keys.fast_path_open = fast_path_open if fast else (lambda _ds: False)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return keys.identifier_items(ds)
    finally:
        keys.fast_path_open = saved


def _encode_raw(raw: dict, implicit: bool) -> bytearray:
    """The elements' bytes in Implicit or Explicit VR Little Endian (short and long forms)."""
    out = bytearray()
    for tag in sorted(raw):
        value = raw[tag].value
        out += (tag >> 16).to_bytes(2, "little") + (tag & 0xFFFF).to_bytes(2, "little")
        if implicit:
            out += len(value).to_bytes(4, "little")
        else:
            vr = dictionary_VR(tag)
            out += vr.encode() + len(value).to_bytes(2, "little")
        out += value
    return out


def test_a_value_sent_with_another_vr_than_the_dictionarys_is_left_to_pydicom():
    ds = Dataset({0x00100020: RawDataElement(0x00100020, "UN", 4, b"PID1", 0, False, True)})
    assert string_of(ds.get_item(0x00100020, keep_deferred=True)) is None


@pytest.mark.parametrize(
    "charset, open_",
    [
        ("ISO_IR 100", True),
        ("ISO_IR 192", True),
        ("ISO_IR 13", False),
        ("ISO 2022 IR 87", False),
        ("ISO_IR 100\\ISO 2022 IR 87", False),
    ],
)
def test_only_character_sets_where_printable_ascii_is_ascii_open_the_fast_path(charset, open_):
    ds = Dataset()
    ds.SpecificCharacterSet = charset.split("\\") if "\\" in charset else charset
    ds.PatientID = "X"
    assert fast_path_open(decode(io.BytesIO(encode(ds, True, True)), True, True)) is open_


def test_pydicom_settings_that_change_a_conversion_close_the_fast_path(monkeypatch):
    ds = Dataset()
    ds.StudyDate = "20200101"
    assert fast_path_open(ds)
    monkeypatch.setattr(config, "datetime_conversion", True)
    assert not fast_path_open(ds)
    monkeypatch.setattr(config, "datetime_conversion", False)
    monkeypatch.setattr(config.settings, "reading_validation_mode", config.RAISE)
    assert not fast_path_open(ds)


def test_a_raw_value_hook_closes_the_fast_path(monkeypatch):
    from pydicom import hooks

    monkeypatch.setattr(hooks.hooks, "raw_element_value", hooks.raw_element_value_fix_separator)
    assert not identifier_raw.fast_path_open(Dataset())
