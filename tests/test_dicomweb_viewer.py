"""What viewers need of DICOMweb (issue 18): WADO-URI (PS3.18 9), a study or series as a ZIP
with a DICOMDIR, and QIDO-RS paging with a total count and an order by StudyDate.

Everything runs over real HTTP (uvicorn on a port it binds itself) with httpx, and with
dicomweb-client where it can express the request."""

from __future__ import annotations

import io
import zipfile
from pathlib import Path

import httpx
import pydicom
import pytest
from pydicom.encaps import encapsulate
from pydicom.fileset import FileSet
from pydicom.uid import ExplicitVRLittleEndian, ImplicitVRLittleEndian, JPEGBaseline8Bit

import pacscore
from pacscore.adapters.dicomweb import bearer_token_auth, create_app
from pacscore.adapters.web_core import DicomWebService, WebRequest

from .factories import make_instance, to_bytes
from .web_helpers import serving

pytest.importorskip("starlette")
from dicomweb_client.api import DICOMwebClient

ROOT = "1.2.826.0.1.3680043.10.1018"
TOKEN = "viewer-secret"
JSON = {"Accept": "application/dicom+json"}
ZIP = {"Accept": "application/zip"}

#: study -> (patient id, StudyDate, [instances per series]); dates repeat and one is empty, so
#: ordering by date needs the unique-key tie-break
STUDIES = {
    "1": ("P1", "20200115", [3, 2]),
    "2": ("P2", "20210620", [2]),
    "3": ("P3", "20200115", [1]),
    "4": ("P4", "", [1]),
    "5": ("P1", "20190301", [2]),
    "6": ("P6", "20221231", [1, 1]),
}
IMPLICIT_STUDY = f"{ROOT}.7"  # stored in Implicit VR Little Endian
JPEG_STUDY = f"{ROOT}.8"  # stored as JPEG Baseline (never decoded by the server)
SPARSE_STUDY = f"{ROOT}.9"  # no StudyID, SeriesNumber or InstanceNumber (DICOMDIR type 1 keys)
SR_STUDY = f"{ROOT}.10"  # an SR document without the keys of its DICOMDIR record
BASIC_TEXT_SR = "1.2.840.10008.5.1.4.1.1.88.11"


def _image(sop: str, study: str, series: str, **kw) -> pydicom.Dataset:
    ds = make_instance(sop=sop, study=study, series=series, **kw)
    ds.Rows, ds.Columns, ds.BitsAllocated, ds.BitsStored, ds.HighBit = 4, 4, 8, 8, 7
    ds.SamplesPerPixel, ds.PhotometricInterpretation, ds.PixelRepresentation = 1, "MONOCHROME2", 0
    ds.PixelData = bytes(range(16))
    return ds


def instances() -> list[bytes]:
    out = []
    for s, (pid, date, series_sizes) in STUDIES.items():
        study = f"{ROOT}.{s}"
        for n, size in enumerate(series_sizes, 1):
            for i in range(1, size + 1):
                ds = _image(
                    f"{study}.{n}.{i}", study, f"{study}.{n}", patient_id=pid, study_date=date, instance_number=str(i)
                )
                ds.SeriesNumber = str(n)
                out.append(to_bytes(ds))
    implicit = _image(f"{IMPLICIT_STUDY}.1.1", IMPLICIT_STUDY, f"{IMPLICIT_STUDY}.1", patient_id="P7")
    implicit.file_meta.TransferSyntaxUID = ImplicitVRLittleEndian
    out.append(to_bytes(implicit))
    jpeg = _image(f"{JPEG_STUDY}.1.1", JPEG_STUDY, f"{JPEG_STUDY}.1", patient_id="P8")
    jpeg.file_meta.TransferSyntaxUID = JPEGBaseline8Bit
    jpeg.PhotometricInterpretation = "YBR_FULL_422"
    jpeg.PixelData = encapsulate([b"\xff\xd8\xff\xd9"])
    out.append(to_bytes(jpeg))
    for i in (1, 2):
        sparse = _image(
            f"{SPARSE_STUDY}.1.{i}", SPARSE_STUDY, f"{SPARSE_STUDY}.1", patient_id="P9", instance_number=None
        )
        del sparse.StudyID, sparse.SeriesNumber
        out.append(to_bytes(sparse))
    sr = make_instance(
        sop=f"{SR_STUDY}.1.1",
        study=SR_STUDY,
        series=f"{SR_STUDY}.1",
        patient_id="P10",
        modality="SR",
        study_date="20180101",
        sop_class=BASIC_TEXT_SR,
    )
    out.append(to_bytes(sr))
    return out


