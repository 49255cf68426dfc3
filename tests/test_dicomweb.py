"""DICOMweb adapter: QIDO-RS, WADO-RS and STOW-RS served by uvicorn, driven by dicomweb-client.

One uvicorn server (a background thread, a free port on 127.0.0.1) serves a parent Starlette
app with four DICOMweb apps mounted: the main one at the root (``/dicomweb``), one with a
bearer token (``/auth``), one with small STOW-RS limits (``/small``) and one opened lazily from
a folder (``/lazy``). The main archive holds pydicom's bundled test files and small generated
instances; answers are compared with ``Archive.find`` / ``Archive.get`` on the same archive.
"""

from __future__ import annotations

import io
import os
import random
from pathlib import Path

import httpx
import pydicom
import pytest
from pydicom.encaps import generate_frames

import pacscore
from pacscore.adapters import web_multipart
from pacscore.adapters.dicomweb import bearer_token_auth, create_app
from pacscore.adapters.web_core import DicomWebService, WebRequest

from .factories import make_instance, to_bytes
from .web_helpers import parts_of, serving

dicomweb_client = pytest.importorskip("dicomweb_client")
uvicorn = pytest.importorskip("uvicorn")
from dicomweb_client.api import DICOMwebClient  # noqa: E402
from requests.exceptions import HTTPError  # noqa: E402

pytestmark = pytest.mark.filterwarnings("ignore:Invalid value for VR UI")

TEST_FILES = Path(pydicom.__file__).parent / "data" / "test_files"  # never get_testdata_files(): it may hit the network
#: stored in-process before the server starts (distinct SOP Instance UIDs)
PREFILL = [
    "CT_small.dcm",
    "MR_small_RLE.dcm",
    "rtdose.dcm",
    "JPEG-lossy.dcm",
    "JPEG2000.dcm",
    "SC_rgb_rle_2frame.dcm",
    "image_dfl.dcm",
    "examples_ybr_color.dcm",
    "liver_1frame.dcm",
    "waveform_ecg.dcm",
    "test-SR.dcm",
    "rtplan.dcm",
    "SC_rgb_small_odd.dcm",
    "examples_overlay.dcm",
]
#: sent by dicomweb-client's store_instances (as re-encoded datasets)
STOW_CLIENT = ["SC_rgb_jpeg_dcmtk.dcm", "693_J2KI.dcm", "reportsi.dcm", "examples_palette.dcm"]
#: sent as raw Part-10 bytes with httpx (the last one has no Study Instance UID: a failure)
STOW_RAW = ["GDCMJ2K_TextGBR.dcm", "SC_rgb_gdcm_KY.dcm", "examples_rgb_color.dcm", "JPEGLSNearLossless_08.dcm"]

TOKEN = "t0ken-for-tests"
JSON = {"Accept": "application/dicom+json"}
ANY_SYNTAX = {"Accept": 'multipart/related; type="application/dicom"; transfer-syntax=*'}

# PS3.18 Tables 10.6.3-3/-4/-5: required default attributes
STUDY_R = [
    "00080020",
    "00080030",
    "00080050",
    "00080061",
    "00080090",
    "00100010",
    "00100020",
    "00100030",
    "00100040",
    "0020000D",
    "00200010",
    "00201206",
    "00201208",
    "00081190",
]
SERIES_R = ["00080060", "0020000E", "00200011", "00201209", "00081190"]
INSTANCE_R = ["00080016", "00080018", "00200013", "00081190"]
STUDY_KEYS = [
    "StudyDate",
    "StudyTime",
    "AccessionNumber",
    "ModalitiesInStudy",
    "ReferringPhysicianName",
    "PatientName",
    "PatientID",
    "PatientBirthDate",
    "PatientSex",
    "StudyID",
    "NumberOfStudyRelatedSeries",
    "NumberOfStudyRelatedInstances",
    "StudyInstanceUID",
    "TimezoneOffsetFromUTC",
]
SERIES_KEYS = [
    "Modality",
    "SeriesInstanceUID",
    "SeriesNumber",
    "NumberOfSeriesRelatedInstances",
    "TimezoneOffsetFromUTC",
    "SeriesDescription",
    "PerformedProcedureStepStartDate",
    "PerformedProcedureStepStartTime",
]
INSTANCE_KEYS = [
    "SOPClassUID",
    "SOPInstanceUID",
    "InstanceNumber",
    "TimezoneOffsetFromUTC",
    "Rows",
    "Columns",
    "BitsAllocated",
    "NumberOfFrames",
    "AvailableTransferSyntaxUID",
]

G = "1.2.826.0.1.3680043.10.999"  # generated UIDs live below this root


def generated() -> list[pydicom.Dataset]:
    """Four small studies: names, dates, modalities, an empty name and a request sequence."""
    out = []
    plan = [
        # study, patient id, name, date, time, [(modality, instances)], extra study attributes
        ("1", "P1", "DOE^JOHN", "20200115", "101500", [("CT", 3), ("CT", 3)]),
        ("2", "P2", "DOE^JANE", "20210620", "083000", [("MR", 4)]),
        ("3", "P3", "ROE^RICHARD", "20221231", "230000", [("CT", 2), ("SR", 1)]),
        ("4", "P4", "", "20190101", "120000", [("US", 2)]),
    ]
    for s, pid, name, date, tm, series in plan:
        study = f"{G}.{s}"
        for n, (modality, count) in enumerate(series, 1):
            series_uid = f"{study}.{n}"
            extra = {}
            if s == "1" and n == 1:
                item = pydicom.Dataset()
                item.ScheduledProcedureStepID = "SPS1"
                item.RequestedProcedureID = "RP1"
                extra["RequestAttributesSequence"] = [item]
            for i in range(1, count + 1):
                ds = make_instance(
                    sop=f"{series_uid}.{i}",
                    study=study,
                    series=series_uid,
                    patient_id=pid,
                    patient_name=name,
                    modality=modality,
                    study_date=date,
                    study_time=tm,
                    instance_number=str(i),
                    SeriesDescription=f"{modality} series {n}",
                    StudyDescription=f"study {s}",
                    **extra,
                )
                ds.SeriesNumber = str(n)
                ds.Rows, ds.Columns, ds.BitsAllocated, ds.BitsStored, ds.HighBit = 4, 4, 8, 8, 7
                ds.SamplesPerPixel, ds.PhotometricInterpretation, ds.PixelRepresentation = 1, "MONOCHROME2", 0
                ds.PixelData = bytes(range(16))
                out.append(ds)
    return out


