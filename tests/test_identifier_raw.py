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


# ---- plain_identifier: a whole identifier read from its bytes, no Dataset ---------------------
#: keys a C-FIND asks back empty whatever their VR (plain only when empty), and two it never reads
EMPTY_ONLY = {
    "IS": 0x00201208,  # NumberOfStudyRelatedInstances
    "DS": 0x00101020,  # PatientSize
    "US": 0x00280010,  # Rows
    "SQ": 0x00081032,  # ProcedureCodeSequence: an empty sequence is [], not ""
    "private": 0x00091010,
}
_LONG = {"OB", "OD", "OF", "OL", "OV", "OW", "SQ", "SV", "UC", "UN", "UR", "UT", "UV"}


def wire_bytes(elements: list[tuple[int, bytes]], implicit: bool, vrs: dict[int, str] | None = None) -> bytes:
    """Elements in the order given, in Implicit or Explicit VR Little Endian (PS3.5 7.1)."""
    out = bytearray()
    for tag, value in elements:
        out += (tag >> 16).to_bytes(2, "little") + (tag & 0xFFFF).to_bytes(2, "little")
        if implicit:
            out += len(value).to_bytes(4, "little")
        else:
            vr = (vrs or {}).get(tag) or (dictionary_VR(tag) if tag >> 16 != 0x0009 else "UN")
            if vr in _LONG:
                out += vr.encode() + b"\x00\x00" + len(value).to_bytes(4, "little")
            else:
                out += vr.encode() + len(value).to_bytes(2, "little")
        out += value
    return bytes(out)


def pydicom_pairs(wire: bytes, implicit: bool):
    """identifier_items of the identifier as pynetdicom decodes it, every value converted by pydicom."""
    saved = keys.fast_path_open
    keys.fast_path_open = lambda _ds: False
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return keys.identifier_items(decode(io.BytesIO(wire), implicit, True))
    finally:
        keys.fast_path_open = saved


#: values in the bytes the plain read takes (VALUE_BYTES has several that stop it)
PLAIN_BYTES = st.lists(st.sampled_from([b"A", b"1", b".", b"^", b"\\", b" ", b"\x00", b"*", b"-"]), max_size=14).map(
    b"".join
)


def plain_identifier_strategy():
    values = st.one_of(VALUE_BYTES, PLAIN_BYTES).filter(lambda b: len(b) % 2 == 0)
    text = st.tuples(st.sampled_from(sorted(TAGS)), values)
    empty = st.tuples(st.sampled_from(sorted(EMPTY_ONLY)), st.sampled_from([b"", b"", b"12"]))
    return st.tuples(
        st.lists(st.one_of(text, empty), max_size=9, unique_by=lambda e: e[0]),
        st.sampled_from(CHARSETS),
        st.booleans(),
    )


def _tag_of(name: str) -> int:
    return TAGS.get(name) or EMPTY_ONLY[name]


@given(plain_identifier_strategy())
def test_a_plain_identifier_reads_as_pydicom_decodes_it_or_steps_aside(spec):
    named, charset, implicit = spec
    elements = [(0x00080052, b"STUDY ")]
    if charset is not None:
        elements.append((0x00080005, charset.encode().ljust(len(charset) + len(charset) % 2, b" ")))
    for name, value in named:
        elements.append((_tag_of(name), value[:2].ljust(2, b"\x00") if name == "US" and value else value))
    wire = wire_bytes(sorted(elements), implicit)
    plain = identifier_raw.plain_identifier(wire, implicit)
    try:
        expected = pydicom_pairs(wire, implicit)
    except Exception:
        assert plain is None  # what pydicom refuses is never read plain
        return
    if plain is not None:
        assert keys.identifier_items(plain) == expected
        # and the same query: keys, levels, what is ignored
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            a = keys.build_query(plain, None, "STUDY", keys.MatchOptions(relational=True))
            decoded = decode(io.BytesIO(wire), implicit, True)
            b = keys.build_query(decoded, None, "STUDY", keys.MatchOptions(relational=True))
        assert (a.level, a.keys, a.ignored) == (b.level, b.keys, b.ignored)