class Server:
    def __init__(self, port: int, arc) -> None:
        self.root = f"http://127.0.0.1:{port}"
        self.url = f"{self.root}/dicomweb"
        self.arc = arc
        self.http = httpx.Client(timeout=30)

    def wado(self, prefix: str = "", headers: dict | None = None, **params) -> httpx.Response:
        return self.http.get(f"{self.root}{prefix}/dicomweb/wado", params=params, headers=headers or {})


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    from starlette.applications import Starlette
    from starlette.routing import Mount

    arc = pacscore.open(tmp_path_factory.mktemp("viewer-archive"))
    for data in instances():
        arc.store(data)
    parent = Starlette(
        routes=[
            Mount("/auth", app=create_app(arc, auth=bearer_token_auth(TOKEN))),
            Mount("", app=create_app(arc)),
        ]
    )
    with serving(parent) as port:
        s = Server(port, arc)
        try:
            yield s
        finally:
            s.http.close()
            arc.close()


def uids_of(rows: list[dict], tag: str = "0020000D") -> list[str]:
    return [row[tag]["Value"][0] for row in rows]


def study_uids_by_date(arc, descending: bool = False) -> list[str]:
    rows = list(arc.find({"StudyDate": "", "StudyInstanceUID": ""}, level="STUDY", format="dict"))
    dated = [(str(r.get("StudyDate") or ""), r["StudyInstanceUID"]) for r in rows]
    if descending:  # date descending, the unique key still ascending
        dated.sort(key=lambda d: d[1])
        dated.sort(key=lambda d: d[0], reverse=True)
    else:
        dated.sort()
    return [uid for _, uid in dated]


# -- WADO-URI (PS3.18 9) ---------------------------------------------------------------------
def uri_params(sop: str, **extra) -> dict:
    study, series = sop.rsplit(".", 2)[0], sop.rsplit(".", 1)[0]
    return {
        "requestType": "WADO",
        "studyUID": study,
        "seriesUID": series,
        "objectUID": sop,
        "contentType": "application/dicom",
        **extra,
    }


def test_wado_uri_answers_the_stored_part10_object(server):
    sop = f"{ROOT}.1.2.1"
    r = server.wado(**uri_params(sop))
    assert r.status_code == 200, r.text
    assert r.headers["content-type"] == "application/dicom"
    assert r.content == server.arc.get(sop)
    ds = pydicom.dcmread(io.BytesIO(r.content))
    assert ds.SOPInstanceUID == sop and ds.StudyInstanceUID == f"{ROOT}.1"
    # HEAD answers the headers only; a contentType list naming application/dicom is enough
    head = server.http.head(f"{server.url}/wado", params=uri_params(sop))
    assert head.status_code == 200 and head.content == b""
    listed = server.wado(**uri_params(sop, contentType="image/jpeg;q=0.5,application/dicom"))
    assert listed.status_code == 200 and listed.content == server.arc.get(sop)


def test_wado_uri_transfer_syntax_as_wado_rs_can_produce_it(server):
    sop = f"{IMPLICIT_STUDY}.1.1"
    stored = pydicom.dcmread(io.BytesIO(server.arc.get(sop)))
    assert stored.file_meta.TransferSyntaxUID == ImplicitVRLittleEndian
    for params in (uri_params(sop), uri_params(sop, transferSyntax=ExplicitVRLittleEndian)):
        r = server.wado(**params)
        assert r.status_code == 200, r.text
        ds = pydicom.dcmread(io.BytesIO(r.content))
        assert ds.file_meta.TransferSyntaxUID == ExplicitVRLittleEndian
        assert ds.SOPInstanceUID == sop and ds.PixelData == stored.PixelData
    same = server.wado(**uri_params(sop, transferSyntax=ImplicitVRLittleEndian))
    assert same.status_code == 200 and same.content == server.arc.get(sop)
    jpeg = f"{JPEG_STUDY}.1.1"
    as_stored = server.wado(**uri_params(jpeg))
    assert as_stored.status_code == 200 and as_stored.content == server.arc.get(jpeg)
    refused = server.wado(**uri_params(jpeg, transferSyntax=ExplicitVRLittleEndian))
    assert refused.status_code == 406
    assert jpeg in refused.text and JPEGBaseline8Bit in refused.text and "decoding" in refused.text


