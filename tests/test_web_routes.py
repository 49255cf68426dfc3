"""The DICOMweb route table: which service answers which method on which path (PS3.18 10.4-10.6),
and the 404 / 405 / 501 / 400 answers around it, without an archive or an HTTP server."""

from __future__ import annotations

import types

import pytest

from pacscore.adapters import web_core, web_delete, web_qido, web_render, web_stow, web_wado
from pacscore.adapters.web_http import HttpError, WebRequest


class RecordingService:
    """What the router needs of DicomWebService: the archive's uid_policy."""

    def __init__(self, policy: str = "lenient") -> None:
        self.archive = types.SimpleNamespace(uid_policy=policy)


@pytest.fixture
def calls(monkeypatch):
    seen: list[tuple] = []
    monkeypatch.setattr(web_qido, "search", lambda service, request, segs: seen.append(("search", *segs)))
    monkeypatch.setattr(web_stow, "store", lambda service, request, study: seen.append(("store", study)))
    for module, names in (
        (web_wado, ("retrieve", "metadata", "frames", "bulkdata")),
        (web_render, ("rendered", "thumbnail")),
    ):
        for name in names:
            monkeypatch.setattr(
                module, name, lambda service, request, *args, name=name, **kw: seen.append((name, *args, *kw.values()))
            )
    return seen


def route(method: str, path: str, policy: str = "lenient"):
    return web_core.DicomWebService._route(RecordingService(policy), WebRequest(method, path))


INSTANCE = "/studies/1.2/series/1.2.3/instances/1.2.3.4"


@pytest.mark.parametrize(
    "method, path, expected",
    [
        ("GET", "/studies", ("search", "studies")),
        ("POST", "/studies", ("store", None)),
        ("GET", "/series", ("search", "series")),
        ("GET", "/instances", ("search", "instances")),
        ("POST", "/studies/1.2", ("store", "1.2")),
        ("HEAD", "/studies/1.2", ("retrieve", "1.2")),
        ("GET", "/studies/1.2/metadata", ("metadata", "1.2")),
        ("GET", "/studies/1.2/instances", ("search", "studies", "1.2", "instances")),
        ("GET", "/studies/1.2/series/1.2.3", ("retrieve", "1.2", "1.2.3")),
        ("GET", "/studies/1.2/series/1.2.3/instances", ("search", "studies", "1.2", "series", "1.2.3", "instances")),
        ("GET", INSTANCE, ("retrieve", "1.2", "1.2.3", "1.2.3.4")),
        ("GET", INSTANCE + "/metadata", ("metadata", "1.2", "1.2.3", "1.2.3.4")),
        ("GET", INSTANCE + "/frames/1,2", ("frames", "1.2", "1.2.3", "1.2.3.4", "1,2")),
        ("GET", INSTANCE + "/bulkdata/7FE00010", ("bulkdata", "1.2", "1.2.3", "1.2.3.4", ["7FE00010"])),
        ("GET", "/studies/a%2Fb/series/c%20d", ("retrieve", "a/b", "c d")),  # decoded after the split
        ("GET", "/studies/1.2/rendered", ("rendered", "1.2")),
        ("GET", "/studies/1.2/series/1.2.3/thumbnail", ("thumbnail", "1.2", "1.2.3")),
        ("GET", INSTANCE + "/rendered", ("rendered", "1.2", "1.2.3", "1.2.3.4")),
        ("HEAD", INSTANCE + "/thumbnail", ("thumbnail", "1.2", "1.2.3", "1.2.3.4")),
        ("GET", INSTANCE + "/frames/1,3/rendered", ("rendered", "1.2", "1.2.3", "1.2.3.4", "1,3")),
        ("GET", INSTANCE + "/frames/2/thumbnail", ("thumbnail", "1.2", "1.2.3", "1.2.3.4", "2")),
    ],
)
def test_each_resource_reaches_its_service(calls, method, path, expected):
    route(method, path)
    assert calls == [expected]


def test_delete_reaches_its_service_only_when_allowed(monkeypatch):
    seen: list[tuple] = []
    monkeypatch.setattr(web_delete, "delete", lambda service, request, **uids: seen.append(tuple(uids.values())))
    service = RecordingService()
    service.allow_delete = True  # type: ignore[attr-defined]
    for path in ("/studies/1.2", "/studies/1.2/series/1.2.3", INSTANCE):
        web_core.DicomWebService._route(service, WebRequest("DELETE", path))
    assert seen == [("1.2",), ("1.2", "1.2.3"), ("1.2", "1.2.3", "1.2.3.4")]
    service.allow_delete = False  # type: ignore[attr-defined]
    with pytest.raises(HttpError) as caught:
        web_core.DicomWebService._route(service, WebRequest("DELETE", "/studies/1.2"))
    assert caught.value.status == 405 and "--allow-delete" in caught.value.reason
    assert dict(caught.value.headers)["Allow"] == "GET, POST" and len(seen) == 3


@pytest.mark.parametrize(
    "method, path, status, allow",
    [
        ("GET", "/", 404, None),
        ("GET", "/patients", 404, None),
        ("GET", "/series/1.2", 404, None),
        ("GET", "/studies/1.2/rendered/x", 404, None),
        ("GET", INSTANCE + "/frames/1/2", 404, None),
        ("HEAD", INSTANCE + "/bulkdata", 404, None),  # bulk data needs its tag
        ("GET", INSTANCE + "/pixeldata", 501, None),
        ("GET", INSTANCE + "/thumbnail/x", 404, None),
        ("POST", "/studies/1.2/rendered", 405, "GET"),
        ("DELETE", "/studies", 405, "GET, POST"),
        ("PUT", "/studies/1.2", 405, "GET, POST"),
        ("POST", "/series", 405, "GET"),
        ("POST", INSTANCE, 405, "GET"),
        ("POST", INSTANCE + "/anything/else", 405, "GET"),  # below an instance only GET is answered
    ],
)
def test_unknown_resources_and_methods(calls, method, path, status, allow):
    with pytest.raises(HttpError) as caught:
        route(method, path)
    assert caught.value.status == status and calls == []
    assert dict(caught.value.headers).get("Allow") == allow


@pytest.mark.parametrize(
    "path, what",
    [
        ("/studies/a%5Cb", "Study Instance UID"),
        ("/studies/1.2/series/x%00y/instances", "Series Instance UID"),
        ("/studies/1.2/series/1.3/instances/%0A/metadata", "SOP Instance UID"),
    ],
)
def test_a_uid_no_archive_holds_is_400_before_any_route(calls, path, what):
    with pytest.raises(HttpError) as caught:
        route("GET", path)
    assert caught.value.status == 400 and what in caught.value.reason and calls == []


def test_strict_policy_refuses_what_lenient_routes(calls):
    with pytest.raises(HttpError) as caught:
        route("GET", "/studies/a.b/metadata", policy="strict")
    assert caught.value.status == 400 and "digits and dots" in caught.value.reason
    route("GET", "/studies/a.b/metadata")
    assert calls == [("metadata", "a.b")]
