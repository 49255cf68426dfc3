"""The compiled C-FIND identifier encoder (pacscore._ext._dimse_encode) is the exact twin of the
pure one in pacscore/adapters/dimse_encode.py: the same bytes for every field list, the same
exception where the pure one raises (Unencodable sends the row the Dataset way, so a row one
twin encodes and the other refuses would answer differently), and the same encoded_find
outputs for whole archives.

The extension is imported directly, so the parity is checked whichever twin is live
(PACSCORE_PURE=1 included). Skipped only when the extension is not built, and never under CI
(CI builds it: a missing build there is a failure).
"""

from __future__ import annotations

import importlib
import os

import pytest
from hypothesis import example, given
from hypothesis import strategies as st
from pydicom.uid import ExplicitVRLittleEndian
from pydicom.uid import ImplicitVRLittleEndian as Implicit

import pacscore
from pacscore import _impl, model
from pacscore.adapters import dimse_encode
from pacscore.adapters.dimse_encode import (
    EncodedIdentifier,
    EncodePlanPure,
    Unencodable,
    encode_fields_pure,
    encode_row_pure,
)
from pacscore.index import records as pure_records
from pacscore.query.kinds import SpecKind
from pacscore.testing import strategies as ps

try:
    compiled = importlib.import_module("pacscore._ext._dimse_encode")
except ImportError as exc:
    if os.environ.get("CI"):
        raise  # CI builds the extensions: not finding one is a broken build, not a skip
    pytest.skip(f"pacscore._ext._dimse_encode is not built: {exc}", allow_module_level=True)

from .dimse_helpers import generated_instances
from .test_dimse_wire_encode import QUERIES

# ---- strategies ---------------------------------------------------------------------------------
#: every VR a row may carry, the ones the encoder refuses, and a few that are no VR at all
VRS = [
    *("AE AS CS DA DT TM LO SH PN LT ST UT UC UR UI DS IS US SS UL SL FL FD UV SV AT IN UN".split()),
    *("OB OW OD OF OL OV SQ".split()),
    *("XX", "X", "ABC", "é1"),
]
TAGS = st.one_of(
    st.sampled_from([model.T_CHARSET, model.T_QR_LEVEL, 0x00080054, 0x00100010, 0x0020000D, 0x00201208]),
    st.integers(0, 0xFFFFFFFF),
)
#: ASCII with the characters the checks look at, and several scripts (ps._TEXT), a lone surrogate
CHARS = st.one_of(
    st.sampled_from(list(" +-.eE0123456789\\\n\0^=aZ")),
    st.sampled_from(ps._TEXT),
    st.sampled_from(["é", "Ж", "Ω", "山", "\U0001f600", "\udc80"]),
)
#: DS / IS / binary values near every edge of their checks
NUMBERS = st.sampled_from(
    [
        *("0 12 -0 +7 007 1.5 .5 5. 1e5 1E-5 -1.5e+10 1e 1.5.5 . e5 1_0 0x10 ff nan inf -inf".split()),
        *(" 12", "12 ", " 1 ", "1\n", "1 \n", "\n1", "1\n\n", "1\\2", "1\\", "\\1", "1\\\\2"),
        *("2147483647", "2147483648", "-2147483648", "-2147483649", "123456789012", "1234567890123"),
        *("1234567890123456", "12345678901234567", " 1.234567890123", "65535", "65536", "-32768", "-1"),
        *("4294967296", "3.4e38", "3.5e38", "1e309", "0010FFFF", "00100010\\7FE00010", "١٢"),
    ]
)
SHORT_TEXT = st.text(CHARS, max_size=12)
LONG_TEXT = st.builds(lambda c, n: c * n, st.sampled_from(["a", "é", "1", "山"]), st.integers(21840, 65540))
VALUES = st.one_of(
    st.none(),
    st.just(""),
    SHORT_TEXT,
    NUMBERS,
    st.lists(NUMBERS, min_size=1, max_size=3).map("\\".join),
    st.sampled_from([[], 0, 1.5, b"x", [{"CodeValue": "X"}]]),
)
FIELD = st.tuples(TAGS, st.sampled_from(VRS), VALUES)
FIELDS = st.lists(FIELD, max_size=12)
ROW_FIELDS = st.lists(st.tuples(TAGS, st.sampled_from(VRS[:28]), st.one_of(st.just(""), SHORT_TEXT, NUMBERS)))
ADDED = st.lists(
    st.tuples(TAGS, st.sampled_from(["AE", "CS"]), st.sampled_from(["", "PACSCORE", "ONLINE"])), max_size=2
)