def test_the_identifiers_findscu_sends_are_read_plain():
    """Not a vacuous equality: a typical STUDY identifier (return keys of numeric VRs included)
    is read from its bytes in both syntaxes, with the values pydicom gives."""
    ds = Dataset()
    ds.SpecificCharacterSet = "ISO_IR 100"
    ds.QueryRetrieveLevel = "STUDY"
    ds.PatientName = "WIL*"
    ds.PatientID = ""
    ds.StudyDate = "20050101-"
    ds.StudyTime = ""
    ds.ModalitiesInStudy = ["CT", "MR"]
    ds.StudyInstanceUID = ""
    ds.NumberOfStudyRelatedInstances = None
    ds.PatientSize = None
    for implicit in (True, False):
        wire = encode(ds, implicit, True)
        plain = identifier_raw.plain_identifier(wire, implicit)
        assert plain is not None
        assert plain[0x00100010] == "WIL*" and plain[0x00080061] == "CT\\MR" and plain[0x00201208] == ""
        assert keys.identifier_items(plain) == pydicom_pairs(wire, implicit)


@pytest.mark.parametrize(
    "elements, vrs, why",
    [
        ([(0x00080052, b"STUDY "), (0x00081032, b"")], None, "a sequence, even empty"),
        ([(0x00080052, b"STUDY "), (0x00201208, b"12")], None, "a numeric VR with a value"),
        ([(0x00080052, b"STUDY "), (0x00091010, b"")], None, "a private tag"),
        ([(0x00080052, b"STUDY "), (0x00100020, b"P\xe9")], None, "a byte outside printable ASCII"),
        ([(0x00080052, b"STUDY "), (0x00100010, b"A^B=C")], None, "PN component groups"),
        ([(0x00080052, b"STUDY "), (0x00100020, b"PID1")], {0x00100020: "UN"}, "an explicit VR not the dictionary's"),
        ([(0x00080052, b"STUDY "), (0x00100020, b"A"), (0x00100020, b"B")], None, "a tag twice"),
        ([(0x00080005, b"ISO 2022 IR 87"), (0x00080052, b"STUDY ")], None, "a character set that is not ASCII"),
        ([(0x00000000, b"\x04\x00\x00\x00")], None, "a command group element"),
    ],
)
def test_what_only_pydicom_reads_is_left_to_it(elements, vrs, why):
    for implicit in (True, False) if vrs is None else (False,):
        assert identifier_raw.plain_identifier(wire_bytes(elements, implicit, vrs), implicit) is None, why


@pytest.mark.parametrize("cut", [1, 5, 9, 13])
def test_cut_or_undefined_length_bytes_are_left_to_pydicom(cut):
    wire = wire_bytes([(0x00080052, b"STUDY "), (0x00100020, b"PID1")], True)
    assert identifier_raw.plain_identifier(wire[:-cut], True) is None
    undefined = wire_bytes([(0x00080052, b"STUDY ")], True) + b"\x10\x00\x20\x00\xff\xff\xff\xff"
    assert identifier_raw.plain_identifier(undefined, True) is None


def test_pydicom_settings_and_hooks_stop_the_plain_read(monkeypatch):
    from pydicom import hooks

    wire = wire_bytes([(0x00080052, b"STUDY "), (0x00080020, b"20200101")], True)
    assert identifier_raw.plain_identifier(wire, True) == {0x00080052: "STUDY", 0x00080020: "20200101"}
    monkeypatch.setattr(config, "datetime_conversion", True)
    assert identifier_raw.plain_identifier(wire, True) is None
    monkeypatch.setattr(config, "datetime_conversion", False)
    monkeypatch.setattr(hooks.hooks, "raw_element_value", hooks.raw_element_value_fix_separator)
    assert identifier_raw.plain_identifier(wire, True) is None