@pytest.mark.parametrize("missing", ["studyUID", "seriesUID", "objectUID"])
def test_wado_uri_missing_uid_is_400_naming_it(server, missing):
    params = uri_params(f"{ROOT}.1.1.1")
    del params[missing]
    r = server.wado(**params)
    assert r.status_code == 400 and missing in r.text
    empty = server.wado(**{**uri_params(f"{ROOT}.1.1.1"), missing: ""})
    assert empty.status_code == 400 and missing in empty.text


@pytest.mark.parametrize(
    "change, needle",
    [
        ({"requestType": None}, "requestType is missing"),
        ({"requestType": "WADO-RS"}, "requestType must be WADO"),
        ({"rows": "64"}, "rows"),
        ({"anonymize": "yes"}, "anonymize"),
        ({"studyUID": "1.2\\3.4"}, "backslash"),
    ],
)
def test_wado_uri_bad_parameters_are_400_with_the_reason(server, change, needle):
    params = {k: v for k, v in {**uri_params(f"{ROOT}.1.1.1"), **change}.items() if v is not None}
    r = server.wado(**params)
    assert r.status_code == 400 and needle in r.text


def test_wado_uri_parameter_given_twice_is_400(server):
    query = [*uri_params(f"{ROOT}.1.1.1").items(), ("objectUID", f"{ROOT}.1.1.2")]
    r = server.http.get(f"{server.url}/wado", params=query)
    assert r.status_code == 400 and "objectUID" in r.text and "more than once" in r.text


def test_wado_uri_unknown_object_and_uids_that_do_not_agree_are_404(server):
    assert server.wado(**uri_params(f"{ROOT}.1.1.99")).status_code == 404
    # an instance of study 1 asked for below study 2, and below another series of its study
    sop = f"{ROOT}.1.1.1"
    wrong_study = server.wado(**{**uri_params(sop), "studyUID": f"{ROOT}.2"})
    assert wrong_study.status_code == 404 and sop in wrong_study.text
    wrong_series = server.wado(**{**uri_params(sop), "seriesUID": f"{ROOT}.1.2"})
    assert wrong_series.status_code == 404
    # a series of another study
    other = server.wado(**{**uri_params(f"{ROOT}.2.1.1"), "studyUID": f"{ROOT}.1"})
    assert other.status_code == 404


def test_wado_uri_rendered_content_types_are_rendered(server):
    sop = f"{ROOT}.1.1.1"
    jpeg = server.wado(**uri_params(sop, contentType="image/jpeg"))
    assert jpeg.status_code == 200 and jpeg.headers["content-type"] == "image/jpeg"
    default = server.wado(**{k: v for k, v in uri_params(sop).items() if k != "contentType"})
    assert default.status_code == 200 and default.headers["content-type"] == "image/jpeg"
    refused_by_accept = server.wado(headers={"Accept": "image/jpeg"}, **uri_params(sop))
    assert refused_by_accept.status_code == 406 and "application/dicom" in refused_by_accept.text
    allowed_by_accept = server.wado(headers={"Accept": "application/*"}, **uri_params(sop))
    assert allowed_by_accept.status_code == 200


def test_wado_uri_uses_the_servers_auth_hook(server):
    params = uri_params(f"{ROOT}.1.1.1")
    anonymous = server.wado("/auth", **params)
    assert anonymous.status_code == 401 and "Bearer" in anonymous.headers["www-authenticate"]
    wrong = server.wado("/auth", headers={"Authorization": "Bearer nope"}, **params)
    assert wrong.status_code == 401
    ok = server.wado("/auth", headers={"Authorization": f"Bearer {TOKEN}"}, **params)
    assert ok.status_code == 200 and ok.content == server.arc.get(f"{ROOT}.1.1.1")


# -- ZIP with a DICOMDIR ---------------------------------------------------------------------
def unzip(content: bytes, dest: Path) -> dict[str, bytes]:
    with zipfile.ZipFile(io.BytesIO(content)) as zf:
        assert zf.testzip() is None
        zf.extractall(dest)
        return {name: zf.read(name) for name in zf.namelist()}


