"""C-FIND identifiers encoded from the index's rows (pacscore.adapters.dimse_encode) are pydicom's
bytes for the Dataset the adapter would have built, in both transfer syntaxes it serves.

Hypothesis draws rows (tag, VR, value) over every VR a row carries, values of several scripts,
multi-values and empty values; then whole archives answer queries at every level both ways.
A row the encoder cannot promise byte-equality for is built as a Dataset instead, never sent
differently.
"""

from __future__ import annotations

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pydicom.datadict import tag_for_keyword
from pydicom.dataset import Dataset
from pydicom.uid import DeflatedExplicitVRLittleEndian, ExplicitVRBigEndian, ExplicitVRLittleEndian
from pydicom.uid import ImplicitVRLittleEndian as Implicit
from pynetdicom.dsutils import decode, encode

import pacscore
from pacscore import model
from pacscore.adapters import dimse_encode
from pacscore.adapters.dimse_encode import (
    EncodedIdentifier,
    EncodingBuilder,
    Unencodable,
    encode_fields,
    encoded_find,
)
from pacscore.query.results import CHARSET, ResultBuilder
from pacscore.testing import strategies as ps

from .dimse_helpers import generated_instances

#: one public attribute per VR that C-FIND rows may carry (found by keyword, VR checked below)
KEYWORD_OF_VR = {
    "AE": "RetrieveAETitle",
    "AS": "PatientAge",
    "AT": "DimensionIndexPointer",
    "CS": "ModalitiesInStudy",
    "DA": "StudyDate",
    "DS": "PatientWeight",
    "DT": "AcquisitionDateTime",
    "FD": "DiffusionBValue",
    "FL": "RecommendedDisplayFrameRateInFloat",
    "IS": "NumberOfStudyRelatedInstances",
    "LO": "PatientID",
    "LT": "PatientComments",
    "PN": "PatientName",
    "SH": "AccessionNumber",
    "SL": "ReferencePixelX0",
    "SS": "TagAngleSecondAxis",
    "ST": "InstitutionAddress",
    "TM": "StudyTime",
    "UC": "LongCodeValue",
    "UI": "StudyInstanceUID",
    "UL": "SimpleFrameList",
    "UR": "PixelDataProviderURL",
    "US": "Rows",
    "UT": "PrivateDataElementDescription",
}
TAG_OF_VR = {vr: tag_for_keyword(kw) for vr, kw in KEYWORD_OF_VR.items()}
TAG_OF_VR = {vr: tag for vr, tag in TAG_OF_VR.items() if tag is not None and model.vr_of(tag) == vr}

_TEXT = ps._TEXT  # the scripts of the public strategies (Latin, accented, Cyrillic, Greek, CJK)


def text(max_size: int) -> st.SearchStrategy[str]:
    return st.text(st.sampled_from(_TEXT), min_size=1, max_size=max_size).map(str.strip).filter(bool)


def numbers(lo: int, hi: int) -> st.SearchStrategy[str]:
    return st.lists(st.integers(lo, hi).map(str), min_size=1, max_size=3).map("\\".join)


def floats() -> st.SearchStrategy[str]:
    return st.lists(st.floats(allow_nan=False, allow_infinity=False, width=32).map(repr), min_size=1, max_size=3).map(
        "\\".join
    )


def multi(values: st.SearchStrategy[str]) -> st.SearchStrategy[str]:
    return st.lists(values, min_size=1, max_size=3).map("\\".join)