class Server:
    """What the tests need: the URL, the archive behind the main app, and clients."""

    def __init__(self, port: int, arc, lazy_folder: Path) -> None:
        self.port = port
        self.root = f"http://127.0.0.1:{port}"
        self.url = f"{self.root}/dicomweb"
        self.arc = arc
        self.lazy_folder = lazy_folder
        self.http = httpx.Client(timeout=30)

    def client(self, prefix: str = "", **kw) -> DICOMwebClient:
        return DICOMwebClient(url=f"{self.root}{prefix}/dicomweb", **kw)


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    from starlette.applications import Starlette
    from starlette.routing import Mount

    folder = tmp_path_factory.mktemp("dicomweb-archive")
    arc = pacscore.open(folder)
    for name in PREFILL:
        arc.store(TEST_FILES / name)
    for ds in generated():
        arc.store(ds)
    lazy_folder = tmp_path_factory.mktemp("dicomweb-lazy")
    lazy = create_app(str(lazy_folder))
    parent = Starlette(
        routes=[
            Mount("/auth", app=create_app(arc, auth=bearer_token_auth(TOKEN))),
            Mount(
                "/small", app=create_app(arc, max_body=64 * 1024, max_part=32 * 1024, max_results=3, default_limit=2)
            ),
            Mount("/lazy", app=lazy),
            Mount("", app=create_app(arc)),
        ]
    )
    with serving(parent) as port:
        s = Server(port, arc, lazy_folder)
        try:
            yield s
        finally:
            s.http.close()
            lazy.state.dicomweb.close()
            arc.close()


def instance_url(server, ref) -> str:
    return (
        f"{server.url}/studies/{ref.study_instance_uid}/series/{ref.series_instance_uid}"
        f"/instances/{ref.sop_instance_uid}"
    )


def all_refs(arc) -> list:
    studies = [r["StudyInstanceUID"] for r in arc.find({"StudyInstanceUID": ""}, level="STUDY", format="dict")]
    return arc.instances(study=studies)


def uid_of(row: dict, tag: str) -> str:
    return row[tag]["Value"][0]


def assert_same_as_find(qido: list[dict], found: list[dict], unique: str) -> None:
    """QIDO rows are find() rows minus QueryRetrieveLevel and empty conditionals, plus Retrieve URL."""
    assert [uid_of(r, unique) for r in qido] == [uid_of(r, unique) for r in found]
    for q, f in zip(qido, found):
        for tag, attr in q.items():
            if tag == "00081190":
                continue
            assert f.get(tag) == attr, (tag, attr, f.get(tag))
        for tag, attr in f.items():
            if tag not in q:
                assert tag == "00080052" or "Value" not in attr, (tag, attr)
        assert list(q) == sorted(q)


def find_json(arc, keys: dict, level: str, **options) -> list[dict]:
    return list(arc.find(keys, level=level, format="json", combined_datetime=True, **options))


# ------------------------------------------------------------------------------------------
# QIDO-RS
# ------------------------------------------------------------------------------------------
@pytest.mark.interop
@pytest.mark.parametrize(
    "filters",
    [
        {},
        {"PatientName": "DOE*"},
        {"PatientName": "doe^j*"},
        {"StudyDate": "20200101-20211231"},
        {"StudyDate": "20221231", "StudyTime": "2200-2330"},
        {"ModalitiesInStudy": "CT"},
        {"PatientID": "P3"},
        {"StudyInstanceUID": f"{G}.1,{G}.3"},
    ],
)
def test_qido_studies_equal_archive_find(server, filters):
    client = server.client()
    got = client.search_for_studies(search_filters=dict(filters))
    keys = {k: (v.replace(",", "\\") if k.endswith("UID") else v) for k, v in filters.items()}
    expected = find_json(server.arc, {**{k: "" for k in STUDY_KEYS}, **keys}, "STUDY")
    assert got, filters
    assert_same_as_find(got, expected, "0020000D")
    for row in got:
        for tag in STUDY_R:
            assert tag in row, tag
        assert row["00081190"] == {"vr": "UR", "Value": [f"{server.url}/studies/{uid_of(row, '0020000D')}"]}
        assert "00080052" not in row


@pytest.mark.interop
def test_qido_series_and_instances_equal_archive_find(server):
    client, arc = server.client(), server.arc
    study, series = f"{G}.1", f"{G}.1.1"
    req_item = [{"ScheduledProcedureStepID": "", "RequestedProcedureID": ""}]
    # hierarchical: the series of a study
    got = client.search_for_series(study_instance_uid=study)
    expected = find_json(
        arc,
        {"StudyInstanceUID": study, **{k: "" for k in SERIES_KEYS}, "RequestAttributesSequence": req_item},
        "SERIES",
    )
    assert len(got) == 2
    assert_same_as_find(got, expected, "0020000E")
    assert got[0]["00400275"]["Value"][0]["00400009"]["Value"] == ["SPS1"]
    assert got[0]["00081190"]["Value"] == [f"{server.url}/studies/{study}/series/{series}"]
    for row in got:
        assert all(tag in row for tag in SERIES_R)
    # hierarchical: the instances of a series
    got = client.search_for_instances(study_instance_uid=study, series_instance_uid=series)
    expected = find_json(
        arc, {"StudyInstanceUID": study, "SeriesInstanceUID": series, **{k: "" for k in INSTANCE_KEYS}}, "IMAGE"
    )
    assert [uid_of(r, "00080018") for r in got] == [f"{series}.{i}" for i in (1, 2, 3)]
    assert_same_as_find(got, expected, "00080018")
    assert got[0]["00081190"]["Value"] == [f"{server.url}/studies/{study}/series/{series}/instances/{series}.1"]
    for row in got:
        assert all(tag in row for tag in INSTANCE_R)
    # relational: the instances of a study (series defaults too), filtered on a series attribute
    got = client.search_for_instances(study_instance_uid=f"{G}.3", search_filters={"Modality": "CT"})
    expected = find_json(
        arc,
        {
            **{k: "" for k in INSTANCE_KEYS},
            **{k: "" for k in SERIES_KEYS},
            "RequestAttributesSequence": req_item,
            "StudyInstanceUID": f"{G}.3",
            "Modality": "CT",
        },
        "IMAGE",
        relational=True,
    )
    assert len(got) == 2
    assert_same_as_find(got, expected, "00080018")
    # relational: all series (study defaults too) and all instances
    got = client.search_for_series(search_filters={"PatientName": "DOE^JOHN", "AccessionNumber": "A99.1"})
    expected = find_json(
        arc,
        {
            **{k: "" for k in SERIES_KEYS + STUDY_KEYS},
            "RequestAttributesSequence": req_item,
            "PatientName": "DOE^JOHN",
            "AccessionNumber": "A99.1",
        },
        "SERIES",
        relational=True,
    )
    assert len(got) == 2 and all(tag in got[0] for tag in STUDY_R + SERIES_R)
    assert_same_as_find(got, expected, "0020000E")
    got = client.search_for_instances(search_filters={"StudyInstanceUID": f"{G}.2"})
    assert len(got) == 4
    assert all(tag in got[0] for tag in STUDY_R + SERIES_R + INSTANCE_R)


