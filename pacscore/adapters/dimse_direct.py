"""One thread per association, reading and writing the socket itself: the direct loop.

pynetdicom runs each association as two threads (the DUL reactor and the association reactor)
that hand every PDU and every DIMSE message to each other through queues, build a primitive and
a pydicom Dataset for each command set, and negotiate through validating objects. For the
services most clients use all day (C-ECHO, C-FIND of the Q/R and worklist models, C-STORE) that
hand-over is most of the server's cost per request (docs/benchmarks-wire.md). The direct loop
serves those associations in the thread that accepted the connection: it reads the
A-ASSOCIATE-RQ, answers it from the server's ContextIndex, then reads P-DATA-TF, assembles each
request, runs the same DimseService handler pynetdicom would (same statuses, same log lines) and
writes the responses straight to the socket, several per send.

Which associations: the request is peeked at (MSG_PEEK, nothing consumed) before anything is
decided. An association is served directly when every abstract syntax it proposes is one the
loop serves or one the SCP does not support at all, its user information carries nothing but the
maximum length and implementation items (no role selection, extended negotiation, user identity
or asynchronous operations window), its calling AE title is allowed and it is not TLS. Anything
else (C-GET, C-MOVE, MPPS, storage commitment, extended negotiation, ...) is handed, untouched, to
pynetdicom as before. ``ServeConfig(direct=False)`` (``serve dimse --no-direct``) turns it off.

C-CANCEL: between two C-FIND responses the loop reads whatever has arrived without waiting; a
C-CANCEL-RQ for the running request ends it with Cancel (FE00), PS3.4 C.4.1.2.3.
"""

from __future__ import annotations

import functools
import select
import socket
import struct
import threading
import time
from collections import deque
from io import BytesIO
from types import SimpleNamespace
from typing import Any

from pydicom.dataset import Dataset
from pydicom.uid import UID
from pynetdicom import evt
from pynetdicom.dsutils import decode, encode

from ..query.identifier_raw import plain_identifier
from .dimse_common import FIND_MODELS, LOG, PENDING_ALL, PENDING_SOME
from .dimse_convert import storage_sop_classes
from .dimse_pdu import (
    APPLICATION_CONTEXT,
    NO_DATA_SET,
    RELEASE_RP,
    AssociateRequest,
    ProtocolError,
    abort_pdu,
    associate_ac,
    associate_rj,
    command_bytes,
    message_pdus,
    parse_associate_rq,
    parse_command,
    pdvs,
    response_command,
)

__all__ = ["DirectServerMixin", "direct_syntaxes", "Eligibility"]

VERIFICATION = "1.2.840.10008.1.1"
MODALITY_WORKLIST_FIND = "1.2.840.10008.5.1.4.31"
IMPLICIT_LE = "1.2.840.10008.1.2"
EXPLICIT_LE = "1.2.840.10008.1.2.1"
BIG_ENDIAN = "1.2.840.10008.1.2.2"
DEFLATED = "1.2.840.10008.1.2.1.99"
#: the longest association request the loop reads itself (larger ones go to pynetdicom)
MAX_REQUEST = 1 << 16
#: bytes of responses gathered before a send (a whole answer of a typical C-FIND is one send)
SEND_CHUNK = 1 << 16

#: the longest a C-FIND response waits in the send buffer for the ones after it, in seconds
SEND_DELAY = 0.002

C_STORE_RQ, C_FIND_RQ, C_ECHO_RQ, C_CANCEL_RQ = 0x0001, 0x0020, 0x0030, 0x0FFF


def direct_syntaxes() -> frozenset[str]:
    """The abstract syntaxes the direct loop serves: Verification, the C-FIND models (Q/R and
    Modality Worklist) and every storage SOP class the SCP accepts."""
    return frozenset([VERIFICATION, *FIND_MODELS, MODALITY_WORKLIST_FIND, *storage_sop_classes()])