VALUES = {
    "AE": ps.ae_titles(),
    "AS": st.tuples(st.integers(0, 999), st.sampled_from("DWMY")).map(lambda t: f"{t[0]:03d}{t[1]}"),
    "AT": st.lists(st.integers(0, 0xFFFFFFFF).map(lambda t: f"{t:08X}"), min_size=1, max_size=3).map("\\".join),
    "CS": multi(ps.code_strings()),
    "DA": multi(ps.dates()),
    "DS": multi(ps.decimal_strings()),
    "DT": ps.datetimes(),
    "FD": floats(),
    "FL": floats(),
    "IS": multi(ps.integer_strings()),
    "LO": multi(text(64)),
    "LT": text(200),
    "PN": multi(ps.person_names()),
    "SH": multi(text(16)),
    "SL": numbers(-(2**31), 2**31 - 1),
    "SS": numbers(-(2**15), 2**15 - 1),
    "ST": text(200),
    "TM": multi(ps.times()),
    "UC": text(100),
    "UI": multi(ps.uids()),
    "UL": numbers(0, 2**32 - 1),
    "UR": st.sampled_from(["http://example.org/a", "urn:oid:1.2.3", "https://x.test/p?q=1"]),
    "US": numbers(0, 2**16 - 1),
    "UT": text(300),
}
ROW_VRS = sorted(set(VALUES) & set(TAG_OF_VR))


@st.composite
def rows(draw) -> list[tuple[int, str, str]]:
    """A response row as ResultBuilder.fields gives it: charset and level first, then keys."""
    fields = [(model.T_CHARSET, "CS", CHARSET), (model.T_QR_LEVEL, "CS", draw(st.sampled_from(ps.LEVELS)))]
    for vr in draw(st.lists(st.sampled_from(ROW_VRS), min_size=1, max_size=len(ROW_VRS), unique=True)):
        value = draw(st.one_of(st.just(""), VALUES[vr]))
        fields.append((TAG_OF_VR[vr], vr, value))
    return sorted(fields, key=lambda f: f[0])


def pydicom_bytes(fields, explicit: bool) -> bytes:
    """What the adapter sent before: the Dataset of ResultBuilder, encoded by pynetdicom/pydicom."""
    ds = ResultBuilder._dataset(None, fields)  # type: ignore[arg-type]  # uses no state
    out = encode(ds, not explicit, True)
    assert out is not None, "pydicom could not encode the row"
    return out


def test_every_vr_a_row_carries_is_drawn():
    assert set(ROW_VRS) >= {"AE", "AS", "CS", "DA", "DS", "DT", "IS", "LO", "PN", "SH", "TM", "UI", "US", "UL"}


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(rows(), st.booleans())
def test_encoded_rows_are_pydicoms_bytes(fields, explicit):
    assert encode_fields(fields, explicit) == pydicom_bytes(fields, explicit)


@pytest.mark.filterwarnings("ignore:The value length")  # pydicom counts UTF-8 bytes of SH values
@settings(max_examples=100, deadline=None)
@given(rows())
def test_encoded_rows_decode_to_the_same_tags(fields):
    data = encode_fields(fields, explicit=True)
    ds = decode(__import__("io").BytesIO(data), False, True)
    assert [int(e.tag) for e in ds] == [f[0] for f in fields]


def test_a_repeated_tag_keeps_its_last_value_as_a_dataset_does():
    fields = [(model.T_CHARSET, "CS", CHARSET), (0x00100020, "LO", "FIRST"), (0x00100020, "LO", "LAST")]
    assert encode_fields(fields, True) == pydicom_bytes(fields, True)


@pytest.mark.parametrize(
    "vr, value, why",
    [
        ("IS", "12.5", "IS value"),
        ("IS", "99999999999", "IS value"),
        ("DS", "1,5", "DS value"),
        ("CS", "ÄRGER", "outside ASCII"),
        ("US", "many", "US value"),
        ("AT", "XYZ", "AT value"),
        ("OB", "abc", "OB value"),
        ("LT", 12, "type int"),
    ],
)
def test_values_pydicom_would_change_or_refuse_are_not_encoded(vr, value, why):
    with pytest.raises(Unencodable, match=why):
        encode_fields([(0x00100020, vr, value)], True)


