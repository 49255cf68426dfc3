"""The Upper Layer PDUs and DIMSE command sets the direct association loop reads and writes.

PS3.8 9.3 gives the PDU layouts (A-ASSOCIATE-RQ/AC/RJ, P-DATA-TF, A-RELEASE-RQ/RP, A-ABORT);
PS3.7 6.3.1 and 9.3 the command sets (group 0000, always Implicit VR Little Endian). Only what
dimse_direct.py needs is here: parsing an association request into plain values, writing the
answers, splitting P-DATA-TF into presentation data values and framing messages into PDUs no
longer than the peer's maximum length. Everything is bytes in and bytes out; no socket.
"""

from __future__ import annotations

import functools
import struct
from collections.abc import Iterator
from dataclasses import dataclass, field

from .dimse_encode import Unencodable, _command_elements

__all__ = [
    "APPLICATION_CONTEXT",
    "AssociateRequest",
    "ProtocolError",
    "abort_pdu",
    "associate_ac",
    "associate_rj",
    "command_bytes",
    "message_pdus",
    "parse_associate_rq",
    "parse_command",
    "pdvs",
    "RELEASE_RP",
]

#: the DICOM application context name (PS3.7 A.2.1)
APPLICATION_CONTEXT = "1.2.840.10008.3.1.1.1"
#: A-RELEASE-RP (PS3.8 9.3.7)
RELEASE_RP = b"\x06\x00\x00\x00\x00\x04\x00\x00\x00\x00"
_HEADER = struct.Struct(">BxL")
_ITEM = struct.Struct(">BxH")
_PDV = struct.Struct(">LBB")


class ProtocolError(ValueError):
    """A PDU or command set that does not follow PS3.8 / PS3.7; the association is aborted."""


@dataclass
class AssociateRequest:
    """What an A-ASSOCIATE-RQ asked for (PS3.8 9.3.2), as plain values."""

    protocol_version: int
    called_ae: bytes
    calling_ae: bytes
    application_context: str = ""
    #: (presentation context ID, abstract syntax, [transfer syntaxes]) in the order sent
    contexts: list[tuple[int, str, list[str]]] = field(default_factory=list)
    #: the largest PDU the requestor receives (0: no limit)
    max_length: int = 0
    implementation_class_uid: str = ""
    implementation_version_name: str = ""
    #: user information sub-item types other than 0x51, 0x52 and 0x55 (role selection,
    #: extended negotiation, user identity, asynchronous operations window: PS3.7 D.3.3)
    other_user_items: set[int] = field(default_factory=set)

    @property
    def calling_title(self) -> str:
        return self.calling_ae.decode("ascii", "replace").strip(" \0")


def _uid(raw: bytes) -> str:
    return raw.decode("ascii", "replace").rstrip("\0 ")


def parse_associate_rq(pdu: bytes) -> AssociateRequest:
    """An A-ASSOCIATE-RQ PDU (with its 6-byte header) as an AssociateRequest; ProtocolError
    for one that is cut short or not an A-ASSOCIATE-RQ."""
    if len(pdu) < 74 or pdu[0] != 0x01:
        raise ProtocolError("not an A-ASSOCIATE-RQ")
    (length,) = struct.unpack_from(">L", pdu, 2)
    if length + 6 != len(pdu):
        raise ProtocolError("A-ASSOCIATE-RQ length does not match")
    (version,) = struct.unpack_from(">H", pdu, 6)
    rq = AssociateRequest(version, bytes(pdu[10:26]), bytes(pdu[26:42]))
    for kind, body in _items(pdu, 74, len(pdu)):
        if kind == 0x10:
            rq.application_context = _uid(body)
        elif kind == 0x20:
            if len(body) < 4:
                raise ProtocolError("presentation context item too short")
            abstract, syntaxes = "", []
            for sub, value in _items(body, 4, len(body)):
                if sub == 0x30:
                    abstract = _uid(value)
                elif sub == 0x40:
                    syntaxes.append(_uid(value))
            rq.contexts.append((body[0], abstract, syntaxes))
        elif kind == 0x50:
            for sub, value in _items(body, 0, len(body)):
                if sub == 0x51 and len(value) == 4:
                    (rq.max_length,) = struct.unpack(">L", value)
                elif sub == 0x52:
                    rq.implementation_class_uid = _uid(value)
                elif sub == 0x55:
                    rq.implementation_version_name = value.decode("ascii", "replace").strip()
                else:
                    rq.other_user_items.add(sub)
    return rq


