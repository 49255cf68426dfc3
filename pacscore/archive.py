"""Archive: one LMDB index and one blob store; the only place that orders their writes.

Blob before index: a blob is durable before the index transaction that points at it commits, so
a crash leaves at worst an orphan blob (``verify(repair=True)`` removes it), never an entry
without its bytes. Blob keys carry the content checksum, so replacing an instance writes a new
blob and deletes the old one only after the index commit.
"""
from __future__ import annotations

import collections
import io
import logging
import os
import zlib
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from itertools import chain, islice
from pathlib import Path
from typing import BinaryIO, Iterable, Iterator

import lmdb
import pydicom
from pydicom.dataset import Dataset

from . import ingest, model
from .blobs import BlobStore, open_blobstore
from .errors import IngestError, NotFound, PacsError, QueryError, StorageError
from .index import codec as records
from .index import pending
from .index.lmdb_index import LEVEL_DB, Index, patient_keys
from .index.writer import T_CHECKSUM, T_PARENT, T_PATIENT, T_SIZE, T_STUDY, Writer
from .maintenance import clean_pending, deleter, remove_unreferenced
from .query.execute import Executor
from .query.keys import build_query, parse_tag
from .progress import progress_bar
from .query.options import MatchOptions
from .query.results import FORMATS, RESULT_BATCH, ResultBuilder, gc_paused

log = logging.getLogger("pacscore.archive")

T_BLOBKEY = 0xFFFF0006
CONFLICT_POLICIES = ("replace", "keep", "error")
BATCH_INSTANCES = 500
BATCH_BYTES = 256 * 1024 * 1024


@dataclass(frozen=True)
class StoreResult:
    sop_instance_uid: str
    status: str  # "stored", "duplicate", "replaced", "kept"


@dataclass
class IngestReport:
    stored: list[str] = field(default_factory=list)
    duplicates: list[str] = field(default_factory=list)
    replaced: list[str] = field(default_factory=list)
    rejected: list[tuple[str, str]] = field(default_factory=list)

    def __str__(self) -> str:
        return (f"stored {len(self.stored)}, replaced {len(self.replaced)}, duplicates {len(self.duplicates)}, "
                f"rejected {len(self.rejected)}")


@dataclass(frozen=True)
class InstanceRef:
    sop_instance_uid: str
    sop_class_uid: str
    transfer_syntax_uid: str
    study_instance_uid: str
    series_instance_uid: str
    patient_key: str
    size: int
    instance_number: int | None = None


def open(folder: str | os.PathLike, blobs: str | None = None, **defaults) -> "Archive":  # noqa: A001
    """Open or create the archive in ``folder`` (an LMDB index and, by default, file blobs).

    >>> with pacscore.open("archive/") as arc:
    ...     arc.store("ct.dcm")
    """
    return Archive(folder, blobs=blobs, **defaults)