def test_a_row_that_cannot_be_encoded_is_built_as_a_dataset():
    """The builder falls back per row: the answer is the same, only built the slow way."""
    builder = EncodingBuilder.__new__(EncodingBuilder)
    builder.explicit, builder.defaults, builder.overrides, builder._added, builder.fallbacks = True, (), (), set(), 0
    bad = [(model.T_CHARSET, "CS", CHARSET), (0x00080061, "CS", "ÄRGER")]
    sequence = [(model.T_CHARSET, "CS", CHARSET), (0x00081032, "SQ", [{"CodeValue": "X"}])]
    good = [(model.T_CHARSET, "CS", CHARSET), (0x00201208, "IS", "15")]
    with pytest.warns(UserWarning, match="CS"):  # pydicom's own complaint, on the Dataset path
        assert isinstance(builder._encode(bad), Dataset)
    assert isinstance(builder._encode(sequence), Dataset)
    assert isinstance(builder._encode(good), EncodedIdentifier)
    assert builder.fallbacks == 2


# ---- whole archives -----------------------------------------------------------------------------
@pytest.fixture(scope="module")
def archive(tmp_path_factory):
    with pacscore.open(tmp_path_factory.mktemp("encode") / "arc") as arc:
        for ds in generated_instances():
            arc.store(ds)
        yield arc


QUERIES = [
    ("PATIENT", "PATIENT", {"PatientID": "", "PatientName": "", "PatientBirthDate": "", "PatientSex": ""}),
    (
        "STUDY",
        "STUDY",
        {
            "StudyInstanceUID": "",
            "PatientID": "",
            "PatientName": "",
            "StudyDate": "",
            "StudyTime": "",
            "AccessionNumber": "",
            "StudyDescription": "",
            "ModalitiesInStudy": "",
            "NumberOfStudyRelatedSeries": "",
            "NumberOfStudyRelatedInstances": "",
            "ReferringPhysicianName": "",
            "StudyID": "",
        },
    ),
    (
        "SERIES",
        "STUDY",
        {"Modality": "", "SeriesNumber": "", "SeriesDescription": "", "NumberOfSeriesRelatedInstances": ""},
    ),
    ("IMAGE", "STUDY", {"SOPInstanceUID": "", "InstanceNumber": "", "SOPClassUID": "", "Rows": ""}),
]


@pytest.mark.parametrize("syntax", [ExplicitVRLittleEndian, Implicit])
@pytest.mark.parametrize("level, model_name, keys", QUERIES, ids=[q[0] for q in QUERIES])
def test_archive_answers_encode_as_pydicom_would(archive, syntax, level, model_name, keys):
    opts = {"relational": True} if level in ("SERIES", "IMAGE") else {}
    expected = [
        encode(ds, syntax.is_implicit_VR, True)
        for ds in archive.find(dict(keys), level=level, model=model_name, **opts)
    ]
    got = list(encoded_find(archive, dict(keys), level, model_name, opts, syntax))
    assert expected and all(isinstance(g, EncodedIdentifier) for g in got)
    assert [bytes(g) for g in got] == expected


def test_retrieve_ae_and_availability_are_added_as_the_handler_adds_them(archive):
    keys = {"StudyInstanceUID": "", "InstanceAvailability": "", "RetrieveAETitle": ""}
    expected = []
    for ds in archive.find(dict(keys), level="STUDY"):
        if not ds.get("RetrieveAETitle"):
            ds.RetrieveAETitle = "PACSCORE"
        ds.InstanceAvailability = "ONLINE"
        expected.append(encode(ds, False, True))
    got = encoded_find(
        archive,
        dict(keys),
        "STUDY",
        "STUDY",
        {},
        ExplicitVRLittleEndian,
        defaults=((0x00080054, "AE", "PACSCORE"),),
        overrides=((0x00080056, "CS", "ONLINE"),),
    )
    assert [bytes(g) for g in got] == expected


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(ps.studies(), st.sampled_from([ExplicitVRLittleEndian, Implicit]))
def test_generated_studies_answer_the_same_both_ways(tmp_path_factory, instances, syntax):
    """Generated studies (names and text in several scripts): every level, every returned key."""
    with pacscore.open(tmp_path_factory.mktemp("encode-gen") / "arc") as arc:
        for ds in instances:
            arc.store(ds)
        for level, model_name, keys in QUERIES:
            opts = {"relational": True} if level in ("SERIES", "IMAGE") else {}
            expected = [
                encode(ds, syntax.is_implicit_VR, True)
                for ds in arc.find(dict(keys), level=level, model=model_name, **opts)
            ]
            got = [bytes(g) for g in encoded_find(arc, dict(keys), level, model_name, opts, syntax)]
            assert got == expected


