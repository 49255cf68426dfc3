"""An SCP that does nothing: the client's own share of every figure in benchmarks/wire.py.

    python -m benchmarks.null_scp PORT

It accepts every proposed presentation context (first transfer syntax), answers each C-FIND
at once with a final Success and no match, C-ECHO with Success, and releases when asked: one
thread per association, written with pacscore's PDU functions (pacscore/adapters/dimse_pdu.py).
Timed by the same client, it is the floor no SCP can go below: findscu's own start, request
building, logging and reading. ``wire.py`` subtracts it to show each SCP's share.
"""

from __future__ import annotations

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

#: request command field -> response command field (C-FIND, C-ECHO)
ANSWERS = {0x0020: 0x8020, 0x0030: 0x8030}


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
    """A final Success with no match (C-FIND) or Success (C-ECHO); the identifier is ignored."""
    field = ANSWERS.get(int(command.get(0x0100, 0)))
    if field is None:
        return
    sock.sendall(message_pdus(context_id, response_command(command, field), None, max_length))


def response_command(command: dict, field: int, status: int = 0x0000, with_data: bool = False) -> bytes:
    """The command set of a response to ``command`` (a data set follows when ``with_data``)."""
    return command_bytes(
        [
            (0x00000002, "UI", command.get(0x0002, "")),
            (0x00000100, "US", field),
            (0x00000120, "US", command.get(0x0110, 0)),
            (0x00000800, "US", 0x0001 if with_data else 0x0101),
            (0x00000900, "US", status),
        ]
    )


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
    serve_forever(int((argv if argv is not None else sys.argv[1:])[0]))
    return 0


if __name__ == "__main__":
    sys.exit(main())
