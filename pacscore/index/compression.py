"""Instance values kept small: zstd frames compressed with a dictionary trained on the archive.

Why: an instance cost the index two values, its record (about 0.7 KB) and its header (about
1.3 KB), each under its own 44-byte UID key, and the bulk of both repeats from instance to
instance (the same tags, VRs, SOP classes, transfer syntaxes, code sequences) or from one to
the other (the UIDs of the instance, its series and study). Since schema 7 an instance's value
in the ``instance`` database is one zstd frame holding both, its *bundle* (``BUNDLE`` byte, u32
little-endian record length, record, header), compressed with a dictionary trained on the
archive's own bundles: about 400 bytes instead of 2,000, and a record still decompresses alone,
in about two microseconds, so a query reads one record as before (docs/scaling.md, "Index size").

How values are told apart: a zstd frame starts with the bytes ``28 B5 2F FD``, which an older
record cannot start with (its first byte is the record version, 01), so readers take both forms
and archives written before schema 7 read as they are; their headers stay zlib-compressed in the
``header`` database until a compact moves them into bundles. A frame names its dictionary by id;
dictionaries live in ``meta`` under ``zdict/`` + the id (a CRC-32 of the dictionary, then the
dictionary) while any value uses them; ``zdict-current/instance`` names the one new writes use.
The first is trained once the archive holds ``TRAIN_AT`` instances (``maybe_train``, called by
the writer); until then instances are written in the older form. ``Archive.compact`` trains
again on the whole archive and rewrites every value with the new dictionary (index/compact.py).
"""

from __future__ import annotations

import random
import struct
import threading
import zlib
from collections.abc import Callable, Iterable
from typing import Any

import zstandard

from ..errors import StorageError

#: the kinds of compressed values, and the database each one lives in
KINDS = {"instance": "instance"}
#: the first byte of a bundle (a record starts with its version byte, 01); a *keyed* bundle has
#: every occurrence of its key (the SOP Instance UID, four times in a bundle: the record, the
#: blob key, the file meta and the data set) replaced by ``KEY_MARK``, since the LMDB key holds
#: it already; a random UID costs a compressor about 20 bytes, and 35 a bundle (docs/scaling.md)
BUNDLE = 0x02
KEYED_BUNDLE = 0x03
#: a byte string without a border (no proper prefix is also a suffix), so that its occurrences
#: after the replacement are exactly the replaced ones; ``bundle`` checks the round trip anyway
KEY_MARK = b"\x00\xff\xfe\xfd"
_LENGTH = struct.Struct("<I")
DICT_PREFIX = b"zdict/"
CURRENT_PREFIX = b"zdict-current/"
MAGIC = b"\x28\xb5\x2f\xfd"
#: values of a kind the archive holds before its first dictionary is trained
TRAIN_AT = 1000
#: values sampled to train a dictionary, and the dictionary's size in bytes (at most a tenth of
#: the samples' bytes): at 1M generated instances, keyed bundles of 276 bytes with 1 MiB, 289
#: with 256 KiB (level 12; docs/scaling.md)
SAMPLES = 20_000
DICT_SIZE = 1024 * 1024
#: zstd levels: ingest compresses at 3 (about 10 us a bundle); compact, offline, at 12 (about
#: 60 us, 15% smaller). Reading costs the same (about 2 us) whatever the level
LEVEL = 3
COMPACT_LEVEL = 12

_local = threading.local()  # zstd (de)compressor objects are not safe across threads
_generation = 0  # bumped at each environment opened (new_environment)


def is_compressed(raw: bytes | memoryview) -> bool:
    return bytes(raw[:4]) == MAGIC


def _dict_key(dict_id: int) -> bytes:
    return DICT_PREFIX + dict_id.to_bytes(4, "big")


def new_environment() -> None:
    """Forget the dictionaries checked so far (lmdb_index calls it at each environment it
    opens): a dictionary is read and checked against its CRC-32 once per environment and
    thread, not at every value, since it is a quarter of a megabyte."""
    global _generation
    _generation += 1


