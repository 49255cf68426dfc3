"""DELETE of studies, series and instances over DICOMweb: off by default (405), behind the auth
hook (401) and an optional per-request permission (403), 404 for UIDs that are not stored or do
not agree, the archive's on_deleted hooks fired, and the index and blobs consistent afterwards
(``Archive.verify`` finds nothing missing and, after the next open, no orphan).
"""

from __future__ import annotations

import argparse

import httpx
import pytest

import pacscore
from pacscore.adapters.dicomweb import bearer_token_auth, create_app
from pacscore.adapters.web_core import DicomWebService, WebRequest

from .factories import make_instance
from .web_helpers import serving

dicomweb_client = pytest.importorskip("dicomweb_client")
from dicomweb_client.api import DICOMwebClient  # noqa: E402
from requests.exceptions import HTTPError  # noqa: E402

ROOT = "1.2.826.0.1.3680043.10.1025"
READER, ADMIN = "reader-token", "admin-token"


def fill(arc) -> None:
    """Studies .1 to .3, each with series .s.1 (instances .s.1.1, .s.1.2) and .s.2 (.s.2.1)."""
    for s in (1, 2, 3):
        study = f"{ROOT}.{s}"
        for series, count in ((1, 2), (2, 1)):
            for i in range(1, count + 1):
                ds = make_instance(
                    sop=f"{study}.{series}.{i}", study=study, series=f"{study}.{series}", patient_id=f"P{s}"
                )
                ds.PixelData = bytes(16)
                ds.Rows = ds.Columns = 4
                ds.BitsAllocated = ds.BitsStored = 8
                ds.HighBit, ds.SamplesPerPixel, ds.PixelRepresentation = 7, 1, 0
                ds.PhotometricInterpretation = "MONOCHROME2"
                arc.store(ds)


def uids(arc) -> set[str]:
    studies = [r["StudyInstanceUID"] for r in arc.find({"StudyInstanceUID": ""}, level="STUDY", format="dict")]
    return {r.sop_instance_uid for r in arc.instances(study=studies)} if studies else set()


def consistent(arc) -> None:
    report = arc.verify()
    assert not report.damaged and not report.missing, report


@pytest.fixture
def arc(tmp_path):
    archive = pacscore.open(tmp_path / "archive")
    fill(archive)
    yield archive
    archive.close()


def url_of(base: str, study: int, series: int | None = None, instance: int | None = None) -> str:
    url = f"{base}/studies/{ROOT}.{study}"
    if series is not None:
        url += f"/series/{ROOT}.{study}.{series}"
    if instance is not None:
        url += f"/instances/{ROOT}.{study}.{series}.{instance}"
    return url


def test_delete_is_off_by_default_and_removes_nothing(arc):
    before = uids(arc)
    with serving(create_app(arc)) as port, httpx.Client(timeout=60) as http:
        base = f"http://127.0.0.1:{port}/dicomweb"
        for url, allow in (
            (url_of(base, 1), "GET, POST"),
            (url_of(base, 1, 1), "GET"),
            (url_of(base, 1, 1, 1), "GET"),
        ):
            r = http.delete(url)
            assert r.status_code == 405 and "--allow-delete" in r.text
            assert r.headers["allow"] == allow
        with pytest.raises(HTTPError, match="405"):
            DICOMwebClient(url=base).delete_study(f"{ROOT}.1")
    assert uids(arc) == before


def test_dicomweb_client_deletes_instance_series_and_study(arc):
    deleted = []
    arc.on_deleted(lambda event: deleted.append(event.sop_instance_uid))
    with serving(create_app(arc, allow_delete=True)) as port:
        base = f"http://127.0.0.1:{port}/dicomweb"
        client = DICOMwebClient(url=base)
        client.delete_instance(f"{ROOT}.1", f"{ROOT}.1.1", f"{ROOT}.1.1.2")
        assert deleted == [f"{ROOT}.1.1.2"]
        assert f"{ROOT}.1.1.1" in uids(arc) and f"{ROOT}.1.1.2" not in uids(arc)
        client.delete_series(f"{ROOT}.2", f"{ROOT}.2.1")
        assert sorted(deleted[1:]) == [f"{ROOT}.2.1.1", f"{ROOT}.2.1.2"]
        client.delete_study(f"{ROOT}.3")
        assert sorted(deleted[3:]) == [f"{ROOT}.3.1.1", f"{ROOT}.3.1.2", f"{ROOT}.3.2.1"]
        with httpx.Client(timeout=60) as http:
            assert http.get(url_of(base, 3)).status_code == 404
            assert http.get(url_of(base, 1, 1, 2) + "/metadata").status_code == 404
            assert http.get(f"{base}/studies", params={"StudyInstanceUID": f"{ROOT}.3"}).status_code == 204
            # what was not named is still there, and can be read
            assert http.get(url_of(base, 1, 1, 1) + "/metadata").status_code == 200
            assert http.delete(url_of(base, 1, 2)).status_code == 204
    assert uids(arc) == {f"{ROOT}.1.1.1", f"{ROOT}.2.2.1"}
    consistent(arc)


