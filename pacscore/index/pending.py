"""The pending-blob journal: which blobs a writer may leave without an index entry.

Blob before index leaves a window in which a blob is durable but no entry points at it yet (a
store between its blob put and its index commit), and another after a commit that drops an
entry (a delete, a replaced instance) until the old blob is removed. A blob in either window
looks like an orphan to anyone who walks the store. So, before such a window opens, the writer
commits a journal entry naming the blobs, in its own small write transaction, and the commit
that closes the window removes it. Repair (maintenance.py) leaves alone every blob named by the
entry of a live writer; the entry of a writer that died marks its blobs as the only orphans it
can have left, so they are found without walking the store.

Layout: keys ``pending/<host>/<pid>/<start>/<n>`` in the ``meta`` database (no new database,
so older archives and older readers are unaffected), values JSON ``{"host", "pid", "start",
"time", "keys"}``. ``start`` is the process's start time since boot (Linux ``/proc``; empty
elsewhere), so a recycled pid is not taken for the writer that died.
"""

from __future__ import annotations

import itertools
import json
import os
import socket
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass

__all__ = ["OTHER_HOST_GRACE", "PREFIX", "Pending", "entries", "forget", "is_live", "new_token", "record", "remove"]

PREFIX = b"pending/"
#: An entry written on another host cannot be checked for a live process; it is taken as stale
#: after this many seconds (LMDB is not meant to be shared across hosts; this only bounds how
#: long such an entry can keep a real orphan).
OTHER_HOST_GRACE = 3600.0

_HOST = socket.gethostname()
_COUNTER = itertools.count()
_LIVE: set[bytes] = set()  # tokens of this process whose window is open
_LIVE_LOCK = threading.Lock()


@dataclass(frozen=True)
class Pending:
    """One journal entry: the blobs one writer may leave unreferenced."""

    token: bytes
    host: str
    pid: int
    start: str
    time: float
    keys: tuple[str, ...]


def _start_time(pid: int) -> str:
    """The process's start time in clock ticks since boot ('' when /proc cannot tell)."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            stat = f.read()
    except OSError:
        return ""
    # the command name (field 2) may hold spaces and parentheses: count fields after the last ')'
    fields = stat[stat.rfind(b")") + 2 :].split()
    return fields[19].decode() if len(fields) > 19 else ""


def _own_prefix(_cache: dict[int, bytes] = {}) -> bytes:  # noqa: B006 - per pid (a fork changes it)
    pid = os.getpid()
    if pid not in _cache:
        _cache[pid] = PREFIX + f"{_HOST}/{pid}/{_start_time(pid)}/".encode()
    return _cache[pid]


def new_token() -> bytes:
    """A fresh key for this process's next journal entry; it counts as live until ``forget``."""
    token = _own_prefix() + str(next(_COUNTER)).encode()
    with _LIVE_LOCK:
        _LIVE.add(token)
    return token


def forget(token: bytes) -> None:
    """This process no longer holds the window of ``token`` (its entry, if any is left, is stale)."""
    with _LIVE_LOCK:
        _LIVE.discard(token)


def record(txn, meta_db, token: bytes, keys: list[str]) -> None:
    """Write (or rewrite) the journal entry ``token`` naming ``keys``, in the caller's transaction."""
    host, pid, start, _ = token[len(PREFIX) :].decode().split("/")
    txn.put(
        token,
        json.dumps({"host": host, "pid": int(pid), "start": start, "time": time.time(), "keys": list(keys)}).encode(),
        db=meta_db,
    )


def remove(txn, meta_db, token: bytes) -> None:
    """Drop the journal entry ``token`` in the caller's transaction (the window closes with it)."""
    txn.delete(token, db=meta_db)


def entries(txn, meta_db) -> Iterator[Pending]:
    """Every journal entry, in key order; an entry that does not parse names no blob."""
    cur = txn.cursor(db=meta_db)
    if not cur.set_range(PREFIX):
        return
    for key, value in cur.iternext(keys=True, values=True):
        key = bytes(key)
        if not key.startswith(PREFIX):
            return
        try:
            doc = json.loads(bytes(value))
            yield Pending(
                key,
                str(doc["host"]),
                int(doc["pid"]),
                str(doc.get("start", "")),
                float(doc.get("time", 0.0)),
                tuple(str(k) for k in doc["keys"]),
            )
        except (ValueError, KeyError, TypeError):
            yield Pending(key, "", 0, "", 0.0, ())


def _pid_alive(pid: int) -> bool:
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # someone else's process: it exists
        return True
    return True


def is_live(entry: Pending, now: float | None = None) -> bool:
    """Whether the writer of ``entry`` may still be inside its window.

    This process: its own registry says. Another process on this host: its pid exists with the
    same start time. Another host: younger than ``OTHER_HOST_GRACE``.
    """
    if entry.host != _HOST:
        return (now if now is not None else time.time()) - entry.time < OTHER_HOST_GRACE
    if entry.pid == os.getpid():
        with _LIVE_LOCK:
            return entry.token in _LIVE
    if not _pid_alive(entry.pid):
        return False
    return not entry.start or _start_time(entry.pid) in ("", entry.start)
