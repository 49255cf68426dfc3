"""The record codec: one entity's attributes as a compact binary value (pure-Python twin).

Layout (little endian)::

    u8  version (1)
    u16 n                      number of fields, sorted by tag
    n * (u32 tag, 2s vr, u32 end)   end offset of the field's value in the payload
    payload                    the values back to back: UTF-8 text; SQ as JSON

Reading one field is a binary search over the fixed-width table and one slice, so a scan can
test a key without decoding the rest of the record (the reason for the layout).
Multi-valued text keeps DICOM's backslash; sequences are lists of item dicts keyword -> value.
"""

from __future__ import annotations

import json
import struct
from typing import Any

VERSION = 1
_HEAD = struct.Struct("<BH")
_ENTRY = struct.Struct("<I2sI")
_ENTRY_SIZE = _ENTRY.size


def encode(fields: dict[int, tuple[str, Any]]) -> bytes:
    """Encode ``{tag: (vr, value)}``; value is a str, or for SQ a list of item dicts."""
    table = bytearray()
    payload = bytearray()
    for tag in sorted(fields):
        vr, value = fields[tag]
        if vr == "SQ":
            raw = json.dumps(value, ensure_ascii=False, separators=(",", ":")).encode("utf-8")
        else:
            raw = value.encode("utf-8", "surrogatepass")
        payload += raw
        table += _ENTRY.pack(tag, vr.encode("ascii"), len(payload))
    return _HEAD.pack(VERSION, len(fields)) + bytes(table) + bytes(payload)


def _decode_value(vr: bytes, raw: bytes | memoryview) -> object:
    if vr == b"SQ":
        return json.loads(bytes(raw))
    return bytes(raw).decode("utf-8", "surrogatepass")


def decode(buf: bytes | memoryview) -> dict[int, tuple[str, object]]:
    """Every field of a record as ``{tag: (vr, value)}``."""
    version, n = _HEAD.unpack_from(buf, 0)
    if version != VERSION:
        raise ValueError(f"unknown record version {version}")
    base = _HEAD.size + n * _ENTRY_SIZE
    if base > len(buf):
        raise struct.error("record table is truncated")
    out = {}
    start = 0
    for i in range(n):
        tag, vr, end = _ENTRY.unpack_from(buf, _HEAD.size + i * _ENTRY_SIZE)
        if start > end or base + end > len(buf):
            raise struct.error("record payload is truncated")
        out[tag] = (vr.decode("ascii"), _decode_value(vr, buf[base + start : base + end]))
        start = end
    return out


def get(buf: bytes | memoryview, tag: int) -> tuple[str, object] | None:
    """One field ``(vr, value)`` or None when the record lacks it (binary search)."""
    n = _HEAD.unpack_from(buf, 0)[1]
    base = _HEAD.size + n * _ENTRY_SIZE
    if base > len(buf):  # as the compiled twin: a truncated record raises, never reads a guess
        raise struct.error("record is truncated or malformed")
    lo, hi = 0, n - 1
    while lo <= hi:
        mid = (lo + hi) >> 1
        t, vr, end = _ENTRY.unpack_from(buf, _HEAD.size + mid * _ENTRY_SIZE)
        if t == tag:
            start = _ENTRY.unpack_from(buf, _HEAD.size + (mid - 1) * _ENTRY_SIZE)[2] if mid else 0
            if start > end or base + end > len(buf):
                raise struct.error("record is truncated or malformed")
            return vr.decode("ascii"), _decode_value(vr, buf[base + start : base + end])
        if t < tag:
            lo = mid + 1
        else:
            hi = mid - 1
    return None


def get_value(buf: bytes | memoryview, tag: int) -> object:
    """The value of one field, or None when absent."""
    field = get(buf, tag)
    return None if field is None else field[1]
