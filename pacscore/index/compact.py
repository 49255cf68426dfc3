"""Rewrite an index into a new file: values recompressed with fresh dictionaries, pages full.

Why: LMDB fills a page that splits under random inserts (UID keys are random) to about 60%,
and keeps the pages a write freed in its file; values written before the archive had a
dictionary, or with an older one, stay as they were. Copying every database in key order into
a new environment with ``MDB_APPEND`` fills each page, drops the free pages, and is the moment
to train the dictionaries again on the whole archive and recompress every value
(docs/scaling.md, "Compact").

Crash safety: the copy is built beside the index (``index.compact-tmp/``) while this process
holds the index's write transaction, so no writer of any process commits meanwhile and every
acknowledged instance is in the copy. Only when the copy is complete and synced does one
``rename`` put its ``data.mdb`` in place of the old one; a process killed before that leaves
the old index as it was (and a stale folder the next compact removes), killed after it leaves
the new one. Other processes must not have the index open (they would keep writing to the old
file): compact refuses when another process holds a reader slot.
"""

from __future__ import annotations

import os
import shutil
import zlib
from dataclasses import dataclass, field
from pathlib import Path

import lmdb

from ..errors import StorageError
from . import compression
from .layout import DB_NAMES, DUPSORT, MAX_DBS, OPTIONAL_DB_NAMES
from .lmdb_index import _SHARED, Index

#: pairs written per putmulti call (bounded memory for a large archive)
CHUNK = 20_000
TMP_SUFFIX = ".compact-tmp"


@dataclass
class CompactReport:
    """What a compact did: bytes of the index file before and after, dictionaries trained."""

    bytes_before: int = 0
    bytes_after: int = 0
    trained: list[str] = field(default_factory=list)
    entries: dict[str, int] = field(default_factory=dict)


def used_bytes(env: lmdb.Environment) -> int:
    """The bytes of the file LMDB has used (last page number + 1, times the page size)."""
    return (env.info()["last_pgno"] + 1) * env.stat()["psize"]


def _other_readers(env: lmdb.Environment) -> list[int]:
    env.reader_check()  # clear the slots of dead processes first
    pids = set()
    for line in env.readers().splitlines()[1:]:
        parts = line.split()
        if parts and parts[0].isdigit():
            pids.add(int(parts[0]))
    return sorted(pids - {os.getpid()})


