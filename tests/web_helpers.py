"""Serving an ASGI app for a test: uvicorn binds port 0 itself and the test reads the port it got."""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Iterator
from typing import TYPE_CHECKING

import pytest

uvicorn = pytest.importorskip("uvicorn")

if TYPE_CHECKING:
    import httpx


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


def parts_of(response: httpx.Response) -> list[tuple[dict, bytes]]:
    """Split a multipart/related response (independent of the server's own parser)."""
    ctype = response.headers["content-type"]
    assert ctype.startswith("multipart/related"), ctype
    boundary = next(p.split("=", 1)[1].strip('"') for p in ctype.split(";") if p.strip().startswith("boundary="))
    body = response.content
    assert body.endswith(f"--{boundary}--\r\n".encode())
    out = []
    for chunk in body.split(f"--{boundary}".encode())[1:-1]:
        head, _, data = chunk.partition(b"\r\n\r\n")
        headers = {}
        for line in head.decode("latin-1").split("\r\n"):
            if ":" in line:
                k, _, v = line.partition(":")
                headers[k.strip().lower()] = v.strip()
        assert data.endswith(b"\r\n")
        out.append((headers, data[:-2]))
    return out