class Eligibility:
    """Decides from an association request whether the direct loop serves it."""

    def __init__(self, index, allowed_calling_aets: list[str] | None) -> None:
        self.index = index
        self.served = direct_syntaxes()
        self.allowed = None if allowed_calling_aets is None else {a.strip() for a in allowed_calling_aets}

    def __call__(self, rq: AssociateRequest) -> bool:
        if rq.other_user_items or rq.application_context != APPLICATION_CONTEXT or not rq.protocol_version & 1:
            return False
        if self.allowed is not None and rq.calling_title not in self.allowed:
            return False  # pynetdicom's path rejects it and logs why (DimseService.on_requested)
        if not rq.contexts:
            return False
        by_syntax = self.index.by_syntax
        return all(abstract in self.served or abstract not in by_syntax for _, abstract, _ in rq.contexts)


def peek_request(sock: socket.socket, timeout: float | None) -> bytes | None:
    """The whole A-ASSOCIATE-RQ waiting on ``sock``, read without consuming it; None when it is
    not one, is larger than MAX_REQUEST or does not arrive in time (pynetdicom then handles
    the connection from its first byte).

    MSG_PEEK | MSG_WAITALL waits in the kernel until the bytes asked for have arrived (DCMTK
    writes a PDU's header and body separately), on a blocking socket with SO_RCVTIMEO as the
    time limit."""
    sock.settimeout(None)
    limit = 0.0 if not timeout else max(float(timeout), 0.001)
    wait = struct.pack("ll", int(limit), int((limit % 1) * 1e6))
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVTIMEO, wait)
        head = sock.recv(6, socket.MSG_PEEK | socket.MSG_WAITALL)
        if len(head) < 6 or head[0] != 0x01:
            return None
        need = int.from_bytes(head[2:6], "big") + 6
        if need > MAX_REQUEST:
            return None
        data = sock.recv(need, socket.MSG_PEEK | socket.MSG_WAITALL)
        return data if len(data) == need else None
    except OSError:  # the time limit (EAGAIN) or a reset
        return None
    finally:
        try:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVTIMEO, struct.pack("ll", 0, 0))
        except OSError:
            pass


@functools.lru_cache(maxsize=512)
def _uid(value: str) -> UID:
    """A SOP class UID as pydicom's UID (its constructor validates: worth doing once per class)."""
    return UID(value)


class _Closed(Exception):
    """The peer closed the connection, aborted, or the network timeout passed."""


class DirectAssociation:
    """What DimseService's handlers read of an association (pynetdicom's Association's names),
    for one served by the direct loop."""

    is_acceptor = True
    is_requestor = False
    accepts_encoded_identifiers = True

    def __init__(self, rq: AssociateRequest, address: tuple, ae_title: str, accepted: list) -> None:
        self.requestor = SimpleNamespace(ae_title=rq.calling_title, address=address[0], port=address[1], primitive=None)
        self.acceptor = SimpleNamespace(ae_title=ae_title)
        self.accepted_contexts = accepted
        self.closed = False

    @property
    def is_established(self) -> bool:
        return not self.closed


