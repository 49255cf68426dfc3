"""The compiled data set reader (pacscore/_ext/_header.pyx) against the reference path (pydicom's
dcmread and ingest's element conversion): for every input, ``parse_bytes`` gives the same
ParsedInstance, or the same error, whichever path reads it. The reader declines what it is not
sure of; the tests also check that it does read the common cases (else they would prove nothing).
"""

from __future__ import annotations

import dataclasses
import struct

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st
from pydicom.datadict import DicomDictionary

from pacscore import ingest
from pacscore.errors import IngestError

from .expected_warnings import BAD_CHARSETS, BAD_UIDS, VR_MISMATCH
from .factories import pydicom_test_files

fast_reader = ingest._read_file
pytestmark = pytest.mark.skipif(fast_reader is None, reason="compiled extensions not built or PACSCORE_PURE=1")

EXPLICIT, IMPLICIT, JPEG = "1.2.840.10008.1.2.1", "1.2.840.10008.1.2", "1.2.840.10008.1.2.4.50"
LONG_VRS = {"OB", "OD", "OF", "OL", "OV", "OW", "SQ", "SV", "UC", "UN", "UR", "UT", "UV"}


def outcome(data: bytes, fast: bool):
    """What parse_bytes gives with or without the compiled reader: fields, or the error."""
    saved = ingest._read_file
    ingest._read_file = fast_reader if fast else None
    try:
        return dataclasses.asdict(ingest.parse_bytes(data, "input"))
    except IngestError as exc:
        return ("IngestError", str(exc))
    finally:
        ingest._read_file = saved


def assert_same(data: bytes) -> None:
    assert outcome(data, True) == outcome(data, False)


def read_by_fast_path(data: bytes) -> bool:
    try:
        return ingest._fast_parse(data, "input") is not None
    except IngestError:
        return True  # read, and refused for what it holds, as the reference refuses it


# -- real files ---------------------------------------------------------------------------------

REAL = sorted(p for p in pydicom_test_files().rglob("*") if p.is_file() and p.stat().st_size < 8_000_000)


@pytest.mark.parametrize("path", REAL, ids=lambda p: p.name)
@VR_MISMATCH
def test_real_files_give_the_reference_answer(path):
    assert_same(path.read_bytes())


@VR_MISMATCH
def test_the_reader_reads_most_real_files_and_declines_the_unusual():
    read, declined = [], []
    for path in REAL:
        data = path.read_bytes()
        if data[128:132] != b"DICM":
            continue
        try:
            ingest.parse_bytes(data)
        except IngestError:
            continue
        (read if read_by_fast_path(data) else declined).append(path.name)
    assert len(read) >= 4 * len(declined), declined
    # big endian and deflated data sets, and data sets whose elements are all sent as UN
    assert {"MR_small_bigendian.dcm", "image_dfl.dcm", "rtdose_rle_1frame.dcm"} <= set(declined)
    assert {"CT_small.dcm", "MR_small.dcm", "rtplan.dcm"} <= set(read)


def test_generated_instances_are_read_by_the_compiled_reader():
    import itertools

    from pacscore.testing.generate import GeneratorConfig, generate_bytes

    for _, data in itertools.islice(generate_bytes(GeneratorConfig(patients=12, seed=3)), 300):
        assert read_by_fast_path(data)
        assert_same(data)


# -- data sets made element by element ------------------------------------------------------


def _tags_by_vr() -> dict[str, list[int]]:
    out: dict[str, list[int]] = {}
    for tag, entry in DicomDictionary.items():
        vr, retired = entry[0], entry[3]
        if retired or tag >> 16 in (0x0002, 0x7FE0) or tag in (0x00080005,) or len(vr) != 2:
            continue
        out.setdefault(vr, []).append(tag)
    return {vr: sorted(tags)[:40] for vr, tags in out.items()}


TAGS = _tags_by_vr()
IDENTIFIERS = {0x00080016: "1.2.840.10008.5.1.4.1.1.7", 0x00080018: None, 0x0020000D: None, 0x0020000E: None}
CHARSETS = [None, b"", b"ISO_IR 100", b"ISO_IR 192", b"ISO_IR 144", b"\\ISO 2022 IR 87", b"ISO_IR 13", b"GB18030"]
TEXT_BYTES = (
    st.binary(max_size=24)
    | st.text("AZaz09 ^=\\.-", max_size=20).map(str.encode)
    | st.sampled_from(
        [b"M\xfcller^Hans ", "Иванов^Иван".encode(), b"\x1b$B;3ED\x1b(B^\x1b$BB@O:\x1b(B", b"ab \x00", b"  "]
    )
)