def _items(data: bytes, start: int, end: int) -> Iterator[tuple[int, bytes]]:
    """(item type, item body) of the variable items between ``start`` and ``end``."""
    i = start
    while i < end:
        if i + 4 > end:
            raise ProtocolError("item header cut short")
        kind, n = _ITEM.unpack_from(data, i)
        if i + 4 + n > end:
            raise ProtocolError(f"item 0x{kind:02X} longer than its PDU")
        yield kind, bytes(data[i + 4 : i + 4 + n])
        i += 4 + n


def _item(kind: int, body: bytes) -> bytes:
    return _ITEM.pack(kind, len(body)) + body


def _ascii(uid: str) -> bytes:
    return uid.encode("ascii")


def associate_ac(
    rq: AssociateRequest,
    results: list[tuple[int, int, str]],
    max_length: int,
    implementation_class_uid: str,
    implementation_version_name: str | None,
) -> bytes:
    """The A-ASSOCIATE-AC PDU (PS3.8 9.3.3) answering ``rq`` with ``results`` (presentation
    context ID, result, transfer syntax) and our user information."""
    body = bytearray(struct.pack(">H2x", 0x0001))
    body += rq.called_ae + rq.calling_ae + bytes(32)  # returned as received (PS3.8 9.3.3.1)
    body += _item(0x10, _ascii(APPLICATION_CONTEXT))
    for context_id, result, syntax in results:
        body += _item(0x21, bytes((context_id, 0, result, 0)) + _item(0x40, _ascii(syntax)))
    user = _item(0x51, struct.pack(">L", max_length)) + _item(0x52, _ascii(implementation_class_uid))
    if implementation_version_name:
        user += _item(0x55, _ascii(implementation_version_name))
    body += _item(0x50, user)
    return _HEADER.pack(0x02, len(body)) + bytes(body)


def associate_rj(result: int, source: int, reason: int) -> bytes:
    """A-ASSOCIATE-RJ (PS3.8 9.3.4)."""
    return _HEADER.pack(0x03, 4) + bytes((0, result, source, reason))


def abort_pdu(source: int = 0x02, reason: int = 0x00) -> bytes:
    """A-ABORT (PS3.8 9.3.8); source 0: service user, 2: service provider."""
    return _HEADER.pack(0x07, 4) + bytes((0, 0, source, reason))


def pdvs(body: bytes) -> Iterator[tuple[int, int, bytes]]:
    """(presentation context ID, message control header, fragment) of a P-DATA-TF's body."""
    i, end = 0, len(body)
    while i < end:
        if i + 6 > end:
            raise ProtocolError("presentation data value cut short")
        n, context_id, control = _PDV.unpack_from(body, i)
        if n < 2 or i + 4 + n > end:
            raise ProtocolError("presentation data value length does not fit its PDU")
        yield context_id, control, body[i + 6 : i + 4 + n]
        i += 4 + n


def message_pdus(context_id: int, command: bytes, data: bytes | None, max_length: int) -> bytes:
    """One DIMSE message as P-DATA-TF PDUs (PS3.8 9.3.5, PS3.8 E.2), each no longer than the
    peer's ``max_length`` (0: no limit): command and data set in one PDU when both fit."""
    if not max_length or len(command) + (len(data) + 6 if data is not None else 0) + 6 <= max_length:
        body = _PDV.pack(len(command) + 2, context_id, 0x03) + command
        if data is not None:
            body += _PDV.pack(len(data) + 2, context_id, 0x02) + data
        return _HEADER.pack(0x04, len(body)) + body
    room = max_length - 6  # a fragment and its PDV header fill one PDU
    if room < 2:
        raise ProtocolError(f"peer maximum length {max_length} too small")
    out = bytearray(_fragments(context_id, command, room, 0x01))
    if data is not None:
        out += _fragments(context_id, data, room, 0x00)
    return bytes(out)