@pytest.mark.interop
def test_qido_paging_limit_offset_and_remaining_warning(server):
    client = server.client()
    everything = client.search_for_studies()
    total = len(everything)
    assert total == server.arc.count({}, level="STUDY") >= 6
    page = client.search_for_studies(limit=2)
    assert [uid_of(r, "0020000D") for r in page] == [uid_of(r, "0020000D") for r in everything[:2]]
    paged = client.search_for_studies(limit=2, get_remaining=True)
    assert [uid_of(r, "0020000D") for r in paged] == [uid_of(r, "0020000D") for r in everything]
    r = server.http.get(f"{server.url}/studies", params={"limit": 2, "offset": 1}, headers=JSON)
    assert r.status_code == 200 and len(r.json()) == 2
    assert r.headers["warning"] == (f"299 {server.url}: There are {total - 3} additional results that can be requested")
    last = server.http.get(f"{server.url}/studies", params={"offset": total - 1}, headers=JSON)
    assert last.status_code == 200 and len(last.json()) == 1 and "warning" not in last.headers
    past = server.http.get(f"{server.url}/studies", params={"offset": total}, headers=JSON)
    assert past.status_code == 204 and past.content == b""
    # the server's own page size and cap (/small: default_limit=2, max_results=3)
    small = f"{server.root}/small/dicomweb/studies"
    r = server.http.get(small, headers=JSON)
    assert len(r.json()) == 2 and f"There are {total - 2} additional" in r.headers["warning"]
    r = server.http.get(small, params={"limit": 100}, headers=JSON)
    assert len(r.json()) == 3 and f"There are {total - 3} additional" in r.headers["warning"]


@pytest.mark.interop
def test_qido_parameters(server):
    http, url = server.http, server.url
    # includefield: a list, repeated, by keyword or tag; series attributes are not returned at study level
    r = http.get(
        f"{url}/studies",
        params=[
            ("StudyInstanceUID", f"{G}.1"),
            ("includefield", "StudyDescription,00081030"),
            ("includefield", "Modality"),
        ],
        headers=JSON,
    )
    row = r.json()[0]
    assert row["00081030"]["Value"] == ["study 1"] and "00080060" not in row
    # includefield=all: every stored study attribute, empty ones left out
    r = http.get(f"{url}/studies", params={"StudyInstanceUID": f"{G}.1", "includefield": "all"}, headers=JSON)
    assert r.json()[0]["00081030"]["Value"] == ["study 1"]
    # a sequence path as a match key
    # (a series without the sequence matches too: docs/matching.md §3, Sequence Matching)
    for sps in ("SPS1", "OTHER"):
        r = http.get(f"{url}/series", params={"RequestAttributesSequence.ScheduledProcedureStepID": sps}, headers=JSON)
        keys = {"SeriesInstanceUID": "", "RequestAttributesSequence": [{"ScheduledProcedureStepID": sps}]}
        found = server.arc.find(keys, level="SERIES", format="dict", relational=True)
        series = [uid_of(x, "0020000E") for x in r.json()]
        assert series == [x["SeriesInstanceUID"] for x in found]
        assert (f"{G}.1.1" in series) == (sps == "SPS1") and f"{G}.1.2" in series
    r = http.get(f"{url}/series", params={"00400275.00400009": "SPS1", "StudyInstanceUID": f"{G}.1"}, headers=JSON)
    assert [uid_of(x, "0020000E") for x in r.json()] == [f"{G}.1.1", f"{G}.1.2"]
    # fuzzymatching: literal matching and the prescribed warning
    mine = ",".join(f"{G}.{i}" for i in range(1, 5))
    r = http.get(
        f"{url}/studies",
        headers=JSON,
        params={"PatientName": "doe^john", "fuzzymatching": "true", "StudyInstanceUID": mine},
    )
    # an empty stored name matches any name key (empty_record_matches, docs/matching.md §3)
    assert r.status_code == 200 and [uid_of(x, "0020000D") for x in r.json()] == [f"{G}.1", f"{G}.4"]
    assert r.headers["warning"] == (
        f"299 {url}: The fuzzymatching parameter is not supported. Only literal matching has been performed."
    )
    # emptyvaluematching: '""' matches only empty names when asked for
    r = http.get(
        f"{url}/studies",
        params={
            "PatientName": '""',
            "emptyvaluematching": "true",
            "StudyInstanceUID": ",".join(f"{G}.{i}" for i in range(1, 5)),
        },
        headers=JSON,
    )
    assert [uid_of(x, "0020000D") for x in r.json()] == [f"{G}.4"]
    # unsupported parameters are ignored; the accept query parameter is honoured
    r = http.get(
        f"{url}/studies",
        params={"PatientID": "P2", "_": "123", "accept": "application/json"},
        headers={"Accept": "text/html"},
    )
    assert r.status_code == 200 and r.headers["content-type"] == "application/json"
    # a fixed study in the path and a UID list that excludes it: nothing
    r = http.get(f"{url}/studies/{G}.1/series", params={"StudyInstanceUID": f"{G}.2"}, headers=JSON)
    assert r.status_code == 204
    # an unknown study: 204 (no matches), not 404
    assert http.get(f"{url}/studies/1.2.3.4.5.6/series", headers=JSON).status_code == 204


