"""Serving an ASGI app for a test: uvicorn binds port 0 itself and the test reads the port it got."""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Iterator

import pytest

uvicorn = pytest.importorskip("uvicorn")


@contextlib.contextmanager
def serving(app) -> Iterator[int]:
    """``app`` served by uvicorn in a background thread on 127.0.0.1; yields the bound port.

    uvicorn binds port 0, so the kernel picks a free port and no other process can take it
    between a pick and a bind; the port is read from the listening socket once it is up."""
    config = uvicorn.Config(
        app, host="127.0.0.1", port=0, log_level="warning", access_log=False, lifespan="off", timeout_keep_alive=30
    )
    srv = uvicorn.Server(config)
    thread = threading.Thread(target=srv.run, daemon=True)
    thread.start()
    try:
        deadline = time.monotonic() + 20
        while not srv.started:  # polled: how long a start takes depends on the machine's load
            assert thread.is_alive() and time.monotonic() < deadline, "uvicorn did not start"
            time.sleep(0.02)
        yield srv.servers[0].sockets[0].getsockname()[1]
    finally:
        srv.should_exit = True
        thread.join(15)