class Archive:
    """The embedded PACS: store, find, count, get, instances, metadata, delete."""

    def __init__(self, folder: str | os.PathLike, blobs: str | None = None, *, extra_tags: Iterable = (),
                 on_conflict: str | None = None, **options) -> None:
        self.folder = Path(folder)
        self.folder.mkdir(parents=True, exist_ok=True)
        self.index = Index(self.folder / "index")
        settings = self.index.settings()
        if blobs is None:
            blobs = settings.get("blobs")
        extra = {int(t) if isinstance(t, int) else parse_tag(t) for t in extra_tags}
        extra |= set(settings.get("extra_tags", []))
        conflict = on_conflict or settings.get("on_conflict", "replace")
        if conflict not in CONFLICT_POLICIES:
            raise ValueError(f"on_conflict must be one of {CONFLICT_POLICIES}, not {conflict!r}")
        saved_options = settings.get("options", {})
        self.options = MatchOptions().replace(**{**saved_options, **options})
        new_settings = {"blobs": blobs, "extra_tags": sorted(extra), "on_conflict": conflict,
                        "options": {k: v for k, v in self.options.to_dict().items()
                                    if v != getattr(MatchOptions(), k)}}
        if new_settings != settings:
            self.index.save_settings(new_settings)
        self.on_conflict = conflict
        self.extra_tags = sorted(extra)
        self.index.extra_index_tags = {}
        for tag in self.extra_tags:
            self.index.extra_index_tags.setdefault(model.storage_level(tag), []).append(tag)
            if model.storage_level(tag) == "PATIENT":
                self.index.extra_index_tags.setdefault("STUDY", []).append(tag)
        self.blobs: BlobStore = open_blobstore(blobs, root=self.folder)
        self._closed = False
        clean_pending(self)  # blobs journaled by writers that died before their commit (maintenance.py)

    # -- lifecycle --------------------------------------------------------------------------
    def close(self) -> None:
        if not self._closed:
            self.blobs.close()
            self.index.close()
            self._closed = True

    def __enter__(self) -> "Archive":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"<pacscore.Archive {str(self.folder)!r}>"

    # -- writing ----------------------------------------------------------------------------
    def _write(self, fn):
        """Run ``fn(writer)`` in one write transaction, growing the map when it is full."""
        for _ in range(40):
            try:
                with self.index.env.begin(write=True) as txn:
                    writer = Writer(self.index, txn, self.index.extra_index_tags)
                    result = fn(writer)
                    writer.flush()
                return result
            except lmdb.MapFullError:
                self.index.grow()
            except lmdb.MapResizedError:  # another process grew the map: adopt its size, retry
                self.index.env.set_mapsize(0)
            except lmdb.Error as exc:
                raise StorageError(f"index write failed: {exc}") from None
        raise StorageError("the index map could not grow enough")

    def store(self, source: object) -> StoreResult:
        """Store one instance (path, bytes, binary file object or pydicom Dataset).

        Storing the same SOP Instance UID again is idempotent: the same bytes are a no-op;
        different bytes replace the stored ones (``on_conflict="keep"`` / ``"error"`` otherwise).
        """
        parsed = ingest.parse(source)
        report = self._store_parsed([parsed])
        for status in ("stored", "replaced", "duplicates"):
            if getattr(report, status):
                return StoreResult(parsed.sop_instance_uid, {"duplicates": "duplicate"}.get(status, status))
        raise IngestError(report.rejected[0][0], report.rejected[0][1])

    def _store_parsed(self, batch: list[ingest.ParsedInstance], report: IngestReport | None = None) -> IngestReport:
        report = report or IngestReport()
        existing = {}
        with self.index.read() as txn:
            for p in batch:
                raw = txn.get(p.sop_instance_uid.encode(), db=self.index.db("instance"))
                if raw is not None:
                    existing[p.sop_instance_uid] = (records.get_value(raw, T_CHECKSUM), records.get_value(raw, T_BLOBKEY))
        todo, seen = [], {}
        for p in batch:
            old = existing.get(p.sop_instance_uid) or seen.get(p.sop_instance_uid)
            if old is not None and old[0] == p.checksum:
                if p.sop_instance_uid in existing and not self._blob_intact(old[1], len(p.data)):
                    self.blobs.put(old[1], p.data)  # same bytes, but the blob was lost or cut: heal it
                report.duplicates.append(p.sop_instance_uid)
                continue
            if old is not None and self.on_conflict == "keep":
                report.duplicates.append(p.sop_instance_uid)
                continue
            if old is not None and self.on_conflict == "error":
                report.rejected.append((p.sop_instance_uid, "an instance with this SOP Instance UID is stored "
                                                            "with different content (on_conflict='error')"))
                continue
            seen[p.sop_instance_uid] = (p.checksum, _blob_key(p))
            todo.append(p)
        if not todo:
            return report
        # the blobs are journaled before they are written and until the commit that indexes them,
        # so that repair never takes them for orphans (index/pending.py)
        token = pending.new_token()
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
                rec = writer.load("IMAGE", p.sop_instance_uid.encode())
                rec[T_BLOBKEY] = ("IN", _blob_key(p))
                outcome.append((p.sop_instance_uid, old is not None))
            if replaced_blobs:  # the old blobs are unreferenced from this commit until discarded
                pending.record(writer.txn, meta, token, replaced_blobs)
            else:
                pending.remove(writer.txn, meta, token)
            return replaced_blobs, outcome

        try:
            self._write(lambda w: pending.record(w.txn, meta, token, keys))
            try:
                # durable before the index points at it
                self.blobs.put_many([(_blob_key(p), p.data) for p in todo])
            except (OSError, PacsError) as exc:
                self._discard_journaled(token, keys)
                raise StorageError(f"blob store write failed ({len(todo)} instances): {exc}") from None
            try:
                replaced_blobs, outcome = self._write(apply)
            except BaseException:
                self._discard_journaled(token, keys)
                raise
            if replaced_blobs:
                self._discard_journaled(token, replaced_blobs)
        finally:
            pending.forget(token)
        for uid, was_replaced in outcome:
            (report.replaced if was_replaced else report.stored).append(uid)
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

    def store_many(self, sources: object, *, workers: int | None = None, progress: bool = False,
                   batch_size: int = BATCH_INSTANCES) -> IngestReport:
        """Store files, folders (walked recursively), bytes or Datasets; returns an IngestReport.

        Headers are parsed in ``workers`` processes; instances are committed in batches. Files
        that are not DICOM are skipped and listed in ``report.rejected`` with the reason.
        ``sources`` may be any iterable (a generator too): it is read as ingest goes, with a
        bounded number of instances in flight, so memory does not grow with its length.
        """
        items = _expand(sources)
        report = IngestReport()
        total = None
        if progress and isinstance(sources, (str, os.PathLike, list, tuple)):
            total = sum(1 for _ in _expand(sources))  # names only: folders are walked twice
        bar = progress_bar(total, progress, unit="file", desc="ingest")
        batch, batch_bytes = [], 0

        def flush():
            nonlocal batch, batch_bytes
            if batch:
                self._store_parsed(batch, report)
                batch, batch_bytes = [], 0

        try:
            for outcome in _parse_all(items, workers):
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

    def find(self, identifier: object, level: str | None = None, model: str = "STUDY", *,
             limit: int | None = None, offset: int = 0, format: str = "dataset", **options) -> Iterator:
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
            yield from self._rows(executor, builder, limit, offset)

    @staticmethod
    def _rows(executor, builder, limit, offset):
        """The results of one query in lists of at most RESULT_BATCH (see ``_paged``)."""
        build_many = builder.own_record_rows
        batches = executor.own_record_batches() if build_many is not None else None
        if batches is None:  # rows from Match objects (ancestors read as needed)
            build, matches = builder.row, executor.matches()
            chunk = RESULT_BATCH if limit is None else max(1, min(RESULT_BATCH, offset + limit))
            batches = iter(lambda: list(islice(matches, chunk)), [])

            def build_many(part):
                return [build(m) for m in part]
        yield from _paged(batches, build_many, limit, offset)

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

    def unsupported_keys(self, identifier: object, level: str | None = None, model: str = "STUDY",
                         **options) -> list[str]:
        """Keys of the identifier that are neither matched nor returned (C-FIND FF01)."""
        return list(self._query(identifier, level, model, options).ignored)

    # -- retrieving -------------------------------------------------------------------------
    def _instance_record(self, txn, sop_instance_uid: str) -> bytes:
        if not isinstance(sop_instance_uid, str):
            raise NotFound(f"SOP Instance UID must be a string, not {type(sop_instance_uid).__name__}")
        key = _uid_key(sop_instance_uid)
        raw = txn.get(key, db=self.index.db("instance")) if key is not None else None
        if raw is None:
            raise NotFound(f"no instance with SOP Instance UID {sop_instance_uid}")
        return bytes(raw)

    def get(self, sop_instance_uid: str, *, verify: bool = True) -> bytes:
        """The stored Part-10 bytes, exactly as received; the checksum is checked on the way."""
        with self.index.read() as txn:
            rec = self._instance_record(txn, sop_instance_uid)
        key = records.get_value(rec, T_BLOBKEY)
        try:
            data = self.blobs.get(key)
        except KeyError:
            raise StorageError(f"the blob of instance {sop_instance_uid} is missing from the blob store "
                               f"(run verify)") from None
        if verify and ingest.checksum(data) != records.get_value(rec, T_CHECKSUM):
            raise StorageError(f"the blob of instance {sop_instance_uid} is corrupted: checksum mismatch (run verify)")
        return data

    def open_blob(self, sop_instance_uid: str) -> BinaryIO:
        """A readable file object over the stored bytes, streamed from the blob store where it
        can (the file store hands out the file itself); ``get`` is the checksum-verified read."""
        with self.index.read() as txn:
            rec = self._instance_record(txn, sop_instance_uid)
        try:
            return self.blobs.open(records.get_value(rec, T_BLOBKEY))
        except KeyError:
            raise StorageError(f"the blob of instance {sop_instance_uid} is missing from the blob store "
                               f"(run verify)") from None

    def instances(self, patient=None, study=None, series=None, instance=None) -> list[InstanceRef]:
        """What a C-GET or WADO-RS would send for the given entities (UIDs or lists of them)."""
        out: dict[str, InstanceRef] = {}
        with self.index.read() as txn:
            writer = Writer(self.index, txn)
            targets = []
            for level, values in (("PATIENT", patient), ("STUDY", study), ("SERIES", series), ("IMAGE", instance)):
                for v in _as_list(values):
                    if level == "PATIENT":
                        targets += [("PATIENT", k) for k in patient_keys(txn, self.index, v)]
                    elif (key := _uid_key(v)) is not None:
                        targets.append((level, key))
            for level, key in targets:
                for sop in writer.instances_under(level, key):
                    raw = txn.get(sop, db=self.index.db("instance"))
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
        return sorted(out.values(), key=lambda r: (r.study_instance_uid, r.series_instance_uid,
                                                   r.instance_number if r.instance_number is not None else 1 << 62,
                                                   r.sop_instance_uid))

    def header(self, sop_instance_uid: str) -> Dataset:
        """The instance's header as a pydicom Dataset (no pixel or bulk data), without the blob."""
        with self.index.read() as txn:
            self._instance_record(txn, sop_instance_uid)
            raw = txn.get(sop_instance_uid.strip().encode(), db=self.index.db("header"))
            data = zlib.decompress(bytes(raw))
        return pydicom.dcmread(io.BytesIO(data), force=True)

    def metadata(self, sop_instance_uid: str, bulkdata_uri: "callable | None" = None) -> dict:
        """The instance's header as a DICOM JSON dict, answered from the index, not the blob.

        Bulk data (pixel data, large binary elements) appears as ``{"vr": ..., "BulkDataURI": uri}``
        where ``bulkdata_uri(tag_hex)`` gives the URI (None by default).
        """
        ds = self.header(sop_instance_uid)
        uri = bulkdata_uri or (lambda tag: None)

        def handler(elem):
            return uri(f"{int(elem.tag):08X}")

        out = ds.to_json_dict(bulk_data_threshold=ingest.BULK_THRESHOLD, bulk_data_element_handler=handler)
        with self.index.read() as txn:
            bulk = records.get_value(self._instance_record(txn, sop_instance_uid), ingest.T_BULK)
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
            keys = []
            for ref in refs:
                old = writer.delete_instance(ref.sop_instance_uid)
                if old is not None:
                    keys.append(old[T_BLOBKEY][1])
            if keys:  # unreferenced from this commit until discarded: journaled in the same commit
                pending.record(writer.txn, meta, token, keys)
            return keys

        try:
            blob_keys = self._write(apply)
            # after the commit: a crash here leaves journaled orphans (removed at the next open),
            # never dangling entries
            if blob_keys:
                self._discard_journaled(token, blob_keys)
        finally:
            pending.forget(token)
        return len(blob_keys)

    # -- maintenance ------------------------------------------------------------------------
    def verify(self, repair: bool = False, checksums: bool = True):
        """Every entry has its blob with the right size and checksum; orphans listed (removed with repair)."""
        from .maintenance import verify
        return verify(self, repair=repair, checksums=checksums)

    def backup(self, dest: str | os.PathLike, progress: bool = False):
        """A consistent hot backup into ``dest``; incremental when ``dest`` holds an earlier one."""
        from .maintenance import backup
        return backup(self, dest, progress=progress)

    def stats(self) -> dict:
        with self.index.read() as txn:
            counts = {lvl.lower() + ("s" if lvl != "SERIES" else ""): txn.stat(self.index.db(db))["entries"]
                      for lvl, db in LEVEL_DB.items()}
            size = 0
            for _, v in txn.cursor(db=self.index.db("instance")):
                size += int(records.get_value(v, T_SIZE))
            disagreements = 0
            pdb = self.index.db("patient")
            for _, v in txn.cursor(db=self.index.db("study")):
                prec = txn.get(records.get_value(v, T_PARENT).encode("utf-8"), db=pdb)
                if prec is None:
                    continue
                for tag in model.PATIENT_TAGS:
                    if records.get_value(v, tag) != records.get_value(prec, tag):
                        disagreements += 1
                        break
        info = self.index.env.info()
        return {**counts, "instances": counts.pop("images"), "blob_bytes": size,
                "index_bytes": (self.index.path / "data.mdb").stat().st_size, "map_size": info["map_size"],
                "patient_disagreements": disagreements, "blobs": self.blobs.url}


