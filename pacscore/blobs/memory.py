"""``memory://`` — blobs in a dict: for tests and throwaway archives.

Each ``open_blobstore("memory://")`` is a new, empty store; nothing outlives ``close()``.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from pathlib import Path

from ..errors import NotFound
from .base import BlobStore, check_range, validate_key

__all__ = ["MemoryBlobStore"]


class MemoryBlobStore(BlobStore):
    """A dict of key -> bytes behind a lock.

    >>> store = MemoryBlobStore()
    >>> store.put("1.2.3", b"DICM")
    >>> store.get("1.2.3", 1, 3)
    b'IC'
    """

    scheme = "memory"
    supports_ranges = True
    supports_listing = True
    supports_deletes = True
    durable = False

    def __init__(self) -> None:
        self.url = "memory://"
        self._blobs: dict[str, bytes] = {}
        self._lock = threading.Lock()

    @classmethod
    def from_url(cls, url: str, root: Path) -> MemoryBlobStore:
        if url.rstrip("/").lower() != "memory:":
            raise ValueError(f"{url!r}: a memory store takes no location; write 'memory://'")
        return cls()

    def put(self, key: str, data: bytes) -> None:
        validate_key(key)
        blob = bytes(data)  # a private copy: the caller may reuse a bytearray or memoryview
        with self._lock:
            self._blobs[key] = blob

    def get(self, key: str, start: int | None = None, end: int | None = None) -> bytes:
        begin, stop = check_range(start, end)
        with self._lock:
            blob = self._blobs.get(validate_key(key))
        if blob is None:
            raise NotFound(f"no blob {key!r} in {self.url}")
        return blob[begin:stop] if (begin or stop is not None) else blob

    def delete(self, key: str) -> None:
        validate_key(key)
        with self._lock:
            self._blobs.pop(key, None)

    def exists(self, key: str) -> bool:
        validate_key(key)
        with self._lock:
            return key in self._blobs

    def size(self, key: str) -> int:
        return len(self.get(key))

    def keys(self) -> Iterator[str]:
        with self._lock:
            snapshot = list(self._blobs)
        return iter(snapshot)

    def close(self) -> None:
        with self._lock:
            self._blobs.clear()
