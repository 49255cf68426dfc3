"""multipart/related for DICOMweb (RFC 2387, PS3.18 8.6/8.7): media-type and Accept parsing,
a streaming writer for WADO-RS responses and a streaming reader for STOW-RS requests.

Nothing here knows about HTTP frameworks or the archive: the writer turns parts into an
iterator of byte chunks, the reader turns an iterator of byte chunks into parts, each part
spooled (in memory up to a threshold, then to a temporary file) and never larger than a limit.
"""

from __future__ import annotations

import secrets
import tempfile
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from typing import BinaryIO, cast

CRLF = b"\r\n"
#: largest part-header block we accept (all the part's header lines together)
MAX_PART_HEADERS = 16 * 1024
#: chunk size used when streaming a part's bytes out
WRITE_CHUNK = 256 * 1024


class MultipartError(ValueError):
    """The request body is not well-formed multipart (a 400)."""


class PartTooLarge(Exception):
    """A part is larger than the per-part limit (a 413)."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        super().__init__(f"a part exceeds the per-part limit of {limit} bytes")


# -- media types ----------------------------------------------------------------------------
def _split_unquoted(text: str, sep: str) -> list[str]:
    """Split ``text`` on ``sep`` outside double-quoted strings."""
    out, cur, quoted, escaped = [], [], False, False
    for ch in text:
        if escaped:
            cur.append(ch)
            escaped = False
        elif ch == "\\" and quoted:
            cur.append(ch)
            escaped = True
        elif ch == '"':
            quoted = not quoted
            cur.append(ch)
        elif ch == sep and not quoted:
            out.append("".join(cur))
            cur = []
        else:
            cur.append(ch)
    out.append("".join(cur))
    return out


def _unquote(value: str) -> str:
    value = value.strip()
    if len(value) >= 2 and value[0] == value[-1] == '"':
        value = value[1:-1].replace('\\"', '"').replace("\\\\", "\\")
    return value


def parse_media_type(value: str) -> tuple[str, dict[str, str]]:
    """``'multipart/related; type="application/dicom"'`` -> ``("multipart/related", {"type": ...})``.

    The type and parameter names are lower-cased (they are case-insensitive); values are unquoted.
    """
    pieces = _split_unquoted(value or "", ";")
    media = pieces[0].strip().lower()
    params: dict[str, str] = {}
    for piece in pieces[1:]:
        name, eq, val = piece.partition("=")
        name = name.strip().lower()
        if name and eq:
            params[name] = _unquote(val)
    return media, params


@dataclass(frozen=True)
class MediaRange:
    """One entry of an Accept header."""

    media_type: str  # lower case, e.g. "multipart/related", "*/*"
    params: dict = field(default_factory=dict)
    q: float = 1.0

    def matches(self, concrete: str) -> bool:
        """Whether this range covers the concrete media type ``concrete`` (``type/subtype``)."""
        return media_matches(self.media_type, concrete)


def media_matches(pattern: str, concrete: str) -> bool:
    pattern, concrete = pattern.lower(), concrete.lower()
    if pattern in ("*/*", "*", concrete):
        return True
    ptype, _, psub = pattern.partition("/")
    ctype, _, _ = concrete.partition("/")
    return psub == "*" and ptype == ctype


def parse_accept(value: str | None) -> list[MediaRange]:
    """The entries of an Accept header, highest quality first (stable for equal q).

    Entries with q=0 are dropped. An absent or empty header gives ``[*/*]``.
    """
    if not value or not value.strip():
        return [MediaRange("*/*")]
    ranges = []
    for index, entry in enumerate(_split_unquoted(value, ",")):
        if not entry.strip():
            continue
        media, params = parse_media_type(entry)
        q = 1.0
        if "q" in params:
            try:
                q = float(params.pop("q"))
            except ValueError:
                q = 1.0
        if q <= 0 or not media:
            continue
        ranges.append((-q, index, MediaRange(media, params, q)))
    ranges.sort(key=lambda r: (r[0], r[1]))
    return [r[2] for r in ranges]


def new_boundary() -> str:
    return "pacscore-" + secrets.token_hex(16)


# -- writing --------------------------------------------------------------------------------
def part_header(boundary: str, headers: Iterable[tuple[str, str]]) -> bytes:
    lines = [f"--{boundary}"] + [f"{name}: {value}" for name, value in headers]
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")


def closing(boundary: str) -> bytes:
    return f"--{boundary}--\r\n".encode("latin-1")


def write_parts(boundary: str, parts: Iterable[tuple[list[tuple[str, str]], object]]) -> Iterator[bytes]:
    """Stream a multipart body: each part is ``(headers, content)`` where content is bytes or an
    iterator of bytes (pulled lazily, so a part is produced only when the client reads it)."""
    for headers, content in parts:
        yield part_header(boundary, headers)
        if isinstance(content, (bytes, bytearray, memoryview)):
            view = memoryview(content)
            for start in range(0, len(view), WRITE_CHUNK):
                yield bytes(view[start : start + WRITE_CHUNK])
        else:
            for chunk in cast(Iterable[bytes], content):
                if chunk:
                    yield bytes(chunk)
        yield CRLF
    yield closing(boundary)


# -- reading --------------------------------------------------------------------------------
@dataclass
class Part:
    """One part of a request body; ``file`` is positioned at its start."""

    headers: dict[str, str]
    file: BinaryIO
    size: int

    @property
    def content_type(self) -> str:
        return self.headers.get("content-type", "")

    def read(self) -> bytes:
        self.file.seek(0)
        return self.file.read()

    def close(self) -> None:
        self.file.close()


def _parse_headers(block: bytes) -> dict[str, str]:
    headers: dict[str, str] = {}
    text = block.decode("latin-1")
    for line in text.split("\r\n"):
        if not line.strip():
            continue
        if line[0] in " \t" and headers:  # obsolete line folding
            last = next(reversed(headers))
            headers[last] += " " + line.strip()
            continue
        name, colon, value = line.partition(":")
        if not colon:
            raise MultipartError(f"malformed part header line {line[:80]!r}")
        headers[name.strip().lower()] = value.strip()
    return headers


def read_parts(
    chunks: Iterable[bytes], boundary: str, *, max_part: int | None = None, spool: int = 8 * 1024 * 1024
) -> Iterator[Part]:
    """Parse a multipart body from an iterator of byte chunks, one part at a time.

    A part is yielded once it is complete; the next chunk is read only when the consumer asks
    for the next part, so at most one part (plus one chunk) is held at a time, and a part larger
    than ``spool`` bytes lives in a temporary file. The consumer owns (and closes) each part.
    Raises MultipartError for a malformed body and PartTooLarge when a part exceeds ``max_part``.
    """
    if not boundary or len(boundary) > 200:
        raise MultipartError("the multipart boundary is missing or too long")
    reader = _BodyReader(chunks, b"\r\n--" + boundary.encode("latin-1"))
    reader.skip_preamble()
    while not reader.at_close_delimiter():
        reader.skip_boundary_padding()
        headers = reader.read_part_headers()
        file, size = reader.read_part_content(max_part, spool)
        yield Part(headers=headers, file=file, size=size)


class _BodyReader:
    """The state of read_parts: a buffer over the body's chunks, filled only as a step needs.

    Each step consumes its piece of the body from the buffer: the preamble with the first
    delimiter, the padding after a delimiter, a part's headers, a part's content with the
    delimiter that ends it (RFC 2046 5.1.1)."""

    def __init__(self, chunks: Iterable[bytes], delimiter: bytes) -> None:
        self.source = iter(chunks)
        self.delim = delimiter
        #: bytes kept back while scanning content, so a delimiter split across chunks is found
        self.keep = len(delimiter) + 4
        # a leading CRLF lets the first boundary line match the delimiter even without a preamble
        self.buf = bytearray(CRLF)
        self.eof = False

    def fill(self) -> bool:
        """Append the next non-empty chunk; False at the end of the body."""
        while not self.eof:
            chunk = next(self.source, None)
            if chunk is None:
                self.eof = True
                return False
            if chunk:
                self.buf.extend(chunk)
                return True
        return False

    def skip_preamble(self) -> None:
        """Drop everything up to and including the first delimiter."""
        buf, delim = self.buf, self.delim
        scan = 0
        while True:
            idx = buf.find(delim, scan)
            if idx >= 0:
                del buf[: idx + len(delim)]
                return
            scan = max(0, len(buf) - len(delim) + 1)
            if scan > 0:
                del buf[:scan]
                scan = 0
            if not self.fill():
                raise MultipartError("no multipart boundary found in the body")

    def at_close_delimiter(self) -> bool:
        """After a delimiter: "--" closes the body."""
        while len(self.buf) < 2 and self.fill():
            pass
        return self.buf[:2] == b"--"

    def skip_boundary_padding(self) -> None:
        """After a delimiter that does not close the body: optional white space, then CRLF."""
        buf = self.buf
        while True:
            eol = buf.find(CRLF)
            if eol >= 0:
                if buf[:eol].strip(b" \t"):
                    raise MultipartError("unexpected data after a multipart boundary")
                del buf[: eol + 2]
                return
            if len(buf) > 1024 or not self.fill():
                raise MultipartError("a multipart boundary line is not terminated by CRLF")

    def read_part_headers(self) -> dict[str, str]:
        """The part's header block, up to the empty line (which may be the first line)."""
        buf = self.buf
        while True:
            if buf[:2] == CRLF:
                headers, start = {}, 2
                break
            end = buf.find(b"\r\n\r\n")
            if end >= 0:
                headers, start = _parse_headers(bytes(buf[:end])), end + 4
                break
            if len(buf) > MAX_PART_HEADERS:
                raise MultipartError(f"part headers longer than {MAX_PART_HEADERS} bytes")
            if not self.fill():
                raise MultipartError("the body ends inside a part's headers")
        del buf[:start]
        return headers

    def read_part_content(self, max_part: int | None, spool: int) -> tuple[BinaryIO, int]:
        """The part's content up to the next delimiter, spooled; (file at its start, size)."""
        buf, delim = self.buf, self.delim
        # handed to the caller, who closes it (on an error below, it is closed here)
        file = cast(BinaryIO, tempfile.SpooledTemporaryFile(max_size=spool))  # noqa: SIM115
        size = 0
        try:
            scan = 0
            while True:
                idx = buf.find(delim, scan)
                if idx >= 0:
                    size = _checked(size + idx, max_part)
                    file.write(buf[:idx])
                    del buf[: idx + len(delim)]
                    break
                flush = len(buf) - self.keep
                if flush > 0:
                    size = _checked(size + flush, max_part)
                    file.write(buf[:flush])
                    del buf[:flush]
                scan = max(0, len(buf) - len(delim) + 1)
                if not self.fill():
                    raise MultipartError("the body ends inside a part (no closing boundary)")
        except BaseException:
            file.close()
            raise
        file.seek(0)
        return file, size


def _checked(size: int, max_part: int | None) -> int:
    if max_part is not None and size > max_part:
        raise PartTooLarge(max_part)
    return size


__all__ = [
    "MultipartError",
    "PartTooLarge",
    "MediaRange",
    "Part",
    "parse_media_type",
    "parse_accept",
    "media_matches",
    "new_boundary",
    "write_parts",
    "read_parts",
]