def test_unknown_or_disagreeing_uids_are_404_and_remove_nothing(arc):
    before = uids(arc)
    with serving(create_app(arc, allow_delete=True)) as port, httpx.Client(timeout=60) as http:
        base = f"http://127.0.0.1:{port}/dicomweb"
        assert http.delete(f"{base}/studies/{ROOT}.9").status_code == 404
        r = http.delete(f"{base}/studies/{ROOT}.1/series/{ROOT}.2.1")  # a series of another study
        assert r.status_code == 404 and f"{ROOT}.2.1" in r.text
        assert http.delete(f"{base}/studies/{ROOT}.1/series/{ROOT}.1.1/instances/{ROOT}.2.1.1").status_code == 404
        assert http.delete(f"{base}/studies/{ROOT}.1/series/{ROOT}.1.1/instances/{ROOT}.1.1.9").status_code == 404
        assert http.delete(f"{base}/studies/bad%5Cuid").status_code == 400  # a backslash is no UID
        r = http.delete(f"{base}/studies/{ROOT}.1/metadata")
        assert r.status_code == 405 and r.headers["allow"] == "GET"
        assert http.delete(f"{base}/studies").status_code == 405
    assert uids(arc) == before


def test_delete_needs_authentication_and_permission(arc):
    tokens = {READER: bearer_token_auth(READER), ADMIN: bearer_token_auth(ADMIN)}

    def auth(headers):  # either token reads
        outcomes = [check(headers) for check in tokens.values()]
        return True if True in outcomes else (False if False in outcomes else None)

    def admin_only(headers):
        return tokens[ADMIN](headers) is True

    before = uids(arc)
    with serving(create_app(arc, auth=auth, allow_delete=admin_only)) as port, httpx.Client(timeout=60) as http:
        base = f"http://127.0.0.1:{port}/dicomweb"
        assert http.delete(url_of(base, 1)).status_code == 401
        r = http.delete(url_of(base, 1), headers={"Authorization": "Bearer nope"})
        assert r.status_code == 401 and "invalid_token" in r.headers["www-authenticate"]
        r = http.delete(url_of(base, 1), headers={"Authorization": f"Bearer {READER}"})
        assert r.status_code == 403 and "may not delete" in r.text
        assert uids(arc) == before
        assert http.get(url_of(base, 1) + "/metadata", headers={"Authorization": f"Bearer {READER}"}).status_code == 200
        r = http.delete(url_of(base, 1, 2, 1), headers={"Authorization": f"Bearer {ADMIN}"})
        assert r.status_code == 204 and r.content == b""
    assert uids(arc) == before - {f"{ROOT}.1.2.1"}


def test_a_failing_permission_hook_is_500_and_removes_nothing(arc):
    def broken(headers):
        raise RuntimeError("boom")

    service = DicomWebService(arc, allow_delete=broken)
    before = uids(arc)
    answer = service.handle(WebRequest("DELETE", f"/studies/{ROOT}.1"))
    assert answer.status == 500 and uids(arc) == before


def test_allow_delete_must_be_a_bool_or_a_callable(arc):
    with pytest.raises(TypeError, match="allow_delete"):
        DicomWebService(arc, allow_delete="yes")


def test_a_blob_that_cannot_be_removed_leaves_no_dangling_entry(tmp_path):
    """The index entry goes in the commit; a blob the store fails to remove stays journaled as an
    orphan (never an entry without its blob) and the next open removes it."""
    folder = tmp_path / "archive"
    arc = pacscore.open(folder)
    fill(arc)
    blobs = arc.blobs
    real_delete = blobs.delete

    def failing(key):
        raise OSError("the disk said no")

    blobs.delete = failing
    try:
        answer = DicomWebService(arc, allow_delete=True).handle(WebRequest("DELETE", f"/studies/{ROOT}.2"))
        assert answer.status == 204
        assert not any(u.startswith(f"{ROOT}.2.") for u in uids(arc))
        report = arc.verify()
        assert not report.damaged and not report.missing
        assert len(report.orphans) == 3  # the three blobs of study .2 stayed behind
    finally:
        blobs.delete = real_delete
        arc.close()
    with pacscore.open(folder) as again:
        report = again.verify()
        assert not report.damaged and report.orphans == [] and report.instances == 6


def test_cli_flag_turns_delete_on(monkeypatch, tmp_path):
    from pacscore import cli_serve

    parser = argparse.ArgumentParser()
    cli_serve.add_web_cli(parser.add_subparsers(dest="protocol"))
    assert parser.parse_args(["web", "--archive", "a"]).allow_delete is False
    args = parser.parse_args(["web", "--archive", str(tmp_path / "a"), "--allow-delete"])
    assert args.allow_delete is True
    pacscore.open(tmp_path / "a").close()
    seen = {}
    import uvicorn

    import pacscore.adapters.dicomweb as dicomweb

    real_create_app = dicomweb.create_app

    def spy(*a, **kw):
        seen.update(kw)
        return real_create_app(*a, **kw)

    monkeypatch.setattr(dicomweb, "create_app", spy)

    class NoServer:
        """Stands in for uvicorn.Server: records the app it was given instead of serving it."""

        def __init__(self, config) -> None:
            self.config = config

        def run(self, sockets=None) -> None:
            seen.setdefault("service", self.config.app.state.dicomweb)

    monkeypatch.setattr(uvicorn, "Server", NoServer)
    assert cli_serve.main_serve_web(args) == 0
    assert seen["allow_delete"] is True and seen["service"].allow_delete is True
