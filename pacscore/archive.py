"""Archive: one LMDB index and one blob store; the only place that orders their writes.

Blob before index: a blob is durable before the index transaction that points at it commits, so
a crash leaves at worst an orphan blob (``verify(repair=True)`` removes it), never an entry
without its bytes. Blob keys carry the content checksum, so replacing an instance writes a new
blob and deletes the old one only after the index commit.
"""

from __future__ import annotations

import hashlib
import io
import logging
import os
import re
from collections.abc import Callable, Iterable, Iterator
from functools import cached_property
from itertools import chain
from pathlib import Path
from typing import TYPE_CHECKING, Any, BinaryIO

import lmdb
import pydicom
from pydicom.dataset import Dataset

from . import ingest, model
from .blobs import BlobStore, open_blobstore
from .errors import ArchiveNotFound, ConfigError, IngestError, NotFound, PacsError, QueryError, StorageError
from .events import API, DeletedEvent, Hook, Hooks, Origin, StoredEvent
from .index import codec as records
from .index import pending, snapshot
from .index.extra_tags import set_indexed
from .index.layout import T_BLOBKEY, T_BULK, T_CHECKSUM, T_PARENT, T_PATIENT, T_SIZE, T_STUDY
from .index.lmdb_index import LEVEL_DB, Index
from .index.secondary import DEFAULT_INDEXED
from .index.writer import Writer
from .maintenance import clean_pending, deleter, remove_unreferenced
from .parse_pool import expand_sources, parse_all
from .progress import progress_bar
from .query import paging
from .query.execute import Executor
from .query.keys import build_query, parse_tag
from .query.results import FORMATS, ResultBuilder
from .reports import IngestReport, InstanceRef, Move, StoreResult, move_between
from .settings import Settings, has_secrets, match_options

if TYPE_CHECKING:
    from .workflow.commitment import Commitments
    from .workflow.mpps import ProcedureSteps
    from .worklist import Worklist

log = logging.getLogger("pacscore.archive")

BATCH_INSTANCES = 500
BATCH_BYTES = 256 * 1024 * 1024


def open(
    folder: str | os.PathLike,
    blobs: str | None = None,
    *,
    create: bool = True,
    readonly: bool = False,
    **handle_options,
) -> Archive:
    """Open the archive in ``folder`` (an LMDB index and, by default, file blobs), creating it
    unless ``create=False``; ``readonly=True`` opens an existing one for reading only.

    ``blobs``, ``on_conflict``, ``uid_policy`` and matching options apply to this handle only;
    ``Archive.configure`` changes what the archive keeps (see pacscore/settings.py).

    >>> with pacscore.open("archive/") as arc:
    ...     arc.store("ct.dcm")
    """
    return Archive(folder, blobs=blobs, create=create, readonly=readonly, **handle_options)


_UNSET = object()