def outcome(fn, *args):
    """What a call gives: its bytes, or the class of what it raised."""
    try:
        return fn(*args)
    except Exception as exc:
        return type(exc)


# ---- field lists --------------------------------------------------------------------------------
@given(FIELDS, st.booleans())
@example([(0x00201208, "IS", "2147483648")], True)
@example([(0x00201208, "IS", "1\n")], False)
@example([(0x00101030, "DS", "12345678901234567")], True)
@example([(0x0020000D, "UI", "1.2.3")], True)
@example([(0x00100010, "PN", "山田^太郎")], False)
@example([(0x00100020, "LO", "a"), (0x00100010, "PN", "b"), (0x00100020, "LO", "c")], True)
def test_field_lists_encode_alike(fields, explicit):
    got = outcome(compiled.encode_fields, fields, explicit)
    assert got == outcome(encode_fields_pure, fields, explicit)


@given(st.lists(st.tuples(TAGS, st.sampled_from(["LO", "UT", "UC", "PN", "ST", "UR", "IS"]), LONG_TEXT), max_size=2))
def test_long_values_encode_or_refuse_alike(fields):
    """Values around 65,535 bytes: explicit VR's 2-byte length refuses them, except for the VRs
    with a 4-byte length (PS3.5 7.1.2); implicit VR takes them all."""
    for explicit in (True, False):
        assert outcome(compiled.encode_fields, fields, explicit) == outcome(encode_fields_pure, fields, explicit)


def test_the_refusals_are_unencodable():
    for fields in (
        [(0x00201208, "IS", "2147483648")],
        [(0x00101030, "DS", "1e")],
        [(0x00080060, "CS", "é")],
        [(0x00280010, "US", "65536")],
        [(0x7FE00010, "OB", "x")],
        [(0x00080020, "DA", 20050101)],
        [(0x00100010, "PN", "a" * 65536)],
    ):
        with pytest.raises(Unencodable):
            compiled.encode_fields(fields, True)
        with pytest.raises(Unencodable):
            encode_fields_pure(fields, True)


@given(ROW_FIELDS, st.booleans(), ADDED, ADDED)
@example([(0x00080054, "AE", "")], True, [(0x00080054, "AE", "PACSCORE")], [])
@example([(0x00080054, "AE", "OTHER")], False, [(0x00080054, "AE", "PACSCORE")], [(0x00080056, "CS", "ONLINE")])
def test_rows_with_what_the_adapter_adds_encode_alike(fields, explicit, defaults, overrides):
    fields = sorted(fields, key=lambda f: f[0])  # as ResultBuilder.fields gives them
    args = (fields, explicit, tuple(defaults), tuple(overrides))
    assert outcome(compiled.encode_row, *args) == outcome(encode_row_pure, *args)


def test_a_row_with_a_sequence_is_refused_by_both():
    fields = [(model.T_CHARSET, "CS", "ISO_IR 192"), (0x00081032, "SQ", [{"CodeValue": "X"}])]
    for encode_row in (compiled.encode_row, encode_row_pure):
        with pytest.raises(Unencodable):
            encode_row(fields, True)


# ---- the live twin and whole archives ------------------------------------------------------------
def test_the_compiled_twin_is_live_unless_pure_is_forced():
    if _impl.FORCED_PURE:
        assert dimse_encode.encode_fields is encode_fields_pure
    else:
        assert dimse_encode.encode_fields is compiled.encode_fields
        assert dimse_encode.encode_row is compiled.encode_row


@pytest.fixture(scope="module")
def archive(tmp_path_factory):
    with pacscore.open(tmp_path_factory.mktemp("encode-compiled") / "arc") as arc:
        for ds in generated_instances():
            arc.store(ds)
        yield arc


def _no_plan(*args):
    raise ValueError("every row from ResultBuilder.fields")


#: which twins serve encoded_find: the row plan and the encoder of fields() (rows the plan leaves)
MODES = {
    "compiled": (compiled.EncodePlan, compiled.encode_row),
    "pure": (EncodePlanPure, encode_row_pure),
    "fields only": (_no_plan, encode_row_pure),
}


