"""Extra indexed attributes (``extra_tags``): adding one backfills its entries, removing one
drops them, in the same write transaction that changes the list the index keeps.

The index must never lose a match: a planner that uses the entries of an attribute has to find
every entity, the ones stored before the attribute was indexed included. Each level's records
already hold every attribute of their level (ingest keeps them all), so the entries are built
from the records alone: no blob and no header is read. One write transaction does the whole
change; readers keep their snapshot and see the new entries and the new list together, and
other writers wait (LMDB has one writer), so none can store an instance that misses the new
attribute's entry.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable

from .. import model
from ..errors import QueryError
from . import codec, compression
from .layout import INDEXED_TAGS, LEVEL_DB, is_internal
from .secondary import DEFAULT_INDEXED, prefix, tag_entries

#: entries written per putmulti: bounded memory on a large archive
CHUNK = 100_000


def index_levels(tag: int) -> tuple[str, ...]:
    """The levels whose records are indexed on ``tag`` (patient attributes: PATIENT and STUDY)."""
    level = model.storage_level(tag)
    return ("PATIENT", "STUDY") if level == "PATIENT" else (level,)


def check_tag(tag: int) -> None:
    """Refuse an attribute that cannot be an extra index: an internal pseudo-tag or a sequence."""
    if is_internal(tag) or tag < 0x00080000:
        raise QueryError(f"{tag:08X}", "not an attribute that can be indexed")
    if model.vr_of(tag) == "SQ":
        raise QueryError(model.keyword_of(tag) or f"{tag:08X}", "a sequence cannot be an indexed attribute")


def set_indexed(
    txn, db_of: Callable[[str], object], current: Iterable[int], tags: Iterable[int], progress: bool = False
) -> tuple[list[int], list[int]]:
    """Make ``tags`` the extra indexed attributes inside the write transaction ``txn``, where
    ``current`` are indexed now (``Index.indexed_tags(txn)``) and ``db_of`` names the databases.

    Returns ``(added, removed)``. Attributes indexed by default need no extra entry and are
    dropped from the list."""
    wanted = sorted({int(t) for t in tags})
    for tag in wanted:
        check_tag(tag)
    wanted = [t for t in wanted if not all(t in DEFAULT_INDEXED.get(lv, ()) for lv in index_levels(t))]
    current = set(current)
    added = [t for t in wanted if t not in current]
    removed = sorted(current - set(wanted))
    for tag in removed:
        _drop(txn, db_of, tag)
    for tag in added:
        backfill(txn, db_of, tag, progress)
    txn.put(INDEXED_TAGS, json.dumps(wanted).encode(), db=db_of("meta"))
    return added, removed


def _levels_to_file(tag: int) -> list[str]:
    return [lv for lv in index_levels(tag) if tag not in DEFAULT_INDEXED.get(lv, ())]


def backfill(txn, db_of: Callable[[str], object], tag: int, progress: bool = False) -> None:
    """Write the entries of ``tag`` for every record of its levels (``db_of``: database name ->
    handle). Idempotent: entries already there are left as they are (the index is dupsort)."""
    from ..progress import progress_bar

    idx = txn.cursor(db=db_of("idx"))
    for level in _levels_to_file(tag):
        db = db_of(LEVEL_DB[level])
        total = txn.stat(db)["entries"]
        bar = progress_bar(
            total,
            progress and total > 10_000,
            unit="record",
            desc=f"index {model.keyword_of(tag) or f'{tag:08X}'} ({level.lower()})",
        )
        entries: list[tuple[bytes, bytes]] = []
        for key, raw in txn.cursor(db=db).iternext(keys=True, values=True):
            key = bytes(key)
            raw = compression.expand(txn, db_of("meta"), raw, key)  # an instance record may be compressed
            entries.extend((entry, key) for entry in tag_entries(level, tag, codec.decode(bytes(raw)).get(tag)))
            if len(entries) >= CHUNK:
                idx.putmulti(sorted(entries), dupdata=True)
                entries = []
            if bar is not None:
                bar.update(1)
        idx.putmulti(sorted(entries), dupdata=True)
        if bar is not None:
            bar.close()


def _drop(txn, db_of: Callable[[str], object], tag: int) -> None:
    idx = txn.cursor(db=db_of("idx"))
    for level in _levels_to_file(tag):
        head = prefix(level, tag)
        while idx.set_range(head) and bytes(idx.key()).startswith(head):
            idx.delete(dupdata=True)