def _paged(batches, build_many, limit: int | None, offset: int):
    """Results, in lists of RESULT_BATCH (the last one shorter), from lists of matches of any
    length (a scan segment may give a few, a candidate fetch a thousand): ``offset`` matches
    skipped and ``limit`` kept without building a result for any other. Results are built with
    the cyclic GC paused (thousands of fresh row containers otherwise trigger collection after
    collection: half the time of a broad query), never across a yield to the caller."""
    skip, left = offset, limit
    pending: list = []
    if left == 0:
        return
    step = RESULT_BATCH if left is None else min(RESULT_BATCH, left)
    for part in batches:
        if skip:
            taken = min(skip, len(part))
            part, skip = part[taken:], skip - taken
        pending += part
        while len(pending) >= step:
            part, pending = pending[:step], pending[step:]
            with gc_paused():
                rows = build_many(part)
            yield rows
            if left is not None:
                left -= step
                if left == 0:
                    return
                step = min(RESULT_BATCH, left)
    if pending:
        with gc_paused():
            rows = build_many(pending)
        yield rows


def _blob_key(p: ingest.ParsedInstance) -> str:
    return f"{p.sop_instance_uid}_{p.checksum[:16]}"


def _as_list(values) -> list[str]:
    if values is None:
        return []
    if isinstance(values, str):
        return [values]
    return [str(v) for v in values]


