"""The worklist in the archive's LMDB environment: two named databases of their own.

    worklist      item key (UTF-8)                 -> the item, DICOM JSON (items.encode)
    worklist_idx  scope byte + tag + value (UTF-8)  -> item key   (dupsort: secondary index)

The scope byte is ``T`` for an attribute of the item itself and ``S`` for one of its scheduled
step. Person names are filed case-folded, by their Alphabetic group (a name without one under
a marker every name lookup reads). Only non-empty values are filed: a zero-length value never matches a worklist key
(PS3.4 K.2.2.1.1.1), so the entries may leave such items out and still propose every match.
Dates are filed as ``YYYYMMDD``, so that a range is one cursor walk. The databases are created
by the first write (Index.optional_db); an archive without them has an empty worklist.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator

from ..index.layout import following
from ..index.lmdb_index import Index
from ..index.secondary import normalise_pn
from ..values import nfc, split_values, strip_padding
from . import items

ITEMS_DB, ENTRIES_DB = "worklist", "worklist_idx"
TOP, STEP = b"T", b"S"
#: attributes filed for exact lookups: of the item, and of its scheduled step
TOP_INDEXED = {0x00100020: "LO", 0x00080050: "SH", 0x00401001: "SH", items.T_STUDY_UID: "UI"}
STEP_INDEXED = {0x00080060: "CS", 0x00400001: "AE", items.T_STEP_ID: "SH", items.T_STEP_STATUS: "CS"}
#: filed as dates (a range is a cursor walk)
STEP_DATES = {items.T_STEP_DATE}
#: person names, filed by their case-folded Alphabetic group as the Q/R index files them
#: (index/secondary.normalise_pn); a name without one goes under UNFILED, which every name
#: lookup reads: PatientName, and the step's ScheduledPerformingPhysicianName
TOP_NAMES = {0x00100010}
STEP_NAMES = {0x00400006}
UNFILED = b"\xff"  # never a byte of UTF-8
#: index values are cut to this many bytes: a cut value proposes a superset, which the matcher
#: then narrows (LMDB keys are at most 511 bytes)
MAX_VALUE_BYTES = 400


def entry(scope: bytes, tag: int, value: str) -> bytes:
    return scope + tag.to_bytes(4, "big") + value.encode()[:MAX_VALUE_BYTES]


def _values(vr: str, text: str) -> list[str]:
    return [nfc(v) for v in split_values(vr, strip_padding(vr, text)) if v]


def date_text(value: str) -> str:
    """A DA value as ``YYYYMMDD`` (the retired ``YYYY.MM.DD`` too); items.check has parsed it."""
    return value.strip(" \0").replace(".", "")


def entries(data: dict) -> list[bytes]:
    """The index entries of one item (DICOM JSON)."""
    out = []
    for tag, vr in TOP_INDEXED.items():
        for v in _values(vr, items.text_of(data.get(f"{tag:08X}"))):
            out.append(entry(TOP, tag, v))
    step = items.step_of(data)
    for tag, vr in STEP_INDEXED.items():
        for v in _values(vr, items.text_of(step.get(f"{tag:08X}"))):
            out.append(entry(STEP, tag, v))
    for tag in STEP_DATES:
        for v in _values("DA", items.text_of(step.get(f"{tag:08X}"))):
            out.append(entry(STEP, tag, date_text(v)))
    for scope, source, tags in ((TOP, data, TOP_NAMES), (STEP, step, STEP_NAMES)):
        for tag in tags:
            for v in _values("PN", items.text_of(source.get(f"{tag:08X}"))):
                name = normalise_pn(v)
                out.append(entry(scope, tag, name) if name else entry(scope, tag, "") + UNFILED)
    return sorted(set(out))


class WorklistStore:
    """Reads and writes the worklist's databases; every method works inside a caller's txn."""

    def __init__(self, index: Index) -> None:
        self.index = index

    def databases(self, create: bool = False):
        """(items, entries) handles, or None when the archive has no worklist yet (and not
        ``create``). Call outside any transaction: creating one needs its own."""
        items_db = self.index.optional_db(ITEMS_DB, create=create)
        entries_db = self.index.optional_db(ENTRIES_DB, create=create)
        if items_db is None or entries_db is None:
            return None
        return items_db, entries_db

    # -- reading --------------------------------------------------------------------------
    @staticmethod
    def get(txn, dbs, key: str) -> dict | None:
        raw = txn.get(key.encode(), db=dbs[0])
        return None if raw is None else items.decode(raw)

    @staticmethod
    def scan(txn, dbs) -> Iterator[tuple[str, dict]]:
        for key, raw in txn.cursor(db=dbs[0]).iternext(keys=True, values=True):
            yield bytes(key).decode(), items.decode(raw)

    @staticmethod
    def exact(txn, dbs, scope: bytes, tag: int, values: Iterable[str]) -> set[bytes]:
        """Keys of the items filed under any of ``values``."""
        cur = txn.cursor(db=dbs[1])
        out: set[bytes] = set()
        for value in values:
            if cur.set_key(entry(scope, tag, value)):
                out.update(bytes(k) for k in cur.iternext_dup(keys=False, values=True))
        return out

    @staticmethod
    def prefixed(txn, dbs, scope: bytes, tag: int, start: str) -> set[bytes]:
        """Keys of the items filed under a value that starts with ``start``."""
        head = entry(scope, tag, start)
        cur = txn.cursor(db=dbs[1])
        out: set[bytes] = set()
        if not cur.set_range(head):
            return out
        for k, v in cur.iternext(keys=True, values=True):
            if not bytes(k).startswith(head):
                break
            out.add(bytes(v))
        return out

    @staticmethod
    def unfiled(txn, dbs, scope: bytes, tag: int) -> set[bytes]:
        """Keys of the items whose value the index could not file by its text."""
        cur = txn.cursor(db=dbs[1])
        if not cur.set_key(entry(scope, tag, "") + UNFILED):
            return set()
        return {bytes(k) for k in cur.iternext_dup(keys=False, values=True)}

    @staticmethod
    def between(txn, dbs, scope: bytes, tag: int, low: str | None, high: str | None) -> set[bytes]:
        """Keys of the items filed under a value from ``low`` to ``high`` (inclusive; None is
        open); values compare as bytes, which orders ``YYYYMMDD`` dates by time."""
        prefix = scope + tag.to_bytes(4, "big")
        start = prefix + (low or "").encode()
        stop = prefix + high.encode() if high is not None else None
        end = following(prefix)
        cur = txn.cursor(db=dbs[1])
        out: set[bytes] = set()
        if not cur.set_range(start):
            return out
        for k, v in cur.iternext(keys=True, values=True):
            k = bytes(k)
            if (end is not None and k >= end) or (stop is not None and k > stop):
                break
            out.add(bytes(v))
        return out

    # -- writing --------------------------------------------------------------------------
    @classmethod
    def put(cls, txn, dbs, key: str, data: dict) -> None:
        """Store ``data`` under ``key``, replacing an item of that key and its entries."""
        cls.delete(txn, dbs, key)
        raw_key = key.encode()
        txn.put(raw_key, items.encode(data), db=dbs[0])
        for e in entries(data):
            txn.put(e, raw_key, db=dbs[1], dupdata=True)

    @classmethod
    def delete(cls, txn, dbs, key: str) -> bool:
        old = cls.get(txn, dbs, key)
        if old is None:
            return False
        raw_key = key.encode()
        for e in entries(old):
            txn.delete(e, raw_key, db=dbs[1])
        txn.delete(raw_key, db=dbs[0])
        return True
