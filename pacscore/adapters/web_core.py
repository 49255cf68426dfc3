"""The framework-neutral DICOMweb core: a request in, a response out, no HTTP server involved.

``DicomWebService.handle(WebRequest) -> WebResponse`` routes QIDO-RS, WADO-RS and STOW-RS
requests to the Archive API through the route table ``ROUTES`` (the request and response types
are in ``web_http``, which the services import instead of this module, so that they never
import the router that calls them). A request is the method, the path below the DICOMweb root, the
query parameters as a list of (name, value) pairs, the headers and an iterator of body chunks;
a response is a status, a list of headers and a body (bytes or an iterator of bytes that is
pulled lazily, so WADO-RS streams instance by instance). Everything here is synchronous and
blocking (LMDB, blob reads): an async server runs ``handle`` and the body iterator in worker
threads (see ``pacscore.adapters.dicomweb``); a WSGI server could call it directly.
"""

from __future__ import annotations

import hmac
import logging
import os
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from ..errors import NotFound, PacsError, QueryError, StorageError
from . import web_delete, web_qido, web_render, web_stow, web_uri, web_wado, web_worklist, web_zip
from .web_http import (
    DICOM_JSON,
    UID_RE,
    HttpError,
    WebRequest,
    WebResponse,
    check_uid,
    json_response,
    uid_segment,
    warning,
)

LOG = logging.getLogger("pacscore.dicomweb")

#: limits (bytes / results) used when create_app / DicomWebService are not told otherwise
DEFAULT_MAX_BODY = 2 * 1024**3  # a whole STOW-RS request
DEFAULT_MAX_PART = 1024**3  # one instance in a STOW-RS request
DEFAULT_MAX_RESULTS = 10_000  # the most results one QIDO-RS response carries
DEFAULT_LIMIT = 1_000  # QIDO-RS page size when the request gives no limit
DEFAULT_SPOOL = 16 * 1024 * 1024  # a STOW-RS part above this goes to a temporary file

Auth = Callable[[Mapping[str, str]], "bool | None"]


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
    return HttpError(
        401, "authentication required" if outcome is None else "invalid credentials", [("WWW-Authenticate", challenge)]
    ).response()


# -- the archive, opened lazily per process -------------------------------------------------
class ArchiveProvider:
    """Hands out the Archive: a given one as it is, or one opened from a folder on first use.

    A folder is opened lazily and again in every process (an LMDB environment must be opened
    after a fork, never inherited), so one app object can be handed to a pre-forking server.
    """

    def __init__(self, archive_or_folder: object, **open_options) -> None:
        self._lock = threading.Lock()
        self._archive: Any = None  # a pacscore.Archive (or any object with its methods)
        self._pid: int | None = None
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

    def __init__(
        self,
        archive_or_folder: object,
        *,
        auth: Auth | None = None,
        max_body: int = DEFAULT_MAX_BODY,
        max_part: int = DEFAULT_MAX_PART,
        max_results: int = DEFAULT_MAX_RESULTS,
        default_limit: int = DEFAULT_LIMIT,
        spool: int = DEFAULT_SPOOL,
        open_options: dict | None = None,
        find_options: dict | None = None,
        allow_delete: web_delete.DeletePolicy = False,
    ) -> None:
        from .match_options import QIDO_FIXED, check_options

        for name, value in (
            ("max_body", max_body),
            ("max_part", max_part),
            ("max_results", max_results),
            ("default_limit", default_limit),
        ):
            if not isinstance(value, int) or value < 1:
                raise ValueError(f"{name} must be a positive integer, not {value!r}")
        self.archives = ArchiveProvider(archive_or_folder, **(open_options or {}))
        self.auth = auth
        #: DELETE of studies, series and instances: off (405), on, or a per-request check (403)
        self.allow_delete = web_delete.check_policy(allow_delete)
        #: matching options of every QIDO-RS search; the request's own parameters win
        self.find_options = check_options(find_options, fixed=QIDO_FIXED)
        self.limits = Limits(
            max_body=max_body,
            max_part=max_part,
            max_results=max_results,
            default_limit=min(default_limit, max_results),
            spool=spool,
        )

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

    def _route(self, request: WebRequest) -> WebResponse:
        segs = request.segments()
        if not segs:
            raise HttpError(404, "no such resource (try /studies, /series or /instances)")
        if len(segs) > 1 and segs[0] == "studies":
            check_path_uids(segs, getattr(self.archive, "uid_policy", "lenient"))
        method = "GET" if request.method.upper() == "HEAD" else request.method.upper()
        matches = [(route, captured) for route in ROUTES if (captured := route.match(segs)) is not None]
        if not matches:
            raise HttpError(404, f"no such resource: /{'/'.join(segs)}")
        # allow_delete gates the deletion of images; the worklist's items (web_worklist.py) are
        # scheduling data that its own API adds and removes, behind the auth hook like the rest
        deleting = getattr(self, "allow_delete", False) is not False or segs[0] == "worklist"
        for route, captured in matches:
            if method in route.methods and (method != "DELETE" or deleting):
                return route.handler(self, request, segs, **captured)
        allowed = list(dict.fromkeys(m for route, _ in matches for m in route.methods if m != "DELETE" or deleting))
        reason = f"{request.method} is not supported on this resource"
        if method == "DELETE" and any("DELETE" in route.methods for route, _ in matches):
            reason = "DELETE is not enabled on this server (create_app(allow_delete=True) or serve web --allow-delete)"
        raise HttpError(405, reason, [("Allow", ", ".join(allowed))])