def _fragments(context_id: int, payload: bytes, room: int, kind: int) -> bytes:
    out = bytearray()
    view = memoryview(payload)
    for start in range(0, max(len(payload), 1), room):
        part = view[start : start + room]
        last = start + room >= len(payload)
        pdv = _PDV.pack(len(part) + 2, context_id, kind | (0x02 if last else 0)) + bytes(part)
        out += _HEADER.pack(0x04, len(pdv)) + pdv
    return bytes(out)


# ---- command sets --------------------------------------------------------------------------------
#: command elements read from requests: tag -> VR (PS3.7 E.1)
_REQUEST_FIELDS = {
    0x00000002: "UI",  # Affected SOP Class UID
    0x00000100: "US",  # Command Field
    0x00000110: "US",  # Message ID
    0x00000120: "US",  # Message ID Being Responded To
    0x00000700: "US",  # Priority
    0x00000800: "US",  # Command Data Set Type
    0x00001000: "UI",  # Affected SOP Instance UID
    0x00001030: "AE",  # Move Originator AE Title
    0x00001031: "US",  # Move Originator Message ID
}
NO_DATA_SET = 0x0101


def parse_command(raw: bytes) -> dict[int, object]:
    """A command set (Implicit VR Little Endian) as {tag: value} for the elements the loop
    uses: US as int, UI / AE as str; others skipped."""
    out: dict[int, object] = {}
    i, end = 0, len(raw)
    while i < end:
        if i + 8 > end:
            raise ProtocolError("command element cut short")
        group, element, n = struct.unpack_from("<HHL", raw, i)
        value = raw[i + 8 : i + 8 + n]
        if len(value) != n or group != 0:
            raise ProtocolError("command set element malformed")
        tag = element  # group 0000
        vr = _REQUEST_FIELDS.get(tag)
        if vr == "US":
            if n != 2:
                raise ProtocolError(f"command element (0000,{tag:04X}) is not US")
            out[tag] = value[0] | (value[1] << 8)
        elif vr is not None:
            out[tag] = value.decode("ascii", "replace").rstrip("\0 ").strip()
        i += 8 + n
    return out


def command_bytes(fields: list[tuple[int, str, object]]) -> bytes:
    """A command set from (tag, VR, value) in tag order, with its group length first."""
    try:
        body = _command_elements(fields)
    except Unencodable as exc:
        raise ProtocolError(str(exc)) from None
    return _command_elements([(0x00000000, "UL", len(body))]) + body


def response_command(sop_class: str, field: int, message_id: int, status: int, data_set: bool) -> bytes:
    """The command set of a response with only a Status (the C-FIND and C-ECHO responses): the
    same bytes as ``command_bytes`` of its five fields, from a template per SOP class, command,
    status and data set type with the Message ID Being Responded To written in."""
    template, at = _response_template(sop_class, field, status, data_set)
    return template[:at] + struct.pack("<H", message_id) + template[at + 2 :]


@functools.lru_cache(maxsize=256)
def _response_template(sop_class: str, field: int, status: int, data_set: bool) -> tuple[bytes, int]:
    template = command_bytes(
        [
            (0x00000002, "UI", sop_class),
            (0x00000100, "US", field),
            (0x00000120, "US", 0),
            (0x00000800, "US", 0x0001 if data_set else NO_DATA_SET),
            (0x00000900, "US", status),
        ]
    )
    uid = len(sop_class) + len(sop_class) % 2
    at = 12 + (8 + uid) + 10 + 8  # group length, Affected SOP Class UID, Command Field, then the ID's header
    if template[at - 8 : at] != b"\x00\x00\x20\x01\x02\x00\x00\x00":
        raise ProtocolError(f"SOP class UID {sop_class!r} is not one a response command can carry")
    return template, at
