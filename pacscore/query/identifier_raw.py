"""An identifier's string values read from the bytes pydicom kept raw, without a DataElement.

A C-FIND identifier decoded from the wire is a pydicom Dataset of RawDataElements; turning each
into a DataElement (VR lookup, value conversion, validation, MultiValue, PersonName) is most of
what a query costs before it reaches the index. For the VRs a query key usually has, in
character sets where printable ASCII means itself, the string ``keys.element_string`` would
return is a split and a strip away from the raw bytes. ``string_of`` does exactly that and
answers None for anything else (other VRs, bytes outside printable ASCII, PN component groups,
pydicom configured to convert dates, raise on invalid values or with a raw-value hook), so the
caller converts that element as before. tests/test_identifier_raw.py property-tests the two
for equal answers.

``plain_identifier`` goes one step further for an identifier that arrives as bytes (the direct
DIMSE loop): when every element is one ``string_of`` answers for, it reads them straight from
the little-endian bytes into a {tag: text} identifier, with no pydicom Dataset at all; one
element it cannot read that way and the caller decodes the whole identifier with pydicom.
"""

from __future__ import annotations

import functools
import struct

from pydicom import config
from pydicom import hooks as pydicom_hooks
from pydicom.datadict import dictionary_VR
from pydicom.dataelem import RawDataElement
from pydicom.dataset import Dataset

__all__ = ["string_of", "fast_path_open", "plain_identifier"]

#: character sets whose bytes 0x20-0x7E are ASCII (PS3.3 C.12.1.1.2; ISO 2022 forms start in G0 = ASCII)
_ASCII_COMPATIBLE = frozenset(
    {
        "",
        "ISO_IR 6",
        "ISO 2022 IR 6",
        "ISO_IR 100",
        "ISO 2022 IR 100",
        "ISO_IR 101",
        "ISO_IR 109",
        "ISO_IR 110",
        "ISO_IR 144",
        "ISO_IR 127",
        "ISO_IR 126",
        "ISO_IR 138",
        "ISO_IR 148",
        "ISO_IR 203",
        "ISO_IR 166",
        "ISO_IR 192",
        "GB18030",
        "GBK",
    }
)
_SPECIFIC_CHARACTER_SET = 0x00080005
#: VRs whose whole value loses its trailing spaces and NULs: the padded ones pydicom only splits
#: after stripping (multi_string) and the single-valued texts (a backslash is text)
_STRIPPED = frozenset({"AS", "CS", "DA", "DT", "TM", "LT", "ST", "UT"})
#: text VRs split on backslash, each value right-stripped of NULs and spaces
_TEXT = frozenset({"LO", "SH", "UC"})
_VRS = _STRIPPED | _TEXT | {"AE", "UI", "PN"}
_NOT_PRINTABLE = bytes(b for b in range(256) if not (0x20 <= b <= 0x7E or b == 0))


@functools.cache
def _empty_vr(tag: int) -> str | None:
    """The dictionary VR of ``tag`` when an empty value of it reads as "" whatever the VR (an
    unambiguous VR other than SQ, whose empty value is an empty sequence), else None."""
    try:
        vr = dictionary_VR(tag)
    except KeyError:  # private or unknown: pydicom reads it as UN
        return None
    return None if vr == "SQ" or " " in vr else vr


def _vr(tag: int) -> str | None:
    """The dictionary VR of ``tag`` when ``string_of`` reads that VR, else None."""
    vr = _empty_vr(tag)
    return vr if vr in _VRS else None


def _ascii_compatible(names) -> bool:
    """Whether every named character set keeps printable ASCII as ASCII."""
    return all(str(name).strip() in _ASCII_COMPATIBLE for name in names)


def _pydicom_defaults() -> bool:
    """Whether pydicom converts values as configured by default (what ``string_of`` mirrors)."""
    if config.datetime_conversion or config.settings.reading_validation_mode == config.RAISE:
        return False
    hooks = pydicom_hooks.hooks
    return (
        hooks.raw_element_value is pydicom_hooks.raw_element_value
        and hooks.raw_element_vr is pydicom_hooks.raw_element_vr
    )


