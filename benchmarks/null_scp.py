"""An SCP that does nothing: the client's own share of every figure in benchmarks/wire.py.

    python -m benchmarks.null_scp PORT [--sync-to FILE]

It accepts every proposed presentation context (first transfer syntax), answers each C-FIND
at once with a final Success and no match, C-ECHO and C-STORE with Success (keeping nothing),
and releases when asked: one thread per association, written with pacscore's PDU functions
(pacscore/adapters/dimse_pdu.py). Timed by the same client, it is the floor no SCP can go
below: findscu's or storescu's own start, request building, logging and reading. ``wire.py``
subtracts it to show each SCP's share.

With ``--sync-to FILE`` each C-STORE data set is first written to FILE (preallocated, written
in turn, wrapping around) and ``fdatasync``ed: one sync per acknowledged instance, the least a
durable SCP could do (a write-ahead log with nothing behind it). ``wire_store.py`` runs both.
"""

from __future__ import annotations

import argparse
import os
import socket
import sys
import threading
from collections.abc import Callable

from pacscore.adapters.dimse_pdu import (
    RELEASE_RP,
    associate_ac,
    command_bytes,
    message_pdus,
    parse_associate_rq,
    parse_command,
    pdvs,
)

#: request command field -> response command field (C-FIND, C-ECHO, C-STORE)
ANSWERS = {0x0020: 0x8020, 0x0030: 0x8030, 0x0001: 0x8001}
C_STORE_RQ = 0x0001
LOG_BYTES = 64 << 20  # the --sync-to file: preallocated once, written round


def _pdu(sock: socket.socket, buf: bytearray) -> bytes | None:
    while True:
        if len(buf) >= 6:
            need = int.from_bytes(buf[2:6], "big") + 6
            if len(buf) >= need:
                pdu = bytes(buf[:need])
                del buf[:need]
                return pdu
        chunk = sock.recv(1 << 16)
        if not chunk:
            return None
        buf += chunk


def _answer(sock: socket.socket, context_id: int, command: dict, max_length: int, data: bytes | None = None) -> None:
    """A final Success with no match (C-FIND) or Success (C-ECHO, C-STORE); data sets ignored."""
    field = ANSWERS.get(int(command.get(0x0100, 0)))
    if field is None:
        return
    sock.sendall(message_pdus(context_id, response_command(command, field), None, max_length))


class SyncedLog:
    """The ``--sync-to`` file: each data set written at the next offset and fdatasynced."""

    def __init__(self, path: str) -> None:
        self._fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_TRUNC, 0o644)
        chunk = b"\0" * (1 << 20)
        for _ in range(LOG_BYTES // len(chunk)):  # written, not sparse: a sync then writes data only
            os.write(self._fd, chunk)
        os.fsync(self._fd)
        self._at = 0
        self._lock = threading.Lock()

    def append(self, data: bytes) -> None:
        with self._lock:
            if self._at + len(data) > LOG_BYTES:
                self._at = 0
            os.pwrite(self._fd, data, self._at)
            self._at += len(data)
            os.fdatasync(self._fd)


def synced_answer(log: SyncedLog) -> Responder:
    """``_answer``, with each C-STORE data set made durable in ``log`` before its Success."""

    def answer(sock: socket.socket, context_id: int, command: dict, max_length: int, data: bytes | None = None) -> None:
        if int(command.get(0x0100, 0)) == C_STORE_RQ:
            log.append(data or b"")
        _answer(sock, context_id, command, max_length, data)

    return answer


def response_command(command: dict, field: int, status: int = 0x0000, with_data: bool = False) -> bytes:
    """The command set of a response to ``command`` (a data set follows when ``with_data``)."""
    fields = [
        (0x00000002, "UI", command.get(0x0002, "")),
        (0x00000100, "US", field),
        (0x00000120, "US", command.get(0x0110, 0)),
        (0x00000800, "US", 0x0001 if with_data else 0x0101),
        (0x00000900, "US", status),
    ]
    if 0x1000 in command:  # C-STORE: the Affected SOP Instance UID goes back (PS3.7 9.3.1.2)
        fields.append((0x00001000, "UI", command[0x1000]))
    return command_bytes(fields)


#: what answers one request: (socket, context id, command, peer's maximum PDU length, data set or None)
Responder = Callable[[socket.socket, int, dict, int, "bytes | None"], None]


def serve_one(sock: socket.socket, answer: Responder = _answer, syntaxes: dict | None = None) -> None:
    """One association, from its request to its release (or the peer's close). Every proposed
    context is accepted with its first transfer syntax; when ``syntaxes`` is given it is filled
    with context id -> that syntax (for a responder that decodes the data sets)."""
    with sock:
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        buf = bytearray()
        first = _pdu(sock, buf)
        if first is None:
            return
        rq = parse_associate_rq(first)
        if syntaxes is not None:
            syntaxes.update({cid: ts[0] for cid, _, ts in rq.contexts})
        sock.sendall(associate_ac(rq, [(cid, 0, ts[0]) for cid, _, ts in rq.contexts], 16384, "1.2.3.4", "NULLSCP"))
        parts = b""
        data = b""
        waiting: tuple[int, dict] | None = None
        while (pdu := _pdu(sock, buf)) is not None:
            if pdu[0] == 0x05:
                sock.sendall(RELEASE_RP)
                return
            if pdu[0] != 0x04:
                return
            for context_id, control, fragment in pdvs(pdu[6:]):
                if control & 1:
                    parts += fragment
                    if control & 2:
                        command, parts = parse_command(parts), b""
                        if command.get(0x0800) == 0x0101:
                            answer(sock, context_id, command, rq.max_length, None)
                        else:
                            waiting = (context_id, command)
                elif waiting is not None:
                    data += fragment
                    if control & 2:
                        answer(sock, *waiting, rq.max_length, data)
                        waiting, data = None, b""


def serve_forever(port: int, per_association: Callable[[socket.socket], None] = serve_one) -> None:
    """Accept on 127.0.0.1:``port`` and serve each association in its own thread."""
    server = socket.create_server(("127.0.0.1", port), reuse_port=False)
    while True:
        sock, _ = server.accept()
        threading.Thread(target=per_association, args=(sock,), daemon=True).start()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="benchmarks.null_scp")
    parser.add_argument("port", type=int)
    parser.add_argument("--sync-to", help="fdatasync each C-STORE data set to this file before answering")
    args = parser.parse_args(argv)
    if args.sync_to:
        answer = synced_answer(SyncedLog(args.sync_to))
        serve_forever(args.port, lambda sock: serve_one(sock, answer))
    else:
        serve_forever(args.port)
    return 0


if __name__ == "__main__":
    sys.exit(main())
