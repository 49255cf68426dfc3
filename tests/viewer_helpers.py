"""``pacscore serve web`` as a child process for a test: it binds port 0 itself and the test
reads the address from the command's start-up line, so no free-port race and no fixed sleep."""

from __future__ import annotations

import contextlib
import os
import queue
import re
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

START_SECONDS = 120  # a deadline for a failure message on a loaded machine, not a measurement
#: the command's own start-up line, printed once the socket listens: it names the port it got
_RUNNING = re.compile(r"pacscore DICOMweb on (http://127\.0\.0\.1:\d+)/")


@contextlib.contextmanager
def serve_web(args: list[str], log: Path, env: dict[str, str] | None = None) -> Iterator[str]:
    """``pacscore serve web --port 0 ARGS`` until the block ends; yields ``http://127.0.0.1:PORT``.

    A thread reads the server's output and log line by line into ``log`` (so that a full pipe never stalls
    the server) and hands each line to the test until the start-up line has come."""
    cmd = [sys.executable, "-m", "pacscore", "serve", "web", "--port", "0", *args]
    full_env = {**os.environ, "PYTHONUNBUFFERED": "1", **(env or {})}
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=full_env)
    lines: queue.Queue[str | None] = queue.Queue()
    threading.Thread(target=_read_log, args=(proc.stdout, log, lines), daemon=True).start()
    seen: list[str] = []
    try:
        url = None
        deadline = time.monotonic() + START_SECONDS
        while url is None:
            try:
                line = lines.get(timeout=max(0.0, deadline - time.monotonic()))
            except queue.Empty:
                line = None
            if line is None:  # the deadline passed, or the server closed its log (it exited)
                break
            seen.append(line)
            found = _RUNNING.search(line)
            url = found.group(1) if found else None
        assert url, f"serve web did not start (exit {proc.poll()}):\n{''.join(seen)}"
        yield url
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def _read_log(stream, path: Path, lines: queue.Queue) -> None:
    with open(path, "w") as out:
        for line in stream:
            out.write(line)
            out.flush()
            lines.put(line)
    lines.put(None)