@pytest.mark.interop
@pytest.mark.parametrize(
    "params, needle",
    [
        ({"StudyDate": "2020"}, "StudyDate"),
        ({"StudyDate": "20201301"}, "StudyDate"),
        ({"StudyDate": "20211231-20200101"}, "reversed"),
        ({"NoSuchKeyword": "x"}, "NoSuchKeyword"),
        ({"RequestAttributesSequence.NoSuchThing": "x"}, "NoSuchThing"),
        ({"PatientName.PatientID": "x"}, "not a sequence"),
        ({"limit": "ten"}, "limit"),
        ({"offset": "-1"}, "offset"),
        ({"fuzzymatching": "maybe"}, "fuzzymatching"),
        ({"includefield": "all,PatientName"}, "all"),
        ({"StudyInstanceUID": "1.2.*"}, "StudyInstanceUID"),
    ],
)
def test_qido_bad_requests_are_400_with_the_reason(server, params, needle):
    r = server.http.get(f"{server.url}/studies", params=params, headers=JSON)
    assert r.status_code == 400, r.text
    assert needle in r.text


@pytest.mark.interop
def test_qido_uid_list_as_repeated_parameters(server):
    """``StudyInstanceUID=a&StudyInstanceUID=b`` (what dicomweb-client sends for a list) is the UID
    list ``a,b``, not a 400; other attributes still may not be repeated."""
    studies = [f"{G}.1", f"{G}.3"]

    def study_uids(params, path="/studies"):
        r = server.http.get(f"{server.url}{path}", params=params, headers=JSON)
        assert r.status_code == 200, r.text
        return sorted(row["0020000D"]["Value"][0] for row in r.json())

    assert study_uids([("StudyInstanceUID", ",".join(studies))]) == studies
    assert study_uids([("StudyInstanceUID", s) for s in studies]) == studies
    assert study_uids([("0020000D", studies[0]), ("StudyInstanceUID", studies[1]), ("limit", "10")]) == studies
    assert study_uids([("StudyInstanceUID", studies[0]), ("StudyInstanceUID", f"{G}.2,{G}.4")]) == sorted(
        studies[:1] + [f"{G}.2", f"{G}.4"]
    )
    series = [
        r["SeriesInstanceUID"]
        for r in server.arc.find(
            {"StudyInstanceUID": studies[0], "SeriesInstanceUID": ""}, level="SERIES", format="dict"
        )
    ]
    r = server.http.get(
        f"{server.url}/studies/{studies[0]}/series",
        headers=JSON,
        params=[("SeriesInstanceUID", series[0]), ("SeriesInstanceUID", f"{G}.9.9")],
    )
    assert r.status_code == 200 and [row["0020000E"]["Value"][0] for row in r.json()] == [series[0]]
    # the path fixes the study: a list of UIDs that holds it keeps the answer, one without it empties it
    got = server.http.get(
        f"{server.url}/studies/{studies[0]}/series",
        headers=JSON,
        params=[("StudyInstanceUID", studies[1]), ("StudyInstanceUID", studies[0])],
    )
    assert got.status_code == 200 and len(got.json()) == len(series)
    none = server.http.get(
        f"{server.url}/studies/{studies[0]}/series",
        headers=JSON,
        params=[("StudyInstanceUID", studies[1]), ("StudyInstanceUID", f"{G}.2")],
    )
    assert none.status_code == 204
    r = server.http.get(f"{server.url}/studies", params=[("PatientID", "P1"), ("PatientID", "P2")], headers=JSON)
    assert r.status_code == 400 and "repeated" in r.text
    # dicomweb-client sends a list as repeated parameters
    rows = server.client().search_for_studies(search_filters={"StudyInstanceUID": studies})
    assert sorted(row["0020000D"]["Value"][0] for row in rows) == studies
    rows = server.client().search_for_instances(search_filters={"SOPInstanceUID": [f"{G}.2.1.1", f"{G}.4.1.2"]})
    assert sorted(row["00080018"]["Value"][0] for row in rows) == [f"{G}.2.1.1", f"{G}.4.1.2"]


def test_qido_406_and_405(server):
    r = server.http.get(f"{server.url}/studies", headers={"Accept": 'multipart/related; type="application/dicom+xml"'})
    assert r.status_code == 406
    r = server.http.delete(f"{server.url}/studies")
    assert r.status_code == 405 and "GET" in r.headers["allow"]


# ------------------------------------------------------------------------------------------
# WADO-RS
# ------------------------------------------------------------------------------------------
@pytest.mark.interop
def test_wado_retrieve_study_series_instance(server):
    client, arc = server.client(), server.arc
    study = f"{G}.1"
    refs = arc.instances(study=study)
    got = client.retrieve_study(study)
    assert [ds.SOPInstanceUID for ds in got] == [r.sop_instance_uid for r in refs]
    for ds in got:
        assert ds == pydicom.dcmread(io.BytesIO(arc.get(ds.SOPInstanceUID)))
    got = client.retrieve_series(study, f"{study}.2")
    assert sorted(ds.SOPInstanceUID for ds in got) == [f"{study}.2.{i}" for i in (1, 2, 3)]
    ds = client.retrieve_instance(study, f"{study}.2", f"{study}.2.3")
    assert ds.SOPInstanceUID == f"{study}.2.3"


