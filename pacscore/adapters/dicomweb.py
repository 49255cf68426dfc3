"""DICOMweb for a pacscore archive: QIDO-RS, WADO-RS and STOW-RS as a Starlette ASGI app.

    from pacscore.adapters.dicomweb import create_app, bearer_token_auth
    app = create_app("archive/", auth=bearer_token_auth("s3cret"))   # any ASGI server
    # uvicorn module:app --port 8042  ->  http://127.0.0.1:8042/dicomweb/studies

or ``pacscore serve web --archive archive/ --port 8042`` (the command lives in
``pacscore.cli_serve``). The app can be mounted inside another Starlette/FastAPI application
(``Mount("/pacs", app=create_app(...))``); URLs it hands out (Retrieve URL, BulkDataURI) follow
the mount point.

The protocol work lives in framework-neutral modules (``web_http``: request, response, errors;
``web_core``: the route table, auth, limits; ``web_qido``, ``web_wado``, ``web_stow``: the three
services; ``web_multipart``: multipart/related in and out). This module only bridges them to
ASGI: every request runs in a worker thread (the archive blocks on LMDB and blob reads), the
request body is pulled from the event loop chunk by chunk as the STOW-RS parser asks for it, and
response bodies are streamed.
"""

from __future__ import annotations

import contextlib
import logging
from urllib.parse import quote, unquote

from .web_core import (
    DEFAULT_LIMIT,
    DEFAULT_MAX_BODY,
    DEFAULT_MAX_PART,
    DEFAULT_MAX_RESULTS,
    DEFAULT_SPOOL,
    DicomWebService,
    HttpError,
    WebRequest,
    WebResponse,
    bearer_token_auth,
)

LOG = logging.getLogger("pacscore.dicomweb")


def _join_headers(items) -> dict[str, str]:
    headers: dict[str, str] = {}
    for name, value in items:
        name = name.lower()
        headers[name] = f"{headers[name]}, {value}" if name in headers else value
    return headers


_FORWARDED = ("forwarded", "x-forwarded-host", "x-forwarded-proto", "x-forwarded-for", "x-forwarded-port")
_DEFAULT_PORTS = {"http": 80, "https": 443}


def _request_base(request, root: str) -> str:
    """The absolute URL of the DICOMweb root as this request's client sees it.

    Built from the Host header and the mount point (root_path). Some clients (dicomweb-client)
    send ``Host`` without the port; when the request did not come through a proxy (no
    Forwarded / X-Forwarded-* headers) the port the server listens on is put back. Behind a
    proxy, pass ``base_url`` (``--base-url``) instead of relying on headers.
    """
    url = request.url.replace(path=request.scope.get("root_path", "") or "/", query="", fragment="")
    server = request.scope.get("server")
    host = request.headers.get("host", "")
    if (
        server
        and server[1]
        and ":" not in host.rsplit("]", 1)[-1]
        and not any(h in request.headers for h in _FORWARDED)
        and server[1] != _DEFAULT_PORTS.get(url.scheme)
    ):
        url = url.replace(port=server[1])
    base = str(url).rstrip("/")
    return base + root


def _raw_tail(scope, tail: str) -> str:
    """The path below the DICOMweb root as the client sent it (still percent-encoded).

    Starlette's ``path`` is decoded, so a UID holding "/" (sent as ``%2F``) would become two
    segments; ASGI's ``raw_path`` keeps it. The root's own segments are counted on the decoded
    path (the decoded ``tail`` is what follows them) and skipped on the raw one. Without a
    ``raw_path``, or one that does not decode to the same tail, the decoded tail is used.
    """
    raw = scope.get("raw_path")
    decoded = "/" + tail
    path = scope.get("path", "")
    if not raw or not path.endswith(tail):
        return _quote_path(decoded)
    head = path[: len(path) - len(tail)]
    skip = head.count("/") + (0 if head.endswith("/") else 1)
    raw_tail = "/" + "/".join(raw.decode("latin-1").split("/")[skip:])
    if unquote(raw_tail) != decoded:
        return _quote_path(decoded)
    return raw_tail


def _quote_path(decoded: str) -> str:
    """A decoded path as a raw one: its "/" separate segments, anything else is encoded."""
    return "/".join(quote(seg, safe="") for seg in decoded.split("/"))


