"""OHIF beside DICOMweb: the viewer's static files, its generated configuration, and CORS.

``pacscore serve web --viewer`` wraps the DICOMweb application (``dicomweb.create_app``) in
:func:`with_viewer`: requests below the DICOMweb prefix go to it unchanged; every other path is
the viewer. The viewer is OHIF's built ``dist/`` folder (``pacscore.viewer`` fetches it), served
from the same origin as /dicomweb, so the browser needs no CORS and no token to reach the data.
OHIF's build loads itself from ``/`` (its index.html says ``PUBLIC_URL="/"``), so the viewer
owns the root of the site and DICOMweb needs a prefix of its own.

- ``/app-config.js`` is generated (:func:`app_config`): one DICOMweb data source pointing at
  this server's prefix, WADO-RS image loading, thumbnails from the server's ``/thumbnail``
  resources when it has them, else from WADO-RS frames.
- Any other path is a file of the viewer's folder; a path that is not a file and does not look
  like one (no extension in its last segment, e.g. ``/viewer?StudyInstanceUIDs=...``) gets
  index.html, so the viewer's own routes survive a reload (the usual single-page-app fallback).
  A missing ``*.js`` is a 404, never index.html, so a broken install shows as one.

:func:`with_cors` (``--cors ORIGIN``) lets a viewer hosted on another origin call DICOMweb: it
answers preflight OPTIONS requests itself (before authentication: browsers send no credentials
on a preflight) and adds ``Access-Control-Allow-Origin`` and the exposed headers (the paging
``X-Total-Count`` and ``Warning``) to every DICOMweb answer to that origin.
"""

from __future__ import annotations

import json
import mimetypes
import re
from collections.abc import Awaitable, Callable, MutableMapping
from pathlib import Path
from typing import Any

import anyio

__all__ = ["app_config", "with_viewer", "with_cors", "check_origin", "thumbnails_supported"]

Scope = MutableMapping[str, Any]
ASGIApp = Callable[[Scope, Callable[[], Awaitable[dict]], Callable[[dict], Awaitable[None]]], Awaitable[None]]

#: content types the viewer needs exactly right (browsers refuse a module or wasm served as
#: text/plain, and mimetypes' answers depend on the machine's /etc/mime.types)
CONTENT_TYPES = {
    ".html": "text/html; charset=utf-8",
    ".js": "text/javascript; charset=utf-8",
    ".mjs": "text/javascript; charset=utf-8",
    ".css": "text/css; charset=utf-8",
    ".json": "application/json",
    ".map": "application/json",
    ".wasm": "application/wasm",
    ".svg": "image/svg+xml",
    ".png": "image/png",
    ".ico": "image/x-icon",
    ".woff": "font/woff",
    ".woff2": "font/woff2",
    ".ttf": "font/ttf",
    ".txt": "text/plain; charset=utf-8",
    ".onnx": "application/octet-stream",
}
#: what a cross-origin viewer may send and read (PS3.18 8.4 headers and the paging extension)
CORS_ALLOW_HEADERS = "Accept, Authorization, Content-Type, Range"
CORS_EXPOSE_HEADERS = "Content-Length, Content-Location, Content-Type, Warning, X-Total-Count"
CORS_METHODS = "GET, HEAD, POST, DELETE, OPTIONS"
_ORIGIN = re.compile(r"^https?://[A-Za-z0-9.\-]+(:[0-9]{1,5})?$|^https?://\[[0-9A-Fa-f:.]+\](:[0-9]{1,5})?$")


def check_origin(origin: str) -> str:
    """``--cors`` value: ``*`` or an origin (scheme://host[:port], no path); ValueError otherwise."""
    text = origin.strip()
    if text == "*" or _ORIGIN.match(text):
        return text
    raise ValueError(
        f"--cors: {origin!r} is not an origin (expected scheme://host[:port] such as "
        "https://viewer.example.org, without a path, or * for any origin)"
    )


def thumbnails_supported() -> bool:
    """Whether this server answers the ``/thumbnail`` resources (PS3.18 10.4.1.1.3) rather than 501."""
    from . import web_core

    placeholder = getattr(web_core, "_not_implemented", None)
    return any(route.pattern[6:7] == ("thumbnail",) and route.handler is not placeholder for route in web_core.ROUTES)


