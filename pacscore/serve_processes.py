"""Serve one archive from several processes on one machine (``serve web --workers N``,
``serve dimse --processes N``).

One Python process serves queries on about one core: the matcher releases the GIL in its batch
scans, but building responses, DICOM encoding and the protocol stacks do not. So the parent
binds one listening socket and forks N children that all accept on it (a pre-forked accept,
as gunicorn and Apache's prefork do): the kernel hands each connection to one of them, a port
of 0 works (the one bound port is shared), and no option such as SO_REUSEPORT is needed.

Each child opens the archive itself (an LMDB environment never crosses a fork: the index
reopens by pid) and reads through its own reader slots; the single-writer rule of LMDB still
holds for STOW-RS and C-STORE (writers queue on LMDB's lock, across processes). Before the
fork, the parent sizes the reader table (``PACSCORE_MAX_READERS``, read by index/lmdb_index.py)
for N processes and their threads, and clears the slots of dead processes
(``env.reader_check()``).

The parent only supervises: SIGTERM or SIGINT stops every child (SIGTERM, then SIGKILL after a
grace period) and reaps it, so no zombie is left; a child that dies is replaced, unless children
keep dying, which stops the whole server. A child whose parent is killed gets SIGTERM (Linux
``PR_SET_PDEATHSIG``).
"""

from __future__ import annotations

import logging
import os
import signal
import socket
import sys
import time
import traceback
from collections.abc import Callable
from pathlib import Path

log = logging.getLogger("pacscore.serve")

__all__ = ["listen", "prepare_readers", "run", "supported", "READERS_ENV"]

#: the environment variable index/lmdb_index.py reads for LMDB's max_readers
READERS_ENV = "PACSCORE_MAX_READERS"
#: reader slots a process may hold besides its request threads (hooks, maintenance, a margin)
SPARE_READERS = 8
#: a child exiting more often than this many times a minute stops the server (a crash loop)
MAX_RESTARTS_PER_MINUTE = 5
_WATCHED = {signal.SIGTERM, signal.SIGINT, signal.SIGCHLD}


def supported() -> bool:
    """Whether this platform can serve from several processes (fork and sigtimedwait: Linux and
    most Unixes, not macOS or Windows)."""
    return hasattr(os, "fork") and hasattr(signal, "sigtimedwait")