@pytest.mark.parametrize("syntax", [ExplicitVRBigEndian, DeflatedExplicitVRLittleEndian, "1.2.3.4"])
def test_other_transfer_syntaxes_are_left_to_pydicom(archive, syntax):
    assert encoded_find(archive, {"StudyInstanceUID": ""}, "STUDY", "STUDY", {}, syntax) is None


def test_an_archive_proxy_with_its_own_find_is_left_alone(archive):
    class Proxy:
        def __getattr__(self, name):
            return getattr(archive, name)

        def find(self, *args, **kwargs):
            return archive.find(*args, **kwargs)

    assert encoded_find(Proxy(), {"StudyInstanceUID": ""}, "STUDY", "STUDY", {}, ExplicitVRLittleEndian) is None


def test_a_bad_identifier_raises_the_archives_query_error(archive):
    with pytest.raises(pacscore.QueryError, match="StudyDate"):
        opts = {"invalid_keys": "error"}
        encoded_find(archive, {"StudyDate": "not a date"}, "STUDY", "STUDY", opts, ExplicitVRLittleEndian)


# ---- over the wire --------------------------------------------------------------------------------
def wire_answers(arc, fastpath: bool, syntax, keys: dict, level: str, **options) -> list[bytes]:
    """The identifiers a pynetdicom SCU receives, re-encoded by pydicom for comparison."""
    from pynetdicom import AE, build_context
    from pynetdicom.sop_class import PatientRootQueryRetrieveInformationModelFind as PatientFind

    from pacscore.adapters import dimse
    from pacscore.adapters.dimse_fastpath import guard_requestor

    server = dimse.serve(arc, dimse.ServeConfig(port=0, block=False, fastpath=fastpath, **options))
    try:
        ae = AE("ENCTEST")
        ae.acse_timeout = ae.dimse_timeout = ae.network_timeout = 60
        ae.requested_contexts = [build_context(PatientFind, [syntax])]
        assoc = guard_requestor(ae.associate("127.0.0.1", server.server_address[1], ae_title="PACSCORE"))
        assert assoc.is_established
        ds = Dataset()
        ds.QueryRetrieveLevel = level
        for k, v in keys.items():
            setattr(ds, k, v)
        out = []
        try:
            for status, ident in assoc.send_c_find(ds, PatientFind):
                if status.Status in (0xFF00, 0xFF01):
                    out.append(encode(ident, True, True))
                else:
                    assert status.Status == 0x0000
        finally:
            assoc.release()
        return out
    finally:
        server.shutdown()


@pytest.mark.parametrize("syntax", [ExplicitVRLittleEndian, Implicit])
def test_the_fast_path_sends_encoded_identifiers_with_the_same_content(archive, monkeypatch, syntax):
    from pacscore.adapters import dimse_service

    used = []

    def spy(*args, **kwargs):
        results = dimse_encode_results(*args, **kwargs)
        used.append(results is not None)
        return results

    dimse_encode_results = dimse_service.encoded_results
    monkeypatch.setattr(dimse_service, "encoded_results", spy)
    keys = {
        "PatientID": "",
        "PatientName": "",
        "PatientBirthDate": "",
        "InstanceAvailability": "",
        "RetrieveAETitle": "",
    }
    fast = wire_answers(archive, True, syntax, keys, "PATIENT")
    assert used == [True]
    slow = wire_answers(archive, False, syntax, keys, "PATIENT")
    assert used == [True, False]  # pynetdicom's own reactors: Datasets, as before
    assert fast and fast == slow
    logged = wire_answers(archive, True, syntax, keys, "PATIENT", handlers=_phi_config())
    assert len(used) == 2 and logged == fast  # log_phi: pynetdicom logs Datasets, so it gets them


