"""The HTTP vocabulary of the DICOMweb core: request, response, error answers and UID segments.

Shared by the router (``web_core``) and the services (``web_qido``, ``web_wado``, ``web_stow``)
and importing none of them, so that the services never import the router that calls them.
"""

from __future__ import annotations

import json
import re
import unicodedata
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from urllib.parse import quote, unquote

from ..ingest import MAX_UID_BYTES

DICOM_JSON = "application/dicom+json"
UID_RE = re.compile(r"^[0-9]+(\.[0-9]+)*$")


@dataclass
class WebRequest:
    """One HTTP request, as the core sees it.

    ``path`` is below the DICOMweb root, as sent: percent-encoded (``/studies/1.2.3/series``);
    the router splits it on "/" before it decodes each segment, so that a UID holding a "/"
    (sent as ``%2F``) stays one segment. ``headers`` has lower-case names; ``base_url`` is the
    absolute URL of the DICOMweb root, used for Retrieve URLs and BulkDataURIs
    (``http://host:8042/dicomweb``).
    """

    method: str
    path: str
    query: list[tuple[str, str]] = field(default_factory=list)
    headers: Mapping[str, str] = field(default_factory=dict)
    body: Iterable[bytes] = ()
    base_url: str = ""

    def header(self, name: str, default: str | None = None) -> str | None:
        return self.headers.get(name.lower(), default)

    def segments(self) -> list[str]:
        """The path's segments, each percent-decoded after the split (empty ones dropped)."""
        return [unquote(s) for s in self.path.split("/") if s]


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


def json_response(
    payload: object, status: int = 200, headers: list[tuple[str, str]] | None = None, content_type: str = DICOM_JSON
) -> WebResponse:
    body = json.dumps(payload, ensure_ascii=False, separators=(",", ":")).encode("utf-8")
    return WebResponse(status, [("Content-Type", content_type), *(headers or [])], body)


def check_uid(value: str, what: str, policy: str = "lenient") -> str:
    """``value`` if an archive under ``uid_policy`` ``policy`` can hold it as a UID, else 400.

    "strict": digits and dots, at most 64 characters (PS3.5 9.1). "lenient" (what ingest keeps
    by default): any non-empty UID of at most ``ingest.MAX_UID_BYTES`` bytes without a
    backslash (a value separator) or a control character; such a UID that is not stored is a
    404, not a 400.
    """
    if policy == "strict":
        if len(value) > 64 or not UID_RE.match(value):
            raise HttpError(400, f"{what} {value[:80]!r} is not a valid UID (digits and dots, at most 64 characters)")
        return value
    if not value:
        raise HttpError(400, f"{what} is empty")
    size = len(value.encode("utf-8", "surrogatepass"))
    if size > MAX_UID_BYTES:
        raise HttpError(
            400,
            f"{what} {value[:80]!r}... is {size} bytes, longer than the {MAX_UID_BYTES} bytes a stored UID can have",
        )
    if "\\" in value:
        raise HttpError(400, f"{what} {value[:80]!r} has a backslash (a value separator), so it is not one UID")
    if any(unicodedata.category(c) == "Cc" for c in value):
        raise HttpError(400, f"{what} {value[:80]!r} has a control character")
    return value


def uid_segment(uid: str) -> str:
    """A UID as one URL path segment: percent-encoded, so "/" and spaces survive; a conformant
    UID (digits and dots) is unchanged."""
    return quote(uid, safe="")


def warning(service: str, text: str) -> tuple[str, str]:
    """A ``Warning: 299 <service>: <text>`` header (PS3.18 8.3.4, RFC 7234 5.5)."""
    return ("Warning", f"299 {service}: {text}")


__all__ = [
    "WebRequest",
    "WebResponse",
    "HttpError",
    "json_response",
    "check_uid",
    "uid_segment",
    "warning",
    "DICOM_JSON",
    "UID_RE",
]