def listen(host: str, port: int, backlog: int = 512) -> socket.socket:
    """A listening TCP socket on ``host:port`` (0: any free port), in non-blocking mode so that
    a process woken for a connection another one accepted first goes back to waiting."""
    infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
    family, _, _, _, address = infos[0]
    sock = socket.socket(family, socket.SOCK_STREAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(address)
        sock.listen(backlog)
        sock.setblocking(False)
    except BaseException:
        sock.close()
        raise
    return sock


def prepare_readers(folder: str | os.PathLike, processes: int, threads_per_process: int) -> int:
    """Size LMDB's reader table for ``processes`` serving processes and clear stale slots.

    Sets ``PACSCORE_MAX_READERS`` (inherited by the children), then opens the archive's index
    once: LMDB sizes the table when the first process opens the environment, and
    ``reader_check()`` frees the slots of processes that died holding one. Returns the number of
    slots the table has (smaller than asked when another process had the index open first;
    logged as a warning then)."""
    from .index.lmdb_index import Index

    wanted = max(256, processes * (threads_per_process + SPARE_READERS))
    os.environ[READERS_ENV] = str(wanted)
    index = Index(Path(folder) / "index", readonly=True)
    try:
        env = index.env
        stale = env.reader_check()
        slots = env.max_readers()
    finally:
        index.close()
    if stale:
        log.info("cleared %d reader slots of processes that died", stale)
    if slots < processes * (threads_per_process + 1):
        log.warning(
            "the index has %d reader slots (sized by a process that opened it first), fewer than %d "
            "processes of %d threads may use: stop the other processes and start again to resize",
            slots,
            processes,
            threads_per_process,
        )
    return slots


def run(
    processes: int, serve: Callable[[socket.socket], int | None], sock: socket.socket, *, grace: float = 30.0
) -> int:
    """Fork ``processes`` children that each call ``serve(sock)`` and supervise them until
    SIGTERM or SIGINT; returns the exit status for the command (0 after a requested stop)."""
    if processes < 1:
        raise ValueError(f"the number of processes must be at least 1, not {processes}")
    if not supported():
        raise OSError("serving from several processes needs fork() and sigtimedwait() (Linux)")
    children: dict[int, float] = {}  # pid -> start time
    exits: list[float] = []
    status = 0
    previous = signal.pthread_sigmask(signal.SIG_BLOCK, _WATCHED)
    try:
        for _ in range(processes):
            pid = _spawn(serve, sock)
            children[pid] = time.monotonic()
        while True:
            info = signal.sigtimedwait(_WATCHED, 1.0)
            for pid, code in _reap(children):
                exits.append(time.monotonic())
                log.warning("serving process %d exited (%s); starting another", pid, _describe(code))
            recent = [t for t in exits if time.monotonic() - t < 60]
            if len(recent) > MAX_RESTARTS_PER_MINUTE:
                log.error("serving processes keep exiting: stopping")
                status = 1
                break
            if info is not None and info.si_signo in (signal.SIGTERM, signal.SIGINT):
                log.info("stopping %d serving processes", len(children))
                break
            while len(children) < processes:
                pid = _spawn(serve, sock)
                children[pid] = time.monotonic()
    finally:
        _stop(children, grace)
        signal.pthread_sigmask(signal.SIG_SETMASK, previous)
    return status


def _spawn(serve: Callable[[socket.socket], int | None], sock: socket.socket) -> int:
    sys.stdout.flush()
    sys.stderr.flush()
    pid = os.fork()
    if pid:
        return pid
    code = 1
    try:  # the child: its own signals, its own exit; never returns into the parent's code
        signal.signal(signal.SIGTERM, signal.SIG_DFL)
        signal.signal(signal.SIGINT, signal.SIG_DFL)
        signal.pthread_sigmask(signal.SIG_SETMASK, set())
        _die_with_parent()
        code = serve(sock) or 0
    except KeyboardInterrupt:
        code = 0
    except BaseException:
        traceback.print_exc()
    finally:
        try:
            sys.stdout.flush()
            sys.stderr.flush()
        finally:
            os._exit(code)


def _die_with_parent() -> None:
    """Ask Linux to send this process SIGTERM when its parent dies (elsewhere: nothing)."""
    if not sys.platform.startswith("linux"):
        return
    try:
        import ctypes

        libc = ctypes.CDLL(None, use_errno=True)
        pr_set_pdeathsig = 1
        libc.prctl(pr_set_pdeathsig, signal.SIGTERM, 0, 0, 0)
    except (OSError, AttributeError):
        return
    if os.getppid() == 1:  # the parent died before the request took effect
        os.kill(os.getpid(), signal.SIGTERM)


def _reap(children: dict[int, float]) -> list[tuple[int, int]]:
    """The children that exited (pid, wait status), removed from ``children``."""
    gone = []
    while children:
        try:
            pid, code = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            break
        if pid == 0:
            break
        if children.pop(pid, None) is not None:
            gone.append((pid, code))
    return gone


def _stop(children: dict[int, float], grace: float) -> None:
    """SIGTERM every child, wait ``grace`` seconds for them, SIGKILL the rest, reap them all."""
    for pid in children:
        try:
            os.kill(pid, signal.SIGTERM)
        except ProcessLookupError:
            pass
    deadline = time.monotonic() + grace
    while children and time.monotonic() < deadline:
        _reap(children)
        if children:
            signal.sigtimedwait({signal.SIGCHLD}, min(0.5, max(0.01, deadline - time.monotonic())))
    for pid in list(children):
        log.warning("serving process %d did not stop within %.0f s: killing it", pid, grace)
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        try:
            os.waitpid(pid, 0)
        except ChildProcessError:
            pass
        children.pop(pid, None)


def _describe(code: int) -> str:
    if os.WIFSIGNALED(code):
        return f"signal {os.WTERMSIG(code)}"
    return f"status {os.waitstatus_to_exitcode(code)}"
