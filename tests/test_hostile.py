"""Hostile input: crafted and fuzzed files, identifiers and QIDO parameters.

The contract under test: whatever bytes arrive, ``store`` either stores them or raises
IngestError, in bounded time and memory, and the archive stays consistent (a store before and
after works, ``verify`` is clean). Queries raise only QueryError or answer; QIDO-RS answers only
2xx/4xx. Wild card matching stays linear (counted in steps, not seconds).
"""

from __future__ import annotations

import io
import resource
import struct
import subprocess
import sys
import textwrap
import tracemalloc
import zlib

import pydicom
import pytest
from hypothesis import HealthCheck, given, reject, settings
from hypothesis import strategies as st
from pydicom.dataset import Dataset

import pacscore
from pacscore import IngestError, QueryError, ingest
from pacscore.query.reference import WildcardPattern

from .expected_warnings import BAD_CHARSETS, BAD_CS, BAD_DATES, BAD_UIDS, FUZZED
from .factories import make_instance, pydicom_test_files, to_bytes

CT_SMALL = (pydicom_test_files() / "CT_small.dcm").read_bytes()
BASE = to_bytes(make_instance(sop="1.2.3.4", study="1.2.3", series="1.2.3.1"))


def _el(group: int, elem: int, vr: bytes, length: int) -> bytes:
    """An explicit VR little endian element header with a 4-byte length (OB, SQ, UT, UN, ...)."""
    return struct.pack("<HH2sHI", group, elem, vr, 0, length)


ITEM, ITEM_END, SEQ_END = (
    struct.pack("<HHI", 0xFFFE, e, length) for e, length in ((0xE000, 0xFFFFFFFF), (0xE00D, 0), (0xE0DD, 0))
)


def nested_sequences(depth: int) -> bytes:
    body = b""
    for _ in range(depth):
        body = _el(0x0040, 0xA730, b"SQ", 0xFFFFFFFF) + ITEM + body + ITEM_END + SEQ_END
    return body


def attempt(data: bytes) -> ingest.ParsedInstance | IngestError:
    """Parse, asserting the only failure is IngestError."""
    try:
        return ingest.parse_bytes(data, "<hostile>")
    except IngestError as exc:
        assert exc.reason, "an IngestError names its reason"
        return exc


@pytest.fixture
def checked_arc(arc):
    """The shared archive with one instance stored before the test, checked after it: it still
    takes writes and ``verify`` is clean, whatever the test fed it."""
    arc.store(make_instance(sop="1.1.1.1", study="1.1.1", series="1.1.1.1"))
    yield arc
    arc.store(make_instance(sop="1.1.1.2", study="1.1.1", series="1.1.1.1"))
    report = arc.verify()
    assert report.ok and not report.orphans, report.summary()
    assert arc.count({"StudyInstanceUID": "1.1.1"}, level="IMAGE", relational=True) == 2


def store_or_refuse(arc, data: bytes) -> str:
    try:
        result = arc.store(data)
    except IngestError:
        return "refused"
    assert arc.get(result.sop_instance_uid) == data or result.status == "duplicate"
    return result.status


# -- truncation ----------------------------------------------------------------------------------


