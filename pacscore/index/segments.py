"""Scan segments: the records of a level packed, in key order, into values of a few dozen KiB.

A scan that walks a level database reads one LMDB entry per record, and py-lmdb spends about a
microsecond making Python objects for each one: a floor of ~1 M records/s whatever the matcher
costs. Segments keep a second copy of the PATIENT, STUDY and SERIES records in the ``segments``
database, many records to an LMDB value, so a scan fetches one buffer per few dozen records and
the compiled kernels (``_ext/_match.pyx``, ``RecordTest.scan_segment``) walk it in C.

Layout: key = level byte + fence; the segment holds every record whose key is >= its fence and
< the next segment's fence (the first segment of a level may have an empty fence). Value =
entries back to back, each ``u16 key length, u32 record length, key, record`` (little endian).

The writer (index/writer.py) applies each batch's record changes here in the same write
transaction, so a segment can never disagree with its level database in any snapshot. A segment
that grows past ``SPLIT_BYTES`` is cut into pieces of about ``TARGET_BYTES``; a segment that
becomes empty is removed. IMAGE records are not segmented: instance-level queries come with a
series or study to navigate from, and a second copy of every instance record would cost ingest
speed and a third of the index size.
"""

from __future__ import annotations

import struct
from collections.abc import Iterable, Iterator

from .layout import LEVEL_BYTE, LEVEL_DB

SEGMENTED_LEVELS = ("PATIENT", "STUDY", "SERIES")
TARGET_BYTES = 24 * 1024
SPLIT_BYTES = 48 * 1024

_HEAD = struct.Struct("<HI")


class SegmentError(ValueError):
    """A segment whose bytes do not parse (a damaged index)."""


def encode(entries: Iterable[tuple[bytes, bytes]]) -> bytes:
    """Pack (key, record) pairs, already in key order, into one segment value."""
    parts = []
    for key, rec in entries:
        parts.append(_HEAD.pack(len(key), len(rec)))
        parts.append(key)
        parts.append(rec)
    return b"".join(parts)


def entries(value) -> Iterator[tuple[bytes, memoryview]]:
    """(key, record) pairs of one segment; records are views into ``value`` (the pure scan)."""
    view = memoryview(value)
    size, pos = len(view), 0
    while pos < size:
        if pos + _HEAD.size > size:
            raise SegmentError(f"segment entry header cut at byte {pos} of {size}")
        klen, rlen = _HEAD.unpack_from(view, pos)
        start = pos + _HEAD.size
        end = start + klen + rlen
        if end > size:
            raise SegmentError(f"segment entry at byte {pos} runs past the end ({end} > {size})")
        yield bytes(view[start : start + klen]), view[start + klen : end]
        pos = end


def decode(value) -> list[tuple[bytes, bytes]]:
    return [(key, bytes(rec)) for key, rec in entries(value)]


def values(txn, db, level: str) -> Iterator[object]:
    """The segment values of a level in key order (buffers when the transaction gives them)."""
    head = LEVEL_BYTE[level]
    cur = txn.cursor(db=db)
    if not cur.set_range(head):
        return
    for key, value in cur.iternext(keys=True, values=True):
        if bytes(key[:1]) != head:
            return
        yield value


def apply(txn, db, level: str, changes: dict[bytes, bytes | None]) -> None:
    """Write a batch of record changes (key -> new record, or None for a delete) of one level.

    Each segment the batch touches is spliced: its entries are walked by their headers only and
    the untouched runs copied as they are, so a commit of one instance costs a walk of three
    segments' headers, not a decode and re-encode of their few hundred entries (which was most
    of the index's CPU per single-instance C-STORE)."""
    if not changes:
        return
    head = LEVEL_BYTE[level]
    keys = sorted(changes)
    cur = txn.cursor(db=db)
    i = 0
    while i < len(keys):
        fence, current, upper = _segment_of(cur, head, keys[i])
        j = i
        while j < len(keys) and (upper is None or keys[j] < upper):
            j += 1
        value = b"".join(_spliced(current, [(k, changes[k]) for k in keys[i:j]]))
        i = j
        if not value:
            txn.delete(head + fence, db=db)
        elif len(value) <= SPLIT_BYTES:
            txn.put(head + fence, value, db=db)
        else:
            _write(txn, db, head, fence, decode(value))


def _spliced(value: bytes, run: list[tuple[bytes, bytes | None]]) -> list:
    """The pieces (to join) of segment ``value`` with ``run`` applied: key-ordered changes, a
    record or None for a delete. Runs of untouched entries are views of ``value``."""
    view = memoryview(value)
    size, pos, kept_from = len(view), 0, 0
    pieces: list = []
    j, n = 0, len(run)
    while j < n and pos < size:
        try:
            klen, rlen = _HEAD.unpack_from(view, pos)
        except struct.error:
            raise SegmentError(f"segment entry header cut at byte {pos} of {size}") from None
        start, end = pos + _HEAD.size, pos + _HEAD.size + klen + rlen
        if end > size:
            raise SegmentError(f"segment entry at byte {pos} runs past the end ({end} > {size})")
        key = value[start : start + klen]
        if run[j][0] > key:  # no change before or at this entry
            pos = end
            continue
        pieces.append(view[kept_from:pos])
        while j < n and run[j][0] < key:  # new entries before this one
            _put_entry(pieces, *run[j])
            j += 1
        if j < n and run[j][0] == key:  # this entry replaced or deleted
            _put_entry(pieces, *run[j])
            j += 1
            kept_from = end
        else:
            kept_from = pos
        pos = end
    pieces.append(view[kept_from:])
    for key, rec in run[j:]:  # past the segment's last entry
        _put_entry(pieces, key, rec)
    return pieces