def _element(tag: int, vr: str, value: bytes, implicit: bool, undefined: bool = False) -> bytes:
    length = 0xFFFFFFFF if undefined else len(value)
    if implicit:
        return struct.pack("<HHI", tag >> 16, tag & 0xFFFF, length) + value
    if vr in LONG_VRS:
        return struct.pack("<HH2sHI", tag >> 16, tag & 0xFFFF, vr.encode(), 0, length) + value
    return struct.pack("<HH2sH", tag >> 16, tag & 0xFFFF, vr.encode(), length) + value


def _pad(value: bytes, vr: str) -> bytes:
    if len(value) % 2:
        value += b"\x00" if vr in ("UI", "OB", "UN") else b" "
    return value


@st.composite
def values(draw, vr: str) -> bytes:
    if vr in ("AE", "AS", "CS", "DA", "DS", "DT", "IS", "TM", "UI", "UR"):
        raw = draw(st.text("0123456789.+-: ABCZ\\", max_size=18).map(str.encode) | st.binary(max_size=8))
    elif vr in ("LO", "PN", "SH", "LT", "ST", "UT", "UC"):
        raw = draw(TEXT_BYTES)
    elif vr in ("US", "SS", "UL", "SL", "FL", "FD", "SV", "UV", "AT"):
        size = {"US": 2, "SS": 2, "UL": 4, "SL": 4, "FL": 4, "AT": 4}.get(vr, 8)
        count = draw(st.integers(0, 3))
        raw = draw(st.binary(min_size=size * count, max_size=size * count))
        if draw(st.integers(0, 9)) == 0:
            raw += b"\x01\x02"  # not a whole number of values
    else:
        raw = draw(st.binary(max_size=12))
    return _pad(raw, vr)


@st.composite
def sequences(draw, implicit: bool, depth: int) -> bytes:
    items = []
    for _ in range(draw(st.integers(0, 2))):
        body = draw(element_lists(implicit, depth + 1, 3))
        if draw(st.booleans()):
            items.append(struct.pack("<HHI", 0xFFFE, 0xE000, len(body)) + body)
        else:
            items.append(
                struct.pack("<HHI", 0xFFFE, 0xE000, 0xFFFFFFFF) + body + struct.pack("<HHI", 0xFFFE, 0xE00D, 0)
            )
    return b"".join(items)


@st.composite
def element_lists(draw, implicit: bool, depth: int, max_size: int) -> bytes:
    chosen: dict[int, bytes] = {}
    vrs = sorted(TAGS)
    for _ in range(draw(st.integers(0, max_size))):
        vr = draw(st.sampled_from(vrs)) if depth < 7 else "LO"
        if vr == "SQ":
            tag = draw(st.sampled_from(TAGS["SQ"]))
            body = draw(sequences(implicit, depth))
            undefined = draw(st.booleans())
            chosen[tag] = _element(
                tag, "SQ", body + (struct.pack("<HHI", 0xFFFE, 0xE0DD, 0) if undefined else b""), implicit, undefined
            )
            continue
        tag = draw(st.sampled_from(TAGS[vr]) | st.sampled_from([0x00091010, 0x00291020]))
        if implicit and tag & 0x10000:
            continue  # a private tag has no dictionary VR to read it by
        chosen[tag] = _element(tag, vr, draw(values(vr)), implicit)
    return b"".join(chosen[t] for t in sorted(chosen))


@st.composite
def part10_files(draw) -> bytes:
    syntax = draw(st.sampled_from([EXPLICIT, IMPLICIT, JPEG]))
    implicit = syntax == IMPLICIT
    elements: dict[int, bytes] = {}
    charset = draw(st.sampled_from(CHARSETS))
    if charset is not None:
        elements[0x00080005] = _element(0x00080005, "CS", _pad(charset, "CS"), implicit)
    for tag, fixed in IDENTIFIERS.items():
        if draw(st.integers(0, 19)) == 0:
            continue  # the reference refuses an instance without it
        uid = fixed or "1.2.826.0.1." + ".".join(str(draw(st.integers(1, 999))) for _ in range(3))
        elements[tag] = _element(tag, "UI", _pad(uid.encode(), "UI"), implicit)
    body = draw(element_lists(implicit, 0, 12))
    ordered = b"".join(elements[t] for t in sorted(elements))
    # the fixed elements go first; the drawn ones (tags from group 0008 up) may repeat or
    # interleave them, as real writers' bugs do
    data_set = ordered + body
    if draw(st.booleans()):
        pixels = draw(st.binary(max_size=16))
        data_set += _element(0x7FE00010, "OW", _pad(pixels, "OW"), implicit)
    sop = elements.get(0x00080018, b"")[-10:]
    meta = (
        _element(0x00020001, "OB", b"\x00\x01", False)
        + _element(0x00020002, "UI", _pad(b"1.2.840.10008.5.1.4.1.1.7", "UI"), False)
        + _element(0x00020003, "UI", _pad(sop or b"1.2.3", "UI"), False)
        + _element(0x00020010, "UI", _pad(syntax.encode(), "UI"), False)
    )
    meta = _element(0x00020000, "UL", struct.pack("<I", len(meta)), False) + meta
    return b"\x00" * 128 + b"DICM" + meta + data_set


