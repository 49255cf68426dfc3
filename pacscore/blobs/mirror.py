"""``mirror:`` — every blob in two stores, e.g. a local disk and a bucket.

``mirror:file:///fast|s3://bucket/copy`` writes each blob to the first store, then the second;
a put returns only when both hold it, so the index never points at a blob that has a single
copy. Reads try the first store, then the second: a blob still missing from one side (a store
added to a running archive, a failed disk) is read from the other.

The two URLs are split at the first ``|``, so mirrors nest on the right:
``mirror:A|mirror:B|C`` keeps three copies.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import BinaryIO, TypeVar

from ..errors import NotFound, StorageError
from .base import BlobStore, validate_key

__all__ = ["MirrorBlobStore"]

T = TypeVar("T")


class MirrorBlobStore(BlobStore):
    """Writes to ``primary`` then ``secondary``; reads from the first that has the blob.

    >>> from pacscore.blobs.memory import MemoryBlobStore
    >>> store = MirrorBlobStore(MemoryBlobStore(), MemoryBlobStore())
    >>> store.put("1.2.3", b"DICM")
    >>> store.secondary.get("1.2.3")
    b'DICM'
    """

    scheme = "mirror"

    def __init__(self, primary: BlobStore, secondary: BlobStore) -> None:
        self.primary = primary
        self.secondary = secondary
        self.url = f"mirror:{primary.url}|{secondary.url}"
        both = (primary, secondary)
        self.supports_ranges = all(s.supports_ranges for s in both)
        self.supports_listing = all(s.supports_listing for s in both)
        self.supports_deletes = all(s.supports_deletes for s in both)
        # Every put reaches both stores, so one durable side is enough to reopen the data.
        self.durable = any(s.durable for s in both)

    @classmethod
    def from_url(cls, url: str, root: Path) -> MirrorBlobStore:
        from . import open_blobstore  # the package imports this module lazily: no cycle at import

        first, sep, second = url.partition(":")[2].partition("|")
        if not sep or not first or not second:
            raise ValueError(f"{url!r}: a mirror joins two blob store URLs: mirror:<url>|<url>")
        primary = open_blobstore(first, root=root)
        try:
            secondary = open_blobstore(second, root=root)
        except BaseException:
            primary.close()
            raise
        return cls(primary, secondary)

    def _first(self, key: str, op: Callable[[BlobStore], T]) -> T:
        # A failing side (StorageError) does not hide a copy on the other; if neither has the
        # blob, the failure is more telling than NotFound.
        failure: StorageError | None = None
        for store in (self.primary, self.secondary):
            try:
                return op(store)
            except NotFound:
                continue
            except StorageError as exc:
                failure = failure or exc
        if failure is not None:
            raise failure
        raise NotFound(f"no blob {key!r} in {self.url}")

    def put(self, key: str, data: bytes) -> None:
        validate_key(key)
        self.primary.put(key, data)
        try:
            self.secondary.put(key, data)
        except StorageError as exc:
            raise StorageError(f"{self.url}: put {key!r}: only the primary copy was written: {exc}") from exc

    def get(self, key: str, start: int | None = None, end: int | None = None) -> bytes:
        return self._first(key, lambda s: s.get(key, start, end))

    def open(self, key: str) -> BinaryIO:
        return self._first(key, lambda s: s.open(key))

    def size(self, key: str) -> int:
        return self._first(key, lambda s: s.size(key))

    def exists(self, key: str) -> bool:
        validate_key(key)
        failure: StorageError | None = None
        for store in (self.primary, self.secondary):
            try:
                if store.exists(key):
                    return True
            except StorageError as exc:
                failure = failure or exc
        if failure is not None:
            raise failure
        return False

    def delete(self, key: str) -> None:
        validate_key(key)
        self._both(lambda s: s.delete(key))

    def keys(self) -> Iterator[str]:
        seen: set[str] = set()
        for store in (self.primary, self.secondary):
            for key in store.keys():
                if key not in seen:
                    seen.add(key)
                    yield key

    def replicas(self) -> list[BlobStore]:
        return self.primary.replicas() + self.secondary.replicas()

    def close(self) -> None:
        self._both(lambda s: s.close())

    def _both(self, op: Callable[[BlobStore], None]) -> None:
        # Attempt both sides even when the first fails, then report the first failure.
        failure: BaseException | None = None
        for store in (self.primary, self.secondary):
            try:
                op(store)
            except Exception as exc:
                failure = failure or exc
        if failure is not None:
            raise failure