@BAD_UIDS
@BAD_CHARSETS
@pytest.mark.timeout(300)  # a hang guard, not a speed target (speed lives in benchmarks/)
def test_truncated_at_every_offset_never_crashes(checked_arc):
    step = 11
    accepted = []
    for off in range(0, len(CT_SMALL), step):
        out = attempt(CT_SMALL[:off])
        if not isinstance(out, IngestError):
            accepted.append(off)
    # whatever was accepted stores byte-exactly and leaves the archive consistent
    for off in accepted[:: max(1, len(accepted) // 20)]:
        assert store_or_refuse(checked_arc, CT_SMALL[:off]) in ("stored", "replaced", "duplicate")
    # every cut into pixel data is refused (it is walked after the header)
    pixel_start = len(CT_SMALL) - 128 * 128 * 2
    assert not [o for o in accepted if o > pixel_start]


@pytest.mark.parametrize("cut", [1, 2, 5, 9])  # InstanceNumber, the last element, is 10 bytes
def test_cut_inside_a_header_value_is_refused(cut):
    assert isinstance(attempt(BASE[:-cut]), IngestError)


def test_truncated_ct_header_is_refused():
    pixel_start = len(CT_SMALL) - 128 * 128 * 2
    accepted = [o for o in range(2000, pixel_start, 97) if not isinstance(attempt(CT_SMALL[:o]), IngestError)]
    assert not accepted


# -- huge declared lengths, deep nesting ---------------------------------------------------------


@pytest.mark.parametrize("where", ["pixel", "item"])
def test_huge_declared_lengths_are_refused_in_bounded_memory(where):
    if where == "pixel":
        data = BASE + _el(0x7FE0, 0x0010, b"OB", 0xFFFFFFF0) + b"\0" * 16
    else:  # a defined-length item claiming 4 GiB inside an undefined-length sequence
        data = (
            BASE + _el(0x0040, 0xA730, b"SQ", 0xFFFFFFFF) + struct.pack("<HHI", 0xFFFE, 0xE000, 0xFFFFFFF0) + b"\0" * 32
        )
    tracemalloc.start()
    try:
        out = attempt(data)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert isinstance(out, IngestError), out
    assert peak < 64 << 20


def test_huge_declared_length_in_the_header_is_refused():
    data = BASE + _el(0x0009, 0x1010, b"OB", 0xFFFFFFF0) + b"\0" * 16
    assert isinstance(attempt(data), IngestError)


@pytest.mark.parametrize("depth", [50, 250, 3000])
@pytest.mark.timeout(120)  # a hang guard, not a speed target
def test_deeply_nested_sequences(checked_arc, depth):
    out = attempt(BASE + nested_sequences(depth))
    if depth > 200:
        assert isinstance(out, IngestError) and "RecursionError" in out.reason
    else:
        assert store_or_refuse(checked_arc, BASE + nested_sequences(depth)) == "stored"


# -- character sets and VRs ----------------------------------------------------------------------


def with_name(charset: str | None, raw_name: bytes) -> bytes:
    ds = make_instance(sop="1.2.3.9", study="1.2.3", series="1.2.3.1", charset=charset, patient_name="Doe^John")
    data = to_bytes(ds)
    padded = raw_name + b" " * (len(raw_name) % 2)
    old = b"PN\x08\x00Doe^John"
    assert old in data
    return data.replace(old, b"PN" + struct.pack("<H", len(padded)) + padded)


@pytest.mark.parametrize(
    "charset,raw,expect",
    [
        ("ISO_IR 192", b"Bad\xff\xfe^\xc3(", "Bad\ufffd\ufffd^\ufffd("),  # invalid UTF-8: replaced, kept
        ("ISO_IR 999", b"Caf\xe9^X", "Caf\xe9^X"),  # unknown: default repertoire
        ("ISO 2022 IR 87", b"\x1b$B\xff\xff^Y", None),  # broken escape sequence
        ("GB18030", b"\x81\x30^Z", None),  # incomplete multi-byte
        ("ISO_IR 100\\ISO_IR 999\\X", b"M\xfcller^A", None),  # multi-valued garbage
    ],
)
@BAD_CHARSETS
def test_bad_character_data_is_stored_and_queryable(checked_arc, charset, raw, expect):
    data = with_name(charset, raw)
    assert store_or_refuse(checked_arc, data) in ("stored", "replaced")
    [row] = checked_arc.find(
        {"SOPInstanceUID": "1.2.3.9", "PatientName": ""}, level="IMAGE", relational=True, format="dict"
    )
    assert isinstance(row["PatientName"], str)
    if expect is not None:
        assert row["PatientName"] == expect
    row["PatientName"].encode("utf-8")  # always valid Unicode out


@pytest.mark.parametrize(
    "old,new",
    [
        (b"DA\x08\x0020200115", b"US\x08\x0020200115"),  # a date sent as US
        (b"PN\x08\x00Doe^John", b"SQ\x00\x00\x08\x00\x00\x00Doe^John"),  # a name sent as a sequence
        (b"PN\x08\x00Doe^John", b"FD\x08\x00Doe^John"),
        (b"PN\x08\x00Doe^John", b"XX\x08\x00Doe^John"),  # no such VR
        (b"UI\x08\x001.2.3.4\x00", b"UI\x08\x001.2.3.\x00\x00"),  # a UID with a trailing dot
        (b"CS\x02\x00CT", b"CS\x02\x00\xff\xfe"),  # CS outside its repertoire
    ],
)
@BAD_CS
@BAD_DATES
def test_wrong_vrs_are_stored_or_refused(checked_arc, old, new):
    assert old in BASE, old
    data = BASE.replace(old, new, 1)
    outcome = store_or_refuse(checked_arc, data)
    if outcome != "refused":
        list(checked_arc.find({"PatientName": "", "StudyDate": "", "Modality": ""}, level="SERIES", relational=True))


# -- deflate bomb --------------------------------------------------------------------------------


def deflate_bomb(inflated: int) -> bytes:
    """A Part-10 file in Deflated Explicit VR LE whose ~1 MB body inflates to ``inflated`` bytes."""
    from pydicom.filebase import DicomBytesIO
    from pydicom.filewriter import write_dataset, write_file_meta_info
    from pydicom.uid import DeflatedExplicitVRLittleEndian

    ds = pydicom.dcmread(io.BytesIO(BASE))
    body = DicomBytesIO()
    body.is_little_endian, body.is_implicit_VR = True, False
    write_dataset(body, ds)
    comp = zlib.compressobj(9, zlib.DEFLATED, -15)
    out = [comp.compress(body.getvalue() + _el(0x0009, 0x1010, b"OB", inflated))]
    zeros = b"\0" * (1 << 22)
    for _ in range(inflated >> 22):
        out.append(comp.compress(zeros))
    out.append(comp.flush())
    ds.file_meta.TransferSyntaxUID = DeflatedExplicitVRLittleEndian
    meta = DicomBytesIO()
    meta.is_little_endian, meta.is_implicit_VR = True, False
    write_file_meta_info(meta, ds.file_meta)
    return b"\0" * 128 + b"DICM" + meta.getvalue() + b"".join(out)


BOMB_CHILD = textwrap.dedent("""
    import resource, sys, pacscore
    from pacscore import ingest
    data = open(sys.argv[1], "rb").read()
    soft = int(sys.argv[2])
    resource.setrlimit(resource.RLIMIT_AS, (soft, soft))
    try:
        ingest.parse_bytes(data, "bomb")
        print("stored")
    except pacscore.IngestError as exc:
        print("IngestError", exc.reason)
""")


@pytest.fixture(scope="module")
def bomb(tmp_path_factory):
    """A 1 GiB deflate bomb, built once (about 1 MB on disk)."""
    path = tmp_path_factory.mktemp("bomb") / "bomb.dcm"
    path.write_bytes(deflate_bomb(1 << 30))
    assert path.stat().st_size < (1 << 30) // 500  # a tiny file...
    return path


def _run_bomb(path) -> str:
    # the child may use its baseline plus 384 MiB of address space, far less than the bomb
    baseline = subprocess.run(
        [sys.executable, "-c", "import pacscore, pydicom;print(open('/proc/self/statm').read().split()[0])"],
        capture_output=True,
        text=True,
        check=True,
    )
    limit = int(baseline.stdout) * resource.getpagesize() + (384 << 20)
    proc = subprocess.run(
        [sys.executable, "-c", BOMB_CHILD, str(path), str(limit)], capture_output=True, text=True, timeout=60
    )
    assert proc.returncode == 0, proc.stderr[-2000:]  # no crash, even at the limit
    return proc.stdout.strip()


def test_deflate_bomb_is_refused_without_crashing(bomb):
    out = _run_bomb(bomb)
    assert out.startswith("IngestError"), out


def test_deflate_bomb_is_refused_before_inflating(bomb):
    out = _run_bomb(bomb)
    assert out.startswith("IngestError") and "MemoryError" not in out, out


def test_real_deflated_file_still_stores(checked_arc):
    data = (pydicom_test_files() / "image_dfl.dcm").read_bytes()
    assert store_or_refuse(checked_arc, data) == "stored"


# -- hypothesis: byte mutations of a real file --------------------------------------------------

SEED_FILES = [BASE, CT_SMALL[: len(CT_SMALL) - 128 * 128 * 2 + 2048]]


@st.composite
def mutated(draw):
    data = bytearray(draw(st.sampled_from(SEED_FILES)))
    for _ in range(draw(st.integers(1, 8))):
        kind = draw(st.sampled_from(["flip", "set", "insert", "delete", "length"]))
        pos = draw(st.integers(132, len(data) - 1))
        if kind == "flip":
            data[pos] ^= 1 << draw(st.integers(0, 7))
        elif kind == "set":
            data[pos] = draw(st.integers(0, 255))
        elif kind == "insert":
            data[pos:pos] = draw(st.binary(min_size=1, max_size=16))
        elif kind == "delete":
            del data[pos : pos + draw(st.integers(1, 16))]
        else:  # a 2- or 4-byte length field somewhere: make it huge
            data[pos : pos + 4] = draw(st.sampled_from([b"\xff\xff\xff\xff", b"\xf0\xff\xff\xff", b"\xff\xff\x00\x00"]))
    return bytes(data)


@settings(
    max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow]
)
@given(data=mutated())
@FUZZED
def test_fuzz_mutated_files(checked_arc, data):
    store_or_refuse(checked_arc, data)


# -- identifiers -----------------------------------------------------------------------------------

KEYS = [
    "PatientName",
    "PatientID",
    "StudyDate",
    "StudyTime",
    "ModalitiesInStudy",
    "Modality",
    "SOPInstanceUID",
    "StudyInstanceUID",
    "ReferencedStudySequence",
    "00100010",
    0x00080020,
    "0009xx10",
    "NoSuchKeyword",
    "PixelData",
    "QueryRetrieveLevel",
    "SpecificCharacterSet",
    "(0010,0020)",
    "",
    "00100010x",
    "7FE00010",
    "NumberOfStudyRelatedInstances",
    "AccessionNumber",
    "PatientBirthDate",
    "IssuerOfPatientID",
]
VALUES = st.one_of(
    st.text(max_size=40),
    st.sampled_from(
        [
            "*",
            "?",
            "\\",
            "-",
            "20200101-",
            "-20200101",
            "2020-01",
            "a*b?c",
            "=",
            "\\\\",
            "^^^",
            "20201301",
            "1.2.*",
            "*" * 50,
            "\x00",
            "\ud7ff",
        ]
    ),
    st.integers(),
    st.none(),
    st.binary(max_size=8),
    st.floats(allow_nan=True),
    st.lists(st.dictionaries(st.sampled_from(KEYS[:6]), st.text(max_size=5), max_size=3), max_size=2),
)


@pytest.fixture(scope="module")
def query_arc(tmp_path_factory):
    with pacscore.open(tmp_path_factory.mktemp("q")) as a:
        for i in range(30):
            a.store(
                make_instance(
                    sop=f"1.3.{i % 4}.{i}",
                    study=f"1.3.{i % 4}",
                    series=f"1.3.{i % 4}.{i % 2}",
                    patient_id=f"P{i % 3}",
                    patient_name=f"Name{i % 5}^G",
                    study_date=f"2020010{i % 9 + 1}",
                    modality=["CT", "MR"][i % 2],
                )
            )
        yield a


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    identifier=st.dictionaries(st.sampled_from(KEYS), VALUES, max_size=6),
    level=st.sampled_from([None, "PATIENT", "STUDY", "SERIES", "IMAGE", "FRAME", "", 3]),
    model=st.sampled_from(["STUDY", "PATIENT", "PATIENT_STUDY_ONLY", "NOPE"]),
    options=st.dictionaries(
        st.sampled_from(["relational", "invalid_keys", "fuzzy_pn", "pn_case_insensitive"]),
        st.sampled_from([True, False, "error", "nomatch", "x", None]),
        max_size=2,
    ),
)
def test_fuzz_identifier_dicts(query_arc, identifier, level, model, options):
    try:
        answers = list(query_arc.find(identifier, level=level, model=model, **options))
    except QueryError:
        return
    assert query_arc.count(identifier, level=level, model=model, **options) == len(answers)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    elements=st.lists(
        st.tuples(
            st.sampled_from(
                [
                    0x00100010,
                    0x00100020,
                    0x00080020,
                    0x00080052,
                    0x00080060,
                    0x0020000D,
                    0x00081110,
                    0x00091001,
                    0x7FE00010,
                ]
            ),
            st.sampled_from(["PN", "LO", "DA", "CS", "UI", "SQ", "OB", "US", "UN"]),
            st.binary(max_size=12),
        ),
        max_size=6,
    )
)
@FUZZED
def test_fuzz_identifier_datasets(query_arc, elements):
    from pydicom.dataelem import RawDataElement

    ds = Dataset()
    for tag, vr, value in elements:
        ds._dict[pydicom.tag.Tag(tag)] = RawDataElement(pydicom.tag.Tag(tag), vr, len(value), value, 0, False, True)
    try:
        list(ds.iterall())  # converts every raw element as pydicom would
    except Exception:
        reject()  # undecodable identifiers: test_undecodable_identifier_dataset_is_a_query_error
    try:
        answers = list(query_arc.find(ds, model="STUDY"))
    except QueryError:
        return
    assert query_arc.count(ds, model="STUDY") == len(answers)


