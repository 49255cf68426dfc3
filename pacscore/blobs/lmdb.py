"""``lmdb:`` — blobs inline in an LMDB environment of their own.

One file instead of a million suits small instances (CR, SR, KOs) and file systems that are
slow with many files. The environment is separate from the index's so that blob churn never
bloats or locks the index.

LMDB's rules, and how this module keeps them:

- *One Environment per file per process*: two handles on the same file in one process break
  LMDB's locks. Stores opened on the same path share one handle, counted by reference.
- *Never across fork()*: each handle remembers the pid that opened it. A store first used in a
  child process closes the inherited handle there (which unmaps the child's copy and frees only
  the child's reader slots: the parent's locks and readers are untouched) and opens its own;
  py-lmdb refuses a second open of files still open in the process, inherited or not.
- *The map is address space, grown on demand*: on MapFullError the write is retried after
  ``set_mapsize``, which needs no transaction active in this process, so every transaction
  passes a gate that a resize closes. MapResizedError (another process grew it) is handled the
  same way with the size the file already has.
- *Durable on commit*: ``sync`` and ``metasync`` stay on.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TypeVar

import lmdb

from ..errors import NotFound, StorageError
from .base import BlobStore, check_range, validate_key
from .file import local_path_from_url

__all__ = ["LmdbBlobStore"]

T = TypeVar("T")

_INITIAL_MAP_SIZE = 64 << 20
_LIST_BATCH = 1000
_MAX_RETRIES = 32


class _Gate:
    """Counts open transactions; ``exclusive()`` waits for none and holds new ones back."""

    def __init__(self) -> None:
        self._cond = threading.Condition()
        self._active = 0
        self._exclusive = False

    @contextmanager
    def shared(self) -> Iterator[None]:
        with self._cond:
            while self._exclusive:
                self._cond.wait()
            self._active += 1
        try:
            yield
        finally:
            with self._cond:
                self._active -= 1
                if not self._active:
                    self._cond.notify_all()

    @contextmanager
    def exclusive(self) -> Iterator[None]:
        with self._cond:
            while self._exclusive:
                self._cond.wait()
            self._exclusive = True
            while self._active:
                self._cond.wait()
        try:
            yield
        finally:
            with self._cond:
                self._exclusive = False
                self._cond.notify_all()


class _Handle:
    """One open Environment shared by every store on the same path in this process."""

    def __init__(self, path: Path, map_size: int) -> None:
        self.env = lmdb.open(
            str(path),
            map_size=map_size,
            subdir=True,
            max_dbs=0,
            sync=True,
            metasync=True,
            readahead=False,  # blobs are read one at a time
        )
        self.gate = _Gate()
        self.write_lock = threading.Lock()  # LMDB serialises writers anyway; keep waits in Python
        self.refs = 0


_handles: dict[tuple[int, str], _Handle] = {}
_handles_lock = threading.Lock()


class LmdbBlobStore(BlobStore):
    """Blobs as values of one LMDB database, keyed by the blob key.

    >>> store = LmdbBlobStore("archive/blobs.lmdb")   # doctest: +SKIP
    """

    scheme = "lmdb"
    supports_ranges = True  # values are read through a zero-copy buffer; only the range is copied
    supports_listing = True
    supports_deletes = True
    durable = True

    def __init__(self, path: str | os.PathLike[str], *, map_size: int = _INITIAL_MAP_SIZE) -> None:
        self.path = Path(path).absolute()
        self.url = "lmdb://" + self.path.as_uri().removeprefix("file://")
        self._map_size = map_size
        self._handle: _Handle | None = None
        self._ident = (0, "")  # (pid, real path) of the handle this store holds
        self._closed = False
        self._acquire()

    @classmethod
    def from_url(cls, url: str, root: Path) -> LmdbBlobStore:
        return cls(local_path_from_url(url, Path(root), "blobs.lmdb"))

    # -- the shared handle --------------------------------------------------------------

    def _acquire(self) -> _Handle:
        ident = (os.getpid(), os.path.realpath(self.path))
        with _handles_lock:
            handle = _handles.get(ident)
            if handle is not None and handle is self._handle:
                return handle  # another thread of this store got here first
            if handle is None:
                for inherited in [k for k in _handles if k[1] == ident[1]]:
                    _handles.pop(inherited).env.close()  # a parent's handle, copied by fork()
                try:
                    handle = _Handle(self.path, self._map_size)
                except lmdb.Error as exc:
                    raise StorageError(f"lmdb blob store {self.path}: cannot open: {exc}") from exc
                _handles[ident] = handle
            handle.refs += 1
        self._handle, self._ident = handle, ident
        return handle

    def _current(self) -> _Handle:
        if self._closed:
            raise StorageError(f"{self.url} is closed")
        if self._ident[0] != os.getpid() or self._handle is None:
            return self._acquire()  # forked: this process needs a handle of its own
        return self._handle

    def _run(self, key: str, what: str, op: Callable[[lmdb.Environment], T], *, write: bool = False) -> T:
        for _ in range(_MAX_RETRIES):
            handle = self._current()
            map_size = 0  # (0: no resize is asked unless the size was read)
            try:
                with handle.gate.shared():
                    # read under the gate: another thread's set_mapsize remaps the environment,
                    # and an env.info() running beside it failed ("mdb_env_info: Invalid argument")
                    map_size = handle.env.info()["map_size"]
                    if not write:
                        return op(handle.env)
                    with handle.write_lock:
                        return op(handle.env)
            except lmdb.MapFullError:
                self._resize(handle, map_size, grow=True)
            except lmdb.MapResizedError:
                self._resize(handle, map_size, grow=False)
            except lmdb.Error as exc:
                raise StorageError(f"lmdb blob store {self.path}: {what} {key!r}: {exc}") from exc
        raise StorageError(f"lmdb blob store {self.path}: {what} {key!r}: the map kept filling up")

    def _resize(self, handle: _Handle, seen: int, *, grow: bool) -> None:
        with handle.gate.exclusive():
            if handle.env.info()["map_size"] != seen:
                return  # another thread resized it meanwhile
            # Doubling keeps the number of resizes logarithmic; 0 adopts another process's size.
            handle.env.set_mapsize(seen * 2 if grow else 0)

    # -- the contract -------------------------------------------------------------------

    def put(self, key: str, data: bytes) -> None:
        k = validate_key(key).encode("ascii")

        def op(env: lmdb.Environment) -> None:
            with env.begin(write=True) as txn:
                txn.put(k, data)

        self._run(key, "put", op, write=True)

    def get(self, key: str, start: int | None = None, end: int | None = None) -> bytes:
        begin, stop = check_range(start, end)
        k = validate_key(key).encode("ascii")

        def op(env: lmdb.Environment) -> bytes | None:
            with env.begin(buffers=True) as txn:
                value = txn.get(k)
                # The buffer dies with the transaction: copy just the requested bytes out.
                return None if value is None else bytes(value[begin:stop])

        blob = self._run(key, "get", op)
        if blob is None:
            raise NotFound(f"no blob {key!r} in {self.url}")
        return blob

    def delete(self, key: str) -> None:
        k = validate_key(key).encode("ascii")

        def op(env: lmdb.Environment) -> None:
            with env.begin(write=True) as txn:
                txn.delete(k)

        self._run(key, "delete", op, write=True)

    def exists(self, key: str) -> bool:
        k = validate_key(key).encode("ascii")

        def op(env: lmdb.Environment) -> bool:
            with env.begin(buffers=True) as txn:
                return txn.get(k) is not None

        return self._run(key, "exists", op)

    def size(self, key: str) -> int:
        k = validate_key(key).encode("ascii")

        def op(env: lmdb.Environment) -> int | None:
            with env.begin(buffers=True) as txn:
                value = txn.get(k)
                return None if value is None else len(value)

        n = self._run(key, "size", op)
        if n is None:
            raise NotFound(f"no blob {key!r} in {self.url}")
        return n

    def keys(self) -> Iterator[str]:
        # Short transactions, one per batch: a read transaction held open while the caller
        # works would pin old pages (the file grows) and block a map resize in this process.
        after: bytes | None = None
        while True:

            def op(env: lmdb.Environment) -> list[bytes]:
                with env.begin() as txn:
                    cursor = txn.cursor()
                    found = cursor.set_range(after) if after is not None else cursor.first()
                    if found and after is not None and cursor.key() == after:
                        found = cursor.next()
                    batch: list[bytes] = []
                    while found and len(batch) < _LIST_BATCH:
                        batch.append(cursor.key())
                        found = cursor.next()
                    return batch

            batch = self._run("*", "list", op)
            yield from (k.decode("ascii") for k in batch)
            if len(batch) < _LIST_BATCH:
                return
            after = batch[-1]

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        handle, self._handle = self._handle, None
        if handle is None or self._ident[0] != os.getpid():
            return  # never used since a fork(): the parent's handle is not this store's to release
        with _handles_lock:
            handle.refs -= 1
            if handle.refs:
                return
            del _handles[self._ident]
        with handle.gate.exclusive():
            handle.env.close()