@pytest.mark.interop
def test_wado_bytes_identical_with_any_transfer_syntax_and_default_conversion(server):
    arc = server.arc
    refs = all_refs(arc)
    by_ts = {}
    for ref in refs:
        by_ts.setdefault(ref.transfer_syntax_uid, ref)
        url = instance_url(server, ref)
        parts = parts_of(server.http.get(url, headers=ANY_SYNTAX))
        assert len(parts) == 1
        headers, data = parts[0]
        assert data == arc.get(ref.sop_instance_uid)
        assert headers["content-type"] == f"application/dicom; transfer-syntax={ref.transfer_syntax_uid}"
    assert {
        "1.2.840.10008.1.2",
        "1.2.840.10008.1.2.1",
        "1.2.840.10008.1.2.1.99",
        "1.2.840.10008.1.2.5",
        "1.2.840.10008.1.2.4.50",
    } <= set(by_ts)
    # no transfer-syntax parameter: Explicit VR Little Endian where it needs no pixel decoding
    for ts, expect in (
        ("1.2.840.10008.1.2", "1.2.840.10008.1.2.1"),
        ("1.2.840.10008.1.2.1.99", "1.2.840.10008.1.2.1"),
        ("1.2.840.10008.1.2.1", "1.2.840.10008.1.2.1"),
        ("1.2.840.10008.1.2.5", "1.2.840.10008.1.2.5"),
    ):
        ref = by_ts[ts]
        url = instance_url(server, ref)
        plain = {"Accept": 'multipart/related; type="application/dicom"'}
        ((headers, data),) = parts_of(server.http.get(url, headers=plain))
        assert headers["content-type"].endswith(f"transfer-syntax={expect}")
        sent = pydicom.dcmread(io.BytesIO(data))
        assert sent.file_meta.TransferSyntaxUID == expect
        original = pydicom.dcmread(io.BytesIO(arc.get(ref.sop_instance_uid)))
        assert sent == original
        if ts == expect:
            assert data == arc.get(ref.sop_instance_uid)
    # a whole study through dicomweb-client, asking for Explicit VR Little Endian explicitly
    ref = by_ts["1.2.840.10008.1.2"]
    got = server.client().retrieve_study(
        ref.study_instance_uid, media_types=(("application/dicom", "1.2.840.10008.1.2.1"),)
    )
    assert {ds.SOPInstanceUID for ds in got} == {
        r.sop_instance_uid for r in arc.instances(study=ref.study_instance_uid)
    }


@pytest.mark.interop
def test_wado_errors_404_and_406(server):
    http, url = server.http, server.url
    assert http.get(f"{url}/studies/1.2.3.4.5.6.7").status_code == 404
    assert http.get(f"{url}/studies/{G}.1/series/9.9.9").status_code == 404
    assert http.get(f"{url}/studies/{G}.2/series/{G}.1.1/instances/{G}.1.1.1").status_code == 404  # wrong study
    assert http.get(f"{url}/studies/{G}.1/series/{G}.1.1/instances/{G}.1.1.9/metadata").status_code == 404
    # the default (lenient) uid_policy can hold such a UID: not stored is 404; a strict server: 400
    assert http.get(f"{url}/studies/not-a-uid").status_code == 404
    r = http.get(f"{url}/studies/{G}.1", headers={"Accept": "application/json"})
    assert r.status_code == 406
    jpeg = {"Accept": 'multipart/related; type="application/dicom"; transfer-syntax=1.2.840.10008.1.2.4.50'}
    r = http.get(f"{url}/studies/{G}.1/series/{G}.1.1/instances/{G}.1.1.1", headers=jpeg)
    assert r.status_code == 406 and "1.2.840.10008.1.2.1" in r.text
    r = http.get(f"{url}/studies/{G}.1/series/{G}.1.1/instances/{G}.1.1.1/frames/1", headers={"Accept": "image/jpeg"})
    assert r.status_code == 406
    r = http.get(f"{url}/studies/{G}.1/series/{G}.1.1/instances/{G}.1.1.1/frames/2")
    assert r.status_code == 404
    r = http.get(f"{url}/studies/{G}.1/series/{G}.1.1/instances/{G}.1.1.1/frames/0,x")
    assert r.status_code == 400
    r = http.get(f"{url}/studies/{G}.1/series/{G}.1.1/instances/{G}.1.1.1/pixeldata")
    assert r.status_code == 501


@pytest.mark.interop
def test_wado_metadata_and_bulkdata_uris_resolve(server):
    client, arc = server.client(), server.arc
    for ref in all_refs(arc):
        if ref.study_instance_uid.startswith(G) and not ref.sop_instance_uid.endswith(".1"):
            continue  # one generated instance per series is enough
        metas = client.retrieve_instance_metadata(ref.study_instance_uid, ref.series_instance_uid, ref.sop_instance_uid)
        meta = metas[0] if isinstance(metas, list) else metas
        assert meta["00080018"]["Value"] == [ref.sop_instance_uid]
        assert list(meta) == sorted(meta)
        original = pydicom.dcmread(io.BytesIO(arc.get(ref.sop_instance_uid)))
        if "PixelData" not in original:
            assert "7FE00010" not in meta
            continue
        uri = meta["7FE00010"]["BulkDataURI"]
        assert uri == (
            f"{server.url}/studies/{ref.study_instance_uid}/series/{ref.series_instance_uid}"
            f"/instances/{ref.sop_instance_uid}/bulkdata/7FE00010"
        )
        got = client.retrieve_bulkdata(uri)
        ts = original.file_meta.TransferSyntaxUID
        if ts.is_encapsulated:
            n = int(original.get("NumberOfFrames", 1) or 1)
            assert got == list(generate_frames(original.PixelData, number_of_frames=n))
        else:
            assert got == [original.PixelData]
    # study and series level metadata: one item per instance
    study = f"{G}.1"
    assert len(client.retrieve_study_metadata(study)) == 6
    series_meta = client.retrieve_series_metadata(study, f"{study}.1")
    assert [m["00080018"]["Value"][0] for m in series_meta] == [f"{study}.1.{i}" for i in (1, 2, 3)]