class _Request:
    """One DIMSE request as pynetdicom's event object looks to the handlers."""

    def __init__(self, conn: DirectConnection, context, command: dict, data: bytes | None) -> None:
        self._conn = conn
        self.assoc = conn.assoc
        self.context = context
        self.command = command
        self.data = data
        self.message_id = int(command.get(0x0110, 0))
        self.request = SimpleNamespace(
            AffectedSOPClassUID=_uid(str(command.get(0x0002, ""))),
            AffectedSOPInstanceUID=UID(str(command[0x1000])) if command.get(0x1000) else None,
            MessageID=self.message_id,
        )
        self._identifier: Dataset | None = None
        self.batched = False

    @property
    def identifier(self) -> Dataset:
        if self._identifier is None:
            syntax = str(self.context.transfer_syntax)
            self._identifier = decode(
                BytesIO(self.data or b""), syntax == IMPLICIT_LE, syntax != BIG_ENDIAN, syntax == DEFLATED
            )
        return self._identifier

    @property
    def plain_identifier(self) -> dict[int, str] | None:
        """The identifier read straight from its bytes when every element is plain text
        (identifier_raw.plain_identifier), else None: then ``identifier`` decodes it."""
        syntax = str(self.context.transfer_syntax)
        if syntax in (IMPLICIT_LE, EXPLICIT_LE):
            return plain_identifier(self.data or b"", syntax == IMPLICIT_LE)
        return None

    def rows_in_batches(self):
        """Called by dimse_encode.encoded_results when the answers come from the archive's
        batched reader: responses are then sent per batch (and at the end), not the first at
        once; returns what it calls between two batches."""
        self.batched = True
        return self._conn._flush

    @property
    def is_cancelled(self) -> bool:
        return self._conn.cancelled(self.message_id)