def check_zip(server, content: bytes, dest: Path, expected_sops: set[str]) -> FileSet:
    """Every instance byte-identical to arc.get, and a DICOMDIR that lists exactly them."""
    files = unzip(content, dest)
    assert "DICOMDIR" in files
    sops = {}
    for name, data in files.items():
        assert all(1 <= len(part) <= 8 for part in name.split("/")), name
        if name != "DICOMDIR":
            sop = pydicom.dcmread(io.BytesIO(data)).SOPInstanceUID
            assert data == server.arc.get(sop)
            sops[sop] = name
    assert set(sops) == expected_sops
    fs = FileSet(pydicom.dcmread(dest / "DICOMDIR"))
    listed = {inst.SOPInstanceUID: Path(inst.path).relative_to(dest).as_posix() for inst in fs}
    assert listed == sops
    for inst in fs:
        assert inst.load().SOPInstanceUID == inst.SOPInstanceUID
    return fs


def test_zip_of_a_study_has_every_instance_and_a_dicomdir(server, tmp_path):
    study = f"{ROOT}.1"
    r = server.http.get(f"{server.url}/studies/{study}", headers=ZIP)
    assert r.status_code == 200, r.text
    assert r.headers["content-type"] == "application/zip"
    expected = {ref.sop_instance_uid for ref in server.arc.instances(study=study)}
    assert len(expected) == 5
    fs = check_zip(server, r.content, tmp_path, expected)
    assert {inst.SeriesInstanceUID for inst in fs} == {f"{study}.1", f"{study}.2"}
    assert {inst.StudyInstanceUID for inst in fs} == {study}


def test_zip_of_a_series_has_that_series_only(server, tmp_path):
    series = f"{ROOT}.1.2"
    r = server.http.get(f"{server.url}/studies/{ROOT}.1/series/{series}", headers=ZIP)
    assert r.status_code == 200, r.text
    check_zip(server, r.content, tmp_path, {f"{series}.1", f"{series}.2"})


def test_zip_dicomdir_fills_missing_type1_record_keys_and_leaves_the_files_alone(server, tmp_path):
    r = server.http.get(f"{server.url}/studies/{SPARSE_STUDY}", headers=ZIP)
    assert r.status_code == 200, r.text
    fs = check_zip(server, r.content, tmp_path, {f"{SPARSE_STUDY}.1.1", f"{SPARSE_STUDY}.1.2"})
    study_records = [inst.node.parent.parent for inst in fs]
    assert {rec._record.StudyID for rec in study_records} == {"UNKNOWN"}
    assert sorted(int(inst.node._record.InstanceNumber) for inst in fs) == [1, 2]
    for inst in fs:  # the files themselves keep what they had: no StudyID, no InstanceNumber
        ds = inst.load()
        assert "StudyID" not in ds and "InstanceNumber" not in ds


def test_zip_transfer_syntax_parameter(server, tmp_path):
    sop = f"{IMPLICIT_STUDY}.1.1"
    accept = {"Accept": f"application/zip; transfer-syntax={ExplicitVRLittleEndian}"}
    r = server.http.get(f"{server.url}/studies/{IMPLICIT_STUDY}", headers=accept)
    assert r.status_code == 200, r.text
    files = unzip(r.content, tmp_path)
    (name,) = [n for n in files if n != "DICOMDIR"]
    ds = pydicom.dcmread(io.BytesIO(files[name]))
    assert ds.file_meta.TransferSyntaxUID == ExplicitVRLittleEndian and ds.SOPInstanceUID == sop
    (inst,) = FileSet(pydicom.dcmread(tmp_path / "DICOMDIR"))
    assert inst.TransferSyntaxUID == ExplicitVRLittleEndian
    # without the parameter the instance is sent as stored
    stored = server.http.get(f"{server.url}/studies/{IMPLICIT_STUDY}", headers=ZIP)
    check_zip(server, stored.content, tmp_path / "stored", {sop})