@pytest.mark.interop
def test_wado_frames_native_and_encapsulated(server):
    client, arc = server.client(), server.arc
    refs = {r.sop_instance_uid: r for r in all_refs(arc)}

    def original(name):
        ds = pydicom.dcmread(TEST_FILES / name)
        return ds, refs[ds.SOPInstanceUID]

    # native, implicit VR, 15 frames of 32-bit dose
    ds, ref = original("rtdose.dcm")
    size = ds.Rows * ds.Columns * ds.BitsAllocated // 8
    frames = client.retrieve_instance_frames(
        ref.study_instance_uid, ref.series_instance_uid, ref.sop_instance_uid, frame_numbers=[1, 3, 15]
    )
    assert frames == [ds.PixelData[(n - 1) * size : n * size] for n in (1, 3, 15)]
    # 1-bit segmentation frame
    ds, ref = original("liver_1frame.dcm")
    frames = client.retrieve_instance_frames(
        ref.study_instance_uid,
        ref.series_instance_uid,
        ref.sop_instance_uid,
        frame_numbers=[1],
        media_types=("application/octet-stream",),
    )
    assert frames[0] == ds.PixelData[: ds.Rows * ds.Columns // 8]
    # JPEG baseline, 30 frames, and RLE, 2 frames: the stored fragments, with their media types
    for name, media in (("examples_ybr_color.dcm", "image/jpeg"), ("SC_rgb_rle_2frame.dcm", "image/dicom-rle")):
        ds, ref = original(name)
        n = int(ds.NumberOfFrames)
        expected = list(generate_frames(ds.PixelData, number_of_frames=n))
        got = client.retrieve_instance_frames(
            ref.study_instance_uid, ref.series_instance_uid, ref.sop_instance_uid, frame_numbers=[n, 1]
        )
        assert got == [expected[n - 1], expected[0]]
        url = (
            f"{server.url}/studies/{ref.study_instance_uid}/series/{ref.series_instance_uid}"
            f"/instances/{ref.sop_instance_uid}/frames/2"
        )
        ((headers, data),) = parts_of(server.http.get(url, headers={"Accept": f'multipart/related; type="{media}"'}))
        assert headers["content-type"] == f"{media}; transfer-syntax={ds.file_meta.TransferSyntaxUID}"
        assert data == expected[1]


# ------------------------------------------------------------------------------------------
# STOW-RS
# ------------------------------------------------------------------------------------------
@pytest.mark.interop
def test_stow_with_dicomweb_client_then_retrieve(server):
    client = server.client()
    client.set_chunk_size(64 * 1024)  # larger requests go out with chunked transfer encoding
    datasets = [pydicom.dcmread(TEST_FILES / name) for name in STOW_CLIENT]
    answer = client.store_instances(datasets)
    stored = answer.ReferencedSOPSequence
    assert [item.ReferencedSOPInstanceUID for item in stored] == [ds.SOPInstanceUID for ds in datasets]
    assert "FailedSOPSequence" not in answer
    for item, ds in zip(stored, datasets):
        assert item.ReferencedSOPClassUID == ds.SOPClassUID
        assert item.RetrieveURL == (
            f"{server.url}/studies/{ds.StudyInstanceUID}/series/{ds.SeriesInstanceUID}/instances/{ds.SOPInstanceUID}"
        )
        back = client.retrieve_instance(
            ds.StudyInstanceUID, ds.SeriesInstanceUID, ds.SOPInstanceUID, media_types=(("application/dicom", "*"),)
        )
        assert back.SOPInstanceUID == ds.SOPInstanceUID
        assert back.PixelData == ds.PixelData if "PixelData" in ds else True
        assert back == pydicom.dcmread(io.BytesIO(server.arc.get(ds.SOPInstanceUID)))
        found = client.search_for_instances(search_filters={"SOPInstanceUID": ds.SOPInstanceUID})
        assert len(found) == 1


def multipart_body(parts: list[bytes], boundary: str = "stow-boundary") -> bytes:
    out = b"preamble\r\n"
    for data in parts:
        out += f"--{boundary}\r\nContent-Type: application/dicom\r\n\r\n".encode() + data + b"\r\n"
    return out + f"--{boundary}--\r\nepilogue".encode()


STOW_TYPE = 'multipart/related; type="application/dicom"; boundary=stow-boundary'


@pytest.mark.interop
def test_stow_raw_files_are_retrieved_byte_identical_and_failures_reported(server):
    raw = [(TEST_FILES / name).read_bytes() for name in STOW_RAW]
    r = server.http.post(f"{server.url}/studies", content=multipart_body(raw), headers={"Content-Type": STOW_TYPE})
    assert r.status_code == 202, r.text
    answer = pydicom.Dataset.from_json(r.json())
    assert len(answer.ReferencedSOPSequence) == 3
    (failed,) = answer.FailedSOPSequence
    assert failed.FailureReason == 0xC000 and "StudyInstanceUID" in failed.ErrorComment
    for data, item in zip(raw, answer.ReferencedSOPSequence):
        ds = pydicom.dcmread(io.BytesIO(data))
        assert item.ReferencedSOPInstanceUID == ds.SOPInstanceUID
        ((_headers, sent),) = parts_of(server.http.get(item.RetrieveURL, headers=ANY_SYNTAX))
        assert sent == data
    # the same again: duplicates are successes
    r = server.http.post(f"{server.url}/studies", content=multipart_body(raw[:2]), headers={"Content-Type": STOW_TYPE})
    assert r.status_code == 200


@pytest.mark.interop
def test_stow_into_a_study_rejects_other_studies(server):
    study = f"{G}.2"
    ours = make_instance(
        sop=f"{study}.1.99", study=study, series=f"{study}.1", patient_id="P2", patient_name="DOE^JANE", modality="MR"
    )
    other = make_instance(sop=f"{G}.5.1.1", study=f"{G}.5", series=f"{G}.5.1")
    body = multipart_body([to_bytes(ours), to_bytes(other)])
    r = server.http.post(f"{server.url}/studies/{study}", content=body, headers={"Content-Type": STOW_TYPE})
    assert r.status_code == 202
    answer = pydicom.Dataset.from_json(r.json())
    assert answer.RetrieveURL == f"{server.url}/studies/{study}"
    assert [i.ReferencedSOPInstanceUID for i in answer.ReferencedSOPSequence] == [ours.SOPInstanceUID]
    (failed,) = answer.FailedSOPSequence
    assert failed.ReferencedSOPInstanceUID == other.SOPInstanceUID and failed.FailureReason == 0xC409
    assert server.arc.count({"SOPInstanceUID": other.SOPInstanceUID}, level="IMAGE", relational=True) == 0
    # every instance failing: 409, which dicomweb-client raises
    with pytest.raises(HTTPError) as err:
        server.client().store_instances([other], study_instance_uid=study)
    assert err.value.response.status_code == 409


@pytest.mark.interop
def test_stow_errors_415_400_413(server):
    http, url = server.http, server.url
    one = to_bytes(make_instance(sop=f"{G}.6.1.1", study=f"{G}.6", series=f"{G}.6.1"))
    r = http.post(f"{url}/studies", content=one, headers={"Content-Type": "application/dicom"})
    assert r.status_code == 415
    r = http.post(
        f"{url}/studies",
        content=one,
        headers={"Content-Type": 'multipart/related; type="application/dicom+json"; boundary=x'},
    )
    assert r.status_code == 415
    r = http.post(f"{url}/studies", content=b"garbage", headers={"Content-Type": STOW_TYPE})
    assert r.status_code == 400 and "boundary" in r.text
    no_boundary = 'multipart/related; type="application/dicom"'
    r = http.post(f"{url}/studies", content=one, headers={"Content-Type": no_boundary})
    assert r.status_code == 400
    # /small: 64 KiB per request, 32 KiB per part
    big = (TEST_FILES / "examples_overlay.dcm").read_bytes()[:100_000]
    r = http.post(
        f"{server.root}/small/dicomweb/studies", content=multipart_body([big]), headers={"Content-Type": STOW_TYPE}
    )
    assert r.status_code == 413 and "65536" in r.text

    def chunked():  # no Content-Length: the limit is found while reading
        body = multipart_body([big])
        for i in range(0, len(body), 8192):
            yield body[i : i + 8192]

    r = http.post(f"{server.root}/small/dicomweb/studies", content=chunked(), headers={"Content-Type": STOW_TYPE})
    assert r.status_code == 413
    r = http.post(
        f"{server.root}/small/dicomweb/studies",
        content=multipart_body([one, b"\0" * 40_000]),
        headers={"Content-Type": STOW_TYPE},
    )
    assert r.status_code == 413 and "32768" in r.text and "1 instance(s) were stored" in r.text


# ------------------------------------------------------------------------------------------
# auth, mounting, lazy opening, CLI
# ------------------------------------------------------------------------------------------
@pytest.mark.interop
def test_bearer_token_auth(server):
    url = f"{server.root}/auth/dicomweb/studies"
    r = server.http.get(url)
    assert r.status_code == 401 and r.headers["www-authenticate"].startswith("Bearer")
    r = server.http.get(url, headers={"Authorization": "Bearer wrong"})
    assert r.status_code == 401 and 'error="invalid_token"' in r.headers["www-authenticate"]
    r = server.http.post(url, content=b"x", headers={"Content-Type": STOW_TYPE})
    assert r.status_code == 401
    client = server.client("/auth", headers={"Authorization": f"Bearer {TOKEN}"})
    studies = client.search_for_studies(search_filters={"StudyInstanceUID": f"{G}.1"})
    # a mounted app hands out URLs below its mount point
    assert studies[0]["00081190"]["Value"] == [f"{server.root}/auth/dicomweb/studies/{G}.1"]


@pytest.mark.interop
def test_lazy_folder_app_stores_and_finds(server):
    url = f"{server.root}/lazy/dicomweb"
    assert server.http.get(f"{url}/studies").status_code == 204
    client = DICOMwebClient(url=url)
    ds = make_instance(sop=f"{G}.7.1.1", study=f"{G}.7", series=f"{G}.7.1")
    client.store_instances([ds])
    assert [uid_of(r, "0020000D") for r in client.search_for_studies()] == [f"{G}.7"]
    assert client.retrieve_instance(f"{G}.7", f"{G}.7.1", f"{G}.7.1.1").SOPInstanceUID == ds.SOPInstanceUID


def test_core_without_a_server(tmp_path):
    with pacscore.open(tmp_path / "a") as arc:
        arc.store(make_instance(sop="1.2.3.1.1"))
        service = DicomWebService(arc, default_limit=10)
        answer = service.handle(WebRequest("GET", "/studies", [("PatientName", "doe*")], {}, base_url="http://x/dw"))
        assert answer.status == 200 and b'"http://x/dw/studies/1.2.3"' in answer.body
        assert service.handle(WebRequest("GET", "/nothing")).status == 404
        guarded = DicomWebService(arc, auth=bearer_token_auth("k"))
        assert guarded.handle(WebRequest("GET", "/studies")).status == 401
        ok = guarded.handle(WebRequest("GET", "/studies", headers={"authorization": "Bearer k"}))
        assert ok.status == 200


def test_find_options_apply_per_search_whatever_the_archive_was_opened_with(tmp_path):
    """``create_app(find_options=...)`` / ``serve web --option``: empty_record_matches=False makes a
    study without PatientID stop matching every PatientID key (C.2.2.1.2, docs/matching.md)."""
    with pacscore.open(tmp_path / "a") as arc:  # opened with the default options (empty values match)
        arc.store(make_instance(sop="1.2.3.1.1", patient_id="P1"))
        arc.store(make_instance(sop="1.2.4.1.1", study="1.2.4", series="1.2.4.1", patient_id=None))
        query = [("PatientID", "NOBODY"), ("StudyInstanceUID", "")]

        def studies(service, params=query):
            answer = service.handle(WebRequest("GET", "/studies", params, {}, base_url="http://x/dw"))
            if answer.status == 204:
                return []
            assert answer.status == 200, answer.body
            import json

            return [row["0020000D"]["Value"][0] for row in json.loads(answer.body)]

        assert studies(DicomWebService(arc)) == ["1.2.4"]  # the standard's default
        strict = DicomWebService(arc, find_options={"empty_record_matches": False})
        assert studies(strict) == []
        assert studies(strict, [("PatientID", "P1")]) == ["1.2.3"]
        # the server option is a default: the request's own parameter still decides
        lenient = DicomWebService(arc, find_options={"empty_value_matching": True, "empty_record_matches": False})
        assert studies(lenient, [("PatientID", '""')]) == ["1.2.4"]
        assert studies(lenient, [("PatientID", '""'), ("emptyvaluematching", "false")]) == []
        assert arc.options.empty_record_matches is True  # the archive's own setting is untouched
        for bad, needle in (
            ({"no_such_option": True}, "no_such_option"),
            ({"empty_record_matches": "no"}, "true or false"),
            ({"relational": True}, "per request"),
        ):
            with pytest.raises(ValueError, match=needle):
                create_app(arc, find_options=bad)


def test_cli_registers_serve_web():
    import argparse

    from pacscore.cli_serve import add_web_cli

    parser = argparse.ArgumentParser()
    sub = parser.add_subparsers(dest="protocol")
    add_web_cli(sub)
    args = parser.parse_args(["web", "--archive", "arc", "--token", "x", "--max-body", "10M"])
    assert (args.port, args.host, args.prefix, args.token, args.max_body) == (
        8042,
        "127.0.0.1",
        "/dicomweb",
        "x",
        10 * 1024**2,
    )
    assert args.func.__name__ == "main_serve_web"
    assert args.option == []
    args = parser.parse_args(
        ["web", "--archive", "arc", "--option", "empty_record_matches=false", "-o", "pn_case_insensitive=true"]
    )
    assert dict(args.option) == {"empty_record_matches": False, "pn_case_insensitive": True}
    with pytest.raises(SystemExit):
        parser.parse_args(["web", "--archive", "arc", "--option", "empty_records=false"])


# ------------------------------------------------------------------------------------------
# multipart
# ------------------------------------------------------------------------------------------
@pytest.mark.parametrize("seed", range(20))
def test_multipart_reader_any_chunking(seed):
    rnd = random.Random(seed)
    boundary = "b0undary"
    parts = [os.urandom(rnd.randint(0, 3000)) + b"\r\n--b0undar" for _ in range(rnd.randint(1, 4))]
    body = multipart_body(parts, boundary)
    chunks, i = [], 0
    while i < len(body):
        n = rnd.randint(1, 64)
        chunks.append(body[i : i + n])
        i += n
    got = [(p.content_type, p.read()) for p in web_multipart.read_parts(iter(chunks), boundary, spool=1024)]
    assert got == [("application/dicom", p) for p in parts]


def test_multipart_reader_limits_and_errors():
    body = multipart_body([b"x" * 100], "b")
    with pytest.raises(web_multipart.PartTooLarge):
        list(web_multipart.read_parts([body], "b", max_part=99))
    assert [p.read() for p in web_multipart.read_parts([body], "b", max_part=100)] == [b"x" * 100]
    with pytest.raises(web_multipart.MultipartError):
        list(web_multipart.read_parts([body[:-30]], "b"))
    with pytest.raises(web_multipart.MultipartError):
        list(web_multipart.read_parts([b"no boundary here"], "b"))


def test_accept_parsing():
    ranges = web_multipart.parse_accept(
        'multipart/related; type="application/dicom"; transfer-syntax=*; q=0.5, '
        'multipart/related; type="application/dicom", application/json; q=0'
    )
    assert [(r.media_type, r.params.get("transfer-syntax"), r.q) for r in ranges] == [
        ("multipart/related", None, 1.0),
        ("multipart/related", "*", 0.5),
    ]
    assert web_multipart.parse_accept(None)[0].media_type == "*/*"


@pytest.mark.interop
def test_concurrent_searches_retrieves_and_stores(server):
    from concurrent.futures import ThreadPoolExecutor

    url = server.url
    expected = len(parts_of(server.http.get(f"{url}/studies/{G}.1", headers=ANY_SYNTAX)))
    stored = []

    def work(i: int) -> None:
        with httpx.Client(timeout=60) as http:
            for _ in range(5):
                r = http.get(f"{url}/studies", params={"StudyInstanceUID": f"{G}.1,{G}.2"}, headers=JSON)
                assert r.status_code == 200 and len(r.json()) == 2
                r = http.get(f"{url}/studies/{G}.1", headers=ANY_SYNTAX)
                assert r.status_code == 200 and len(parts_of(r)) == expected
            ds = make_instance(sop=f"{G}.8.1.{i}", study=f"{G}.8", series=f"{G}.8.1", instance_number=str(i))
            r = http.post(f"{url}/studies", content=multipart_body([to_bytes(ds)]), headers={"Content-Type": STOW_TYPE})
            assert r.status_code == 200
            stored.append(i)

    with ThreadPoolExecutor(8) as pool:
        list(pool.map(work, range(8)))
    assert len(stored) == 8
    assert server.arc.count({"StudyInstanceUID": f"{G}.8"}, level="IMAGE", relational=True) == 8
    head = server.http.head(f"{url}/studies/{G}.8")
    assert head.status_code == 200 and head.content == b""


def test_qido_target_sends_relational_queries_and_uid_lists(server):
    """pacscore.testing's QIDO-RS client (used by `pacscore bench` and `conformance`): a relational
    SERIES query goes to /series, a UID list is sent comma-separated, and both answer as find()."""
    from pacscore.testing.targets import QidoTarget, TargetError

    target = QidoTarget(server.url)
    try:
        studies = [
            r["StudyInstanceUID"] for r in server.arc.find({"StudyInstanceUID": ""}, level="STUDY", format="dict")
        ][:3]
        assert len(studies) == 3
        rows = target.find("STUDY", {"StudyInstanceUID": "\\".join(studies)})
        assert sorted(r["StudyInstanceUID"] for r in rows) == sorted(studies)

        keys = {"Modality": "MR", "SeriesInstanceUID": ""}
        expected = sorted(
            r["SeriesInstanceUID"] for r in server.arc.find(keys, level="SERIES", format="dict", relational=True)
        )
        assert expected
        got = sorted(r["SeriesInstanceUID"] for r in target.find("SERIES", dict(keys), relational=True))
        assert got == expected
        with pytest.raises(TargetError, match="relational"):
            target.find("SERIES", dict(keys))
    finally:
        target.close()


def test_conformance_runner_finds_no_deviation_over_qido_rs(tmp_path):
    """`pacscore conformance http://...`: generated studies go in by STOW-RS, every rule's
    queries come back over QIDO-RS equal to the reference matcher's answers."""
    from pacscore.testing.conformance import run_conformance

    with pacscore.open(tmp_path / "arc") as arc, serving(create_app(arc)) as port:
        report = run_conformance(f"http://127.0.0.1:{port}/dicomweb", seed=5, queries=70)
        assert report.stored > 0 and report.queries >= 70
        assert report.ok, [str(d.query) for d in report.smallest.values()]
        # what went in over STOW-RS is what the archive holds
        assert arc.count({}, level="IMAGE", relational=True) == report.stored
