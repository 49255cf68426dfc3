"""The framework-neutral DICOMweb core: a request in, a response out, no HTTP server involved.

``DicomWebService.handle(WebRequest) -> WebResponse`` routes QIDO-RS, WADO-RS and STOW-RS
requests to the Archive API. A request is the method, the path below the DICOMweb root, the
query parameters as a list of (name, value) pairs, the headers and an iterator of body chunks;
a response is a status, a list of headers and a body (bytes or an iterator of bytes that is
pulled lazily, so WADO-RS streams instance by instance). Everything here is synchronous and
blocking (LMDB, blob reads): an async server runs ``handle`` and the body iterator in worker
threads (see ``pacscore.adapters.dicomweb``); a WSGI server could call it directly.
"""
from __future__ import annotations

import hmac
import json
import logging
import os
import re
import threading
from dataclasses import dataclass, field
from typing import Callable, Iterable, Iterator, Mapping

from ..errors import NotFound, PacsError, QueryError, StorageError

LOG = logging.getLogger("pacscore.dicomweb")

DICOM_JSON = "application/dicom+json"
UID_RE = re.compile(r"^[0-9]+(\.[0-9]+)*$")

#: limits (bytes / results) used when create_app / DicomWebService are not told otherwise
DEFAULT_MAX_BODY = 2 * 1024 ** 3          # a whole STOW-RS request
DEFAULT_MAX_PART = 1024 ** 3              # one instance in a STOW-RS request
DEFAULT_MAX_RESULTS = 10_000              # the most results one QIDO-RS response carries
DEFAULT_LIMIT = 1_000                     # QIDO-RS page size when the request gives no limit
DEFAULT_SPOOL = 16 * 1024 * 1024          # a STOW-RS part above this goes to a temporary file

Auth = Callable[[Mapping[str, str]], "bool | None"]


@dataclass
class WebRequest:
    """One HTTP request, as the core sees it.

    ``path`` is below the DICOMweb root (``/studies/1.2.3/series``); ``headers`` has lower-case
    names; ``base_url`` is the absolute URL of the DICOMweb root, used for Retrieve URLs and
    BulkDataURIs (``http://host:8042/dicomweb``).
    """

    method: str
    path: str
    query: list[tuple[str, str]] = field(default_factory=list)
    headers: Mapping[str, str] = field(default_factory=dict)
    body: Iterable[bytes] = ()
    base_url: str = ""

    def header(self, name: str, default: str | None = None) -> str | None:
        return self.headers.get(name.lower(), default)


@dataclass
class WebResponse:
    status: int
    headers: list[tuple[str, str]] = field(default_factory=list)
    body: bytes | Iterator[bytes] = b""

    def header(self, name: str) -> str | None:
        for k, v in self.headers:
            if k.lower() == name.lower():
                return v
        return None


class HttpError(Exception):
    """An error answer: the status, a reason (sent as text/plain) and extra headers."""

    def __init__(self, status: int, reason: str, headers: list[tuple[str, str]] | None = None) -> None:
        self.status = status
        self.reason = reason
        self.headers = headers or []
        super().__init__(f"{status}: {reason}")

    def response(self) -> WebResponse:
        body = (self.reason.rstrip() + "\n").encode("utf-8")
        return WebResponse(self.status, [("Content-Type", "text/plain; charset=utf-8"), *self.headers], body)


def json_response(payload: object, status: int = 200, headers: list[tuple[str, str]] | None = None,
                  content_type: str = DICOM_JSON) -> WebResponse:
    body = json.dumps(payload, ensure_ascii=False, separators=(",", ":")).encode("utf-8")
    return WebResponse(status, [("Content-Type", content_type), *(headers or [])], body)


def check_uid(value: str, what: str) -> str:
    if len(value) > 64 or not UID_RE.match(value):
        raise HttpError(400, f"{what} {value[:80]!r} is not a valid UID (digits and dots, at most 64 characters)")
    return value


def warning(service: str, text: str) -> tuple[str, str]:
    """A ``Warning: 299 <service>: <text>`` header (PS3.18 8.3.4, RFC 7234 5.5)."""
    return ("Warning", f"299 {service}: {text}")