def create_app(
    archive_or_folder: object,
    *,
    prefix: str = "/dicomweb",
    auth=None,
    max_body: int = DEFAULT_MAX_BODY,
    max_part: int = DEFAULT_MAX_PART,
    max_results: int = DEFAULT_MAX_RESULTS,
    default_limit: int = DEFAULT_LIMIT,
    spool: int = DEFAULT_SPOOL,
    base_url: str | None = None,
    open_options: dict | None = None,
    find_options: dict | None = None,
    allow_delete=False,
):
    """A Starlette application serving DICOMweb under ``prefix`` for an archive.

    ``archive_or_folder``: a ``pacscore.Archive`` (used as it is; the caller closes it) or an
    archive folder (opened lazily in every process that serves requests, closed on shutdown).
    ``auth``: ``callable(headers) -> bool | None`` (lower-case header names); anything but True
    answers 401. ``bearer_token_auth(token)`` is one. ``max_body`` / ``max_part``: STOW-RS limits
    in bytes (413 above them). ``max_results``: the most results in one QIDO-RS response;
    ``default_limit``: the page size when a search gives no ``limit``. ``base_url``: the
    absolute URL of the DICOMweb root as clients see it (default: from each request).
    ``find_options``: matching options for every QIDO-RS search (``{"empty_record_matches":
    False}``, docs/matching.md), passed per query whatever the archive was opened with; the
    resource and the request's parameters decide relational, combined date-time matching and
    the rest (ValueError for an unknown option or one of those). ``allow_delete``: DELETE of
    studies, series and instances (off: 405); True, or ``callable(headers) -> bool`` to decide
    per request (403 when it says no); always behind ``auth``.
    """
    import anyio
    from starlette.applications import Starlette
    from starlette.requests import Request
    from starlette.responses import Response, StreamingResponse
    from starlette.routing import Route

    service = DicomWebService(
        archive_or_folder,
        auth=auth,
        max_body=max_body,
        max_part=max_part,
        max_results=max_results,
        default_limit=default_limit,
        spool=spool,
        open_options=open_options,
        find_options=find_options,
        allow_delete=allow_delete,
    )
    root = "/" + prefix.strip("/") if prefix.strip("/") else ""
    fixed_base = base_url.rstrip("/") if base_url else None

    def body_reader(request: Request):
        """A blocking iterator over the request body, for use in a worker thread."""
        stream = request.stream()

        async def pull():
            try:
                return await stream.__anext__()
            except StopAsyncIteration:
                return None

        def chunks():
            while True:
                chunk = anyio.from_thread.run(pull)
                if chunk is None:
                    return
                if chunk:
                    yield chunk

        return chunks()

    def to_starlette(answer: WebResponse, head: bool):
        body = answer.body
        if head:
            body = b""
        if isinstance(body, (bytes, bytearray)):
            response = Response(content=bytes(body), status_code=answer.status)
            if answer.status in (204, 304):
                response.raw_headers = [(k, v) for k, v in response.raw_headers if k != b"content-length"]
        else:
            response = StreamingResponse(body, status_code=answer.status)
        for name, value in answer.headers:
            response.raw_headers.append((name.lower().encode("latin-1"), value.encode("latin-1")))
        return response

    async def endpoint(request: Request):
        base = fixed_base or _request_base(request, root)
        has_body = request.method in ("POST", "PUT")
        web_request = WebRequest(
            method=request.method,
            path=_raw_tail(request.scope, request.path_params.get("path", "")),
            query=list(request.query_params.multi_items()),
            headers=_join_headers(request.headers.items()),
            body=body_reader(request) if has_body else (),
            base_url=base,
        )
        answer = await anyio.to_thread.run_sync(service.handle, web_request)
        return to_starlette(answer, request.method == "HEAD")

    @contextlib.asynccontextmanager
    async def lifespan(app):
        try:
            yield
        finally:
            service.close()

    methods = ["GET", "HEAD", "POST", "PUT", "DELETE", "PATCH", "OPTIONS"]
    routes = [Route(root + "/{path:path}", endpoint, methods=methods)]
    if root:
        routes.append(Route(root, endpoint, methods=methods))
    app = Starlette(routes=routes, lifespan=lifespan)
    app.state.dicomweb = service
    return app


def serve(archive_or_folder: object, host: str = "127.0.0.1", port: int = 8042, **app_options) -> None:
    """Serve an archive (blocking) with uvicorn; ``app_options`` go to create_app."""
    import uvicorn

    uvicorn.run(create_app(archive_or_folder, **app_options), host=host, port=port, access_log=True)


__all__ = ["create_app", "bearer_token_auth", "serve", "DicomWebService", "WebRequest", "WebResponse", "HttpError"]