def fast_path_open(ds: Dataset) -> bool:
    """Whether ``string_of`` may answer for ``ds``'s elements: pydicom as configured by
    default for what it affects, and a character set in which printable ASCII is ASCII."""
    if not _pydicom_defaults():
        return False
    charset = ds.get_item(_SPECIFIC_CHARACTER_SET) if _SPECIFIC_CHARACTER_SET in ds else None
    if charset is None:
        return True
    value = charset.value
    if isinstance(value, bytes):
        value = value.decode("ascii", "replace")
    # as read (bytes, now str) or already converted (MultiValue)
    return _ascii_compatible(value.strip(" \x00").split("\\") if isinstance(value, str) else value or [])


def string_of(elem: object) -> str | None:
    """``keys.element_string`` of a raw element (as ``Dataset.get_item(tag, keep_deferred=True)``
    gives it), or None when only pydicom can say."""
    if not isinstance(elem, RawDataElement):
        return None
    tag = elem.tag
    vr = _vr(tag)
    if vr is None or (elem.VR is not None and vr != elem.VR):
        return None
    raw = elem.value
    if raw is None:
        if elem.length:
            return None  # a deferred read: pydicom reads it
        raw = b""
    return _text(vr, raw)


def _text(vr: str, raw: bytes) -> str | None:
    """The string pydicom's conversion of ``raw`` as ``vr`` gives, when it is plain ASCII."""
    if raw.translate(None, _NOT_PRINTABLE) != raw:
        return None
    text = raw.decode("ascii")
    if vr in _STRIPPED:
        return text.rstrip(" \x00")
    if vr in _TEXT:
        return "\\".join(v.rstrip("\x00 ") for v in text.split("\\"))
    if vr == "UI":
        return "\\".join(v.strip() for v in text.rstrip(" \x00").split("\\"))
    if vr == "AE":
        return "\\".join(v.strip() for v in text.split("\\"))
    # PN: component groups ("=") are left to PersonName, which drops empty trailing groups
    if "=" in text:
        return None
    return text.rstrip("\x00 ")


#: explicit VRs with a 2-byte reserved field and a 4-byte length (PS3.5 7.1.2); of those
#: ``_text`` reads only UC and UT, the others stop the plain read
_LONG_VRS = frozenset({b"OB", b"OD", b"OF", b"OL", b"OV", b"OW", b"SQ", b"SV", b"UC", b"UN", b"UR", b"UT", b"UV"})


#: an element's header: group, element, then 4 bytes that are the explicit VR and a 2-byte
#: length, or the implicit 4-byte length (its low half first)
_HEADER = struct.Struct("<HH2sH")
_LENGTH = struct.Struct("<L")


def plain_identifier(data: bytes, implicit: bool) -> dict[int, str] | None:
    """The identifier encoded in ``data`` (a little-endian data set, implicit or explicit VR) as
    {tag: the string ``keys.element_string`` would give}, in the order of the bytes; None
    unless every element is one ``string_of`` answers for (known tag of a string VR, explicit
    VR equal to the dictionary's, defined length, printable ASCII, no PN component groups; an
    element of another VR only when empty, the "" pydicom's empty value gives, never SQ),
    no tag repeats, the bytes end where the last element does, pydicom converts as by default
    and the character set keeps ASCII as ASCII. Then the caller decodes with pydicom."""
    if not _pydicom_defaults():
        return None
    out: dict[int, str] = {}
    end = len(data)
    pos = 0
    unpack = _HEADER.unpack_from
    while pos < end:
        if pos + 8 > end:
            return None
        group, element, vr_bytes, short = unpack(data, pos)
        tag = group << 16 | element
        vr = _empty_vr(tag)  # of a VR string_of does not read, only an empty value (below)
        if vr is None:
            return None
        if implicit:
            length = short << 16 | int.from_bytes(vr_bytes, "little")
            pos += 8
        elif vr_bytes != vr.encode("ascii"):
            return None
        elif vr_bytes in _LONG_VRS:
            if pos + 12 > end:
                return None
            length = _LENGTH.unpack_from(data, pos + 8)[0]
            pos += 12
        else:
            length = short
            pos += 8
        if length == 0xFFFFFFFF or pos + length > end or tag in out:
            return None
        if length and vr not in _VRS:
            return None
        text = _text(vr, data[pos : pos + length]) if length else ""
        if text is None:
            return None
        out[tag] = text
        pos += length
    return out if _ascii_compatible(out.get(_SPECIFIC_CHARACTER_SET, "").strip(" \x00").split("\\")) else None