# -- authentication -------------------------------------------------------------------------
def bearer_token_auth(token: str, realm: str = "pacscore") -> Auth:
    """An ``auth`` hook that accepts ``Authorization: Bearer <token>`` (constant-time compare).

    It returns None when no bearer credentials are sent and False when they are wrong; both
    answer 401 with a ``WWW-Authenticate: Bearer`` challenge (RFC 6750).
    """
    if not token:
        raise ValueError("bearer_token_auth needs a non-empty token")
    expected = token.encode("utf-8")

    def check(headers: Mapping[str, str]) -> bool | None:
        value = headers.get("authorization", "")
        scheme, _, given = value.strip().partition(" ")
        if scheme.lower() != "bearer" or not given.strip():
            return None
        return hmac.compare_digest(given.strip().encode("utf-8"), expected)

    check.realm = realm  # type: ignore[attr-defined]
    return check


def _unauthorized(auth: Auth, outcome: bool | None) -> WebResponse:
    realm = getattr(auth, "realm", "pacscore")
    challenge = f'Bearer realm="{realm}"'
    if outcome is False:
        challenge += ', error="invalid_token"'
    return HttpError(401, "authentication required" if outcome is None else "invalid credentials",
                     [("WWW-Authenticate", challenge)]).response()


# -- the archive, opened lazily per process -------------------------------------------------
class ArchiveProvider:
    """Hands out the Archive: a given one as it is, or one opened from a folder on first use.

    A folder is opened lazily and again in every process (an LMDB environment must be opened
    after a fork, never inherited), so one app object can be handed to a pre-forking server.
    """

    def __init__(self, archive_or_folder: object, **open_options) -> None:
        self._lock = threading.Lock()
        self._archive = None
        self._pid = None
        if isinstance(archive_or_folder, (str, os.PathLike)):
            self.folder: str | None = os.fspath(archive_or_folder)
            self._options = open_options
        else:
            if not hasattr(archive_or_folder, "find"):
                raise TypeError("create_app needs a pacscore.Archive or an archive folder")
            self.folder = None
            self._archive = archive_or_folder

    @property
    def owned(self) -> bool:
        return self.folder is not None

    def get(self):
        if self.folder is None:
            return self._archive
        pid = os.getpid()
        archive = self._archive
        if archive is not None and self._pid == pid:
            return archive
        with self._lock:
            if self._archive is None or self._pid != pid:
                import pacscore  # late: keeps the adapter importable for tooling without the archive
                # an environment inherited through fork() is abandoned, never closed, in the child
                self._archive = pacscore.open(self.folder, **self._options)
                self._pid = pid
            return self._archive

    def close(self) -> None:
        with self._lock:
            if self.folder is not None and self._archive is not None and self._pid == os.getpid():
                self._archive.close()
            if self.folder is not None:
                self._archive = None


# -- the service ----------------------------------------------------------------------------
@dataclass
class Limits:
    max_body: int = DEFAULT_MAX_BODY
    max_part: int = DEFAULT_MAX_PART
    max_results: int = DEFAULT_MAX_RESULTS
    default_limit: int = DEFAULT_LIMIT
    spool: int = DEFAULT_SPOOL


