"""The BlobStore contract: what the Archive needs from wherever the Part-10 bytes live.

The Archive writes a blob before it indexes it ("blob before index", DESIGN.md), so a store's
``put`` must be atomic and durable when it returns: a reader sees the old bytes or the new
bytes, never a torn mix, and a crash right after ``put`` loses nothing. Everything else
(sharding, transactions, retries) is the store's own business.

Keys are validated here, once, with one rule for every backend: a key is a single path
component that cannot climb out of a folder, name a hidden file, or smuggle a separator, a NUL
or a URL delimiter into an object name.
"""

from __future__ import annotations

import abc
import io
import re
from collections.abc import Iterable, Iterator
from pathlib import Path
from types import TracebackType
from typing import BinaryIO, ClassVar

__all__ = ["BlobStore", "validate_key", "is_valid_key", "check_range", "MAX_KEY_LENGTH"]

MAX_KEY_LENGTH = 128

# One path component of safe characters. A leading "." is refused as well: it rules out "."
# and "..", and it leaves every dot-name free for a store's own bookkeeping (temp files).
_KEY = re.compile(r"[0-9A-Za-z_-][0-9A-Za-z._-]{0,%d}" % (MAX_KEY_LENGTH - 1))  # noqa: UP031 - an f-string would double the regex braces


def validate_key(key: str) -> str:
    """Return ``key`` unchanged if it is a valid blob key, else raise ValueError naming it.

    Valid keys are 1 to 128 characters of ``[0-9A-Za-z._-]`` that do not start with ``.``.
    The archive passes ``{SOP Instance UID}_{checksum}`` for a UID of digits and dots, and a
    hashed form for any other UID (``archive._blob_key``), so a UID never reaches a key raw.

    >>> validate_key("1.2.840.10008.5.1.4.1.1.2")
    '1.2.840.10008.5.1.4.1.1.2'
    >>> validate_key("../etc/passwd")  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    ValueError: invalid blob key '../etc/passwd': ...
    """
    if not is_valid_key(key):
        raise ValueError(
            f"invalid blob key {key!r}: a key is 1 to {MAX_KEY_LENGTH} characters of "
            "[0-9A-Za-z._-] and must not start with '.'"
        )
    return key


def is_valid_key(name: str) -> bool:
    """Whether ``name`` is a valid key: stores use it to skip foreign names when listing."""
    return isinstance(name, str) and _KEY.fullmatch(name) is not None


def check_range(start: int | None, end: int | None) -> tuple[int, int | None]:
    """Normalise a byte range ``[start:end)`` to ``(start, end)`` with ``start`` an int.

    Offsets are absolute and non-negative: suffix ranges (negative offsets) are refused because
    not every backend can serve them without a second round trip. ``end`` past the blob, or
    ``end <= start``, behave as Python slicing does (a short or empty result).
    """
    for name, value in (("start", start), ("end", end)):
        if value is not None and (not isinstance(value, int) or isinstance(value, bool) or value < 0):
            raise ValueError(f"byte range {name} must be a non-negative int or None, not {value!r}")
    return (start or 0), end


class BlobStore(abc.ABC):
    """Where the archive keeps each instance's Part-10 bytes, one blob per key.

    Implementations are safe to call from several threads at once. ``close()`` is idempotent;
    a closed store must not be used again. Stores are context managers.

    Capability flags (class or instance attributes):

    ``supports_ranges``
        ``get(key, start, end)`` reads only the requested bytes. Every store *must* honour a
        range; this flag only says whether doing so avoids reading the whole blob.
    ``supports_listing``
        ``keys()`` is available (used by ``verify`` to find orphan blobs). A store that says
        False may raise NotImplementedError from ``keys()``; ``verify`` then skips the orphan
        walk with a note and finds only the orphans the pending-blob journal names.
    ``supports_deletes``
        ``delete()`` removes blobs (a write-once store may say False).
    ``durable``
        Blobs survive ``close()`` and a process crash; reopening the same URL finds them.

    Example::

        with open_blobstore("file:blobs", root="archive/") as store:
            store.put("1.2.3", b"DICM...")
            header = store.get("1.2.3", 0, 132)
    """

    #: The URL scheme this class serves, e.g. ``"file"``.
    scheme: ClassVar[str]
    #: A URL that reopens this store (secrets left out).
    url: str

    supports_ranges: bool = True
    supports_listing: bool = True
    supports_deletes: bool = True
    durable: bool = True

    @classmethod
    @abc.abstractmethod
    def from_url(cls, url: str, root: Path) -> BlobStore:
        """Open the store a URL names; ``root`` anchors relative locations (the archive folder)."""

    @abc.abstractmethod
    def put(self, key: str, data: bytes) -> None:
        """Store ``data`` under ``key``, replacing any blob there, atomically and durably.

        When this returns the bytes survive a crash; a concurrent reader sees either the old
        blob or the new one in full. Raises ValueError for an invalid key (nothing written) and
        StorageError when the backend fails.
        """

    def put_many(self, items: Iterable[tuple[str, bytes]]) -> None:
        """Store several blobs; every one is durable when this returns (as with ``put``).

        The default calls ``put`` for each; a store that can make a whole batch durable at once
        (one filesystem sync instead of one per blob) overrides it. Ingest calls this per batch.
        """
        for key, data in items:
            self.put(key, data)

    @abc.abstractmethod
    def get(self, key: str, start: int | None = None, end: int | None = None) -> bytes:
        """Return the bytes ``[start:end)`` of the blob (the whole blob by default).

        Raises NotFound (a KeyError) naming the key when there is no such blob, ValueError for
        an invalid key or a negative offset. A range past the end is cut short, as slicing is.
        """

    def open(self, key: str) -> BinaryIO:
        """Return a readable binary file object over the blob; NotFound if it is missing.

        The default reads the whole blob into memory; stores that can stream override it.
        """
        return io.BytesIO(self.get(key))

    @abc.abstractmethod
    def delete(self, key: str) -> None:
        """Remove the blob. A missing blob is not an error, so a retried delete is harmless."""

    @abc.abstractmethod
    def exists(self, key: str) -> bool:
        """Whether a blob is stored under ``key``."""

    @abc.abstractmethod
    def size(self, key: str) -> int:
        """The blob's length in bytes; NotFound if it is missing."""

    @abc.abstractmethod
    def keys(self) -> Iterator[str]:
        """Every stored key, in no particular order.

        The iterator must tolerate puts and deletes while it runs (a key changed meanwhile may
        or may not be listed) and never lists a store's own bookkeeping (temp files, ...).
        """

    def replicas(self) -> list[BlobStore]:
        """The stores that each hold a full copy of every blob: ``[self]``, or the sides of a
        mirror, so that ``verify`` checks and lists each copy and names a side that fails."""
        return [self]

    def close(self) -> None:  # noqa: B027 - a default, not abstract: most stores hold nothing to release
        """Release the store's resources; calling it again does nothing."""

    def __enter__(self) -> BlobStore:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"{type(self).__name__}({getattr(self, 'url', '?')!r})"