# -- the route table ------------------------------------------------------------------------
#: the UID segments of a path: (index of the segment naming the level, its name, what it holds)
_UID_SLOTS = (
    (0, "studies", "Study Instance UID"),
    (2, "series", "Series Instance UID"),
    (4, "instances", "SOP Instance UID"),
)


def check_path_uids(segs: list[str], policy: str) -> None:
    """400 for a UID in the path that no archive under ``policy`` can hold, before the route
    is looked up (so "/studies/<bad>/anything" names the bad UID, not a missing resource)."""
    for i, name, what in _UID_SLOTS:
        if len(segs) <= i + 1 or segs[i] != name:
            return
        check_uid(segs[i + 1], what, policy)


Handler = Callable[..., WebResponse]


@dataclass(frozen=True)
class Route:
    """One resource: path segments (literals, ``{name}`` for one segment, ``{name+}`` for one or
    more, ``{name*}`` for zero or more at the end), the methods it answers and its handler,
    called as ``handler(service, request, segs, **captured)``."""

    pattern: tuple[str, ...]
    methods: tuple[str, ...]
    handler: Handler
    _parts: tuple[tuple[str | None, str], ...] = field(init=False, repr=False, compare=False)
    _tail: tuple[str, bool] | None = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        # the pattern, read once: (literal or None, capture name) per fixed segment, then the tail
        *fixed, last = self.pattern
        tail = last if last.endswith(("+}", "*}")) else None
        parts = fixed if tail else self.pattern
        object.__setattr__(self, "_parts", tuple((None, p[1:-1]) if p.startswith("{") else (p, "") for p in parts))
        object.__setattr__(self, "_tail", None if tail is None else (tail[1:-2], tail.endswith("+}")))

    def match(self, segs: list[str]) -> dict[str, object] | None:
        parts, tail = self._parts, self._tail
        if tail is None:
            if len(segs) != len(parts):
                return None
        elif len(segs) < len(parts) + tail[1]:  # a "+" tail needs a segment
            return None
        captured: dict[str, object] = {}
        for (literal, name), seg in zip(parts, segs):
            if literal is None:
                captured[name] = seg
            elif literal != seg:
                return None
        if tail is not None:
            captured[tail[0]] = segs[len(parts) :]
        return captured


def _search(service, request, segs, **_uids) -> WebResponse:
    return web_qido.search(service, request, segs)


def _store(service, request, segs, study: str | None = None) -> WebResponse:
    return web_stow.store(service, request, study)


def _retrieve(service, request, segs, **uids) -> WebResponse:
    return web_wado.retrieve(service, request, **uids)


def _retrieve_or_zip(service, request, segs, **uids) -> WebResponse:
    return web_zip.retrieve_study_or_series(service, request, **uids)