def app_config(prefix: str, *, base_url: str | None = None, thumbnails: bool | None = None) -> str:
    """OHIF's ``window.config`` for one DICOMweb data source: this server.

    ``base_url``: the DICOMweb root as clients see it (``--base-url``, behind a proxy); by
    default the page's own origin plus ``prefix``, so the same file works for any host name.
    ``thumbnails``: use the server's /thumbnail resources (default: when it has them); without
    them OHIF draws thumbnails from WADO-RS frames."""
    if thumbnails is None:
        thumbnails = thumbnails_supported()
    root_js = json.dumps(base_url.rstrip("/")) if base_url else f"window.location.origin + {json.dumps(prefix)}"
    source = {
        "friendlyName": "pacscore",
        "name": "pacscore",
        "qidoSupportsIncludeField": True,
        "imageRendering": "wadors",
        "thumbnailRendering": "thumbnail" if thumbnails else "wadors",
        "enableStudyLazyLoad": True,
        "supportsFuzzyMatching": False,
        "supportsWildcard": True,
        "staticWado": False,
        "omitQuotationForMultipartRequest": True,
        "bulkDataURI": {"enabled": True},
    }
    source_js = json.dumps(source, indent=2).replace("\n", "\n        ")
    return f"""/* Generated by pacscore (pacscore.adapters.web_viewer): OHIF reads this DICOMweb server. */
(function () {{
  const ROOT = {root_js};
  window.config = {{
    routerBasename: '/',
    showStudyList: true,
    extensions: [],
    modes: [],
    customizationService: {{}},
    maxNumberOfWebWorkers: 2,
    showWarningMessageForCrossOrigin: false,
    showCPUFallbackMessage: true,
    showLoadingIndicator: true,
    strictZSpacingForVolumeViewport: true,
    maxNumRequests: {{ interaction: 100, thumbnail: 5, prefetch: 10 }},
    defaultDataSourceName: 'pacscore',
    dataSources: [
      {{
        namespace: '@ohif/extension-default.dataSourcesModule.dicomweb',
        sourceName: 'pacscore',
        configuration: Object.assign({source_js}, {{
          qidoRoot: ROOT,
          wadoRoot: ROOT,
          wadoUriRoot: ROOT + '/wado',
        }}),
      }},
    ],
  }};
}})();
"""


def _header(scope: Scope, name: bytes) -> str | None:
    for key, value in scope.get("headers") or ():
        if key.lower() == name:
            return value.decode("latin-1")
    return None


async def _send_simple(send, status: int, body: bytes, headers: list[tuple[bytes, bytes]]) -> None:
    headers = [*headers, (b"content-length", str(len(body)).encode())]
    if body:
        headers.append((b"content-type", b"text/plain; charset=utf-8"))
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


class _Static:
    """The viewer's files with the SPA fallback and the generated app-config.js."""

    def __init__(self, folder: Path, config_js: str) -> None:
        self.folder = folder.resolve()
        self.config_js = config_js.encode()

    def resolve(self, path: str) -> Path | None:
        """The file a URL path names, inside the folder (None for anything outside or missing)."""
        relative = path.lstrip("/")  # ASGI's path is already percent-decoded
        if "\x00" in relative:
            return None
        try:
            candidate = (self.folder / relative).resolve()
            if candidate != self.folder and self.folder not in candidate.parents:
                return None
            return candidate if candidate.is_file() else None
        except (OSError, RuntimeError):  # a name too long for the file system, a symlink loop
            return None

    async def __call__(self, scope: Scope, receive, send) -> None:
        method = scope.get("method", "GET")
        if method not in ("GET", "HEAD"):
            await _send_simple(send, 405, b"the viewer's files are read-only\n", [(b"allow", b"GET, HEAD")])
            return
        path = scope.get("path", "/")
        no_store = [(b"cache-control", b"no-cache")]
        if path == "/app-config.js":
            await self._send(send, method, 200, self.config_js, "text/javascript; charset=utf-8", no_store)
            return
        file = self.resolve(path) if path != "/" else None
        if file is None:
            last = path.rsplit("/", 1)[-1]
            if "." in last:  # names a file that is not there: never answer a script with HTML
                await _send_simple(send, 404, f"no such file in the viewer: {path}\n".encode(), [])
                return
            file = self.folder / "index.html"
        content_type = CONTENT_TYPES.get(file.suffix.lower()) or (
            mimetypes.guess_type(file.name)[0] or "application/octet-stream"
        )
        headers = no_store if file.name == "index.html" else [(b"cache-control", b"public, max-age=3600")]
        body = await anyio.to_thread.run_sync(file.read_bytes)  # WebAssembly files are megabytes
        await self._send(send, method, 200, body, content_type, headers)

    @staticmethod
    async def _send(send, method: str, status: int, body: bytes, content_type: str, headers) -> None:
        head = [(b"content-type", content_type.encode()), (b"content-length", str(len(body)).encode()), *headers]
        await send({"type": "http.response.start", "status": status, "headers": head})
        await send({"type": "http.response.body", "body": b"" if method == "HEAD" else body})