def _load(txn, meta, dict_id: int) -> tuple[zstandard.ZstdCompressionDict, zstandard.ZstdDecompressor]:
    """The dictionary ``dict_id`` and a decompressor using it, checked once per environment."""
    cache: dict = _local.__dict__.setdefault("dicts", {})
    hit = cache.get(dict_id)
    if hit is not None and hit[0] == _generation:
        return hit[1], hit[2]
    raw = txn.get(_dict_key(dict_id), db=meta)
    if raw is None:
        raise StorageError(
            f"the index is damaged: compression dictionary {dict_id} is missing "
            f"(values compressed with it cannot be read; restore the index from a backup)"
        )
    stored = bytes(raw)
    body = stored[4:]
    if len(stored) < 4 or zlib.crc32(body) != int.from_bytes(stored[:4], "big"):
        raise StorageError(
            f"the index is damaged: compression dictionary {dict_id} fails its checksum "
            f"(restore the index from a backup)"
        )
    zdict = zstandard.ZstdCompressionDict(body, dict_type=zstandard.DICT_TYPE_FULLDICT)
    if len(cache) > 16:
        cache.clear()
    cache[dict_id] = (_generation, zdict, zstandard.ZstdDecompressor(dict_data=zdict))
    return zdict, cache[dict_id][2]


def decompress(txn, meta, raw: Any) -> bytes:
    """The content of a zstd frame stored in the index."""
    data = bytes(raw)
    try:
        dict_id = zstandard.get_frame_parameters(data).dict_id
        return _load(txn, meta, dict_id)[1].decompress(data)
    except zstandard.ZstdError as exc:
        raise StorageError(f"the index is damaged: a compressed value cannot be read ({exc})") from None


def bundle(record: bytes, header: bytes, key: bytes | None = None) -> bytes:
    """An instance's record and Part-10 header as one value, before compression; keyed (its
    ``key`` left out) when the replacement is reversible."""
    body = record + header
    if key:
        keyed = body.replace(key, KEY_MARK)
        if keyed != body and keyed.replace(KEY_MARK, key) == body:
            return bytes([KEYED_BUNDLE]) + _LENGTH.pack(len(record)) + keyed
    return bytes([BUNDLE]) + _LENGTH.pack(len(record)) + body


def unbundle(content: bytes, key: bytes | None = None) -> tuple[bytes, bytes]:
    """``(record, header)`` of a bundle; a keyed bundle needs its ``key``."""
    if len(content) < 5 or content[0] not in (BUNDLE, KEYED_BUNDLE):
        raise StorageError("the index is damaged: a compressed instance value is not a bundle")
    n = _LENGTH.unpack_from(content, 1)[0]
    body = content[5:]
    if content[0] == KEYED_BUNDLE:
        if not key:
            raise StorageError("the index is damaged: a keyed bundle read without its key")
        body = body.replace(KEY_MARK, bytes(key))
    if n > len(body):
        raise StorageError("the index is damaged: a compressed instance value is truncated")
    return body[:n], body[n:]


def expand(txn, meta, raw: Any, key: Any) -> Any:
    """The record of the instance ``key``: ``raw`` itself when it is not a zstd frame (a record
    of any schema, or a buffer into the map), else the record of the decompressed bundle."""
    if raw is None or bytes(raw[:4]) != MAGIC:
        return raw
    return unbundle(decompress(txn, meta, raw), bytes(key))[0]


def zlib_header(raw: Any) -> bytes | None:
    """A header of the ``header`` database (zlib, the form before schema 7), decompressed."""
    if raw is None:
        return None
    try:
        return zlib.decompress(bytes(raw))
    except zlib.error as exc:
        raise StorageError(f"the index is damaged: a stored header cannot be read ({exc})") from None


def instance_header(txn, meta, header_db, key: bytes, raw: Any) -> bytes | None:
    """The Part-10 header of the instance whose stored value is ``raw``: from its bundle, or
    (written before its archive had a dictionary) from the ``header`` database."""
    if raw is not None and is_compressed(raw):
        return unbundle(decompress(txn, meta, raw), key)[1]
    return zlib_header(txn.get(key, db=header_db))


def current(txn, meta, kind: str) -> int | None:
    """The id of the dictionary new values of ``kind`` are compressed with (None: none yet)."""
    raw = txn.get(CURRENT_PREFIX + kind.encode(), db=meta)
    return None if raw is None else int.from_bytes(bytes(raw), "big")


def compressor(txn, meta, kind: str, level: int = LEVEL) -> Callable[[bytes], bytes] | None:
    """A function compressing values of ``kind`` with its current dictionary at zstd ``level``
    (None: no dictionary yet, values are written as they are)."""
    dict_id = current(txn, meta, kind)
    if dict_id is None:
        return None
    zdict = _load(txn, meta, dict_id)[0]
    cache: dict = _local.__dict__.setdefault("compressors", {})
    hit = cache.get((dict_id, level))
    if hit is None or hit[0] is not zdict:
        if len(cache) > 16:
            cache.clear()
        made = zstandard.ZstdCompressor(level=level, dict_data=zdict, write_checksum=False, write_dict_id=True)
        hit = cache[(dict_id, level)] = (zdict, made)
    return hit[1].compress