def _put_entry(pieces: list, key: bytes, rec: bytes | None) -> None:
    if rec is not None:
        pieces += (_HEAD.pack(len(key), len(rec)), key, rec)


def _segment_of(cur, head: bytes, key: bytes) -> tuple[bytes, bytes, bytes | None]:
    """(fence, value, next fence or None) of the segment that holds ``key``."""
    target = head + key
    found = cur.set_range(target)
    fence_key: bytes | None
    if found and bytes(cur.key()) == target:
        fence_key = target
    else:
        # the segment before: the last key below target with this level's prefix
        moved = cur.prev() if found else cur.last()
        fence_key = bytes(cur.key()) if moved and bytes(cur.key()[:1]) == head else None
    if fence_key is None:  # below every fence of the level (or none yet): a new first segment
        current, fence = b"", b""
        nxt = cur.set_range(head)
    else:
        cur.set_key(fence_key)
        current, fence = bytes(cur.value()), fence_key[1:]  # a copy: the cursor moves on
        nxt = cur.next()
    upper = bytes(cur.key())[1:] if nxt and bytes(cur.key()[:1]) == head else None
    return fence, current, upper


def _pieces(items: Iterable[tuple[bytes, bytes]]) -> Iterator[list[tuple[bytes, bytes]]]:
    """(key, record) pairs in key order cut into runs of about ``TARGET_BYTES``."""
    piece: list[tuple[bytes, bytes]] = []
    size = 0
    for item in items:
        step = _HEAD.size + len(item[0]) + len(item[1])
        if piece and size + step > TARGET_BYTES:
            yield piece
            piece, size = [], 0
        piece.append(item)
        size += step
    if piece:
        yield piece


def _write(txn, db, head: bytes, fence: bytes, items: list[tuple[bytes, bytes]]) -> None:
    """Replace the segment at ``fence`` with ``items``, split when they outgrow ``SPLIT_BYTES``
    (the first piece keeps the fence, the others are fenced by their first key)."""
    if not items:
        txn.delete(head + fence, db=db)
        return
    total = sum(_HEAD.size + len(k) + len(r) for k, r in items)
    pieces = [items] if total <= SPLIT_BYTES else list(_pieces(items))
    txn.put(head + fence, encode(pieces[0]), db=db)
    for piece in pieces[1:]:
        txn.put(head + piece[0][0], encode(piece), db=db)


def rebuild(txn, db, level_db, level: str) -> int:
    """Replace a level's segments (``db``) with the records of ``level_db`` (upgrade, repair);
    returns the record count."""
    head = LEVEL_BYTE[level]
    cur = txn.cursor(db=db)
    if cur.set_range(head):
        while bytes(cur.key()[:1]) == head:
            if not cur.delete():
                break
    n, first = 0, True
    records = ((bytes(k), bytes(v)) for k, v in txn.cursor(db=level_db).iternext(keys=True, values=True))
    for piece in _pieces(records):
        txn.put(head + (b"" if first else piece[0][0]), encode(piece), db=db)
        n, first = n + len(piece), False
    return n


def check(txn, db, level_db, level: str) -> list[str]:
    """Differences between a level's segments (``db``) and its records (``level_db``); empty
    when they agree. Both are streamed in key order and merged, so memory holds one segment,
    not the level (a level can be millions of records)."""
    problems: list[str] = []
    packed = _checked_items(txn, db, level, problems)
    stored = ((bytes(k), v) for k, v in txn.cursor(db=level_db).iternext(keys=True, values=True))
    missing = extra = different = n_packed = n_stored = 0
    seg, rec = next(packed, None), next(stored, None)
    while seg is not None or rec is not None:
        if seg is not None and rec is not None and seg[0] == rec[0]:
            different += bytes(seg[1]) != bytes(rec[1])
            n_packed, n_stored = n_packed + 1, n_stored + 1
            seg, rec = next(packed, None), next(stored, None)
        elif rec is None or (seg is not None and seg[0] < rec[0]):
            extra, n_packed = extra + 1, n_packed + 1
            seg = next(packed, None)
        else:
            missing, n_stored = missing + 1, n_stored + 1
            rec = next(stored, None)
    if missing or extra or different:
        problems.append(
            f"{level} segments disagree with the {LEVEL_DB[level]} records: "
            f"{missing} missing, {extra} extra, {different} different, "
            f"{n_packed} vs {n_stored} entries"
        )
    return problems


def _checked_items(txn, db, level: str, problems: list[str]) -> Iterator[tuple[bytes, bytes]]:
    """The (key, record) pairs of a level's segments in order, one segment decoded at a time;
    what is wrong with the segments themselves (bytes, fences, order) goes to ``problems``."""
    head = LEVEL_BYTE[level]
    cur = txn.cursor(db=db)
    if not cur.set_range(head):
        return
    previous: bytes | None = None
    for key, value in cur.iternext(keys=True, values=True):
        if bytes(key[:1]) != head:
            return
        fence = bytes(key)[1:]
        try:
            items = decode(value)
        except SegmentError as exc:
            problems.append(f"{level} segment {fence!r}: {exc}")
            continue
        if not items:
            problems.append(f"{level} segment {fence!r} is empty")
        elif items[0][0] < fence:
            problems.append(f"{level} segment {fence!r} holds {items[0][0]!r}, below its fence")
        for item in items:
            if previous is not None and item[0] <= previous:
                problems.append(f"{level} segment {fence!r} holds {item[0]!r} out of order")
                continue  # skipped: the merge needs ascending keys
            previous = item[0]
            yield item


__all__ = ["SEGMENTED_LEVELS", "SegmentError", "apply", "check", "decode", "encode", "entries", "rebuild", "values"]
