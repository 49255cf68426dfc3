"""DICOMweb reaches instances stored under UIDs that are not digits and dots.

Ingest keeps such UIDs under the default (lenient) ``uid_policy``; the URLs the server hands out
percent-encode each UID path segment and the router splits the raw path before decoding it, so a
UID holding "/" or a space is still one segment (PS3.18 8.2: a UID is one path segment).
"""

from __future__ import annotations

import io
from urllib.parse import quote

import pydicom
import pytest

import pacscore

from .factories import make_instance, to_bytes
from .web_helpers import serving

pytestmark = pytest.mark.filterwarnings("ignore:Invalid value for VR UI")
pytest.importorskip("starlette")
pytest.importorskip("httpx")  # what starlette's TestClient drives the app with
dicomweb_client = pytest.importorskip("dicomweb_client")
from dicomweb_client.api import DICOMwebClient  # noqa: E402
from starlette.testclient import TestClient  # noqa: E402

from pacscore.adapters.dicomweb import create_app  # noqa: E402
from pacscore.adapters.web_http import HttpError, check_uid, uid_segment  # noqa: E402

STUDY = "study/with a slash"
SERIES = "series 1"
SOP = "sop/1#%"  # no "?" or "*": in a UID key those are wild cards, refused for VR UI
PIXELS = {
    "Rows": 2,
    "Columns": 2,
    "BitsAllocated": 8,
    "BitsStored": 8,
    "HighBit": 7,
    "SamplesPerPixel": 1,
    "PhotometricInterpretation": "MONOCHROME2",
    "PixelRepresentation": 0,
    "PixelData": b"\x01\x02\x03\x04",
}


def odd_instance(sop: str = SOP, study: str = STUDY, series: str = SERIES) -> pydicom.Dataset:
    return make_instance(sop=sop, study=study, series=series, **PIXELS)


def multipart(part: bytes, boundary: str = "b0undary") -> tuple[bytes, dict]:
    body = (
        f"--{boundary}\r\nContent-Type: application/dicom\r\n\r\n".encode() + part + f"\r\n--{boundary}--\r\n".encode()
    )
    return body, {"Content-Type": f'multipart/related; type="application/dicom"; boundary={boundary}'}


def fetch(client: DICOMwebClient, url: str) -> list[bytes]:
    """The instances at a Retrieve URL, fetched by dicomweb-client as the URL was handed out
    (its retrieve_instance would rebuild the URL from UIDs it insists be digits and dots)."""
    return client.retrieve_bulkdata(url)  # Accept: multipart/related; the instances are application/dicom parts


@pytest.fixture()
def odd(tmp_path):
    """An archive holding one instance under odd UIDs, served by uvicorn; (archive, DICOMweb root)."""
    with pacscore.open(tmp_path / "arc") as arc:
        arc.store(to_bytes(odd_instance()))
        with serving(create_app(arc)) as port:
            yield arc, f"http://127.0.0.1:{port}/dicomweb"


def test_uid_segment_encodes_only_what_a_conformant_uid_never_has():
    assert uid_segment("1.2.840.10008.5.1.4.1.1.2") == "1.2.840.10008.5.1.4.1.1.2"
    assert uid_segment("a/b c%") == "a%2Fb%20c%25"


@pytest.mark.parametrize(
    "uid, needle",
    [
        ("", "empty"),
        ("1\\2", "backslash"),
        ("1\x002", "control"),
        ("1\n2", "control"),
        ("9" * 257, "longer than the 256 bytes"),
    ],
)
def test_check_uid_lenient_refuses_what_no_archive_holds(uid, needle):
    with pytest.raises(HttpError) as caught:
        check_uid(uid, "Study Instance UID")
    assert caught.value.status == 400 and needle in caught.value.reason and "Study Instance UID" in caught.value.reason


def test_check_uid_strict_keeps_digits_and_dots():
    assert check_uid("1.2.3", "Study Instance UID", "strict") == "1.2.3"
    with pytest.raises(HttpError) as caught:
        check_uid("a/b", "Study Instance UID", "strict")
    assert caught.value.status == 400 and "digits and dots" in caught.value.reason


@pytest.mark.interop
def test_qido_finds_it_and_its_retrieve_url_works_with_dicomweb_client(odd):
    arc, url = odd
    client = DICOMwebClient(url=url)
    found = client.search_for_instances(search_filters={"SOPInstanceUID": SOP})
    assert len(found) == 1
    retrieve_url = found[0]["00081190"]["Value"][0]
    assert (
        retrieve_url == f"{url}/studies/{quote(STUDY, safe='')}/series/{quote(SERIES, safe='')}"
        f"/instances/{quote(SOP, safe='')}"
    )
    assert fetch(client, retrieve_url) == [arc.get(SOP)]
    studies = client.search_for_studies(search_filters={"StudyInstanceUID": STUDY})
    assert studies[0]["00081190"]["Value"][0] == f"{url}/studies/{quote(STUDY, safe='')}"


