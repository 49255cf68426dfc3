"""A consistent read of the index: one LMDB read transaction and the lookups the layers above need.

The planner, the executor, the archive and maintenance read the index through these methods
(records, counts, children, the duplicates of a secondary index key, range walks, headers)
instead of handling cursors, database handles and ``txn.stat`` themselves: the layout stays the
index's business (docs/storage-layout.md). The hot loops (scans, candidate fetches) still run
in the compiled kernels, which take ``getter()`` and ``level_cursor()`` from here.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from typing import Any

from ..query.ranges import values_of
from ..query.ranges import walk as walk_range
from . import compression, segments
from .layout import CHILD_LEVEL, LEVEL_BYTE, LEVEL_DB
from .lmdb_index import Index


@contextlib.contextmanager
def read(index: Index) -> Iterator[Snapshot]:
    """A snapshot of ``index`` for the length of a ``with`` block (one read transaction)."""
    with index.read() as txn:
        yield Snapshot(index, txn)


class Snapshot:
    """The read transaction ``txn`` of ``index`` (a consistent snapshot while it lives)."""

    def __init__(self, index: Index, txn: Any) -> None:
        self.index = index
        self.txn = txn
        self._idx: Any = None
        self._meta: Any = None  # the meta database, looked up once (Index.db checks the pid each time)

    # -- records ------------------------------------------------------------------------------
    def record(self, level: str, key: bytes) -> Any:
        """The record of one entity (a buffer, valid while the snapshot lives), or None."""
        raw = self.txn.get(key, db=self.index.db(LEVEL_DB[level]))
        return self._expand(raw, key) if level == "IMAGE" else raw

    def _expand(self, raw: Any, key: Any) -> Any:
        # instance records may be zstd frames (schema 7, index/compression.py)
        if self._meta is None:
            self._meta = self.index.db("meta")
        return compression.expand(self.txn, self._meta, raw, key)

    def getter(self, level: str) -> tuple[Callable[..., Any], Any]:
        """``(get, db)`` for the kernels that fetch many records of ``level`` by key (called
        as ``get(key, None, db)``)."""
        if level != "IMAGE":
            return self.txn.get, self.index.db(LEVEL_DB[level])
        txn_get, expand = self.txn.get, self._expand

        def get(key: bytes, default: Any = None, db: Any = None) -> Any:
            raw = txn_get(key, default, db)
            return expand(raw, key) if raw is not None else default

        return get, self.index.db(LEVEL_DB[level])

    def records(self, level: str, start: bytes | None = None) -> Iterator[tuple[Any, Any]]:
        """``(key, record)`` pairs of ``level`` in key order, from ``start`` (inclusive) when given."""
        cur = self.txn.cursor(db=self.index.db(LEVEL_DB[level]))
        if start is not None and not cur.set_range(start):
            return iter(())
        pairs = cur.iternext(keys=True, values=True)
        if level != "IMAGE":
            return pairs
        expand = self._expand
        return ((key, expand(raw, key)) for key, raw in pairs)

    def keys(self, level: str) -> Iterator[Any]:
        """The keys of ``level`` in order (no record read)."""
        return self.txn.cursor(db=self.index.db(LEVEL_DB[level])).iternext(keys=True, values=False)

    def count(self, level: str) -> int:
        """How many entities ``level`` holds (LMDB keeps the count: no walk)."""
        return int(self.txn.stat(self.index.db(LEVEL_DB[level]))["entries"])

    def header(self, sop_instance_uid: bytes) -> Any:
        """An instance's zlib-compressed header in the ``header`` database (a buffer), or None:
        since schema 7 an archive with a dictionary keeps it in the instance's bundle instead
        (``header_bytes`` reads both)."""
        return self.txn.get(sop_instance_uid, db=self.index.db("header"))

    def header_bytes(self, sop_instance_uid: bytes) -> bytes | None:
        """An instance's Part-10 header without bulk data, decompressed, or None."""
        raw = self.txn.get(sop_instance_uid, db=self.index.db("instance"))
        return compression.instance_header(
            self.txn, self.index.db("meta"), self.index.db("header"), sop_instance_uid, raw
        )

    def patient_keys(self, patient_id: str) -> list[bytes]:
        """Every patient key with this PatientID (one per IssuerOfPatientID), in key order."""
        head = patient_id.strip().encode("utf-8") + b"\x00"
        out = []
        for key in self.keys_from("PATIENT", head):
            if not bytes(key).startswith(head):
                break
            out.append(bytes(key))
        return out

    def keys_from(self, level: str, start: bytes) -> Iterator[Any]:
        """The keys of ``level`` from ``start`` (inclusive), in order."""
        cur = self.txn.cursor(db=self.index.db(LEVEL_DB[level]))
        if not cur.set_range(start):
            return iter(())
        return cur.iternext(keys=True, values=False)

    def segment_values(self, level: str) -> Iterator[Any]:
        """The packed scan segments of ``level`` (index/segments.py), in key order."""
        return segments.values(self.txn, self.index.db("segments"), level)

    def indexed_by_level(self) -> dict[str, tuple[int, ...]]:
        """The extra indexed attributes by level, as this snapshot sees them (lmdb_index)."""
        return self.index.indexed_by_level(self.txn)

    # -- the hierarchy --------------------------------------------------------------------------
    def children(self, level: str, key: bytes) -> list[bytes]:
        """The keys of an entity's children, in order."""
        return self._dups(self.txn.cursor(db=self.index.db("children")), LEVEL_BYTE[level] + key)

    def instances_under(self, level: str, key: bytes) -> Iterator[bytes]:
        """Every SOP Instance UID below one entity, in hierarchy order."""
        if level == "IMAGE":
            yield key
            return
        for child in self.children(level, key):
            yield from self.instances_under(CHILD_LEVEL[level], child)

    # -- the secondary index --------------------------------------------------------------------
    def _cursor(self) -> Any:
        if self._idx is None:
            self._idx = self.txn.cursor(db=self.index.db("idx"))
        return self._idx

    @staticmethod
    def _dups(cur: Any, key: bytes) -> list[bytes]:
        return values_of(cur.iternext_dup(keys=False, values=True)) if cur.set_key(key) else []

    def entities(self, entry: bytes) -> list[bytes]:
        """The entity keys filed under one secondary index entry, in order (none when absent)."""
        return self._dups(self._cursor(), entry)

    def entity_count(self, entry: bytes) -> int | None:
        """How many entities one entry holds, or None when no entity has it."""
        cur = self._cursor()
        return int(cur.count()) if cur.set_key(entry) else None

    def walk(self, head: bytes, lo: bytes, hi: bytes | None, prefix: bool, found: set[bytes], cap: int) -> bool:
        """Add to ``found`` the entities of the entries from ``lo`` that start with ``lo`` (when
        ``prefix``) or, below ``head``, are at most ``hi``; False as soon as more than ``cap``
        (the caller then scans), True otherwise (query/ranges.py)."""
        cur = self._cursor()
        if not cur.set_range(lo if lo != head else head + b"\x00"):
            return True
        return bool(walk_range(cur.iternext(keys=True, values=True), head, lo, hi, prefix, found, cap))


__all__ = ["Snapshot"]