def _phi_config():
    from pacscore.adapters.dimse import DimseConfig

    return DimseConfig(log_phi=True)


# ---- command sets -----------------------------------------------------------------------------------
def _primitives():
    from pynetdicom.dimse_primitives import C_ECHO, C_FIND, C_GET, C_MOVE, C_STORE

    texts = st.text(st.characters(min_codepoint=32, max_codepoint=126, exclude_characters="\\"), max_size=64)
    uid = ps.uids()

    @st.composite
    def response(draw):
        cls = draw(st.sampled_from([C_ECHO, C_FIND, C_GET, C_MOVE, C_STORE]))
        p = cls()
        p.MessageIDBeingRespondedTo = draw(st.integers(0, 0xFFFF))
        p.AffectedSOPClassUID = draw(uid)
        p.Status = draw(st.sampled_from([0x0000, 0xFF00, 0xFF01, 0xFE00, 0xA700, 0xA900, 0xC000, 0xB000]))
        if draw(st.booleans()):
            p.ErrorComment = draw(texts)
        if draw(st.booleans()):
            p.OffendingElement = draw(st.lists(st.integers(0, 0xFFFFFFFF), min_size=1, max_size=3))
        if cls is C_STORE and draw(st.booleans()):
            p.AffectedSOPInstanceUID = draw(uid)
        if cls in (C_GET, C_MOVE) and draw(st.booleans()):
            p.NumberOfRemainingSuboperations = draw(st.integers(0, 0xFFFF))
            p.NumberOfCompletedSuboperations = draw(st.integers(0, 0xFFFF))
        return p

    return response()


def _pdvs(primitive, fast: bool) -> list:
    from pynetdicom.dimse import _RSP_TO_MESSAGE

    from pacscore.adapters.dimse_encode import fast_command_encoding

    message = _RSP_TO_MESSAGE[primitive.__class__]()
    if fast:
        fast_command_encoding(message)
    message.primitive_to_message(primitive)
    return [pdv for pdata in message.encode_msg(1, 16382) for pdv in pdata.presentation_data_value_list]


@settings(max_examples=200, deadline=None)
@given(_primitives())
def test_command_sets_encode_as_pynetdicom_encodes_them(primitive):
    assert _pdvs(primitive, fast=True) == _pdvs(primitive, fast=False)


def test_a_command_element_it_does_not_know_goes_to_pydicom():
    from pacscore.adapters.dimse_encode import _command_encode, encode_command_set

    ds = Dataset()
    ds.ErrorComment = "Zürich"  # not ASCII: pydicom's encoding (and its complaint) decide
    with pytest.raises(Unencodable):
        encode_command_set(ds)
    assert _command_encode(ds, True, True) == encode(ds, True, True)


def _find_responses():
    from pynetdicom.dimse_primitives import C_FIND

    texts = st.text(st.characters(min_codepoint=32, max_codepoint=126, exclude_characters="\\"), max_size=64)

    @st.composite
    def response(draw):
        p = C_FIND()
        p.MessageIDBeingRespondedTo = draw(st.integers(0, 0xFFFF))
        if draw(st.booleans()):
            p.AffectedSOPClassUID = draw(ps.uids())
        p.Status = draw(st.sampled_from([0x0000, 0xFF00, 0xFF01, 0xFE00, 0xA700, 0xA900, 0xC000]))
        if draw(st.booleans()):
            p.ErrorComment = draw(texts)
        if draw(st.booleans()):  # one tag, or a list (dimse_common.status gives a list)
            tags = st.integers(0, 0xFFFFFFFF)
            p.OffendingElement = draw(st.one_of(tags, st.lists(tags, min_size=1, max_size=3)))
        if draw(st.booleans()):
            p.Identifier = __import__("io").BytesIO(draw(st.binary(min_size=2, max_size=40000)))
        return p

    return response()


