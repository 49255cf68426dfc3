"""A small JSON API for the Modality Worklist under the web server's root (``/worklist``).

    GET    /worklist[?Keyword=value...][&limit=N]   the stored items matching the filters
    POST   /worklist[?replace=true]                 add items: one DICOM JSON object or a list
    GET    /worklist/{key}                          one item
    DELETE /worklist/{key}                          remove it

Items are DICOM JSON (PS3.18 F.2); a key is ``StudyInstanceUID:ScheduledProcedureStepID``
(percent-encode it in the path). Filters follow the worklist matching rules
(pacscore/worklist/match.py); a scheduled step attribute is named by its keyword
(``Modality=CT``) or as ``ScheduledProcedureStepSequence.Modality``. The service's auth hook
guards these routes like every other. Errors: 400 for a bad filter or item (the message names
the attribute), 404 for an unknown key, 409 for a key already there (unless ``replace=true``),
413 for a body over the limit, 415 for a body that is not JSON.
"""

from __future__ import annotations

import json

from ..errors import NotFound
from ..worklist import DuplicateItem, WorklistError, items, match
from .web_http import DICOM_JSON, HttpError, WebRequest, WebResponse, json_response
from .web_multipart import parse_media_type

#: the media types a POST body may have
ACCEPTED_TYPES = (DICOM_JSON, "application/json")
_FLAGS = {"true": True, "1": True, "yes": True, "false": False, "0": False, "no": False}


def collection(service, request: WebRequest, segs: list[str]) -> WebResponse:
    """``/worklist``: GET searches (or lists), POST adds."""
    if request.method.upper() == "POST":
        return _add(service, request)
    return _search(service, request)


def item(service, request: WebRequest, segs: list[str], key: str) -> WebResponse:
    """``/worklist/{key}``: GET reads the item, DELETE removes it."""
    worklist = service.archive.worklist
    if request.method.upper() == "DELETE":
        worklist.remove(key)  # NotFound -> 404
        return WebResponse(204)
    return json_response(worklist.get(key, format="json"))


def _search(service, request: WebRequest) -> WebResponse:
    filters: dict[str, str] = {}
    limit = None
    for name, value in request.query:
        if name == "limit":
            if not value.isdigit():
                raise HttpError(400, f"limit must be a non-negative integer, not {value!r}")
            limit = int(value)
            continue
        if name in filters:
            raise HttpError(400, f"{name}: given twice")
        filters[name] = value
    worklist = service.archive.worklist
    if not filters:
        keys = worklist.keys()[:limit]
    else:
        found = worklist.find(match.keyed_identifier(filters), format="json", limit=limit)  # QueryError: 400
        keys = [items.item_key(row) for row in found]
    rows = []
    for key in keys:
        try:
            rows.append(worklist.get(key, format="json"))
        except NotFound:  # removed between the search and this read
            continue
    return json_response(rows)


def _read_body(service, request: WebRequest) -> bytes:
    limit = service.limits.max_body
    chunks, size = [], 0
    for chunk in request.body:
        size += len(chunk)
        if size > limit:
            raise HttpError(413, f"the request body exceeds the limit of {limit} bytes; nothing was added")
        chunks.append(chunk)
    return b"".join(chunks)


def _add(service, request: WebRequest) -> WebResponse:
    media = parse_media_type(request.header("content-type") or "")[0]
    if media not in ACCEPTED_TYPES:
        raise HttpError(415, f"a worklist item is sent as {DICOM_JSON} (got {media or 'no Content-Type'!r})")
    replace = False
    for name, value in request.query:
        if name != "replace" or value.lower() not in _FLAGS:
            raise HttpError(400, f"unknown parameter {name}={value!r} (only replace=true|false)")
        replace = _FLAGS[value.lower()]
    try:
        payload = json.loads(_read_body(service, request))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise HttpError(400, f"the body is not JSON: {exc}") from None
    given = payload if isinstance(payload, list) else [payload]
    if not given:
        raise HttpError(400, "the body holds no item")
    try:
        added = service.archive.worklist.add_many(given, replace=replace)  # all or none
    except DuplicateItem as exc:
        reason = str(exc).replace("add it with replace=True", "send replace=true")
        raise HttpError(409, f"{reason}; nothing was added") from None
    except WorklistError as exc:
        raise HttpError(400, f"{exc}; nothing was added") from None
    return json_response({"keys": added}, status=201, content_type="application/json")


__all__ = ["collection", "item", "ACCEPTED_TYPES"]