def test_zip_accept_negotiation_and_errors(server):
    study = f"{ROOT}.1"
    url = f"{server.url}/studies/{study}"
    first_multipart = server.http.get(
        url, headers={"Accept": 'multipart/related; type="application/dicom", ' + ZIP["Accept"]}
    )
    assert first_multipart.status_code == 200
    assert first_multipart.headers["content-type"].startswith("multipart/related")
    preferred = server.http.get(
        url, headers={"Accept": 'multipart/related; type="application/dicom"; q=0.5, application/zip'}
    )
    assert preferred.status_code == 200 and preferred.headers["content-type"] == "application/zip"
    by_parameter = server.http.get(url, params={"accept": "application/zip"})
    assert by_parameter.status_code == 200 and by_parameter.headers["content-type"] == "application/zip"
    png = server.http.get(url, headers={"Accept": "image/png"})
    assert png.status_code == 406 and "application/zip" in png.text
    jpeg = server.http.get(
        f"{server.url}/studies/{JPEG_STUDY}",
        headers={"Accept": f"application/zip; transfer-syntax={ExplicitVRLittleEndian}"},
    )
    assert jpeg.status_code == 406 and f"{JPEG_STUDY}.1.1" in jpeg.text
    assert server.http.get(f"{server.url}/studies/{ROOT}.99", headers=ZIP).status_code == 404
    other_series = server.http.get(f"{url}/series/{ROOT}.2.1", headers=ZIP)
    assert other_series.status_code == 404


def test_zip_without_a_possible_dicomdir_is_406_naming_the_instance(server):
    url = f"{server.url}/studies/{SR_STUDY}"
    r = server.http.get(url, headers=ZIP)
    assert r.status_code == 406
    assert f"{SR_STUDY}.1.1" in r.text and "Completion Flag" in r.text and "multipart/related" in r.text
    # the instance is still there and still retrievable as multipart/related
    multipart = server.http.get(url, headers={"Accept": 'multipart/related; type="application/dicom"'})
    assert multipart.status_code == 200 and server.arc.get(f"{SR_STUDY}.1.1") in multipart.content


def test_zip_is_streamed_instance_by_instance(server, monkeypatch):
    """The answer is an iterator; no instance is read before the client pulls the ZIP, and an
    instance goes out in chunks (a small chunk size here, so that each instance takes several)."""
    from pacscore.adapters import web_zip

    monkeypatch.setattr(web_zip, "CHUNK", 100)
    reads: list[str] = []

    class CountingArchive:
        def __init__(self, arc) -> None:
            self._arc = arc

        def __getattr__(self, name):
            return getattr(self._arc, name)

        def get(self, sop: str, **kw) -> bytes:
            reads.append(sop)
            return self._arc.get(sop, **kw)

    service = DicomWebService(CountingArchive(server.arc))
    answer = service.handle(WebRequest("GET", f"/studies/{ROOT}.1", headers={"accept": "application/zip"}))
    assert answer.status == 200 and not isinstance(answer.body, bytes)
    assert reads == []
    body = iter(answer.body)
    first = next(body)
    assert first.startswith(b"PK") and reads == []  # the DICOMDIR comes first
    rest = b"".join(body)
    assert len(reads) == 5
    with zipfile.ZipFile(io.BytesIO(first + rest)) as zf:
        assert len(zf.namelist()) == 6
        for name in zf.namelist():
            if name != "DICOMDIR":
                data = zf.read(name)
                assert data == server.arc.get(pydicom.dcmread(io.BytesIO(data)).SOPInstanceUID)


# -- QIDO-RS paging, total count and order ---------------------------------------------------
def get_json(server, path: str, **params) -> httpx.Response:
    return server.http.get(f"{server.url}{path}", params=params, headers=JSON)


def all_pages(server, path: str, size: int, **params) -> list[dict]:
    rows: list[dict] = []
    total = None
    while True:
        r = get_json(server, path, limit=size, offset=len(rows), **params)
        assert total in (None, int(r.headers["x-total-count"]))
        total = int(r.headers["x-total-count"])
        if r.status_code == 204:
            break
        rows += r.json()
    assert len(rows) == total
    return rows