def _under(path: str, prefix: str) -> bool:
    return path == prefix or path.startswith(prefix + "/")


def with_viewer(
    dicomweb_app: ASGIApp,
    viewer_folder: str | Path,
    *,
    prefix: str = "/dicomweb",
    base_url: str | None = None,
    thumbnails: bool | None = None,
) -> ASGIApp:
    """An ASGI app: ``dicomweb_app`` below ``prefix`` (it must have been created with that
    prefix), the viewer in ``viewer_folder`` everywhere else. Lifespan events go to
    ``dicomweb_app`` (it closes the archive at shutdown). ValueError for a prefix of "/": the
    viewer needs the root."""
    root = "/" + prefix.strip("/")
    if root == "/":
        raise ValueError("--viewer needs a DICOMweb prefix other than / (OHIF's files are served from /)")
    folder = Path(viewer_folder)
    if not (folder / "index.html").is_file():
        raise FileNotFoundError(f"{folder} has no index.html: not a built OHIF viewer")
    static = _Static(folder, app_config(root, base_url=base_url, thumbnails=thumbnails))

    async def app(scope: Scope, receive, send) -> None:
        if scope["type"] != "http" or _under(scope.get("path", ""), root):
            await dicomweb_app(scope, receive, send)
        else:
            await static(scope, receive, send)

    return app


def with_cors(app: ASGIApp, origin: str, *, prefix: str = "/dicomweb") -> ASGIApp:
    """``app`` with CORS for ``origin`` (``*`` for any) on the paths below ``prefix``."""
    allowed = check_origin(origin)
    root = "/" + prefix.strip("/") if prefix.strip("/") else ""

    def allow_origin(request_origin: str | None) -> bytes | None:
        if request_origin is None:
            return None
        if allowed == "*":
            return b"*"
        return request_origin.encode("latin-1") if request_origin == allowed else None

    async def cors_app(scope: Scope, receive, send) -> None:
        if scope["type"] != "http" or (root and not _under(scope.get("path", ""), root)):
            await app(scope, receive, send)
            return
        granted = allow_origin(_header(scope, b"origin"))
        vary = [(b"vary", b"Origin")] if allowed != "*" else []
        if scope.get("method") == "OPTIONS" and _header(scope, b"access-control-request-method") is not None:
            if granted is None:
                await _send_simple(send, 403, b"CORS: this origin is not allowed\n", vary)
                return
            headers = [
                (b"access-control-allow-origin", granted),
                (b"access-control-allow-methods", CORS_METHODS.encode()),
                (b"access-control-allow-headers", CORS_ALLOW_HEADERS.encode()),
                (b"access-control-max-age", b"600"),
                *vary,
            ]
            await _send_simple(send, 204, b"", headers)
            return
        if granted is None:
            await app(scope, receive, send)
            return

        async def send_with_cors(message: dict) -> None:
            if message["type"] == "http.response.start":
                extra = [
                    (b"access-control-allow-origin", granted),
                    (b"access-control-expose-headers", CORS_EXPOSE_HEADERS.encode()),
                    *vary,
                ]
                message = {**message, "headers": [*message.get("headers", []), *extra]}
            await send(message)

        await app(scope, receive, send_with_cors)

    return cors_app