class Archive:
    """The embedded PACS: store, find, count, get, instances, metadata, delete."""

    def __init__(
        self,
        folder: str | os.PathLike,
        blobs: str | None = None,
        *,
        extra_tags: Iterable = (),
        on_conflict: str | None = None,
        uid_policy: str | None = None,
        create: bool = True,
        readonly: bool = False,
        **options,
    ) -> None:
        self.folder = Path(folder)
        self.readonly = readonly
        self._closed = True
        self._hooks = Hooks(str(self.folder))
        index_path = self.folder / "index"
        new = not (index_path / "data.mdb").exists()
        if new and (readonly or not create):
            raise ArchiveNotFound(
                f"no archive in {self.folder} (no index/data.mdb there); create one with "
                f"`pacscore init --archive {self.folder}` or pacscore.open()"
            )
        if new:
            self.folder.mkdir(parents=True, exist_ok=True)
        self.index = Index(index_path, readonly=readonly)
        try:
            stored = Settings.from_json(self.index.settings())
            if new and blobs is not None:  # where the blobs live is part of what creates the archive
                stored = stored.replace(blobs=blobs)
                self.index.save_settings(stored.to_json())
            elif not readonly and has_secrets(self.index.settings().get("blobs") or ""):
                log.warning(
                    "removing the credentials an earlier pacscore kept in the blob store URL of %s; "
                    "they now come from the environment (docs/security.md)",
                    self.folder,
                )
                self.index.save_settings(stored.to_json())
            self._stored = stored
            self.settings = self._handle_settings(stored, blobs, on_conflict, uid_policy, options)
            self._require_indexed(extra_tags, new)
            self.blobs: BlobStore = open_blobstore(self.settings.blobs, root=self.folder)
        except BaseException:
            self.index.close()
            raise
        self._closed = False
        if not readonly:
            clean_pending(self)  # blobs journaled by writers that died before their commit (maintenance.py)

    @staticmethod
    def _handle_settings(stored: Settings, blobs, on_conflict, uid_policy, options: dict) -> Settings:
        """The stored settings overlaid with what this open() asked for (never persisted)."""
        changes = _given(None, blobs=blobs, on_conflict=on_conflict, uid_policy=uid_policy)
        if options:
            changes["options"] = {**stored.options, **options}
        return stored.replace(**changes) if changes else stored

    def _require_indexed(self, extra_tags: Iterable, new: bool) -> None:
        """``extra_tags`` given at open must be indexed already: on a new archive they are
        recorded now (there is nothing to backfill); on an archive with instances, adding one
        is a backfill that ``configure(extra_tags=...)`` or ``pacscore reindex`` does."""
        wanted = {parse_tag(t) if not isinstance(t, int) else int(t) for t in extra_tags}
        missing = wanted - set(self.extra_tags) - _default_indexed(wanted)
        if not missing:
            return
        if new or self._is_empty():
            self.configure(extra_tags=sorted(set(self.extra_tags) | wanted))
            return
        names = ", ".join(model.keyword_of(t) or f"{t:08X}" for t in sorted(missing))
        raise ConfigError(
            "extra_tags",
            f"{names} not indexed in {self.folder}, which holds instances: index "
            f"{'them' if len(missing) > 1 else 'it'} with arc.configure(extra_tags=[...]) or "
            f"`pacscore reindex --archive {self.folder} --add {names.replace(', ', ' --add ')}` "
            f"(backfills from the index's records)",
        )

    def _is_empty(self) -> bool:
        with snapshot.read(self.index) as snap:
            return snap.count("IMAGE") == 0

    # -- settings ---------------------------------------------------------------------------
    @property
    def settings(self) -> Settings:
        """The settings this handle runs with: the stored ones and what open() asked for."""
        return self._settings

    @settings.setter
    def settings(self, value: Settings) -> None:
        self._settings = value
        self.options = match_options(value.options)  # once here, not per query

    @property
    def on_conflict(self) -> str:
        return self.settings.on_conflict

    @property
    def uid_policy(self) -> str:
        return self.settings.uid_policy

    @property
    def extra_tags(self) -> list[int]:
        """The attributes indexed beyond the defaults, as the index keeps them."""
        with snapshot.read(self.index) as snap:
            return list(self.index.indexed_tags(snap.txn))

    def stored_settings(self) -> dict:
        """What the archive keeps and every open starts from (JSON-ready; extra tags by keyword)."""
        out = self._stored.to_json()
        out["extra_tags"] = [model.keyword_of(t) or f"{t:08X}" for t in self.extra_tags]
        return out

    def configure(
        self,
        *,
        blobs=_UNSET,
        on_conflict=_UNSET,
        uid_policy=_UNSET,
        extra_tags=_UNSET,
        progress: bool = False,
        **options,
    ) -> dict:
        """Change what the archive keeps; this handle runs with the change too. Returns
        ``stored_settings()``.

        A matching option set to None goes back to its default. ``extra_tags`` is the whole new
        list: an added attribute's entries are built from the records already stored (in one
        write transaction, so no query ever plans on a half-built index), a removed one's dropped.

        >>> arc.configure(on_conflict="keep", empty_record_matches=False, extra_tags=["StationName"])
        """
        self._check_writable("configure")
        changes = _given(_UNSET, blobs=blobs, on_conflict=on_conflict, uid_policy=uid_policy)
        if options:
            merged = {**self._stored.options, **options}
            changes["options"] = {k: v for k, v in merged.items() if v is not None}
        stored = self._stored.replace(**changes)  # validated before anything is written
        if extra_tags is not _UNSET:
            tags = [parse_tag(t) if not isinstance(t, int) else int(t) for t in _as_list_any(extra_tags)]
            self._write_txn(
                lambda txn: set_indexed(txn, self.index.db, self.index.indexed_tags(txn), tags, progress=progress)
            )
        if changes:
            new_blobs = open_blobstore(stored.blobs, root=self.folder) if "blobs" in changes else None
            self.index.save_settings(stored.to_json())
            handle = {k: v for k, v in changes.items() if k != "options"}
            if options:
                merged = {**self.settings.options, **options}
                handle["options"] = {k: v for k, v in merged.items() if v is not None}
            self._stored, self.settings = stored, self.settings.replace(**handle)
            if new_blobs is not None:
                self.blobs.close()
                self.blobs = new_blobs
        return self.stored_settings()

    def _check_writable(self, what: str) -> None:
        if self.readonly:
            raise StorageError(f"the archive in {self.folder} is open read-only: cannot {what}")

    # -- lifecycle --------------------------------------------------------------------------
    def close(self) -> None:
        self._hooks.close()  # first: a study-stable hook may still read the archive
        if not self._closed:
            self.blobs.close()
            self.index.close()
            self._closed = True

    def __enter__(self) -> Archive:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"<pacscore.Archive {str(self.folder)!r}>"

    # -- event hooks (pacscore/events.py) ---------------------------------------------------
    def on_stored(self, fn: Hook) -> Hook:
        """Call ``fn(StoredEvent)`` for every instance stored through this handle, after its
        commit, in the storing thread; returns ``fn`` (so it works as a decorator)."""
        return self._hooks.add_stored(fn)

    def on_deleted(self, fn: Hook) -> Hook:
        """Call ``fn(DeletedEvent)`` for every instance ``delete()`` removes, after the commit."""
        return self._hooks.add_deleted(fn)

    def on_study_stable(self, fn: Hook | None = None, *, seconds: float = 60.0) -> Any:
        """Call ``fn(StudyStableEvent)`` once a study got no new instance (stored or replaced)
        through this handle for ``seconds``, on this handle's timer thread; again after each
        later quiet period. ``@arc.on_study_stable(seconds=30)`` works as a decorator too."""
        if fn is None:
            return lambda f: self._hooks.add_stable(f, seconds)
        return self._hooks.add_stable(fn, seconds)

    def remove_hook(self, fn: Callable[..., Any]) -> bool:
        """Unregister ``fn`` from every event; whether it was registered."""
        return self._hooks.remove(fn)

    # -- the Modality Worklist (pacscore/worklist) ------------------------------------------
    @cached_property
    def worklist(self) -> Worklist:
        """The Modality Worklist items kept in this archive: ``add``, ``find``, ``get``,
        ``remove``, ``set_step_status`` (docs/workflow.md)."""
        from .worklist import Worklist

        return Worklist(self)

    # -- workflow services (pacscore/workflow/) ---------------------------------------------
    @cached_property
    def mpps(self) -> ProcedureSteps:
        """The Modality Performed Procedure Steps reported to this archive (PS3.4 Annex F):
        ``arc.mpps.get(uid)``, ``arc.mpps.list()``, ``create`` and ``set`` as N-CREATE / N-SET;
        a step's status reaches the worklist items it names (docs/workflow.md)."""
        from .workflow.mpps import ProcedureSteps

        return ProcedureSteps(self)

    @cached_property
    def commitments(self) -> Commitments:
        """Storage commitment (PS3.4 Annex J): ``arc.commitments.check(transaction, references)``
        and the reports not yet delivered to their requester (``pending()``)."""
        from .workflow.commitment import Commitments

        return Commitments(self)

    # -- writing ----------------------------------------------------------------------------
    def _write(self, fn, durable: bool = True):
        """Run ``fn(writer)`` in one write transaction, growing the map when it is full; the
        commit is on disk on return unless ``durable`` is false (lmdb_index.py: durability)."""

        def apply(txn):
            writer = Writer(self.index, txn)
            result = fn(writer)
            writer.flush()
            return result

        return self._write_txn(apply, durable)

    def _write_txn(self, fn, durable: bool = True):
        """Run ``fn(txn)`` in one write transaction, growing the map when it is full; the
        commit is on disk on return unless ``durable`` is false (lmdb_index.py: durability)."""
        self._check_writable("write")
        for _ in range(40):
            try:
                with self.index.write(durable) as txn:
                    result = fn(txn)
                return result
            except lmdb.MapFullError:
                self.index.grow()
            except lmdb.MapResizedError:  # another process grew the map: adopt its size, retry
                self.index.env.set_mapsize(0)
            except lmdb.Error as exc:
                raise StorageError(f"index write failed: {exc}") from None
        raise StorageError("the index map could not grow enough")

    def store(self, source: object, *, origin: Origin = API) -> StoreResult:
        """Store one instance (path, bytes, binary file object or pydicom Dataset).

        Storing the same SOP Instance UID again is idempotent: the same bytes are a no-op;
        different bytes replace the stored ones (``on_conflict="keep"`` / ``"error"`` otherwise).
        ``origin`` is what the stored hooks are told (adapters say "dimse" or "stow").
        """
        parsed = ingest.parse(source, uid_policy=self.uid_policy)
        report = self._store_parsed([parsed], origin=origin)
        for status in ("stored", "replaced", "duplicates", "kept"):
            if getattr(report, status):
                return StoreResult(
                    parsed.sop_instance_uid,
                    {"duplicates": "duplicate"}.get(status, status),
                    report.moved[0] if report.moved else None,
                )
        raise IngestError(report.rejected[0][0], report.rejected[0][1])

    def _store_parsed(
        self,
        batch: list[ingest.ParsedInstance],
        report: IngestReport | None = None,
        origin: Origin = API,
        journaled: bytes | None = None,
        *,
        origins: list[Origin] | None = None,
        each: list[StoreResult | IngestError] | None = None,
    ) -> IngestReport:
        """Index a batch (blobs first); ``journaled`` is the journal token under which the batch's
        blobs were already journaled and put by someone else (distributed ingest's workers):
        then no blob is written here, and the ones not indexed are discarded with that entry.

        Callers that commit for several requesters at once (pacscore/group_commit.py) give
        ``origins``, one per batch instance (instead of ``origin`` for all), and ``each``, which
        then gets one outcome per batch instance in batch order (a StoreResult, or the
        IngestError that rejected it), after the commit; nothing when the batch fails."""
        report = report or IngestReport()
        if origins is not None and len(origins) != len(batch):
            raise ValueError(f"{len(origins)} origins for a batch of {len(batch)} instances")
        origin_of = origins if origins is not None else [origin] * len(batch)
        # each batch instance's outcome, filled in as it is decided (the indexed ones after the commit)
        outcomes: list[StoreResult | IngestError | None] = [None] * len(batch)
        existing = {}
        placed: dict[str, tuple[str, str, str]] = {}  # SOP Instance UID -> its stored (study, series, patient)
        with snapshot.read(self.index) as snap:
            for p in batch:
                raw = snap.record("IMAGE", p.sop_instance_uid.encode())
                if raw is not None:
                    existing[p.sop_instance_uid] = (
                        records.get_value(raw, T_CHECKSUM),
                        records.get_value(raw, T_BLOBKEY),
                    )
                    placed[p.sop_instance_uid] = tuple(
                        records.get_value(raw, t) for t in (T_STUDY, T_PARENT, T_PATIENT)
                    )
        # what the stored hooks are told, in batch order: events for instances left as they
        # were, indexes into the commit's outcome for the others
        told: list[StoredEvent | int] = []

        def unchanged(i: int, status: str) -> None:
            p, by = batch[i], origin_of[i]
            outcomes[i] = StoreResult(p.sop_instance_uid, status)
            if self._hooks.wants_stored:
                where = placed.get(p.sop_instance_uid) or (p.study_instance_uid, p.series_instance_uid, p.patient_key)
                told.append(StoredEvent(p.sop_instance_uid, *where, status, by.source, by.calling_ae))

        todo: list[ingest.ParsedInstance] = []
        todo_at: list[int] = []  # the batch position of each of todo
        seen: dict[str, tuple[str, str]] = {}  # SOP Instance UID -> (checksum, blob key) in this batch
        for i, p in enumerate(batch):
            try:
                ingest.check_uid_policy(p, self.uid_policy)  # store_many's workers parse leniently
            except IngestError as exc:
                report.rejected.append((str(exc.source), exc.reason))  # the parsed instance's source: a str
                outcomes[i] = exc
                continue
            # an earlier version in this batch is what the index will hold by then, so it is what
            # a later one is compared with (not the version stored before the batch)
            in_batch = seen.get(p.sop_instance_uid)
            old = in_batch or existing.get(p.sop_instance_uid)
            if old is not None and old[0] == p.checksum:
                if in_batch is None and journaled is None and not self._blob_intact(old[1], p.size):
                    self.blobs.put(old[1], p.data)  # same bytes, but the blob was lost or cut: heal it
                report.duplicates.append(p.sop_instance_uid)
                unchanged(i, "duplicate")
                continue
            if old is not None and self.on_conflict == "keep":
                report.kept.append(p.sop_instance_uid)
                unchanged(i, "kept")
                continue
            if old is not None and self.on_conflict == "error":
                conflict = (
                    p.sop_instance_uid,
                    "an instance with this SOP Instance UID is stored with different content (on_conflict='error')",
                )
                report.rejected.append(conflict)
                outcomes[i] = IngestError(*conflict)
                continue
            seen[p.sop_instance_uid] = (p.checksum, _blob_key(p))
            told.append(len(todo))
            todo.append(p)
            todo_at.append(i)
        # blobs the workers placed that this batch does not index (kept, rejected, duplicates of
        # another key): discarded with the journal entry, unless something references them
        unindexed = [] if journaled is None else sorted({_blob_key(p) for p in batch} - {_blob_key(p) for p in todo})
        if not todo:
            if journaled is not None:
                self._discard_journaled(journaled, unindexed)
            self._hooks.stored(e for e in told if isinstance(e, StoredEvent))
            if each is not None:
                each.extend(o for o in outcomes if o is not None)
            return report
        # the blobs are journaled before they are written and until the commit that indexes them,
        # so that repair never takes them for orphans (index/pending.py)
        token = journaled or pending.new_token()
        meta = self.index.db("meta")
        keys = [_blob_key(p) for p in todo]

        def apply(writer: Writer):
            replaced_blobs, outcome = [], []
            for p in todo:
                old = writer.delete_instance(p.sop_instance_uid)
                if old is not None:
                    old_key = old.get(T_BLOBKEY, (None, None))[1]
                    if old_key and old_key != _blob_key(p):
                        replaced_blobs.append(old_key)
                writer.add(p)
                rec = writer.load_existing("IMAGE", p.sop_instance_uid.encode(), "the instance just added")
                rec[T_BLOBKEY] = ("IN", _blob_key(p))
                where = (rec[T_STUDY][1], rec[T_PARENT][1], rec[T_PATIENT][1])
                outcome.append((p.sop_instance_uid, old is not None, move_between(p.sop_instance_uid, old, rec), where))
            if replaced_blobs or unindexed:  # unreferenced from this commit until discarded
                pending.record(writer.txn, meta, token, replaced_blobs + unindexed)
            else:
                pending.remove(writer.txn, meta, token)
            return replaced_blobs, outcome

        try:
            if journaled is None:
                # seen by any repair from here on; it need not survive a crash, since an
                # orphan that a lost record leaves is what verify --repair removes
                self._write(lambda w: pending.record(w.txn, meta, token, keys), durable=False)
                try:
                    # durable before the index points at it
                    self.blobs.put_many([(_blob_key(p), p.data) for p in todo])
                except (OSError, PacsError) as exc:
                    self._discard_journaled(token, keys)
                    raise StorageError(f"blob store write failed ({len(todo)} instances): {exc}") from None
            try:
                replaced_blobs, outcome = self._write(apply)
            except BaseException:
                self._discard_journaled(token, keys + unindexed)
                raise
            if replaced_blobs or unindexed:
                self._discard_journaled(token, replaced_blobs + unindexed)
        finally:
            pending.forget(token)
        for at, (uid, was_replaced, move, _where) in zip(todo_at, outcome):
            (report.replaced if was_replaced else report.stored).append(uid)
            outcomes[at] = StoreResult(uid, "replaced" if was_replaced else "stored", move)
            if move is not None:
                report.moved.append(move)
                log.warning("replacement %s", move.log_message())
        if self._hooks.wants_stored:
            self._hooks.stored(
                e if isinstance(e, StoredEvent) else _stored_event(outcome[e], origin_of[todo_at[e]]) for e in told
            )
        if each is not None:
            each.extend(o for o in outcomes if o is not None)
        return report

    def _blob_intact(self, key: str, size: int) -> bool:
        try:
            return self.blobs.size(key) == size
        except KeyError:
            return False

    def _discard_journaled(self, token: bytes, keys: list[str]) -> None:
        """Remove the blobs of journal entry ``token`` that nothing references (another writer
        may have indexed the same bytes meanwhile), then the entry; an orphan left by a failure
        here stays journaled and the next writable open removes it."""
        try:
            remove_unreferenced(self.index, deleter(self.blobs), keys, token=token)
        except Exception as exc:  # an orphan is harmless; never hide the caller's own outcome
            log.warning("could not remove blobs %s: %s", keys[:3], exc)

    def store_many(
        self,
        sources: object,
        *,
        origin: Origin = API,
        workers: int | None = None,
        progress: bool = False,
        batch_size: int = BATCH_INSTANCES,
        executor: Any = None,
    ) -> IngestReport:
        """Store files, folders (walked recursively), bytes or Datasets; returns an IngestReport.

        ``executor``: a ``dask.distributed.Client``; its workers then read the sources (paths
        they can reach, or ``s3://`` URLs), parse them and put the blobs into the archive's blob
        store, and this process writes the index (pacscore/distributed.py).

        Headers are parsed in ``workers`` processes; instances are committed in batches. Files
        that are not DICOM are skipped and listed in ``report.rejected`` with the reason.
        ``sources`` may be any iterable (a generator too): it is read as ingest goes, with a
        bounded number of instances in flight, so memory does not grow with its length.
        The stored hooks hear of each batch's instances after that batch's commit.
        """
        if executor is not None:
            from . import distributed

            return distributed.store_many(
                self, sources, executor, origin=origin, progress=progress, batch_size=batch_size
            )
        items = expand_sources(sources)
        report = IngestReport()
        total = None
        if progress and isinstance(sources, (str, os.PathLike, list, tuple)):
            total = sum(1 for _ in expand_sources(sources))  # names only: folders are walked twice
        bar = progress_bar(total, progress, unit="file", desc="ingest")
        batch: list[ingest.ParsedInstance] = []
        batch_bytes = 0

        def flush():
            nonlocal batch, batch_bytes
            if batch:
                self._store_parsed(batch, report, origin)
                batch, batch_bytes = [], 0

        try:
            for outcome in parse_all(items, workers):
                if isinstance(outcome, tuple):
                    report.rejected.append(outcome)
                else:
                    batch.append(outcome)
                    batch_bytes += len(outcome.data)
                    if len(batch) >= batch_size or batch_bytes >= BATCH_BYTES:
                        flush()
                if bar is not None:
                    bar.update(1)
            flush()
        finally:
            if bar is not None:
                bar.close()
        return report

    # -- querying ---------------------------------------------------------------------------
    def _query(self, identifier, level, model_name, options: dict):
        opts = self.options.replace(**options) if options else self.options
        return build_query(identifier, level, model_name, opts)

    def find(
        self,
        identifier: object,
        level: str | None = None,
        model: str = "STUDY",
        *,
        limit: int | None = None,
        offset: int = 0,
        format: str = "dataset",
        **options,
    ) -> Iterator:
        """Matches of a C-FIND identifier, streamed, in a deterministic order.

        >>> for ds in arc.find({"PatientName": "SMI*", "StudyDate": "20150101-"}, level="STUDY"):
        ...     print(ds.StudyInstanceUID)
        """
        if format not in FORMATS:
            raise QueryError("format", f"unknown result format {format!r} (use one of {FORMATS})")
        if limit is not None and (not isinstance(limit, int) or limit < 0):
            raise QueryError("limit", "must be a non-negative integer")
        if not isinstance(offset, int) or offset < 0:
            raise QueryError("offset", "must be a non-negative integer")
        query = self._query(identifier, level, model, options)
        return self._results(query, limit, offset, format)

    def _results(self, query, limit, offset, fmt):
        # rows come a batch (a list) at a time: iterating a list costs the caller less than a
        # resumption of this generator chain per row
        return chain.from_iterable(self._batches(query, limit, offset, fmt))

    def _batches(self, query, limit, offset, fmt):
        builder = ResultBuilder(query, fmt)
        with self.index.read() as txn, Executor(self.index, txn, query) as executor:
            yield from paging.rows(executor, builder, limit, offset)

    def count(self, identifier: object, level: str | None = None, model: str = "STUDY", **options) -> int:
        """The number of matches; never builds results."""
        query = self._query(identifier, level, model, options)
        with self.index.read() as txn, Executor(self.index, txn, query) as executor:
            return sum(1 for _ in executor.matches())

    def explain(self, identifier: object, level: str | None = None, model: str = "STUDY", **options) -> dict:
        """The access path the planner chooses for a query, without running it."""
        query = self._query(identifier, level, model, options)
        with self.index.read() as txn, Executor(self.index, txn, query) as executor:
            plan = executor.plan.describe()
        plan["conditions"] = {lvl: [f"{c.keyword} {c.kind}" for c in conds] for lvl, conds in query.conditions.items()}
        return plan

    def unsupported_keys(
        self, identifier: object, level: str | None = None, model: str = "STUDY", **options
    ) -> list[str]:
        """Keys of the identifier that are neither matched nor returned (C-FIND FF01)."""
        return list(self._query(identifier, level, model, options).ignored)

    # -- retrieving -------------------------------------------------------------------------
    def _instance_record(self, snap: snapshot.Snapshot, sop_instance_uid: str) -> bytes:
        if not isinstance(sop_instance_uid, str):
            raise NotFound(f"SOP Instance UID must be a string, not {type(sop_instance_uid).__name__}")
        key = _uid_key(sop_instance_uid)
        raw = snap.record("IMAGE", key) if key is not None else None
        if raw is None:
            raise NotFound(f"no instance with SOP Instance UID {sop_instance_uid}")
        return bytes(raw)

    def get(self, sop_instance_uid: str, *, verify: bool = True) -> bytes:
        """The stored Part-10 bytes, exactly as received; the checksum is checked on the way."""
        with snapshot.read(self.index) as snap:
            rec = self._instance_record(snap, sop_instance_uid)
        key = records.get_value(rec, T_BLOBKEY)
        try:
            data = self.blobs.get(key)
        except KeyError:
            raise StorageError(
                f"the blob of instance {sop_instance_uid} is missing from the blob store (run verify)"
            ) from None
        if verify and ingest.checksum(data) != records.get_value(rec, T_CHECKSUM):
            raise StorageError(f"the blob of instance {sop_instance_uid} is corrupted: checksum mismatch (run verify)")
        return data

    def open_blob(self, sop_instance_uid: str) -> BinaryIO:
        """A readable file object over the stored bytes, streamed from the blob store where it
        can (the file store hands out the file itself); ``get`` is the checksum-verified read."""
        with snapshot.read(self.index) as snap:
            rec = self._instance_record(snap, sop_instance_uid)
        try:
            return self.blobs.open(records.get_value(rec, T_BLOBKEY))
        except KeyError:
            raise StorageError(
                f"the blob of instance {sop_instance_uid} is missing from the blob store (run verify)"
            ) from None

    def instances(self, patient=None, study=None, series=None, instance=None) -> list[InstanceRef]:
        """What a C-GET or WADO-RS would send for the given entities (UIDs or lists of them)."""
        out: dict[str, InstanceRef] = {}
        with snapshot.read(self.index) as snap:
            targets = []
            for level, values in (("PATIENT", patient), ("STUDY", study), ("SERIES", series), ("IMAGE", instance)):
                for v in _as_list(values):
                    if level == "PATIENT":
                        targets += [("PATIENT", k) for k in snap.patient_keys(v)]
                    elif (key := _uid_key(v)) is not None:
                        targets.append((level, key))
            for level, key in targets:
                for sop in snap.instances_under(level, key):
                    raw = snap.record("IMAGE", sop)
                    if raw is None:
                        continue
                    rec = bytes(raw)
                    number = records.get_value(rec, model.T_INSTANCE_NUMBER)
                    try:
                        number = int(number) if number else None
                    except ValueError:
                        number = None
                    uid = sop.decode()
                    out[uid] = InstanceRef(
                        sop_instance_uid=uid,
                        sop_class_uid=records.get_value(rec, model.T_SOP_CLASS) or "",
                        transfer_syntax_uid=records.get_value(rec, model.T_AVAILABLE_TS) or "",
                        study_instance_uid=records.get_value(rec, T_STUDY),
                        series_instance_uid=records.get_value(rec, T_PARENT),
                        patient_key=records.get_value(rec, T_PATIENT),
                        size=int(records.get_value(rec, T_SIZE)),
                        instance_number=number,
                    )
        return sorted(
            out.values(),
            key=lambda r: (
                r.study_instance_uid,
                r.series_instance_uid,
                r.instance_number if r.instance_number is not None else 1 << 62,
                r.sop_instance_uid,
            ),
        )

    def header(self, sop_instance_uid: str) -> Dataset:
        """The instance's header as a pydicom Dataset (no pixel or bulk data), without the blob."""
        with snapshot.read(self.index) as snap:
            self._instance_record(snap, sop_instance_uid)
            data = snap.header_bytes(sop_instance_uid.strip().encode()) or b""
        return pydicom.dcmread(io.BytesIO(data), force=True)

    def metadata(self, sop_instance_uid: str, bulkdata_uri: Callable[[str], str | None] | None = None) -> dict:
        """The instance's header as a DICOM JSON dict, answered from the index, not the blob.

        Bulk data (pixel data, large binary elements) appears as ``{"vr": ..., "BulkDataURI": uri}``
        where ``bulkdata_uri(tag_hex)`` gives the URI (None by default).
        """
        ds = self.header(sop_instance_uid)
        uri = bulkdata_uri or (lambda tag: None)

        def handler(elem):
            return uri(f"{int(elem.tag):08X}")

        out = ds.to_json_dict(bulk_data_threshold=ingest.BULK_THRESHOLD, bulk_data_element_handler=handler)
        with snapshot.read(self.index) as snap:
            bulk = records.get_value(self._instance_record(snap, sop_instance_uid), T_BULK)
        for entry in (bulk or "").split("\\"):
            if entry:
                tag, _, vr = entry.partition(":")
                out[tag] = {"vr": vr, "BulkDataURI": uri(tag)}
        return dict(sorted(out.items()))

    # -- deleting ---------------------------------------------------------------------------
    def delete(self, *, patient=None, study=None, series=None, instance=None) -> int:
        """Remove entities (and their blobs); returns the number of instances removed."""
        if all(v is None for v in (patient, study, series, instance)):
            raise ValueError("delete() needs patient=, study=, series= or instance=")
        refs = self.instances(patient=patient, study=study, series=series, instance=instance)
        if not refs:
            return 0

        token = pending.new_token()
        meta = self.index.db("meta")

        def apply(writer: Writer):
            keys, gone = [], []
            for ref in refs:
                old = writer.delete_instance(ref.sop_instance_uid)
                if old is not None:
                    keys.append(old[T_BLOBKEY][1])
                    gone.append(ref)
            if keys:  # unreferenced from this commit until discarded: journaled in the same commit
                pending.record(writer.txn, meta, token, keys)
            return keys, gone

        try:
            blob_keys, gone = self._write(apply)
            # after the commit: a crash here leaves journaled orphans (removed at the next open),
            # never dangling entries
            if blob_keys:
                self._discard_journaled(token, blob_keys)
        finally:
            pending.forget(token)
        if self._hooks.wants_deleted:
            self._hooks.deleted(
                DeletedEvent(r.sop_instance_uid, r.study_instance_uid, r.series_instance_uid, r.patient_key)
                for r in gone
            )
        return len(blob_keys)

    # -- maintenance ------------------------------------------------------------------------
    def verify(self, repair: bool = False, checksums: bool = True):
        """Every entry has its blob with the right size and checksum; orphans listed (removed with repair)."""
        from .maintenance import verify

        return verify(self, repair=repair, checksums=checksums)

    def compact(self, retrain: bool = True):
        """Rewrite the index compacted: the compression dictionaries trained again on the whole
        archive, every record and header recompressed with them, every page full, the free
        pages dropped (index/compact.py; docs/scaling.md, "Compact"). Crash-safe: an
        interrupted compact leaves the index as it was. The archive must not be open in another
        process or through another handle meanwhile (StorageError otherwise).

        >>> report = arc.compact()
        >>> report.bytes_before, report.bytes_after
        """
        from .index.compact import compact

        if self.readonly:
            raise StorageError(f"the archive at {self.folder} is open read-only: cannot compact it")
        return compact(self.index, retrain=retrain)

    def backup(self, dest: str | os.PathLike, progress: bool = False):
        """A consistent hot backup into ``dest``; incremental when ``dest`` holds an earlier one."""
        from .maintenance import backup

        return backup(self, dest, progress=progress)

    def stats(self) -> dict:
        with snapshot.read(self.index) as snap:
            counts = {_PLURAL[lvl]: snap.count(lvl) for lvl in LEVEL_DB}
            size = 0
            nonconformant = dict.fromkeys(("SOPInstanceUID", "SeriesInstanceUID", "StudyInstanceUID"), 0)
            for k, v in snap.records("IMAGE"):
                size += int(records.get_value(v, T_SIZE))
                nonconformant["SOPInstanceUID"] += not ingest.is_conformant_uid(bytes(k).decode("utf-8"))
            for kw, level in (("SeriesInstanceUID", "SERIES"), ("StudyInstanceUID", "STUDY")):
                for k in snap.keys(level):
                    nonconformant[kw] += not ingest.is_conformant_uid(bytes(k).decode("utf-8"))
            disagreements = 0
            for _, v in snap.records("STUDY"):
                prec = snap.record("PATIENT", records.get_value(v, T_PARENT).encode("utf-8"))
                if prec is None:
                    continue
                for tag in model.PATIENT_TAGS:
                    if records.get_value(v, tag) != records.get_value(prec, tag):
                        disagreements += 1
                        break
        info = self.index.env.info()
        counts["instances"] = counts.pop("images")
        return {
            **counts,
            "blob_bytes": size,
            "index_bytes": (self.index.path / "data.mdb").stat().st_size,
            "map_size": info["map_size"],
            "patient_disagreements": disagreements,
            "blobs": self.blobs.url,
            # entities stored under a UID that is not digits and dots (uid_policy="lenient")
            "nonconformant_uids": nonconformant,
        }


