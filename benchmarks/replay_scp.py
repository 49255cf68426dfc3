"""An SCP that answers each C-FIND from memory with pacscore's responses: the client's own cost.

    python -m benchmarks.replay_scp ARCHIVE PORT

The first time an identifier arrives (its bytes, per transfer syntax and SOP class) the answer
is computed with pacscore (``archive.find`` with the options benchmarks/wire.py serves with)
and kept as the encoded responses; every later arrival of the same bytes is answered from
memory in one send. Timed by the same client over a kept association ((t_R - t_1) / (R - 1) in
wire.py, so the one computation is not counted), it is what findscu and the loopback spend on
pacscore's matches: no SCP that returns them can be faster, so Orthanc's time over the
replay's is the highest ratio to Orthanc any SCP could show for that query. Like
benchmarks/null_scp.py (whose loop it uses), a thread per association.
"""

from __future__ import annotations

import io
import socket
import sys
import threading
import warnings

from pynetdicom.dsutils import decode, encode

from benchmarks import null_scp
from pacscore.adapters.dimse_common import FIND_MODELS
from pacscore.adapters.dimse_pdu import message_pdus

IMPLICIT_LE = "1.2.840.10008.1.2"
BIG_ENDIAN = "1.2.840.10008.1.2.2"
#: the options of ``python -m benchmarks.wire serve`` (the suite needs them)
FIND_OPTIONS = {"relational": True, "combined_datetime": True}


class Replay:
    """The responses of each identifier seen so far, and the archive that computes new ones."""

    def __init__(self, archive) -> None:
        self.archive = archive
        self.answers: dict[tuple[str, str, bytes], list[bytes]] = {}
        self.lock = threading.Lock()

    def serve(self, sock: socket.socket) -> None:
        syntaxes: dict[int, str] = {}

        def answer(sock: socket.socket, context_id: int, command: dict, max_length: int, data: bytes | None) -> None:
            if data is None or int(command.get(0x0100, 0)) != 0x0020:
                null_scp._answer(sock, context_id, command, max_length)
                return
            key = (syntaxes.get(context_id, IMPLICIT_LE), str(command.get(0x0002, "")), data)
            with self.lock:
                responses = self.answers.get(key)
                if responses is None:
                    responses = self.answers[key] = self._compute(*key)
            pending = null_scp.response_command(command, 0x8020, 0xFF00, with_data=True)
            out = bytearray()
            for identifier in responses:
                out += message_pdus(context_id, pending, identifier, max_length)
            out += message_pdus(context_id, null_scp.response_command(command, 0x8020), None, max_length)
            sock.sendall(out)

        null_scp.serve_one(sock, answer, syntaxes)

    def _compute(self, syntax: str, sop_class: str, data: bytes) -> list[bytes]:
        """pacscore's matches of the identifier, each encoded in the context's syntax."""
        implicit, little = syntax == IMPLICIT_LE, syntax != BIG_ENDIAN
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            ds = decode(io.BytesIO(data), implicit, little)
            level = str(ds.QueryRetrieveLevel).strip()
            model = FIND_MODELS.get(sop_class, "STUDY")
            found = self.archive.find(ds, level=level, model=model, **FIND_OPTIONS)
            return [encode(match, implicit, little) for match in found]


def main(argv: list[str] | None = None) -> int:
    import pacscore

    archive_path, port = (argv if argv is not None else sys.argv[1:])[:2]
    with pacscore.open(archive_path, readonly=True) as arc:
        null_scp.serve_forever(int(port), per_association=Replay(arc).serve)
    return 0


if __name__ == "__main__":
    sys.exit(main())