@settings(suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(part10_files())
def test_generated_data_sets_give_the_reference_answer(data):
    assert_same(data)


@settings(suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(part10_files(), st.data())
@VR_MISMATCH
@BAD_UIDS
@BAD_CHARSETS
def test_damaged_data_sets_give_the_reference_answer(data, draw):
    cut = draw.draw(st.integers(132, len(data)))
    flips = draw.draw(st.lists(st.tuples(st.integers(132, len(data) - 1), st.integers(0, 255)), max_size=3))
    damaged = bytearray(data[:cut] if draw.draw(st.booleans()) else data)
    for pos, byte in flips:
        if pos < len(damaged):
            damaged[pos] = byte
    assert_same(bytes(damaged))


def test_generated_data_sets_are_mostly_read_by_the_compiled_reader():
    """Guard against a reader that declines everything (the parity tests would still pass)."""
    from hypothesis import find

    found = find(
        part10_files(),
        lambda d: read_by_fast_path(d) and b"\xfe\xff\x00\xe0" in d[132:],
        settings=settings(max_examples=2000, database=None),
    )
    assert read_by_fast_path(found)


@example(b"\x00" * 128 + b"DICM")
@given(st.binary(max_size=300).map(lambda b: b"\x00" * 128 + b"DICM" + b))
def test_arbitrary_bytes_after_the_prefix_give_the_reference_answer(data):
    assert_same(data)


# -- what ingest keeps whichever reader reads it (issue 16) -------------------------------------


def _data_store_files() -> list:
    import importlib.util
    from pathlib import Path

    spec = importlib.util.find_spec("data_store")  # pydicom-data
    if spec is None or not spec.submodule_search_locations:
        return []
    folder = Path(next(iter(spec.submodule_search_locations))) / "data"
    return sorted(p for p in folder.glob("*.dcm") if p.stat().st_size < 8_000_000)


@pytest.mark.parametrize("path", _data_store_files(), ids=lambda p: p.name)
def test_pydicom_data_files_give_the_reference_answer(path):
    assert_same(path.read_bytes())


@pytest.mark.parametrize(
    "uid",
    [
        "dccc9599087131742838cc1162a630fea87ba9bf61ac09bfda90d4adfa5ddaed",
        "a/b",
        "..",
        "1.2 3",
        "\t1.2.3\n",
        "1.2.\u00fc",
        "1." + "2" * 100,
        "1." + "2" * 300,
        "1.2\\3.4",
        "1.2.3\x00x",
    ],
)
@pytest.mark.parametrize("keyword", ["SOPInstanceUID", "StudyInstanceUID", "SeriesInstanceUID"])
@BAD_UIDS
def test_non_conformant_uids_give_the_reference_answer(uid, keyword):
    from .factories import make_instance, to_bytes

    ds = make_instance(sop="1.2.3.4")
    setattr(ds, keyword, uid)
    if keyword == "SOPInstanceUID":
        ds.file_meta.MediaStorageSOPInstanceUID = uid
    data = to_bytes(ds)
    assert read_by_fast_path(data)
    assert_same(data)
    got = outcome(data, True)
    if isinstance(got, dict):
        assert got["nonconformant_uids"] == ((keyword,) if uid.strip() != "1.2.3" else ())


@pytest.mark.parametrize("items", [20, 400])
def test_large_sequences_are_left_out_alike(items):
    from pydicom.dataset import Dataset
    from pydicom.sequence import Sequence

    from .factories import make_instance, to_bytes

    ds = make_instance(sop="1.2.3.4")
    ds.ProcedureCodeSequence = Sequence([Dataset() for _ in range(items)])
    for i, item in enumerate(ds.ProcedureCodeSequence):
        item.CodeValue, item.CodeMeaning = f"C{i:05d}", f"meaning number {i}"
    data = to_bytes(ds)
    assert read_by_fast_path(data)
    assert_same(data)
    kept = any(0x00081032 in level for level in outcome(data, True)["levels"].values())
    assert kept == (items == 20)