def _raw_dataset(tag: int, vr: str, value: bytes) -> Dataset:
    from pydicom.dataelem import RawDataElement

    ds = Dataset()
    ds._dict[pydicom.tag.Tag(tag)] = RawDataElement(pydicom.tag.Tag(tag), vr, len(value), value, 0, False, True)
    ds.QueryRetrieveLevel = "STUDY"
    return ds


@pytest.mark.parametrize(
    "tag,vr,value",
    [(0x00100010, "US", b"\0" * 9), (0x00100010, "SQ", b"\0" * 9), (0x00081110, "SQ", b"\xfe\xff\x00\xe0\xff\xff")],
)
def test_undecodable_identifier_dataset_is_a_query_error(query_arc, tag, vr, value):
    with pytest.raises(QueryError):
        list(query_arc.find(_raw_dataset(tag, vr, value)))


@pytest.mark.timeout(300)  # a hang guard, not a speed target (speed lives in benchmarks/)
def test_very_large_identifiers_are_answered(query_arc):
    from pydicom.datadict import keyword_dict

    many = {kw: "" for kw in list(keyword_dict)[:5000]}
    many.update({f"0009{i:04X}": "" for i in range(5000)})  # private: not matched, reported
    assert len(many) == 10000
    for identifier in (
        many,
        {"PatientName": "N" * (1 << 20)},
        {"PatientName": "*N" * (1 << 19)},
        {"StudyDescription": "*a" * (1 << 19)},
        {"PatientID": "\\".join(["P1"] * 100000)},
    ):
        try:  # answered at all: a super-linear matcher would run into the timeout below
            list(query_arc.find(identifier, level="STUDY"))
        except QueryError:
            pass