_PLURAL = {"PATIENT": "patients", "STUDY": "studies", "SERIES": "series", "IMAGE": "images"}


_SAFE_UID_CHARS = re.compile(r"[^0-9A-Za-z.]")


def _stored_event(outcome: tuple, origin: Origin) -> StoredEvent:
    uid, was_replaced, move, (study, series, patient) = outcome
    status = "replaced" if was_replaced else "stored"
    return StoredEvent(uid, study, series, patient, status, origin.source, origin.calling_ae, move)


def _blob_key(p: ingest.ParsedInstance) -> str:
    """The blob key of an instance: its SOP Instance UID and the start of its checksum.

    A UID of digits and dots (PS3.5 9.1) is used as it is, as it always was. Any other UID
    (separators, "..", spaces, non-ASCII, over 64 characters) never reaches a key raw: the key
    is ``u-`` + a readable prefix (unsafe characters as ``-``) + a hash of the whole UID, which
    cannot collide with a conformant key (those start with a digit and have no ``-``)."""
    uid = p.sop_instance_uid
    if ingest.is_conformant_uid(uid):
        return f"{uid}_{p.checksum[:16]}"
    digest = hashlib.blake2b(uid.encode("utf-8", "surrogatepass"), digest_size=16).hexdigest()
    return f"u-{_SAFE_UID_CHARS.sub('-', uid[:32])}-{digest}_{p.checksum[:16]}"


def _given(absent: object, **values: object) -> dict:
    """The named values that were given (are not ``absent``)."""
    return {name: value for name, value in values.items() if value is not absent}


def _default_indexed(tags: set[int]) -> set[int]:
    """The tags that every level they live on indexes by default (nothing to add for them)."""
    from .index.extra_tags import index_levels

    return {t for t in tags if all(t in DEFAULT_INDEXED.get(lv, ()) for lv in index_levels(t))}


def _as_list_any(values) -> list:
    if values is None:
        return []
    if isinstance(values, (str, int)):
        return [values]
    return list(values)


def _as_list(values) -> list[str]:
    if values is None:
        return []
    if isinstance(values, str):
        return [values]
    return [str(v) for v in values]


def _uid_key(uid: str) -> bytes | None:
    """The index key of a UID as a caller gave it, or None when no stored entity can have it
    (empty, or longer than a key: LMDB keys are 1 to 511 bytes, UIDs at most 64)."""
    key = uid.strip().encode()
    return key if 0 < len(key) <= 256 else None


__all__ = ["Archive", "open", "StoreResult", "IngestReport", "InstanceRef", "Move"]