class DirectConnection:
    """One association served by the direct loop, from the A-ASSOCIATE-AC to its end."""

    def __init__(self, server, sock: socket.socket, address: tuple, rq: AssociateRequest) -> None:
        self.server = server
        self.sock = sock
        self.address = address
        self.rq = rq
        self.service = server.direct_service
        self.buffer = bytearray()
        self.out = bytearray()
        self.messages: deque = deque()  # complete requests read ahead (C-CANCEL, while a C-FIND runs)
        self.parts: dict[str, list[bytes]] = {"command": [], "data": []}
        self.pending_command: tuple[Any, dict] | None = None
        self.peer_max = rq.max_length
        self.contexts: dict[int, Any] = {}
        self.assoc: DirectAssociation | None = None

    # ---- association -----------------------------------------------------------------------
    def run(self, request_bytes: bytes) -> None:
        self.sock.recv(len(request_bytes), socket.MSG_WAITALL)  # consume what was peeked
        self.sock.settimeout(self.server.direct_network_timeout)
        if self.server.direct_nodelay:
            try:
                self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            except OSError:
                pass
        results, accepted = self._negotiate()
        self.assoc = DirectAssociation(self.rq, self.address, self.server.ae_title, accepted)
        if not self.server.direct_admit():
            self._send(associate_rj(0x02, 0x03, 0x02))  # transient, provider, local limit exceeded
            self._event(evt.EVT_REJECTED)
            return
        try:
            ae = self.server.ae
            self._send(
                associate_ac(
                    self.rq, results, ae.maximum_pdu_size, ae.implementation_class_uid, ae.implementation_version_name
                )
            )
            self._event(evt.EVT_ESTABLISHED)
            how = self._serve()
        except _Closed:
            how = evt.EVT_ABORTED
        except ProtocolError as exc:
            LOG.info("assoc from %s: aborted, %s", self.address[0], exc)
            self._send_quietly(abort_pdu(0x02, 0x00))
            how = evt.EVT_ABORTED
        except Exception:
            LOG.exception("assoc from %s: aborted, the direct loop failed", self.address[0])
            self._send_quietly(abort_pdu(0x02, 0x00))
            how = evt.EVT_ABORTED
        self.assoc.closed = True
        self._event(how)

    def _negotiate(self) -> tuple[list[tuple[int, int, str]], list]:
        """PS3.8 9.3.3.2 per proposed context, the same answers as dimse_negotiation.negotiate
        gives a request without role selection."""
        index = self.server.context_index
        answers: dict[tuple[int, str], tuple[int, int, str]] = {}
        for context_id, abstract, syntaxes in self.rq.contexts:
            first = syntaxes[0] if syntaxes else ""
            if abstract not in index.by_syntax:
                answers[(context_id, abstract)] = (context_id, 0x03, first)
                continue
            chosen = index.preferred_syntax(abstract, syntaxes)
            answers[(context_id, abstract)] = (context_id, 0x04, first) if chosen is None else (context_id, 0, chosen)
        results = sorted(answers.values())
        accepted = []
        for (context_id, abstract), (_, result, syntax) in sorted(answers.items()):
            if result == 0:
                cx = SimpleNamespace(context_id=context_id, abstract_syntax=UID(abstract), transfer_syntax=UID(syntax))
                self.contexts[context_id] = cx
                accepted.append(cx)
        return results, accepted

    def _event(self, kind) -> None:
        handler = {
            evt.EVT_ESTABLISHED: self.service.on_established,
            evt.EVT_REJECTED: self.service.on_rejected,
            evt.EVT_RELEASED: self.service.on_closed,
            evt.EVT_ABORTED: self.service.on_closed,
        }[kind]
        try:
            handler(SimpleNamespace(assoc=self.assoc, event=kind))
        except Exception:
            LOG.exception("association event handler failed")

    # ---- the request loop ------------------------------------------------------------------
    def _serve(self):
        """Requests until the peer releases (EVT_RELEASED) or aborts / goes (EVT_ABORTED)."""
        while True:
            while not self.messages:
                self._read(block=True)
            message = self.messages.popleft()
            if message == "release":
                self._send(RELEASE_RP)
                try:
                    self.sock.shutdown(socket.SHUT_WR)
                except OSError:
                    pass
                return evt.EVT_RELEASED
            self._dispatch(*message)

    def _dispatch(self, context, command: dict, data: bytes | None) -> None:
        field = command.get(0x0100)
        request = _Request(self, context, command, data)
        if field == C_FIND_RQ:
            self._find(request)
        elif field == C_STORE_RQ:
            self._store(request)
        elif field == C_ECHO_RQ:
            code = self.service.on_echo(request)
            self._respond(request, 0x8030, self._status_fields(code))
            self._flush()
        elif field == C_CANCEL_RQ:
            pass  # for a request already answered: nothing to cancel (PS3.7 9.3.2.3)
        else:
            raise ProtocolError(f"command 0x{field or 0:04X} is not served on this association")

    def _status_fields(self, answer) -> list[tuple[int, str, object]]:
        """(0000,0900) Status and, from a status Dataset, Offending Element / Error Comment."""
        if isinstance(answer, Dataset):
            fields: list[tuple[int, str, object]] = [(0x00000900, "US", int(answer.Status))]
            if "OffendingElement" in answer:
                fields.append((0x00000901, "AT", answer.OffendingElement))
            if "ErrorComment" in answer:
                fields.append((0x00000902, "LO", str(answer.ErrorComment)))
            return fields
        return [(0x00000900, "US", int(answer))]

    def _respond(self, request: _Request, field: int, status: list, data: bytes | None = None, extra=()) -> None:
        sop_class = str(request.request.AffectedSOPClassUID)
        if len(status) == 1 and not extra and data is None:  # a Status alone: from a template
            command = response_command(sop_class, field, request.message_id, status[0][2], False)
        else:
            fields = [
                (0x00000002, "UI", sop_class),
                (0x00000100, "US", field),
                (0x00000120, "US", request.message_id),
                (0x00000800, "US", 0x0001 if data is not None else NO_DATA_SET),
                *status,
                *extra,
            ]
            fields.sort(key=lambda f: f[0])
            command = command_bytes(fields)
        self.out += message_pdus(request.context.context_id, command, data, self.peer_max)
        if len(self.out) >= SEND_CHUNK:
            self._flush()

    def _find(self, request: _Request) -> None:
        sop_class = str(request.request.AffectedSOPClassUID)
        if sop_class == MODALITY_WORKLIST_FIND:
            from .dimse_worklist import worklist_find

            answers = worklist_find(self.service, request)
        else:
            answers = self.service.on_find(request)
        syntax = str(request.context.transfer_syntax)
        implicit, little, deflated = syntax == IMPLICIT_LE, syntax != BIG_ENDIAN, syntax == DEFLATED
        pending_commands: dict[int, bytes] = {}
        first: float | None = None  # when the responses waiting in self.out began to wait
        context_id = request.context.context_id
        try:
            for answer, identifier in answers:
                code = int(answer.Status) if isinstance(answer, Dataset) else int(answer)
                if code in (PENDING_ALL, PENDING_SOME) and identifier is not None:
                    data = (
                        identifier if isinstance(identifier, bytes) else encode(identifier, implicit, little, deflated)
                    )
                    if data is None:
                        raise ProtocolError("a C-FIND response identifier could not be encoded")
                    command = pending_commands.get(code)
                    if command is None:  # the same for every pending response of this request
                        command = pending_commands[code] = response_command(
                            sop_class, 0x8020, request.message_id, code, True
                        )
                    self.out += message_pdus(context_id, command, data, self.peer_max)
                    now = time.perf_counter()
                    if first is None:
                        first = now
                        if not request.batched:  # rows of unknown cost: the first match at once
                            self._flush()
                    elif len(self.out) >= SEND_CHUNK or now - first >= SEND_DELAY:
                        first = now
                        self._flush()
                    continue
                self._respond(request, 0x8020, self._status_fields(answer))
                return
            self._respond(request, 0x8020, self._status_fields(0x0000))
        finally:
            close = getattr(answers, "close", None)
            if close is not None:
                close()
            self._flush()

    def _store(self, request: _Request) -> None:
        assert self.assoc is not None
        instance = str(request.request.AffectedSOPInstanceUID)
        code = self.service.store_encoded(  # durable before it returns (group_commit.py)
            self.service.state(self.assoc),
            self.assoc.requestor.ae_title,
            str(request.request.AffectedSOPClassUID),
            instance,
            str(request.context.transfer_syntax),
            request.data or b"",
        )
        self._respond(request, 0x8001, self._status_fields(code), extra=[(0x00001000, "UI", instance)])
        self._flush()

    # ---- reading ---------------------------------------------------------------------------
    def cancelled(self, message_id: int) -> bool:
        """Whether a C-CANCEL-RQ for ``message_id`` has arrived (reads what is waiting, never blocks)."""
        if self.assoc is not None and self.assoc.closed:
            return False
        try:
            while self._read(block=False):
                pass
        except _Closed:
            if self.assoc is not None:
                self.assoc.closed = True
            return False
        for message in list(self.messages):
            command = None if message == "release" else message[1]
            if command is not None and command.get(0x0100) == C_CANCEL_RQ and command.get(0x0120) == message_id:
                self.messages.remove(message)
                return True
        return False

    def _read(self, block: bool) -> bool:
        """Read one PDU and queue what it completes in ``messages`` (requests as (context,
        command, data), "release"); False when not blocking and no whole PDU has arrived."""
        pdu = self._next_pdu(block)
        if pdu is None:
            return False
        kind, body = pdu
        if kind == 0x04:
            self._assemble(body)
        elif kind == 0x05:
            self.messages.append("release")
        elif kind == 0x07:
            raise _Closed
        else:
            raise ProtocolError(f"unexpected PDU type 0x{kind:02X}")
        return True

    def _assemble(self, body: bytes) -> None:
        """The PDVs of one P-DATA-TF: each request they complete is queued in ``messages``."""
        for context_id, control, fragment in pdvs(body):
            context = self.contexts.get(context_id)
            if context is None:
                raise ProtocolError(f"presentation context {context_id} was not accepted")
            if control & 0x01:  # command fragment
                self.parts["command"].append(fragment)
                if control & 0x02:
                    command = parse_command(b"".join(self.parts["command"]))
                    self.parts["command"] = []
                    if command.get(0x0800, NO_DATA_SET) == NO_DATA_SET:
                        self.messages.append((context, command, None))
                    else:
                        self.pending_command = (context, command)
            else:
                if self.pending_command is None:
                    raise ProtocolError("a data set fragment arrived before its command")
                self.parts["data"].append(fragment)
                if control & 0x02:
                    context, command = self.pending_command
                    self.messages.append((context, command, b"".join(self.parts["data"])))
                    self.parts["data"] = []
                    self.pending_command = None

    def _next_pdu(self, block: bool) -> tuple[int, bytes] | None:
        buf = self.buffer
        while True:
            if len(buf) >= 6:
                need = int.from_bytes(buf[2:6], "big") + 6
                if len(buf) >= need:
                    kind = buf[0]
                    body = bytes(buf[6:need])
                    del buf[:need]
                    return kind, body
            if not block:
                readable, _, _ = select.select([self.sock], [], [], 0)
                if not readable:
                    return None
            try:
                chunk = self.sock.recv(1 << 18)
            except TimeoutError:  # the network timeout: abort, as pynetdicom does (PS3.8 9.1.5)
                self._send_quietly(abort_pdu(0x02, 0x00))
                raise _Closed from None
            except OSError:
                raise _Closed from None
            if not chunk:
                raise _Closed
            buf += chunk

    # ---- writing ---------------------------------------------------------------------------
    def _flush(self) -> None:
        if self.out:
            data, self.out = bytes(self.out), bytearray()
            self._send(data)

    def _send(self, data: bytes) -> None:
        try:
            self.sock.sendall(data)
        except OSError:
            raise _Closed from None

    def abort(self) -> None:
        """A-ABORT from the service provider and the socket shut (another thread may call it)."""
        self._send_quietly(abort_pdu(0x02, 0x00))
        try:
            self.sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass

    def _send_quietly(self, data: bytes) -> None:
        try:
            self.sock.sendall(data)
        except OSError:
            pass