@pytest.mark.interop
def test_wado_retrieve_metadata_and_bulkdata_of_odd_uids(odd):
    import httpx

    arc, url = odd
    instance = f"{url}/studies/{uid_segment(STUDY)}/series/{uid_segment(SERIES)}/instances/{uid_segment(SOP)}"
    with httpx.Client(timeout=30) as http:
        r = http.get(instance, headers={"Accept": 'multipart/related; type="application/dicom"'})
        assert r.status_code == 200 and arc.get(SOP) in r.content
        meta = http.get(f"{url}/studies/{uid_segment(STUDY)}/metadata").json()
        assert [m["00080018"]["Value"] for m in meta] == [[SOP]]
        bulk = meta[0]["7FE00010"]["BulkDataURI"]
        assert bulk == f"{instance}/bulkdata/7FE00010"
        r = http.get(bulk)
        assert r.status_code == 200 and b"\x01\x02\x03\x04" in r.content
        # the decoded path would split the study UID in two: the raw one keeps it one segment
        assert http.get(f"{url}/studies/{STUDY}").status_code == 404


@pytest.mark.interop
def test_stow_of_an_odd_instance_answers_a_working_retrieve_url(odd):
    arc, url = odd
    client = DICOMwebClient(url=url)
    ds = odd_instance(sop="other sop/2", series="series/2")
    answer = client.store_instances([ds])
    item = answer.ReferencedSOPSequence[0]
    assert answer.RetrieveURL == f"{url}/studies/{quote(STUDY, safe='')}"
    assert item.RetrieveURL.endswith("/series/series%2F2/instances/other%20sop%2F2")
    [back] = fetch(client, item.RetrieveURL)
    assert back == arc.get("other sop/2")
    assert pydicom.dcmread(io.BytesIO(back)).SOPInstanceUID == ds.SOPInstanceUID
    assert fetch(client, answer.RetrieveURL) == [arc.get(r.sop_instance_uid) for r in arc.instances(study=STUDY)]


def test_a_uid_outside_the_policy_is_400_strict_or_404_lenient(tmp_path):
    folder = tmp_path / "arc"
    with pacscore.open(folder) as arc:
        arc.store(to_bytes(make_instance(sop="1.2.3.1.1", study="1.2.3", series="1.2.3.1")))
    with pacscore.open(folder) as lenient, TestClient(create_app(lenient)) as http:
        assert http.get("/dicomweb/studies/not-a-uid").status_code == 404
        assert http.get("/dicomweb/studies/not-a-uid/series").status_code == 204
        r = http.get("/dicomweb/studies/a%5Cb")
        assert r.status_code == 400 and "backslash" in r.text
    with pacscore.open(folder, uid_policy="strict") as strict, TestClient(create_app(strict)) as http:
        r = http.get("/dicomweb/studies/not-a-uid")
        assert r.status_code == 400 and "Study Instance UID 'not-a-uid' is not a valid UID" in r.text
        assert http.get("/dicomweb/studies/1.2.3/series/x%2Fy").status_code == 400
        assert http.get("/dicomweb/studies/1.2.3/series").status_code == 200
    with pacscore.open(folder) as arc:  # nothing was written by any of it
        assert [r.sop_instance_uid for r in arc.instances(study="1.2.3")] == ["1.2.3.1.1"]


@pytest.mark.parametrize(
    "scope, tail, expected",
    [
        # the raw path keeps %2F inside a segment; the mount point and prefix are skipped by count
        (
            {"path": "/pacs/dicomweb/studies/a/b", "raw_path": b"/pacs/dicomweb/studies/a%2Fb"},
            "studies/a/b",
            "/studies/a%2Fb",
        ),
        ({"path": "/dicomweb", "raw_path": b"/dicomweb"}, "", "/"),
        ({"path": "/studies/1.2/", "raw_path": b"/studies/1.2/"}, "studies/1.2/", "/studies/1.2/"),
        # no raw_path (a server that does not send it): the decoded path, each segment encoded again
        ({"path": "/dicomweb/studies/a b"}, "studies/a b", "/studies/a%20b"),
        # a raw_path that does not decode to the tail is not trusted
        ({"path": "/dicomweb/studies/x", "raw_path": b"/elsewhere/y"}, "studies/x", "/studies/x"),
    ],
)
def test_the_path_below_the_root_is_taken_raw(scope, tail, expected):
    from pacscore.adapters.dicomweb import _raw_tail

    assert _raw_tail(scope, tail) == expected