def _wado_uri(service, request, segs) -> WebResponse:
    return web_uri.retrieve(service, request)


def _metadata(service, request, segs, **uids) -> WebResponse:
    return web_wado.metadata(service, request, **uids)


def _frames(service, request, segs, **captured) -> WebResponse:
    return web_wado.frames(service, request, **captured)


def _bulkdata(service, request, segs, **captured) -> WebResponse:
    return web_wado.bulkdata(service, request, **captured)


def _rendered(service, request, segs, **captured) -> WebResponse:
    return web_render.rendered(service, request, **captured)


def _thumbnail(service, request, segs, **captured) -> WebResponse:
    return web_render.thumbnail(service, request, **captured)


def _delete(service, request, segs, **uids) -> WebResponse:
    return web_delete.delete(service, request, **uids)


def _not_implemented(service, request, segs, **_captured) -> WebResponse:
    raise HttpError(501, f"the {segs[6]} resources are not implemented by this origin server")


def _no_such_resource(service, request, segs, **_captured) -> WebResponse:
    raise HttpError(404, f"no such resource: /{'/'.join(segs)}")


_STUDY = ("studies", "{study}")
_SERIES = (*_STUDY, "series", "{series}")
_INSTANCE = (*_SERIES, "instances", "{instance}")

#: PS3.18 10.4 (WADO-RS), 10.5 (STOW-RS), 10.6 (QIDO-RS), 9 (WADO-URI): every resource this
#: origin server has
ROUTES: tuple[Route, ...] = (
    Route(("wado",), ("GET",), _wado_uri),
    # the Modality Worklist's JSON API (web_worklist.py), not part of DICOMweb
    Route(("worklist",), ("GET", "POST"), web_worklist.collection),
    Route(("worklist", "{key}"), ("GET", "DELETE"), web_worklist.item),
    Route(("studies",), ("GET",), _search),
    Route(("studies",), ("POST",), _store),
    Route(("series",), ("GET",), _search),
    Route(("instances",), ("GET",), _search),
    Route(_STUDY, ("GET",), _retrieve_or_zip),
    Route(_STUDY, ("POST",), _store),
    Route(_STUDY, ("DELETE",), _delete),
    Route((*_STUDY, "metadata"), ("GET",), _metadata),
    Route((*_STUDY, "series"), ("GET",), _search),
    Route((*_STUDY, "instances"), ("GET",), _search),
    Route(_SERIES, ("GET",), _retrieve_or_zip),
    Route(_SERIES, ("DELETE",), _delete),
    Route((*_SERIES, "metadata"), ("GET",), _metadata),
    Route((*_SERIES, "instances"), ("GET",), _search),
    Route(_INSTANCE, ("GET",), _retrieve),
    Route(_INSTANCE, ("DELETE",), _delete),
    Route((*_INSTANCE, "metadata"), ("GET",), _metadata),
    Route((*_INSTANCE, "frames", "{frame_list}"), ("GET",), _frames),
    Route((*_INSTANCE, "bulkdata", "{path+}"), ("GET",), _bulkdata),
    # PS3.18 10.4.1.1.3/10.4.1.1.4: rendered and thumbnail resources at every level
    *(
        Route((*level, kind), ("GET",), handler)
        for level in (_STUDY, _SERIES, _INSTANCE, (*_INSTANCE, "frames", "{frame_list}"))
        for kind, handler in (("rendered", _rendered), ("thumbnail", _thumbnail))
    ),
    Route((*_INSTANCE, "pixeldata", "{rest*}"), ("GET",), _not_implemented),
    # below an instance only GET is answered: another method is a 405 even where GET is a 404
    Route((*_INSTANCE, "{rest+}"), ("GET",), _no_such_resource),
)


__all__ = [
    "WebRequest",
    "WebResponse",
    "HttpError",
    "DicomWebService",
    "ArchiveProvider",
    "Limits",
    "bearer_token_auth",
    "json_response",
    "warning",
    "check_uid",
    "uid_segment",
    "DICOM_JSON",
    "UID_RE",
    "Route",
    "ROUTES",
    "check_path_uids",
]