class DirectServerMixin:
    """For pynetdicom's threaded association server: serve the associations the direct loop can
    serve in the accepting thread, hand every other one to pynetdicom untouched."""

    direct_service = None  # the DimseService; None: the direct loop is off
    direct_eligible: Eligibility | None = None
    direct_network_timeout: float | None = 60
    direct_acse_timeout: float | None = 30
    direct_nodelay = True
    direct_max_associations = 10

    def _direct_init(self) -> None:
        self._direct_lock = threading.Lock()
        self._direct: set[DirectConnection] = set()

    def direct_connections(self) -> list[DirectConnection]:
        """The associations the direct loop serves now (pynetdicom's are ``active_associations``)."""
        with self._direct_lock:
            return list(self._direct)

    def direct_admit(self) -> bool:
        """Whether one more association fits under the AE's limit (pynetdicom's and ours)."""
        with self._direct_lock:
            active = len(self._direct) + len(self.active_associations)  # type: ignore[attr-defined]
            return active <= self.direct_max_associations

    def finish_request(self, request, client_address) -> None:  # socketserver's hook, per connection
        if self.direct_service is None or not isinstance(request, socket.socket) or _is_tls(request):
            return super().finish_request(request, client_address)  # type: ignore[misc]
        raw = peek_request(request, self.direct_acse_timeout)
        rq = None
        if raw is not None:
            try:
                rq = parse_associate_rq(raw)
            except ProtocolError:
                rq = None
        eligible = self.direct_eligible
        if rq is None or eligible is None or not eligible(rq):
            return super().finish_request(request, client_address)
        connection = DirectConnection(self, request, client_address, rq)
        with self._direct_lock:
            self._direct.add(connection)
        try:
            connection.run(raw)
        finally:
            with self._direct_lock:
                self._direct.discard(connection)
            try:
                request.close()
            except OSError:
                pass

    def close_direct(self) -> None:
        """End every association the direct loop serves (server shutdown): A-ABORT, then the
        socket is shut, and each loop ends as aborted."""
        for connection in self.direct_connections():
            connection.abort()


def _is_tls(sock) -> bool:
    import ssl

    return isinstance(sock, ssl.SSLSocket)
