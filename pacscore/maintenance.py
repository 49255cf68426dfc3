"""Integrity and disaster recovery: verify, safe orphan removal, hot backup (incremental), restore.

A backup folder holds ``index/`` (a compacted LMDB copy, one consistent snapshot), ``blobs/``
(a file blob store with the blobs that snapshot references) and ``manifest.json``. The index is
copied first and the blobs after it, so every entry of the copy has its blob (blob before index:
a blob referenced by a committed entry is already durable in the source). A second backup into
the same folder copies only the blobs it does not have yet.

A blob without an entry is removed only while this process holds the index's writer lock (an
LMDB write transaction) and only when no entry references it and no live writer has journaled it
(index/pending.py): a writer journals its blobs in a committed transaction before it writes them,
so under that lock every blob in flight is visible as such. The guarantees and the exit codes of
``pacscore verify`` are in docs/reliability.md.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import tempfile
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import lmdb

from . import ingest
from .blobs.base import BlobStore
from .blobs.file import FileBlobStore
from .errors import PacsError
from .index import codec as records
from .index import pending, segments, snapshot
from .index.layout import T_BLOBKEY, T_CHECKSUM, T_SIZE
from .index.lmdb_index import LEVEL_DB, Index
from .progress import progress_bar

log = logging.getLogger("pacscore.maintenance")


#: Entries read per read transaction: verify never holds one snapshot across its blob reads (a
#: long-lived reader pins old pages, and the LMDB file grows while writers work beside it).
ENTRY_CHUNK = 1000
#: Orphans decided and removed per write transaction (the writer lock is held meanwhile).
REMOVE_CHUNK = 256
#: Consecutive failures after which a store is taken as down for the rest of a verify run.
DOWN_AFTER = 3

#: Exit status of ``pacscore verify`` per report status (2 is the command line's own error code).
EXIT_STATUS = {"clean": 0, "damaged": 1, "orphans": 3, "degraded": 4}


@dataclass
class SideReport:
    """What verify found on one store holding a full copy (a side of a mirror)."""

    url: str
    missing: list[str] = field(default_factory=list)  # instances whose copy is not on this side
    wrong_size: list[str] = field(default_factory=list)
    corrupted: list[str] = field(default_factory=list)
    errors: int = 0
    first_error: str | None = None
    down: bool = False  # failed DOWN_AFTER times in a row: not asked again in this run
    unchecked: int = 0  # copies not checked because the side was down

    @property
    def healthy(self) -> bool:
        return not (self.missing or self.wrong_size or self.corrupted or self.errors)


@dataclass
class VerifyReport:
    instances: int = 0
    checked_bytes: int = 0
    missing: list[str] = field(default_factory=list)  # entries whose blob is gone
    wrong_size: list[str] = field(default_factory=list)
    corrupted: list[str] = field(default_factory=list)  # checksum mismatch
    unreachable: list[str] = field(default_factory=list)  # no copy could be read: store errors
    orphans: list[str] = field(default_factory=list)  # blobs no entry points at
    removed_orphans: int = 0
    in_flight: list[str] = field(default_factory=list)  # unreferenced blobs a live writer is committing
    journal_cleaned: int = 0  # blobs of dead writers removed through the pending-blob journal
    sides: list[SideReport] = field(default_factory=list)  # one per full copy (two for a mirror)
    notes: list[str] = field(default_factory=list)  # checks skipped, and why
    segment_problems: list[str] = field(default_factory=list)  # scan segments that disagree with the records
    rebuilt_segments: list[str] = field(default_factory=list)  # levels whose segments repair rebuilt

    @property
    def damaged(self) -> bool:
        """An instance cannot be read back intact (or the scan segments are wrong)."""
        return bool(
            self.missing
            or self.wrong_size
            or self.corrupted
            or self.unreachable
            or (self.segment_problems and not self.rebuilt_segments)
        )

    @property
    def degraded(self) -> bool:
        """Every instance is readable, but a side of a mirror lacks copies or cannot be reached."""
        return len(self.sides) > 1 and not all(side.healthy for side in self.sides)

    @property
    def orphans_left(self) -> int:
        return len(self.orphans) - self.removed_orphans

    @property
    def status(self) -> str:
        """``damaged``, ``degraded``, ``orphans`` (nothing lost, unreferenced blobs left) or ``clean``."""
        if self.damaged:
            return "damaged"
        if self.degraded:
            return "degraded"
        return "orphans" if self.orphans_left else "clean"

    @property
    def ok(self) -> bool:
        return self.status == "clean"

    @property
    def exit_status(self) -> int:
        return EXIT_STATUS[self.status]

    def summary(self) -> str:
        lines = [
            f"instances checked: {self.instances} ({self.checked_bytes} bytes)",
            f"missing blobs:     {len(self.missing)}",
            f"wrong size:        {len(self.wrong_size)}",
            f"corrupted:         {len(self.corrupted)}",
            f"unreachable:       {len(self.unreachable)}",
            f"orphan blobs:      {len(self.orphans)}"
            + (f" (removed {self.removed_orphans})" if self.removed_orphans else ""),
            f"in flight:         {len(self.in_flight)} (blobs a live writer is committing: left alone)",
            f"scan segments:     {len(self.segment_problems)} problems"
            + (f" (rebuilt {', '.join(self.rebuilt_segments)})" if self.rebuilt_segments else ""),
        ]
        if self.journal_cleaned:
            lines.append(f"dead writers:      {self.journal_cleaned} journaled blobs removed")
        for name in ("missing", "wrong_size", "corrupted", "unreachable", "orphans", "segment_problems"):
            for uid in getattr(self, name)[:20]:
                lines.append(f"  {name}: {uid}")
        if len(self.sides) > 1 or any(side.errors for side in self.sides):
            for side in self.sides:
                state = (
                    "ok"
                    if side.healthy
                    else (
                        f"{len(side.missing)} missing, {len(side.wrong_size)} wrong size, "
                        f"{len(side.corrupted)} corrupted, {side.errors} errors"
                        + (f" (down: {side.unchecked} copies not checked)" if side.down else "")
                    )
                )
                lines.append(f"side {side.url}: {state}")
                if side.first_error:
                    lines.append(f"  first error: {side.first_error}")
                for name in ("missing", "wrong_size", "corrupted"):
                    for uid in getattr(side, name)[:20]:
                        lines.append(f"  {name}: {uid}")
        for note in self.notes:
            lines.append(f"note: {note}")
        lines.append(
            {
                "clean": "OK",
                "orphans": "ORPHANS ONLY: nothing lost; `pacscore verify --repair` removes them",
                "degraded": "DEGRADED: every instance readable, but a copy is missing or unreachable",
                "damaged": "DAMAGED: instances cannot be read back intact",
            }[self.status]
        )
        return "\n".join(lines)


def _entry_chunks(index: Index, size: int | None = None) -> Iterator[list[tuple[str, str, int, str]]]:
    """(sop uid, blob key, size, checksum) of every indexed instance, ``size`` (ENTRY_CHUNK) at
    a time, each chunk from its own short read transaction (released before any blob is read)."""
    size = size or ENTRY_CHUNK
    after: bytes | None = None
    while True:
        chunk: list[tuple[str, str, int, str]] = []
        with snapshot.read(index) as snap:
            for raw_key, rec in snap.records("IMAGE", start=after):
                key = bytes(raw_key)
                if key == after:
                    continue  # the last key of the chunk before
                if len(chunk) == size:
                    break
                chunk.append(
                    (
                        key.decode(),
                        records.get_value(rec, T_BLOBKEY),
                        int(records.get_value(rec, T_SIZE)),
                        records.get_value(rec, T_CHECKSUM),
                    )
                )
                after = key
        if not chunk:
            return
        yield chunk
        if len(chunk) < size:
            return


def entries(index: Index) -> Iterator[tuple[str, str, int, str]]:
    """(sop uid, blob key, size, checksum) of every indexed instance (chunked read transactions)."""
    for chunk in _entry_chunks(index):
        yield from chunk


# -- removing unreferenced blobs safely ------------------------------------------------------------


@dataclass
class Removal:
    removed: list[str] = field(default_factory=list)
    referenced: list[str] = field(default_factory=list)  # an entry points at it (stored meanwhile)
    in_flight: list[str] = field(default_factory=list)  # a live writer journaled it
    failed: list[str] = field(default_factory=list)  # the store refused the delete
    left: list[str] = field(default_factory=list)  # an orphan on a store that cannot delete


class _References:
    """Whether an entry of the snapshot ``txn`` references a blob key. A key of a conformant UID
    is ``<SOP Instance UID>_<checksum prefix>`` (archive._blob_key): one point lookup. A key of
    any other UID is hashed (``u-...``) and does not name its UID: those are answered from the
    set of blob keys of the instances stored under such UIDs, read once, and only when asked."""

    def __init__(self, txn, index: Index) -> None:
        self.snap = snapshot.Snapshot(index, txn)
        self._hashed: set[str] | None = None

    def __call__(self, key: str) -> bool:
        if not key.startswith("u-"):
            raw = self.snap.record("IMAGE", key.rpartition("_")[0].encode())
            return raw is not None and records.get_value(raw, T_BLOBKEY) == key
        if self._hashed is None:
            self._hashed = {
                records.get_value(rec, T_BLOBKEY)
                for uid, rec in self.snap.records("IMAGE")
                if not ingest.is_conformant_uid(bytes(uid).decode("utf-8", "surrogatepass"))
            }
        return key in self._hashed


def _live_keys(txn, index: Index, besides: bytes | None = None) -> set[str]:
    now = time.time()
    return {
        key
        for entry in pending.entries(txn, index.db("meta"))
        if entry.token != besides and pending.is_live(entry, now)
        for key in entry.keys
    }


def remove_unreferenced(
    index: Index, delete: Callable[[str], None] | None, keys: Iterable[str], token: bytes | None = None
) -> Removal:
    """Delete the blobs of ``keys`` that no entry references and no live writer has journaled,
    deciding and deleting while holding the index's writer lock, so that no writer can journal
    or index one of them meanwhile; then drop the journal entry ``token`` (kept, naming the
    blobs whose delete failed, if any did). ``delete`` None: the store cannot delete, the
    orphans are left (``verify`` reports them). Falls back to a snapshot check when the index
    cannot be written (a full disk): the writers cannot commit then either."""
    outcome = Removal()
    keys = list(dict.fromkeys(keys))
    try:
        with index.write() as txn:
            meta = index.db("meta")
            if token is not None and txn.get(token, db=meta) is None and not _own(token):
                return outcome  # another process cleaned this dead writer's entry first
            _decide(txn, index, delete, keys, token, outcome)
            if token is not None:
                if outcome.failed:
                    pending.record(txn, meta, token, outcome.failed)
                else:
                    pending.remove(txn, meta, token)
    except lmdb.Error as exc:
        log.warning("index not writable (%s): removing unreferenced blobs against a snapshot", exc)
        outcome = Removal()
        with index.read() as txn:
            _decide(txn, index, delete, keys, token, outcome)
    return outcome


def _own(token: bytes) -> bool:
    return token.startswith(pending.PREFIX) and token.split(b"/")[2] == str(os.getpid()).encode()


def _decide(txn, index: Index, delete: Callable[[str], None] | None, keys: list[str], token, outcome: Removal) -> None:
    live = _live_keys(txn, index, besides=token)
    referenced = _References(txn, index)
    for key in keys:
        if referenced(key):
            outcome.referenced.append(key)
        elif key in live:
            outcome.in_flight.append(key)
        elif delete is None:
            outcome.left.append(key)
        else:
            try:
                delete(key)
                outcome.removed.append(key)
            except Exception as exc:  # the store is down or write-once: the blob stays an orphan
                log.warning("could not delete blob %s: %s", key, exc)
                outcome.failed.append(key)


def clean_pending(archive) -> int:
    """Remove the blobs that writers which died (killed between blob and commit, or between a
    delete's commit and its blob removal) journaled and never indexed. Called at every writable
    open: it reads the journal only (empty on a healthy archive), never walks the blob store,
    and leaves live writers' blobs alone. Returns the number of blobs removed; never raises."""
    index = archive.index
    if index.readonly:
        return 0
    try:
        with index.read() as txn:
            now = time.time()
            stale = [entry for entry in pending.entries(txn, index.db("meta")) if not pending.is_live(entry, now)]
        removed = 0
        for entry in stale:
            removed += len(remove_unreferenced(index, deleter(archive.blobs), entry.keys, token=entry.token).removed)
        if removed:
            log.info("removed %d blobs left by writers that died before their commit", removed)
        return removed
    except Exception as exc:  # never keep an archive from opening: verify --repair can do it later
        log.warning("could not clean the pending-blob journal: %s", exc)
        return 0


def deleter(store: BlobStore) -> Callable[[str], None] | None:
    """What ``remove_unreferenced`` deletes with: None for a store that cannot delete."""
    return store.delete if getattr(store, "supports_deletes", True) else None


# -- verify ----------------------------------------------------------------------------------------


class _Side:
    """Checks one full copy, counting its failures; a side that keeps failing is left alone."""

    def __init__(self, store: BlobStore) -> None:
        self.store = store
        self.report = SideReport(getattr(store, "url", repr(store)))
        self._failures = 0

    def failed(self, exc: BaseException) -> None:
        self.report.errors += 1
        self.report.first_error = self.report.first_error or f"{type(exc).__name__}: {exc}"
        self._failures += 1
        if self._failures >= DOWN_AFTER:
            self.report.down = True

    def check(self, key: str, size: int, digest: str, checksums: bool, report: VerifyReport) -> str | None:
        """``ok``, ``missing``, ``wrong_size``, ``corrupted``, or None (could not tell)."""
        if self.report.down:
            self.report.unchecked += 1
            return None
        try:
            if self.store.size(key) != size:
                result = "wrong_size"
            elif checksums:
                data = self.store.get(key)
                report.checked_bytes += len(data)
                result = "ok" if ingest.checksum(data) == digest else "corrupted"
            else:
                result = "ok"
        except KeyError:
            result = "missing"
        except (OSError, PacsError) as exc:
            self.failed(exc)
            return None
        self._failures = 0
        return result


def _check_entry(
    sides: list[_Side], uid: str, key: str, size: int, digest: str, checksums: bool, report: VerifyReport
) -> None:
    results = [side.check(key, size, digest, checksums, report) for side in sides]
    if "ok" in results:
        if len(sides) > 1:
            for side, result in zip(sides, results):
                if result not in ("ok", None):
                    getattr(side.report, result).append(uid)
        return
    if None in results:  # a side could not answer: the instance may be intact there
        report.unreachable.append(uid)
        return
    worst = next(r for r in ("corrupted", "wrong_size", "missing") if r in results)
    getattr(report, worst).append(uid)
    if len(sides) > 1:
        for side, result in zip(sides, results):
            getattr(side.report, result).append(uid)  # type: ignore[arg-type]  # no None: returned above


def _listed(sides: list[_Side], referenced: set[str], report: VerifyReport) -> dict[str, list[_Side]]:
    """Unreferenced keys of every side that can list its blobs, with the sides holding them."""
    found: dict[str, list[_Side]] = {}
    for side in sides:
        url = side.report.url
        if not side.store.supports_listing:
            report.notes.append(
                f"{url} cannot list its blobs: orphan search skipped there "
                "(orphans journaled by dead writers are still found)"
            )
            continue
        if side.report.down:
            report.notes.append(f"{url} is unreachable: orphan search skipped there")
            continue
        try:
            for key in side.store.keys():
                if key not in referenced:
                    found.setdefault(key, []).append(side)
        except NotImplementedError:
            report.notes.append(f"{url} cannot list its blobs: orphan search skipped there")
        except (OSError, PacsError) as exc:
            side.failed(exc)
            report.notes.append(f"{url}: listing failed ({type(exc).__name__}: {exc}): orphan search incomplete there")
    return found


def _journaled(archive, sides: list[_Side], found: dict[str, list[_Side]]) -> None:
    """Add the unreferenced blobs that dead writers journaled (found without listing a store)."""
    index = archive.index
    with index.read() as txn:
        now = time.time()
        keys = [
            key
            for entry in pending.entries(txn, index.db("meta"))
            if not pending.is_live(entry, now)
            for key in entry.keys
            if key not in found
        ]
    for key in dict.fromkeys(keys):
        holders = []
        for side in sides:
            if side.report.down:
                continue
            try:
                if side.store.exists(key):
                    holders.append(side)
            except (OSError, PacsError) as exc:
                side.failed(exc)
        if holders:
            found[key] = holders


def verify(archive, repair: bool = False, checksums: bool = True) -> VerifyReport:
    """Check every index entry against each full copy of its blob (size, and checksum unless
    ``checksums=False``), then look for blobs without an entry. ``repair`` removes those orphans
    (never a blob a live writer is committing), the blobs journaled by writers that died, and
    rebuilds scan segments that disagree with the records. A store error is reported (the
    blob, the side), never raised."""
    report = VerifyReport()
    if repair and not archive.index.readonly:
        report.journal_cleaned = clean_pending(archive)
    replicas = getattr(archive.blobs, "replicas", None)  # a store not derived from BlobStore: one copy
    sides = [_Side(store) for store in (replicas() if replicas else [archive.blobs])]
    referenced: set[str] = set()
    for chunk in _entry_chunks(archive.index):  # no read transaction is open during blob reads
        for uid, key, size, digest in chunk:
            report.instances += 1
            referenced.add(key)
            _check_entry(sides, uid, key, size, digest, checksums, report)
    _recheck_damage(archive.index, report)
    report.sides = [side.report for side in sides]
    found = _listed(sides, referenced, report)
    _journaled(archive, sides, found)
    _settle_orphans(archive, sides, found, report, repair)
    _verify_segments(archive.index, report, repair)
    return report


def check_instance(archive, sop_instance_uid: str) -> str:
    """What ``verify`` says of one instance, checksums included: ``ok`` (a full copy has the
    right size and checksum), ``missing``, ``wrong_size``, ``corrupted``, ``unreachable`` (no
    copy could be read), or ``gone`` (not in the index). Storage commitment asks it
    (pacscore/workflow/commitment.py)."""
    key = sop_instance_uid.strip().encode()
    with snapshot.read(archive.index) as snap:
        rec = snap.record("IMAGE", key) if 0 < len(key) <= 256 else None
        entry = None
        if rec is not None:
            entry = (
                records.get_value(rec, T_BLOBKEY),
                int(records.get_value(rec, T_SIZE)),
                records.get_value(rec, T_CHECKSUM),
            )
    if entry is None:
        return "gone"
    replicas = getattr(archive.blobs, "replicas", None)
    sides = [_Side(store) for store in (replicas() if replicas else [archive.blobs])]
    report = VerifyReport()
    _check_entry(sides, sop_instance_uid, *entry, True, report)
    return next((name for name in _DAMAGE if sop_instance_uid in getattr(report, name)), "ok")


#: what ``_check_entry`` can find wrong with an entry, worst first
_DAMAGE = ("corrupted", "wrong_size", "missing", "unreachable")


def _recheck_damage(index: Index, report: VerifyReport) -> None:
    """Drop damage of instances deleted or replaced while verify ran (each chunk was its own
    snapshot): only an entry that still points at the bad blob is damaged."""
    bad = [
        (name, uid) for name in ("missing", "wrong_size", "corrupted", "unreachable") for uid in getattr(report, name)
    ]
    if not bad:
        return
    gone = set()
    with snapshot.read(index) as snap:
        for _name, uid in bad:
            if snap.record("IMAGE", uid.encode()) is None:
                gone.add(uid)
    if gone:
        for name in ("missing", "wrong_size", "corrupted", "unreachable"):
            setattr(report, name, [uid for uid in getattr(report, name) if uid not in gone])


def _settle_orphans(
    archive, sides: list[_Side], found: dict[str, list[_Side]], report: VerifyReport, repair: bool
) -> None:
    """Decide each candidate against a fresh look at the index (entries and the journal):
    stored meanwhile, in flight, or an orphan; ``repair`` removes the orphans."""
    candidates = sorted(found)
    index = archive.index
    can_delete = all(side.store.supports_deletes for side in sides)
    if repair and candidates and not can_delete:
        report.notes.append(f"{archive.blobs.url} cannot delete blobs: orphans left in place")
    if repair and can_delete and not index.readonly:

        def delete(key: str) -> None:
            failure = None
            for side in found[key]:
                try:
                    side.store.delete(key)
                except Exception as exc:
                    failure = failure or exc
            if failure is not None:
                raise failure

        for start in range(0, len(candidates), REMOVE_CHUNK):
            outcome = remove_unreferenced(index, delete, candidates[start : start + REMOVE_CHUNK])
            report.orphans += outcome.removed + outcome.failed
            report.removed_orphans += len(outcome.removed)
            report.in_flight += outcome.in_flight
            if outcome.failed:
                report.notes.append(f"{len(outcome.failed)} orphans could not be removed (store errors)")
        return
    with index.read() as txn:
        live = _live_keys(txn, index)
        referenced = _References(txn, index)
        for key in candidates:
            if referenced(key):
                continue
            (report.in_flight if key in live else report.orphans).append(key)


def _verify_segments(index: Index, report: VerifyReport, repair: bool) -> None:
    """The scan segments must hold exactly the level records; ``repair`` rebuilds a level's
    segments from its records (the records are the truth, the segments a copy for scans).
    Each level is compared in its own snapshot, streaming (segments.check)."""
    if not index.segmented:
        return
    bad = {}
    for level in segments.SEGMENTED_LEVELS:
        with index.read() as txn:
            problems = segments.check(txn, index.db("segments"), index.db(LEVEL_DB[level]), level)
        if problems:
            bad[level] = problems
            report.segment_problems += problems
    if repair and bad and not index.readonly:
        with index.write() as txn:
            for level in bad:
                segments.rebuild(txn, index.db("segments"), index.db(LEVEL_DB[level]), level)
                report.rebuilt_segments.append(level)


@dataclass
class BackupReport:
    instances: int = 0
    copied: int = 0
    skipped: int = 0
    bytes_copied: int = 0
    vanished: list[str] = field(default_factory=list)  # deleted from the source during the backup
    seconds: float = 0.0

    def __str__(self) -> str:
        return (
            f"backup: {self.instances} instances, {self.copied} blobs copied ({self.bytes_copied} bytes), "
            f"{self.skipped} already there, {len(self.vanished)} deleted meanwhile, {self.seconds:.1f} s"
        )


def backup(archive, dest: str | os.PathLike, progress: bool = False) -> BackupReport:
    """A consistent hot backup into ``dest`` while readers and a writer keep working."""
    start = time.monotonic()
    dest = Path(dest)
    dest.mkdir(parents=True, exist_ok=True)
    report = BackupReport()
    staging = Path(tempfile.mkdtemp(prefix=".index-", dir=dest))
    try:
        archive.index.env.copy(str(staging), compact=True)  # one snapshot of the whole index
        snapshot = Index(staging)
        drop_journal(snapshot)
        blobs = FileBlobStore(dest / "blobs")
        listed = list(entries(snapshot))
        snapshot.close()
        bar = progress_bar(len(listed), progress, unit="blob")
        for uid, key, size, _digest in listed:
            report.instances += 1
            if blobs.exists(key) and blobs.size(key) == size:
                report.skipped += 1
            else:
                try:
                    data = archive.blobs.get(key)
                except KeyError:
                    report.vanished.append(uid)
                    continue
                blobs.put(key, data)
                report.copied += 1
                report.bytes_copied += len(data)
            if bar is not None:
                bar.update(1)
        if bar is not None:
            bar.close()
        # only now replace the previous index copy: a failed backup leaves the last good one
        target = dest / "index"
        old = dest / ".index-old"
        if target.exists():
            if old.exists():
                shutil.rmtree(old)
            target.rename(old)
        staging.rename(target)
        if old.exists():
            shutil.rmtree(old)
        (dest / "manifest.json").write_text(
            json.dumps(
                {
                    "format": "pacscore-backup-1",
                    "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
                    "instances": report.instances,
                    "source": str(archive.folder.name),
                },
                indent=1,
            )
        )
    finally:
        if staging.exists():
            shutil.rmtree(staging, ignore_errors=True)
    report.seconds = time.monotonic() - start
    return report


def drop_journal(index: Index) -> None:
    """Remove the pending-blob journal from a copy of an index: its blobs are the source's
    business, and a copy that kept the entries could one day remove, from a store it shares
    with the source, blobs the source has indexed since."""
    with index.write() as txn:
        for entry in list(pending.entries(txn, index.db("meta"))):
            pending.remove(txn, index.db("meta"), entry.token)


__all__ = [
    "EXIT_STATUS",
    "BackupReport",
    "SideReport",
    "VerifyReport",
    "backup",
    "clean_pending",
    "deleter",
    "remove_unreferenced",
    "verify",
    "drop_journal",
    "entries",
]