class DicomWebService:
    """QIDO-RS, WADO-RS and STOW-RS over one archive, independent of any HTTP framework."""

    def __init__(self, archive_or_folder: object, *, auth: Auth | None = None,
                 max_body: int = DEFAULT_MAX_BODY, max_part: int = DEFAULT_MAX_PART,
                 max_results: int = DEFAULT_MAX_RESULTS, default_limit: int = DEFAULT_LIMIT,
                 spool: int = DEFAULT_SPOOL, open_options: dict | None = None,
                 find_options: dict | None = None) -> None:
        from .match_options import QIDO_FIXED, check_options

        for name, value in (("max_body", max_body), ("max_part", max_part), ("max_results", max_results),
                            ("default_limit", default_limit)):
            if not isinstance(value, int) or value < 1:
                raise ValueError(f"{name} must be a positive integer, not {value!r}")
        self.archives = ArchiveProvider(archive_or_folder, **(open_options or {}))
        self.auth = auth
        #: matching options of every QIDO-RS search; the request's own parameters win
        self.find_options = check_options(find_options, fixed=QIDO_FIXED)
        self.limits = Limits(max_body=max_body, max_part=max_part, max_results=max_results,
                             default_limit=min(default_limit, max_results), spool=spool)

    @property
    def archive(self):
        return self.archives.get()

    def close(self) -> None:
        self.archives.close()

    def handle(self, request: WebRequest) -> WebResponse:
        """Answer one request; never raises for a client or archive error (those become statuses)."""
        if self.auth is not None:
            try:
                outcome = self.auth(request.headers)
            except Exception:
                LOG.exception("the auth hook failed")
                return HttpError(500, "the authentication hook failed").response()
            if outcome is not True:
                return _unauthorized(self.auth, outcome)
        try:
            return self._route(request)
        except HttpError as exc:
            return exc.response()
        except QueryError as exc:
            return HttpError(400, str(exc)).response()
        except NotFound as exc:
            return HttpError(404, str(exc)).response()
        except StorageError as exc:
            LOG.error("storage error on %s %s: %s", request.method, request.path, exc)
            return HttpError(503, f"storage error: {exc}").response()
        except PacsError as exc:
            return HttpError(400, str(exc)).response()
        except Exception:
            LOG.exception("unexpected error on %s %s", request.method, request.path)
            return HttpError(500, "internal server error").response()

    # -- routing ----------------------------------------------------------------------------
    def _route(self, request: WebRequest) -> WebResponse:
        from . import web_qido, web_stow, web_wado

        method = request.method.upper()
        if method == "HEAD":
            method = "GET"
        segs = [s for s in request.path.split("/") if s]
        n = len(segs)

        def allow(*methods: str) -> None:
            if method not in methods:
                raise HttpError(405, f"{request.method} is not supported on this resource",
                                [("Allow", ", ".join(methods))])

        if n == 0:
            raise HttpError(404, "no such resource (try /studies, /series or /instances)")
        head = segs[0]
        if head in ("series", "instances") and n == 1:
            allow("GET")
            return web_qido.search(self, request, segs)
        if head != "studies":
            raise HttpError(404, f"no such resource: /{'/'.join(segs)}")
        if n == 1:
            allow("GET", "POST")
            if method == "POST":
                return web_stow.store(self, request, None)
            return web_qido.search(self, request, segs)
        study = check_uid(segs[1], "Study Instance UID")
        if n == 2:
            allow("GET", "POST")
            if method == "POST":
                return web_stow.store(self, request, study)
            return web_wado.retrieve(self, request, study)
        if n == 3 and segs[2] == "metadata":
            allow("GET")
            return web_wado.metadata(self, request, study)
        if n == 3 and segs[2] in ("series", "instances"):
            allow("GET")
            return web_qido.search(self, request, segs)
        if segs[2] != "series" or n < 4:
            raise HttpError(404, f"no such resource: /{'/'.join(segs)}")
        series = check_uid(segs[3], "Series Instance UID")
        if n == 4:
            allow("GET")
            return web_wado.retrieve(self, request, study, series)
        if n == 5 and segs[4] == "metadata":
            allow("GET")
            return web_wado.metadata(self, request, study, series)
        if n == 5 and segs[4] == "instances":
            allow("GET")
            return web_qido.search(self, request, segs)
        if segs[4] != "instances" or n < 6:
            raise HttpError(404, f"no such resource: /{'/'.join(segs)}")
        instance = check_uid(segs[5], "SOP Instance UID")
        allow("GET")
        if n == 6:
            return web_wado.retrieve(self, request, study, series, instance)
        if n == 7 and segs[6] == "metadata":
            return web_wado.metadata(self, request, study, series, instance)
        if n == 8 and segs[6] == "frames":
            return web_wado.frames(self, request, study, series, instance, segs[7])
        if n >= 8 and segs[6] == "bulkdata":
            return web_wado.bulkdata(self, request, study, series, instance, segs[7:])
        if n >= 7 and segs[6] in ("rendered", "thumbnail", "pixeldata"):
            raise HttpError(501, f"the {segs[6]} resources are not implemented by this origin server")
        raise HttpError(404, f"no such resource: /{'/'.join(segs)}")


__all__ = [
    "WebRequest", "WebResponse", "HttpError", "DicomWebService", "ArchiveProvider", "Limits",
    "bearer_token_auth", "json_response", "warning", "check_uid", "DICOM_JSON",
]