@settings(max_examples=200, deadline=None)
@given(_find_responses(), st.sampled_from([0, 16382, 1024]))
def test_find_responses_from_their_primitive_are_pynetdicoms_pdvs(primitive, max_pdu):
    """The fast path's C-FIND response (no command set Dataset) gives pynetdicom's P-DATA,
    fragmented as pynetdicom fragments (max PDU 0: unlimited)."""
    from pynetdicom.dimse import _RSP_TO_MESSAGE

    from pacscore.adapters.dimse_encode import FindResponse

    def pdvs(message):
        message.primitive_to_message(primitive)
        return [pdv for pdata in message.encode_msg(1, max_pdu) for pdv in pdata.presentation_data_value_list]

    if primitive.Identifier is not None:
        primitive.Identifier.seek(0)
    expected = pdvs(_RSP_TO_MESSAGE[primitive.__class__]())
    assert pdvs(FindResponse(primitive)) == expected


def test_a_find_response_builds_pynetdicoms_command_set_when_asked():
    """An EVT_DIMSE_SENT handler reading ``message.command_set`` gets pynetdicom's Dataset,
    and the message still encodes the same."""
    from pynetdicom.dimse import _RSP_TO_MESSAGE
    from pynetdicom.dimse_primitives import C_FIND

    from pacscore.adapters.dimse_encode import FindResponse

    p = C_FIND()
    p.MessageIDBeingRespondedTo, p.AffectedSOPClassUID, p.Status = 7, "1.2.840.10008.5.1.4.1.2.2.1", 0xFF00
    p.Identifier = __import__("io").BytesIO(b"\x08\x00\x52\x00\x06\x00\x00\x00STUDY ")
    stock = _RSP_TO_MESSAGE[C_FIND]()
    stock.primitive_to_message(p)
    lazy = FindResponse(p)
    lazy.primitive_to_message(p)
    assert type(lazy).__name__ == "C_FIND_RSP"
    assert lazy.command_set == stock.command_set and lazy.command_set.Status == 0xFF00
    assert [pd.presentation_data_value_list for pd in lazy.encode_msg(1, 16382)] == [
        pd.presentation_data_value_list for pd in stock.encode_msg(1, 16382)
    ]


def test_a_find_response_it_cannot_encode_goes_through_pynetdicoms_command_set():
    from pynetdicom.dimse import _RSP_TO_MESSAGE
    from pynetdicom.dimse_primitives import C_FIND

    from pacscore.adapters.dimse_encode import FindResponse

    p = C_FIND()
    p.MessageIDBeingRespondedTo, p.Status, p.ErrorComment = 3, 0xC000, "Zürich"  # not ASCII
    stock = _RSP_TO_MESSAGE[C_FIND]()
    stock.primitive_to_message(p)
    lazy = FindResponse(p)
    lazy.primitive_to_message(p)
    assert [pd.presentation_data_value_list for pd in lazy.encode_msg(1, 16382)] == [
        pd.presentation_data_value_list for pd in stock.encode_msg(1, 16382)
    ]


def test_a_plan_cached_per_response_shape_answers_other_values_and_levels(archive):
    """EncodingBuilder keeps one plan per shape (model, level, keys' tags, levels and VRs,
    syntax, what the adapter adds): queries of one shape with other values, and of the same keys
    at another level, must still encode as pydicom would."""
    dimse_encode._PLANS.clear()
    patients = [str(ds.PatientID) for ds in archive.find({"PatientID": ""}, level="PATIENT", model="PATIENT")]
    assert len(patients) > 1
    for syntax in (ExplicitVRLittleEndian, Implicit):
        for pid in patients:
            for level, keys, opts in (
                ("STUDY", {"PatientID": pid, "StudyInstanceUID": "", "StudyDate": ""}, {}),
                ("SERIES", {"PatientID": pid, "StudyInstanceUID": "", "StudyDate": ""}, {"relational": True}),
            ):
                expected = [
                    encode(ds, syntax.is_implicit_VR, True) for ds in archive.find(dict(keys), level=level, **opts)
                ]
                got = list(encoded_find(archive, dict(keys), level, "STUDY", opts, syntax))
                assert [bytes(g) for g in got] == expected, (syntax, pid, level)
    assert len(dimse_encode._PLANS) == 4  # two shapes × two syntaxes, each built once