def test_qido_total_count_on_every_page(server):
    total = server.arc.count({}, level="STUDY")
    assert total == 10
    for params in ({}, {"limit": 2}, {"limit": 2, "offset": 4}, {"offset": total - 1}, {"offset": total + 5}):
        r = get_json(server, "/studies", **params)
        assert int(r.headers["x-total-count"]) == total, params
    past = get_json(server, "/studies", offset=total)
    assert past.status_code == 204 and past.headers["x-total-count"] == str(total)
    only_count = get_json(server, "/studies", limit=0)
    assert only_count.status_code == 204 and only_count.headers["x-total-count"] == str(total)
    p1 = get_json(server, "/studies", PatientID="P1", limit=1)
    assert p1.headers["x-total-count"] == str(server.arc.count({"PatientID": "P1"}, level="STUDY")) == "2"
    assert "There are 1 additional results" in p1.headers["warning"]
    nothing = get_json(server, "/studies", PatientID="NOBODY")
    assert nothing.status_code == 204 and nothing.headers["x-total-count"] == "0"
    series = get_json(server, f"/studies/{ROOT}.1/series", limit=1)
    assert series.headers["x-total-count"] == "2"
    instances = get_json(server, "/instances", limit=3)
    assert instances.headers["x-total-count"] == str(server.arc.count({}, level="IMAGE", relational=True))


@pytest.mark.parametrize("size", [1, 2, 4, 100])
def test_qido_pages_concatenate_to_the_whole_answer(server, size):
    whole = get_json(server, "/studies").json()
    assert uids_of(all_pages(server, "/studies", size)) == uids_of(whole)
    whole_instances = get_json(server, "/instances").json()
    paged = all_pages(server, "/instances", size)
    assert uids_of(paged, "00080018") == uids_of(whole_instances, "00080018")


@pytest.mark.parametrize("size", [1, 2, 4, 100])
def test_qido_orderby_study_date_stable_across_pages(server, size):
    ascending = all_pages(server, "/studies", size, orderby="StudyDate")
    assert uids_of(ascending) == study_uids_by_date(server.arc)
    descending = all_pages(server, "/studies", size, orderby="-StudyDate")
    assert uids_of(descending) == study_uids_by_date(server.arc, descending=True)
    # the same rows as the unordered answer, only in another order
    unordered = {
        uid: row for uid, row in zip(uids_of(get_json(server, "/studies").json()), get_json(server, "/studies").json())
    }
    assert {uid: row for uid, row in zip(uids_of(ascending), ascending)} == unordered


def test_qido_orderby_with_filters_and_at_series_level(server):
    client = DICOMwebClient(url=server.url)
    rows = client.search_for_studies(search_filters={"PatientID": "P1"}, additional_params={"orderby": "StudyDate"})
    assert uids_of(rows) == [f"{ROOT}.5", f"{ROOT}.1"]  # 20190301 before 20200115
    latest = client.search_for_studies(limit=1, additional_params={"orderby": "-StudyDate"})
    assert uids_of(latest) == [f"{ROOT}.6"]
    # relational series search: by the series' study date, then the series' own order
    series = all_pages(server, "/series", 3, orderby="StudyDate")
    dates = [row.get("00080020", {}).get("Value", [""])[0] for row in series]
    assert dates == sorted(dates)
    assert len(series) == server.arc.count({}, level="SERIES", relational=True)
    # below one study every series has its date: the order is the unique-key order
    one = get_json(server, f"/studies/{ROOT}.1/series", orderby="-StudyDate")
    assert uids_of(one.json(), "0020000E") == [f"{ROOT}.1.1", f"{ROOT}.1.2"]
    ranged = get_json(server, "/studies", StudyDate="20200101-20211231", orderby="-StudyDate")
    same_day = [f"{ROOT}.{s}" for s in (1, 3, 7, 8, 9)]  # 20200115, the factory's default date too
    # an empty StudyDate matches a range (empty_record_matches, docs/matching.md) and sorts as
    # the smallest date: last in descending order
    assert uids_of(ranged.json()) == [f"{ROOT}.2", *same_day, f"{ROOT}.4"]
    assert ranged.headers["x-total-count"] == "7"


@pytest.mark.parametrize(
    "value, needle",
    [
        ("PatientName", "'PatientName'"),
        ("-Bogus", "'Bogus'"),
        ("", "''"),
        ("StudyDate,PatientID", "StudyDate,PatientID"),
    ],
)
def test_qido_unknown_orderby_is_400_naming_it(server, value, needle):
    r = get_json(server, "/studies", orderby=value)
    assert r.status_code == 400 and "orderby" in r.text and needle in r.text


def test_qido_orderby_given_twice_is_400(server):
    r = server.http.get(
        f"{server.url}/studies", params=[("orderby", "StudyDate"), ("orderby", "-StudyDate")], headers=JSON
    )
    assert r.status_code == 400 and "orderby" in r.text
