"""``pacscore serve dimse`` ends on SIGTERM even while a peer holds an association open: the
SCP aborts open associations when it stops (their threads would keep the process alive until
the peer released or the network timeout passed)."""

from __future__ import annotations

import signal
from pathlib import Path

import pytest

import pacscore

from .dimse_helpers import serve_dimse_process

pynetdicom = pytest.importorskip("pynetdicom")

ROOT = Path(__file__).resolve().parent.parent
WAIT = 30.0  # seconds: far below the --network-timeout below, far above a normal shutdown


@pytest.mark.parametrize("options", [[], ["--no-direct"]], ids=["direct-loop", "pynetdicom"])
def test_sigterm_stops_serve_dimse_while_an_association_is_open(tmp_path, options):
    from pynetdicom import AE
    from pynetdicom.sop_class import Verification

    pacscore.open(tmp_path / "arc").close()
    assoc = None
    server = serve_dimse_process(tmp_path / "arc", "--network-timeout", "600", *options, stop=signal.SIGKILL, wait=WAIT)
    with server as (proc, port, logged):
        try:
            ae = AE(ae_title="HOLDER")
            ae.add_requested_context(Verification)
            assoc = ae.associate("127.0.0.1", port, ae_title="PACSCORE")
            assert assoc.is_established
            proc.send_signal(signal.SIGTERM)
            assert proc.wait(WAIT) == 0, "".join(logged)
        finally:
            if assoc is not None and assoc.is_established:
                assoc.abort()


def test_a_server_on_a_shared_listening_socket_shuts_down_cleanly(tmp_path):
    """The server ``serve dimse --processes`` runs in each process (ServeConfig.listen_socket)
    stops with ``shutdown()`` like one bound by ``serve()`` itself."""
    import socket

    from pynetdicom import AE
    from pynetdicom.sop_class import Verification

    from pacscore.adapters import dimse

    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen(5)
    sock.setblocking(False)
    with pacscore.open(tmp_path / "arc") as arc:
        server = dimse.serve(arc, dimse.ServeConfig(port=0, block=False, listen_socket=sock))
        ae = AE(ae_title="ECHO")
        ae.add_requested_context(Verification)
        assoc = ae.associate("127.0.0.1", sock.getsockname()[1], ae_title="PACSCORE")
        assert assoc.is_established and assoc.send_c_echo().Status == 0x0000
        assoc.release()
        server.shutdown()
        assert server not in server.ae._servers