def _answers(arc, mode: str, monkeypatch, syntax) -> list:
    """encoded_find's answers for every level of QUERIES with the twins of ``mode`` live."""
    monkeypatch.setattr(dimse_encode, "EncodePlan", MODES[mode][0])
    monkeypatch.setattr(dimse_encode, "encode_row", MODES[mode][1])
    out = []
    defaults, overrides = ((0x00080054, "AE", "PACSCORE"),), ((0x00080056, "CS", "ONLINE"),)
    for level, model_name, keys in QUERIES:
        opts = {"relational": True} if level in ("SERIES", "IMAGE") else {}
        for added in ((), defaults), (overrides, defaults):
            found = dimse_encode.encoded_find(arc, dict(keys), level, model_name, opts, syntax, added[1], added[0])
            out += [(type(r), bytes(r) if isinstance(r, EncodedIdentifier) else r.to_json()) for r in found]
    return out


@pytest.mark.parametrize("syntax", [ExplicitVRLittleEndian, Implicit])
def test_archive_answers_are_the_same_with_either_twin(archive, syntax, monkeypatch):
    got = _answers(archive, "compiled", monkeypatch, syntax)
    assert got and any(t is EncodedIdentifier for t, _ in got)
    assert got == _answers(archive, "pure", monkeypatch, syntax)
    assert got == _answers(archive, "fields only", monkeypatch, syntax)


@given(ps.studies(), st.sampled_from([ExplicitVRLittleEndian, Implicit]))
def test_generated_archives_answer_the_same_with_either_twin(tmp_path_factory, instances, syntax):
    """Generated studies (names and text in several scripts), every level, both twins."""
    with pacscore.open(tmp_path_factory.mktemp("encode-twins") / "arc") as arc:
        for ds in instances:
            arc.store(ds)
        with pytest.MonkeyPatch.context() as mp:
            got = _answers(arc, "compiled", mp, syntax)
            assert got == _answers(arc, "pure", mp, syntax)
            assert got == _answers(arc, "fields only", mp, syntax)


# ---- row plans on generated records ------------------------------------------------------------
#: the tags the generated records hold and the specs read (a pointer may read another one)
POOL = [0x00080020, 0x00080054, 0x00080056, 0x00100010, 0x00100020, 0x0020000D, 0x00201208, 0x00280010, 0x0040A730]
STORED_VRS = st.sampled_from(VRS[:28])
STORED = st.one_of(
    st.tuples(STORED_VRS, st.one_of(st.just(""), SHORT_TEXT, NUMBERS)),
    st.tuples(st.just("SQ"), st.lists(st.dictionaries(st.just("CodeValue"), st.text(max_size=3)), max_size=2)),
)
RECORD = st.one_of(st.none(), st.dictionaries(st.sampled_from(POOL), STORED, max_size=7).map(pure_records.encode))


@st.composite
def row_plans(draw):
    """(specs, defaults, overrides) as ResultBuilder._row_plan and the adapter make them."""
    specs = [
        (0x00080005, (SpecKind.CONSTANT, "00080005", "CS", draw(st.sampled_from(["ISO_IR 192", ""])))),
        (0x00080052, (SpecKind.CONSTANT, "00080052", "CS", "STUDY")),
    ]
    for tag in draw(st.lists(st.sampled_from(POOL), unique=True, max_size=6)):
        kind = draw(st.sampled_from([SpecKind.UNIQUE, SpecKind.KEY]))
        read = draw(st.one_of(st.just(tag), st.sampled_from(POOL)))
        vr = draw(st.sampled_from(["UI", "LO", "PN", "DA", "IS", "US", "UN", "AE", "CS", "SQ", "IN", "DS"]))
        specs.append((tag, (kind, f"{tag:08X}", draw(st.integers(0, 1)), read, vr)))
    specs.sort(key=lambda s: s[0])
    added = draw(st.lists(st.sampled_from(POOL[:3]), unique=True, max_size=2))
    cut = draw(st.integers(0, len(added)))
    value = st.sampled_from(["", "PACSCORE", "ONLINE", "é"])
    defaults = tuple((t, "AE", draw(value)) for t in added[:cut])
    overrides = tuple((t, "CS", draw(value)) for t in added[cut:])
    return tuple(s for _, s in specs), defaults, overrides


@given(row_plans(), st.tuples(RECORD, RECORD), st.booleans())
def test_row_plans_write_what_the_pure_plan_writes(plan, recs, explicit):
    """The compiled plan gives the pure plan's bytes, and refuses (Unencodable: the row then goes
    the fields() way) only rows the pure plan does not encode either."""
    specs, defaults, overrides = plan
    want = outcome(lambda: EncodePlanPure(specs, explicit, defaults, overrides).row(recs))
    got = outcome(lambda: compiled.EncodePlan(specs, explicit, defaults, overrides).row(recs))
    if isinstance(want, bytes):
        assert got == want
    else:
        assert got in (Unencodable, want)