def compact(index: Index, *, retrain: bool = True, before_swap=None) -> CompactReport:
    """Rewrite ``index`` compacted (see the module's docstring). ``before_swap`` is called
    after the copy is complete and before it replaces the index (tests kill the process
    there). The ``Index`` is closed and reopened on the new file."""
    if index.readonly:
        raise StorageError(f"the index at {index.path} is open read-only: cannot compact it")
    env = index.env
    shared = _SHARED.get((os.path.realpath(index.path), os.getpid()))
    if shared is not None and shared.users > 1:
        raise StorageError(
            f"cannot compact the index at {index.path}: another Archive of this process has it open (close it first)"
        )
    others = _other_readers(env)
    if others:
        raise StorageError(
            f"cannot compact the index at {index.path}: processes {others} have it open "
            f"(stop them first: they would keep writing to the old file)"
        )
    tmp = index.path.with_name(index.path.name + TMP_SUFFIX)
    if tmp.exists():
        shutil.rmtree(tmp)  # left by an interrupted compact: the index itself was never touched
    report = CompactReport(bytes_before=used_bytes(env))
    # the optional databases (the worklist's) this archive has, opened before the write
    # transaction below: opening one takes a write transaction of its own
    optional = [name for name in OPTIONAL_DB_NAMES if index.optional_db(name) is not None]
    txn = env.begin(write=True)  # the writer lock: nothing commits until the swap is done
    try:
        new = lmdb.open(
            str(tmp), map_size=env.info()["map_size"], max_dbs=MAX_DBS, subdir=True, sync=True, metasync=True
        )
        try:
            _copy(txn, index, new, retrain, report)
            for name in optional:  # copied as they are
                with new.begin(write=True) as out:
                    dst = new.open_db(name.encode(), txn=out, dupsort=name in DUPSORT)
                report.entries[name] = _copy_db(txn, index.optional_db(name), new, dst, name, None)
            new.sync(True)
        finally:
            new.close()
        if before_swap is not None:
            before_swap()
        os.replace(tmp / "data.mdb", index.path / "data.mdb")
        _fsync_dir(index.path)
    finally:
        txn.abort()
    shutil.rmtree(tmp, ignore_errors=True)
    index.close()
    env = index.env  # reopened on the new file
    report.bytes_after = used_bytes(env)
    return report


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _copy(txn, index: Index, new: lmdb.Environment, retrain: bool, report: CompactReport) -> None:
    dictionary = compression.trained_dictionary(txn, index.db) if retrain else None
    with new.begin(write=True) as out:
        dbs = {name: new.open_db(name.encode(), txn=out, dupsort=name in DUPSORT) for name in DB_NAMES}
        if dictionary is not None:
            compression.install(out, dbs["meta"], "instance", dictionary)
            report.trained.append("instance")
    plain = compression.plain_bundle(txn, index.db)
    if dictionary is not None:
        with new.begin() as ntxn:
            compress = compression.compressor(ntxn, dbs["meta"], "instance", compression.COMPACT_LEVEL)
        assert compress is not None

        def bundled(key: bytes, raw) -> bytes:  # record and header in one compressed frame
            return compress(plain(key, raw))

        converters = {"instance": bundled, "header": None}
    else:  # too few instances for a dictionary: records and zlib headers, the older form

        def record(key: bytes, raw) -> bytes:
            return compression.unbundle(plain(key, raw), key)[0]

        converters = {"instance": record}
    for name in DB_NAMES:
        if name == "header":
            if dictionary is not None:
                report.entries[name] = 0  # every header went into its instance's bundle
                continue
            report.entries[name] = _copy_db(txn, index.db(name), new, dbs[name], name, None)
            _restore_headers(txn, index, new, dbs[name], plain)
            continue
        report.entries[name] = _copy_db(txn, index.db(name), new, dbs[name], name, converters.get(name))


def _restore_headers(txn, index: Index, new: lmdb.Environment, dst, plain) -> None:
    """Without a dictionary, the headers of bundles go back to the ``header`` database."""
    puts = []
    for key, raw in txn.cursor(db=index.db("instance")).iternext(keys=True, values=True):
        if compression.is_compressed(raw):
            key = bytes(key)
            puts.append((key, zlib.compress(compression.unbundle(plain(key, raw), key)[1], 1)))
    if puts:
        with new.begin(write=True) as out:
            out.cursor(db=dst).putmulti(puts)


def _copy_db(txn, src, new: lmdb.Environment, dst, name: str, convert) -> int:
    """Every pair of ``src`` into the empty ``dst``, in key order, appended; the pairs copied."""
    dupsort = name in DUPSORT
    count = 0
    chunk: list[tuple[bytes, bytes]] = []

    def flush() -> None:
        nonlocal chunk
        if chunk:
            with new.begin(write=True) as out:
                # the dictionaries already sit in the copy's meta: its few keys are put, not appended
                out.cursor(db=dst).putmulti(chunk, dupdata=dupsort, append=name != "meta")
            chunk = []

    for key, value in txn.cursor(db=src).iternext(keys=True, values=True):
        key = bytes(key)
        if name == "meta" and key.startswith((compression.DICT_PREFIX, compression.CURRENT_PREFIX)):
            continue  # the dictionaries of the copy were installed above
        chunk.append((key, convert(key, value) if convert is not None else bytes(value)))
        count += 1
        if len(chunk) >= CHUNK:
            flush()
    flush()
    return count


__all__ = ["compact", "CompactReport", "used_bytes"]