def _expand(sources) -> Iterator[object]:
    if isinstance(sources, (str, os.PathLike, bytes, Dataset)) or hasattr(sources, "read"):
        sources = [sources]
    for src in sources:
        if isinstance(src, (str, os.PathLike)) and Path(src).is_dir():
            for root, dirs, files in os.walk(src):
                dirs.sort()
                for name in sorted(files):
                    yield os.path.join(root, name)
        else:
            yield src


def _parse_one(src) -> object:
    try:
        return ingest.parse(src)
    except IngestError as exc:
        return (str(exc.source), exc.reason)
    except Exception as exc:  # never let one bad file stop a batch
        return (str(src) if isinstance(src, (str, os.PathLike)) else "<input>", f"{type(exc).__name__}: {exc}")


def _uid_key(uid: str) -> bytes | None:
    """The index key of a UID as a caller gave it, or None when no stored entity can have it
    (empty, or longer than a key: LMDB keys are 1 to 511 bytes, UIDs at most 64)."""
    key = uid.strip().encode()
    return key if 0 < len(key) <= 256 else None


#: instances per task sent to a parse process, and tasks in flight per process
PARSE_CHUNK = 64
PARSE_AHEAD = 4


def _parse_chunk(chunk: list) -> list:
    return [_parse_one(src) for src in chunk]