def train(samples: list[bytes]) -> bytes:
    """A zstd dictionary trained on ``samples`` (uncompressed values)."""
    size = min(DICT_SIZE, max(1024, sum(map(len, samples)) // 10))
    return zstandard.train_dictionary(size, list[bytes | bytearray | memoryview](samples), level=LEVEL).as_bytes()


def install(txn, meta, kind: str, dictionary: bytes) -> int:
    """Store ``dictionary`` and make it the current one of ``kind``; returns its id."""
    dict_id = zstandard.ZstdCompressionDict(dictionary).dict_id()
    if not dict_id:
        raise ValueError("a dictionary without an id cannot be named by the frames that use it")
    txn.put(_dict_key(dict_id), zlib.crc32(dictionary).to_bytes(4, "big") + dictionary, db=meta)
    txn.put(CURRENT_PREFIX + kind.encode(), dict_id.to_bytes(4, "big"), db=meta)
    return dict_id


def plain_bundle(txn, db_of: Callable[[str], Any]) -> Callable[[bytes, Any], bytes]:
    """``(key, stored instance value) -> its bundle uncompressed``, from either form."""
    meta, header_db = db_of("meta"), db_of("header")

    def plain(key: bytes, raw: Any) -> bytes:
        if is_compressed(raw):
            content = decompress(txn, meta, raw)
            return content if content[0] == KEYED_BUNDLE else bundle(*unbundle(content), key)
        return bundle(bytes(raw), zlib_header(txn.get(key, db=header_db)) or b"", key)

    return plain


def sample(txn, db, plain: Callable[[bytes, Any], bytes], count: int = SAMPLES) -> list[bytes]:
    """Up to ``count`` values of ``db``, uncompressed, spread over the whole database: every
    k-th entry in key order (keys are UIDs, so key order mixes patients and modalities)."""
    total = int(txn.stat(db)["entries"])
    step = max(1, total // count)
    start = random.Random(total).randrange(step)
    out = []
    for i, (key, raw) in enumerate(txn.cursor(db=db).iternext(keys=True, values=True)):
        if i % step == start:
            out.append(plain(bytes(key), raw))
            if len(out) >= count:
                break
    return out


def trained_dictionary(txn, db_of: Callable[[str], Any], kind: str = "instance") -> bytes | None:
    """A dictionary trained on a sample of the archive's values of ``kind``; None when it holds
    fewer than ``TRAIN_AT`` of them or zstd finds too little to train on."""
    db = db_of(KINDS[kind])
    if int(txn.stat(db)["entries"]) < TRAIN_AT:
        return None
    try:
        return train(sample(txn, db, plain_bundle(txn, db_of)))
    except zstandard.ZstdError:  # too few or too uniform samples: the values stay uncompressed
        return None


def maybe_train(txn, db_of: Callable[[str], Any], kinds: Iterable[str] = KINDS) -> list[str]:
    """Train the first dictionary of each kind that has none and holds ``TRAIN_AT`` values;
    the kinds trained. Values already written stay as they are (compact rewrites them)."""
    meta = db_of("meta")
    trained = []
    for kind in kinds:
        if current(txn, meta, kind) is not None:
            continue
        dictionary = trained_dictionary(txn, db_of, kind)
        if dictionary is not None:
            install(txn, meta, kind, dictionary)
            trained.append(kind)
    return trained


def dictionaries(txn, meta) -> list[int]:
    """The ids of every stored dictionary."""
    cur = txn.cursor(db=meta)
    out = []
    if cur.set_range(DICT_PREFIX):
        for key in cur.iternext(keys=True, values=False):
            key = bytes(key)
            if not key.startswith(DICT_PREFIX):
                break
            out.append(int.from_bytes(key[len(DICT_PREFIX) :], "big"))
    return out


def drop_unused(txn, meta) -> list[int]:
    """Remove the dictionaries that are no kind's current one (after a compact has rewritten
    every value); the ids removed."""
    keep = {current(txn, meta, kind) for kind in KINDS}
    gone = [d for d in dictionaries(txn, meta) if d not in keep]
    for dict_id in gone:
        txn.delete(_dict_key(dict_id), db=meta)
    return gone


__all__ = [
    "KINDS",
    "TRAIN_AT",
    "expand",
    "bundle",
    "unbundle",
    "instance_header",
    "compressor",
    "current",
    "train",
    "install",
    "maybe_train",
    "drop_unused",
    "is_compressed",
]
