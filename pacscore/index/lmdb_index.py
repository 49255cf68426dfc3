"""The LMDB environment: named databases, key layouts, schema version, settings, map growth.

Databases (all keys and values are bytes; UIDs and patient keys are UTF-8):

    meta        b"schema" -> version; b"settings" -> JSON settings persisted with the archive;
                b"indexed_tags" -> JSON list of the extra indexed tags; b"zdict/" + id ->
                a compression dictionary (compression.py)
    patient     PatientID \\0 Issuer       -> record
    study       StudyInstanceUID          -> record (patient attributes of the study + study ones)
    series      SeriesInstanceUID         -> record
    instance    SOPInstanceUID            -> record (+ blob size, checksum, parents), or since
                                             schema 7 zstd(record + header) (compression.py)
    header      SOPInstanceUID            -> zlib(Part-10 header without bulk data), for an
                                             instance stored without a dictionary
    children    level byte + parent key   -> child key          (dupsort: ordered children)
    idx         level byte + tag + value  -> entity key         (dupsort: secondary index)
    segments    level byte + fence        -> packed records      (scan segments, index/segments.py)

One Environment per process: LMDB forbids carrying one across fork(), so ``Index.env`` reopens
when the pid changes.

Durability: the environment is opened without LMDB's meta-page sync (MDB_NOMETASYNC), which
keeps the database intact on a crash (each commit's pages are synced before its meta page is
written) but lets the last commits be undone. ``Index.write()`` makes a commit durable with an
explicit ``env.sync`` after it, the same two syncs LMDB would have made; only commits that need
to be seen but not to survive (the blob journal's records, index/pending.py) skip that sync.
"""

from __future__ import annotations

import contextlib
import json
import os
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import lmdb

from ..errors import StorageError
from . import compression, migrations
from .layout import (  # noqa: F401 (re-exported: the index's names)
    DB_NAMES,
    DUPSORT,
    INDEXED_TAGS,
    LEVEL_BYTE,
    LEVEL_DB,
    MAX_DBS,
    OPTIONAL_DB_NAMES,
    SCHEMA_KEY,
    SCHEMA_VERSION,
    SETTINGS_KEY,
)

_VERSION = "schema version"  # kept in the shared dict of databases, for read-only opens

INITIAL_MAP_SIZE = 1 << 30  # grows by doubling on MapFullError

# LMDB allows one Environment per file per process: Index objects of one folder share it
_SHARED: dict[tuple[str, int], _Shared] = {}
_SHARED_LOCK = threading.RLock()


def max_readers() -> int:
    """LMDB reader slots to ask for: 256, or ``PACSCORE_MAX_READERS`` (set by ``serve web
    --workers`` / ``serve dimse --processes`` for all their processes; pacscore/serve_processes.py).
    The first process to open an environment sizes its table; later ones share it."""
    text = os.environ.get("PACSCORE_MAX_READERS", "").strip()
    if not text:
        return 256
    if not text.isdigit() or int(text) < 1:
        raise StorageError(f"PACSCORE_MAX_READERS must be a positive whole number of reader slots, not {text!r}")
    return int(text)


@contextlib.contextmanager
def write_txn(env: lmdb.Environment, durable: bool = True) -> Iterator[lmdb.Transaction]:
    """``Index.write`` for an environment (module docstring: durability)."""
    try:
        txn = env.begin(write=True)
    except lmdb.MapResizedError:  # another process grew the map: adopt its size
        env.set_mapsize(0)
        txn = env.begin(write=True)
    with txn as entered:
        yield entered
    if durable:
        env.sync(True)


