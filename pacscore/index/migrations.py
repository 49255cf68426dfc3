"""Schema upgrades: an archive written by an older pacscore is brought to SCHEMA_VERSION in the
write transaction of its first writable open (lmdb_index.Index), one step per version.

Each step reads what the older layout kept and writes what the newer one adds, from the index
alone (never from the blobs); a read-only open leaves an older archive as it is, and the
readers handle every version they accept (docs/storage-layout.md).
"""

from __future__ import annotations

import json

from . import codec, compression
from .extra_tags import backfill
from .layout import COMPACT_HEADERS_SCHEMA, INDEXED_TAGS, LEVEL_BYTE, LEVEL_DB, SCHEMA_VERSION, SETTINGS_KEY, following
from .secondary import GRAM_INDEXED, UNINDEXABLE, gram_entries, is_empty_field, is_empty_gram_field
from .segments import SEGMENTED_LEVELS, rebuild


def upgrade(txn, dbs: dict, version: int) -> None:
    """Bring an index of schema ``version`` to the current one inside ``txn``: every step into
    a version above ``version``, in order. A version without a step (its change needs none, or
    its step lives on another branch not merged yet) is passed over."""
    for into in sorted(STEPS):
        if version < into <= SCHEMA_VERSION:
            STEPS[into](txn, dbs)


def to_segments(txn, dbs) -> None:
    """Version 1 -> 2: build the scan segments of an archive written before they existed."""
    for level in SEGMENTED_LEVELS:
        rebuild(txn, dbs["segments"], dbs[LEVEL_DB[level]], level)


def to_grams(txn, dbs) -> None:
    """Version 2 -> 3: add the trigram entries of every record written before they existed."""
    idx = txn.cursor(db=dbs["idx"])
    for level in GRAM_INDEXED:
        entries: list[tuple[bytes, bytes]] = []
        for key, raw in txn.cursor(db=dbs[LEVEL_DB[level]]).iternext(keys=True, values=True):
            key = bytes(key)
            entries.extend((entry, key) for entry in gram_entries(level, codec.decode(bytes(raw))))
            if len(entries) >= 200_000:  # bounded memory for a large archive
                idx.putmulti(sorted(entries), dupdata=True)
                entries = []
        idx.putmulti(sorted(entries), dupdata=True)


def to_unindexable(txn, dbs) -> None:
    """Version 3 -> 4: the entities filed under a bare prefix (``level byte + tag``, or the
    trigram prefix ``level byte + FF FE + tag``) whose value is not empty (a sequence, a date
    that is not YYYYMMDD, ...) move to the prefix + UNINDEXABLE (index/secondary.py); the
    empty and absent ones stay. The bare prefixes are found by jumping from one prefix to the
    next, not by reading every entry."""
    level_of = {byte: level for level, byte in LEVEL_BYTE.items()}
    idx = dbs["idx"]
    cur = txn.cursor(db=idx)
    moves = []
    start = b""
    while cur.set_range(start):
        key = bytes(cur.key())
        width = 7 if key[1:3] == b"\xff\xfe" else 5  # a trigram prefix, or an index prefix
        head = key[:width]
        if len(key) == width and head[:1] in level_of:
            level, tag = level_of[head[:1]], int.from_bytes(head[-4:], "big")
            empty = is_empty_gram_field if width == 7 else is_empty_field
            for entity in list(map(bytes, cur.iternext_dup(keys=False, values=True))):
                raw = txn.get(entity, db=dbs[LEVEL_DB[level]])
                if raw is not None and not empty(codec.decode(bytes(raw)).get(tag)):
                    moves.append((head, entity))
        after = following(head)
        if after is None:
            break
        start = after
    for head, entity in moves:
        txn.delete(head, entity, db=idx)
        txn.put(head + UNINDEXABLE, entity, db=idx, dupdata=True)


def to_indexed_tags(txn, dbs) -> None:
    """Version 4 -> 5: the extra indexed tags move from the settings to their own meta key,
    and their entries are backfilled: before, a tag added to an archive that held instances
    had no entries for them, and a query planned on it lost those matches."""
    raw = txn.get(SETTINGS_KEY, db=dbs["meta"])
    settings = json.loads(bytes(raw)) if raw else {}
    tags = sorted(int(t) for t in settings.pop("extra_tags", []))
    for tag in tags:
        backfill(txn, dbs.__getitem__, tag)
    txn.put(INDEXED_TAGS, json.dumps(tags).encode(), db=dbs["meta"])
    if raw:
        txn.put(SETTINGS_KEY, json.dumps(settings, sort_keys=True).encode(), db=dbs["meta"])


def to_compact_headers(txn, dbs) -> None:
    """Into version 7: the instances written from now on keep their record and header in one
    zstd frame compressed with a dictionary trained on the archive's own instances
    (index/compression.py). The dictionary is trained here when the archive holds enough
    instances; the values already stored stay as they are and stay readable (readers take both
    forms), and ``Archive.compact()`` rewrites them."""
    compression.maybe_train(txn, dbs.__getitem__)


#: the version each step brings an index into -> the step
STEPS = {
    2: to_segments,
    3: to_grams,
    4: to_unindexable,
    5: to_indexed_tags,
    COMPACT_HEADERS_SCHEMA: to_compact_headers,
}