def _parse_all(items: Iterator[object], workers: int | None) -> Iterator[object]:
    """Parse ``items`` in order: in worker processes when there are enough of them (one pool for
    the whole input, a bounded number of chunks in flight), else in this process."""
    items = iter(items)
    head = list(islice(items, 64))
    if workers is None:
        workers = min(4, os.cpu_count() or 1) if len(head) >= 64 else 1
    if workers <= 1:
        for item in chain(head, items):
            yield _parse_one(item)
        return
    import multiprocessing
    # fork: the workers only parse (they never touch the index, whose pid guard would reopen
    # it anyway) and it works from any caller, even a script without a __main__ guard
    methods = multiprocessing.get_all_start_methods()
    ctx = multiprocessing.get_context("fork" if "fork" in methods else "spawn")
    pending: collections.deque = collections.deque()
    stream = chain(head, items)
    with ProcessPoolExecutor(max_workers=workers, mp_context=ctx) as pool:
        while True:
            chunk = list(islice(stream, PARSE_CHUNK))
            if chunk:
                # paths and bytes travel cheaply to worker processes; Datasets and file objects
                # are parsed here, in their turn
                if all(isinstance(i, (str, os.PathLike, bytes, bytearray)) for i in chunk):
                    pending.append(pool.submit(_parse_chunk, chunk))
                else:
                    pending.append(chunk)
            if pending and (not chunk or len(pending) >= workers * PARSE_AHEAD):
                task = pending.popleft()
                yield from (_parse_chunk(task) if isinstance(task, list) else task.result())
            if not chunk and not pending:
                return


__all__ = ["Archive", "open", "StoreResult", "IngestReport", "InstanceRef"]