class Index:
    """Owns the LMDB environment of one archive folder."""

    def __init__(self, path: str | os.PathLike, *, readonly: bool = False, map_size: int | None = None) -> None:
        self.path = Path(path)
        self.readonly = readonly
        self._map_size = map_size
        self._pid = -1
        self._env: lmdb.Environment | None = None
        self._dbs: dict[str, Any] = {}  # name -> database handle; _VERSION -> the schema version
        self._lock = threading.Lock()
        self._tags_cache: tuple[bytes, tuple[int, ...]] | None = None
        self._levels_cache: tuple[tuple[int, ...], dict[str, tuple[int, ...]]] | None = None
        self.env  # open now so that errors surface at open()

    @property
    def env(self) -> lmdb.Environment:
        if self._pid != os.getpid() or self._env is None:
            with self._lock:
                if self._pid != os.getpid() or self._env is None:
                    self._open()
        return self._env  # type: ignore[return-value]  # _open() set it (or raised)

    @property
    def segmented(self) -> bool:
        """Whether this archive keeps scan segments (index/segments.py); a version 1 archive
        opened read-only does not."""
        self.env
        return "segments" in self._dbs

    @property
    def splits_unindexable(self) -> bool:
        """Whether values the index cannot file by text have their own entries, apart from the
        empty ones (schema 4); not in an older archive opened read-only."""
        self.env
        return self._dbs.get(_VERSION, SCHEMA_VERSION) >= 4

    @property
    def grams(self) -> bool:
        """Whether the trigram entries exist (schema 3); not in an older archive opened read-only."""
        self.env
        return self._dbs.get(_VERSION, SCHEMA_VERSION) >= 3

    @property
    def time_entries(self) -> bool:
        """Whether TM and DT values are filed by their first instant (schema 6), so that a
        time range is a walk of index keys; not in an older archive opened read-only."""
        self.env
        return self._dbs.get(_VERSION, SCHEMA_VERSION) >= migrations.TIME_ENTRIES_SCHEMA

    def db(self, name: str):
        self.env
        return self._dbs[name]

    def write(self, durable: bool = True) -> contextlib.AbstractContextManager[lmdb.Transaction]:
        """A write transaction, committed when the block ends without an error (aborted
        otherwise); with ``durable`` the commit is on disk when the block is left."""
        return write_txn(self.env, durable)

    def optional_db(self, name: str, *, create: bool = False):
        """One of ``OPTIONAL_DB_NAMES``, or None while the archive lacks it and ``create`` is
        false. It is created (with ``create``) in a short write transaction of its own, so that
        no caller's transaction holds a database handle LMDB would drop on abort."""
        if name not in OPTIONAL_DB_NAMES:
            raise ValueError(f"{name!r} is not an optional database (known: {OPTIONAL_DB_NAMES})")
        env = self.env
        db = self._dbs.get(name)
        if db is not None:
            return db
        # the names of the named databases are keys of LMDB's main database: a read transaction
        # tells whether it exists, where open_db would wait for the write lock of a writer
        with self.read() as txn:
            exists = txn.get(name.encode()) is not None
        if not exists and not create:
            return None
        with self._lock:
            db = self._dbs.get(name)
            if db is None:
                if not exists:
                    self._check_writable(f"create the {name} database")
                    with write_txn(env) as txn:
                        db = env.open_db(name.encode(), txn=txn, dupsort=name in DUPSORT)
                else:
                    db = env.open_db(name.encode(), create=False, dupsort=name in DUPSORT)
                self._dbs[name] = db
        return db

    def _open(self) -> None:
        key = (os.path.realpath(self.path), os.getpid())
        with _SHARED_LOCK:
            shared = _SHARED.get(key)
            if shared is None:
                self._close_inherited()
                shared = self._open_new()
                _SHARED[key] = shared
            else:  # another Index of this process has this folder open: share its environment
                shared.users += 1
            if not self.readonly and not shared.writable:
                try:
                    self._prepare_writable(shared)
                except BaseException:
                    self._release(shared, key)
                    raise
            self._env, self._dbs, self._pid = shared.env, shared.dbs, key[1]

    def _close_inherited(self) -> None:
        if self._env is not None:
            # inherited across fork(): unusable here; closing it in the child only unmaps and closes
            # descriptors (reader slots belong to the parent's pid and are left alone)
            try:
                self._env.close()
            except lmdb.Error:
                pass
            self._env = None

    def _open_new(self) -> _Shared:
        """Open the environment. A read-only Index opens an existing index without creating or
        upgrading anything; it still opens LMDB read-write where the files allow it, so that a
        writable Index of the same folder opened later in this process can share the environment
        (LMDB allows one per file per process)."""
        data = self.path / "data.mdb"
        existing = data.exists()
        if self.readonly and not existing:
            raise StorageError(f"no index at {self.path}")
        if not self.readonly:
            self.path.mkdir(parents=True, exist_ok=True)
        lmdb_readonly = self.readonly and not (os.access(data, os.W_OK) and os.access(self.path, os.W_OK))
        size = self._map_size or max(INITIAL_MAP_SIZE, data.stat().st_size * 2 if existing else 0)
        try:
            env = lmdb.open(
                str(self.path),
                map_size=size,
                max_dbs=MAX_DBS,
                subdir=True,
                readonly=lmdb_readonly,
                lock=True,
                max_readers=max_readers(),
                metasync=False,  # made durable by Index.write() (module docstring)
                sync=True,
                create=not self.readonly,
            )
        except lmdb.Error as exc:
            raise StorageError(f"cannot open the index at {self.path}: {exc}") from None
        compression.new_environment()  # its dictionaries are checked again (compression.py)
        shared = _Shared(env, {}, lmdb_readonly)
        try:
            if self.readonly:
                self._open_existing(shared)
            else:
                self._prepare_writable(shared)
        except BaseException:
            env.close()
            raise
        env.reader_check()  # clear reader slots left by killed processes
        return shared

    def _open_existing(self, shared: _Shared) -> None:
        """The databases of an existing index, as they are: no creation, no upgrade."""
        env, dbs = shared.env, shared.dbs
        try:
            meta = env.open_db(b"meta", create=False)
        except lmdb.Error as exc:
            raise StorageError(f"not a pacscore index at {self.path}: {exc}") from None
        with env.begin() as txn:
            stored = txn.get(SCHEMA_KEY, db=meta)
        version = SCHEMA_VERSION if stored is None else int(stored)
        self._check_version(env, version)
        dbs[_VERSION] = version
        for name in DB_NAMES:
            if name == "segments" and version < 2:
                continue  # a version 1 archive opened read-only: scans use the level databases
            dbs[name] = env.open_db(name.encode(), create=False, dupsort=name in DUPSORT)

    def _prepare_writable(self, shared: _Shared) -> None:
        """Create the databases, upgrade an older schema, record the version: once per
        environment, by the first writable Index (the dict of databases is shared, so Index
        objects opened read-only before see the upgrade too)."""
        if shared.lmdb_readonly:
            raise StorageError(
                f"the index at {self.path} is open read-only in this process (its files are "
                f"not writable): it cannot be opened for writing"
            )
        env = shared.env
        dbs: dict[str, Any] = {}
        with write_txn(env) as txn:
            for name in DB_NAMES:
                dbs[name] = env.open_db(name.encode(), txn=txn, dupsort=name in DUPSORT)
            meta = dbs["meta"]
            version = txn.get(SCHEMA_KEY, db=meta)
            if version is not None:
                self._check_version(env, int(version))
                migrations.upgrade(txn, dbs, int(version))
            txn.put(SCHEMA_KEY, str(SCHEMA_VERSION).encode(), db=meta)
        dbs[_VERSION] = SCHEMA_VERSION
        shared.dbs.update(dbs)
        shared.writable = True

    def _release(self, shared: _Shared, key) -> None:
        shared.users -= 1
        if shared.users == 0:
            del _SHARED[key]
            shared.env.close()

    def _check_version(self, env, version: int) -> None:
        if not 1 <= version <= SCHEMA_VERSION:
            env.close()
            raise StorageError(
                f"index schema version {version} at {self.path}; this pacscore reads versions 1 to {SCHEMA_VERSION}"
            )

    def grow(self) -> None:
        """Double the map size (called outside any transaction after MapFullError)."""
        env = self.env
        env.set_mapsize(env.info()["map_size"] * 2)

    def read(self):
        try:
            return self.env.begin(buffers=True)
        except lmdb.MapResizedError:  # another process grew the map: adopt its size
            self.env.set_mapsize(0)
            return self.env.begin(buffers=True)

    def settings(self) -> dict:
        with self.env.begin() as txn:
            raw = txn.get(SETTINGS_KEY, db=self.db("meta"))
        return json.loads(raw) if raw else {}

    def save_settings(self, settings: dict) -> None:
        self._check_writable("change the settings")
        with self.write() as txn:
            txn.put(SETTINGS_KEY, json.dumps(settings, sort_keys=True).encode(), db=self.db("meta"))

    def indexed_tags(self, txn) -> tuple[int, ...]:
        """The attributes indexed beyond the defaults (``extra_tags``), read in ``txn``: every
        writer and planner reads them from the index itself, so an Archive of another process
        that added a tag is seen at its next transaction (index/extra_tags.py adds them)."""
        raw = txn.get(INDEXED_TAGS, db=self.db("meta"))
        # none in an archive of schema 4 or older opened read-only: the tags its settings list
        # may lack entries for instances stored before they were added, so plans do not use them
        raw = b"[]" if raw is None else bytes(raw)
        cached = self._tags_cache
        if cached is None or cached[0] != raw:
            cached = self._tags_cache = (raw, tuple(sorted(int(t) for t in json.loads(raw))))
        return cached[1]

    def indexed_by_level(self, txn) -> dict[str, tuple[int, ...]]:
        """``indexed_tags`` by the level whose records are indexed on them (a patient attribute
        is indexed on PATIENT and on STUDY, whose records repeat the patient's values)."""
        tags = self.indexed_tags(txn)
        cached = self._levels_cache
        if cached is None or cached[0] != tags:
            from .. import model

            by_level: dict[str, list[int]] = {}
            for tag in tags:
                level = model.storage_level(tag)
                by_level.setdefault(level, []).append(tag)
                if level == "PATIENT":
                    by_level.setdefault("STUDY", []).append(tag)
            cached = self._levels_cache = (tags, {k: tuple(v) for k, v in by_level.items()})
        return cached[1]

    def _check_writable(self, what: str) -> None:
        if self.readonly:
            raise StorageError(f"the index at {self.path} is open read-only: cannot {what}")

    def close(self) -> None:
        if self._env is not None and self._pid == os.getpid():
            key = (os.path.realpath(self.path), self._pid)
            with _SHARED_LOCK:
                shared = _SHARED.get(key)
                if shared is not None and shared.env is self._env:
                    self._release(shared, key)
                else:
                    self._env.close()
        self._env = None
        self._pid = -1


class _Shared:
    """One process's environment of one folder, shared by the Index objects that opened it."""

    def __init__(self, env: lmdb.Environment, dbs: dict, lmdb_readonly: bool) -> None:
        self.env = env
        self.dbs = dbs
        self.users = 1
        self.lmdb_readonly = lmdb_readonly
        self.writable = False  # databases created and schema upgraded by a writable Index