# -- wild cards stay linear ------------------------------------------------------------------------


@pytest.mark.parametrize(
    "pattern",
    [
        "*" + "a*" * 30 + "b",  # classic backtracking killer
        "*" + "a?" * 20 + "c*",  # '?' segments that almost match everywhere
        "*a*a*a*a*a*a*a*a*a*a*a*a*ab",
        "?" * 10 + "*" + "aa*" * 10 + "?",
    ],
)
def test_wildcard_steps_are_linear(pattern):
    compiled = WildcardPattern(pattern)
    steps = {}
    for n in (1000, 2000, 4000, 8000):
        for text in ("a" * n, "a" * n + "b", ("ab" * n)[:n]):
            ok, count = compiled.match_steps(text)
            assert ok == compiled.match(text)
            assert count <= (len(text) + 2) * (pattern.count("*") + 2), (pattern, n, count)
            steps[(n, text[-1])] = max(steps.get((n, text[-1]), 0), count)
    for (n, last), count in steps.items():
        if n > 1000:
            assert count <= 2.2 * steps[(n // 2, last)] + 4, (pattern, n, count, steps[(n // 2, last)])


# -- QIDO-RS parameters ----------------------------------------------------------------------------


@pytest.fixture(scope="module")
def qido(query_arc):
    pytest.importorskip("starlette", reason="the web extra is not installed")
    from starlette.testclient import TestClient

    from pacscore.adapters.dicomweb import create_app

    with TestClient(create_app(query_arc), raise_server_exceptions=False) as client:
        assert client.get("/dicomweb/studies").status_code in (200, 204)
        yield client


PARAM_NAMES = [
    "PatientName",
    "PatientID",
    "StudyDate",
    "00100010",
    "includefield",
    "limit",
    "offset",
    "fuzzymatching",
    "Modality",
    "StudyInstanceUID",
    "00080020",
    "ModalitiesInStudy",
    "nosuch",
    "SOPInstanceUID",
    "",
    "=",
    "ReferencedStudySequence.ReferencedSOPInstanceUID",
    "0020000D",
]
PATHS = [
    "/dicomweb/studies",
    "/dicomweb/series",
    "/dicomweb/instances",
    "/dicomweb/studies/1.3.0/series",
    "/dicomweb/studies/1.3.0/instances",
    "/dicomweb/studies/1.3.0/series/1.3.0.0/instances",
    "/dicomweb/studies/..%2F..%2Fetc/series",
    "/dicomweb/studies/%00/instances",
]


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    path=st.sampled_from(PATHS),
    params=st.lists(
        st.tuples(
            st.sampled_from(PARAM_NAMES),
            st.one_of(
                st.text(max_size=30),
                st.sampled_from(["-1", "99999999999999999999", "all", "true", "*", "0", "1e9", "%", "\x00"]),
            ),
        ),
        max_size=5,
    ),
    accept=st.sampled_from(
        [
            "application/dicom+json",
            "application/json",
            "*/*",
            "text/html",
            "multipart/related",
            "application/dicom+xml",
            "",
        ]
    ),
)
def test_fuzz_qido_parameters(qido, path, params, accept):
    headers = {"Accept": accept} if accept else {}
    response = qido.get(path, params=params, headers=headers)
    assert response.status_code < 500, (path, params, accept, response.status_code, response.text[:300])
