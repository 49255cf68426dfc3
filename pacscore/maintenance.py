"""Integrity and disaster recovery: verify, hot backup (incremental), restore.

A backup folder holds ``index/`` (a compacted LMDB copy, one consistent snapshot), ``blobs/``
(a file blob store with the blobs that snapshot references) and ``manifest.json``. The index is
copied first and the blobs after it, so every entry of the copy has its blob (blob before index:
a blob referenced by a committed entry is already durable in the source). A second backup into
the same folder copies only the blobs it does not have yet.
"""
from __future__ import annotations

import json
import os
import shutil
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

from . import ingest
from .blobs.file import FileBlobStore
from .errors import PacsError
from .index import codec as records
from .index import segments
from .index.lmdb_index import LEVEL_DB, Index
from .progress import progress_bar

T_SIZE = 0xFFFF0002
T_CHECKSUM = 0xFFFF0003
T_BLOBKEY = 0xFFFF0006


@dataclass
class VerifyReport:
    instances: int = 0
    checked_bytes: int = 0
    missing: list[str] = field(default_factory=list)        # entries whose blob is gone
    wrong_size: list[str] = field(default_factory=list)
    corrupted: list[str] = field(default_factory=list)      # checksum mismatch
    orphans: list[str] = field(default_factory=list)        # blobs no entry points at
    removed_orphans: int = 0
    segment_problems: list[str] = field(default_factory=list)  # scan segments that disagree with the records
    rebuilt_segments: list[str] = field(default_factory=list)  # levels whose segments repair rebuilt

    @property
    def ok(self) -> bool:
        return not (self.missing or self.wrong_size or self.corrupted or (self.orphans and not self.removed_orphans)
                    or (self.segment_problems and not self.rebuilt_segments))

    @property
    def damaged(self) -> bool:
        return bool(self.missing or self.wrong_size or self.corrupted
                    or (self.segment_problems and not self.rebuilt_segments))

    def summary(self) -> str:
        lines = [f"instances checked: {self.instances} ({self.checked_bytes} bytes)",
                 f"missing blobs:     {len(self.missing)}", f"wrong size:        {len(self.wrong_size)}",
                 f"corrupted:         {len(self.corrupted)}",
                 f"orphan blobs:      {len(self.orphans)}" + (f" (removed {self.removed_orphans})" if self.removed_orphans else ""),
                 f"scan segments:     {len(self.segment_problems)} problems"
                 + (f" (rebuilt {', '.join(self.rebuilt_segments)})" if self.rebuilt_segments else "")]
        for name in ("missing", "wrong_size", "corrupted", "orphans", "segment_problems"):
            for uid in getattr(self, name)[:20]:
                lines.append(f"  {name}: {uid}")
        lines.append("OK" if not self.damaged else "DAMAGED")
        return "\n".join(lines)


def _entries(index: Index):
    """(sop uid, blob key, size, checksum) of every indexed instance, from one snapshot."""
    with index.env.begin(buffers=True) as txn:
        for key, rec in txn.cursor(db=index.db("instance")):
            yield (bytes(key).decode(), records.get_value(rec, T_BLOBKEY), int(records.get_value(rec, T_SIZE)),
                   records.get_value(rec, T_CHECKSUM))


def verify(archive, repair: bool = False, checksums: bool = True) -> VerifyReport:
    """Check that every index entry has its blob with the right size and checksum, and list
    blobs without an entry (orphans left by a crash); ``repair`` removes the orphans."""
    report = VerifyReport()
    referenced = set()
    for uid, key, size, digest in _entries(archive.index):
        report.instances += 1
        referenced.add(key)
        try:
            actual = archive.blobs.size(key)
        except KeyError:
            report.missing.append(uid)
            continue
        if actual != size:
            report.wrong_size.append(uid)
            continue
        if checksums:
            data = archive.blobs.get(key)
            report.checked_bytes += len(data)
            if ingest.checksum(data) != digest:
                report.corrupted.append(uid)
    # orphans: listed after the entries, and re-checked against a fresh snapshot before removal
    # so that an instance stored meanwhile is never taken for one
    candidates = [k for k in archive.blobs.keys() if k not in referenced]
    if candidates:
        live = {key for _, key, _, _ in _entries(archive.index)}
        report.orphans = sorted(k for k in candidates if k not in live)
    if repair:
        for key in report.orphans:
            archive.blobs.delete(key)
            report.removed_orphans += 1
    _verify_segments(archive.index, report, repair)
    return report


def _verify_segments(index: Index, report: VerifyReport, repair: bool) -> None:
    """The scan segments must hold exactly the level records; ``repair`` rebuilds a level's
    segments from its records (the records are the truth, the segments a copy for scans)."""
    if not index.segmented:
        return
    with index.env.begin(buffers=True) as txn:
        bad = {}
        for level in segments.SEGMENTED_LEVELS:
            problems = segments.check(txn, index.db("segments"), index.db(LEVEL_DB[level]), level)
            if problems:
                bad[level] = problems
                report.segment_problems += problems
    if repair and bad and not index.readonly:
        with index.env.begin(write=True) as txn:
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
        return (f"backup: {self.instances} instances, {self.copied} blobs copied ({self.bytes_copied} bytes), "
                f"{self.skipped} already there, {len(self.vanished)} deleted meanwhile, {self.seconds:.1f} s")


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
        blobs = FileBlobStore(dest / "blobs")
        entries = list(_entries(snapshot))
        snapshot.close()
        bar = progress_bar(len(entries), progress, unit="blob")
        for uid, key, size, _digest in entries:
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
        (dest / "manifest.json").write_text(json.dumps({
            "format": "pacscore-backup-1", "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
            "instances": report.instances, "source": str(archive.folder.name)}, indent=1))
    finally:
        if staging.exists():
            shutil.rmtree(staging, ignore_errors=True)
    report.seconds = time.monotonic() - start
    return report


def restore(src: str | os.PathLike, folder: str | os.PathLike, blobs: str | None = None, progress: bool = False):
    """Bring an archive back from a backup into ``folder`` (which must not hold an archive),
    then verify it. Returns ``(archive, verify_report)``."""
    from .archive import Archive

    src, folder = Path(src), Path(folder)
    if not (src / "index" / "data.mdb").exists() or not (src / "manifest.json").exists():
        raise PacsError(f"{src} is not a pacscore backup (no index/ or manifest.json)")
    if (folder / "index" / "data.mdb").exists():
        raise PacsError(f"{folder} already holds an archive; restore into a new folder")
    folder.mkdir(parents=True, exist_ok=True)
    shutil.copytree(src / "index", folder / "index")
    index = Index(folder / "index")
    settings = index.settings()
    settings["blobs"] = blobs  # the restored archive uses its own store, not the original's
    index.save_settings(settings)
    entries = list(_entries(index))
    index.close()
    archive = Archive(folder, blobs=blobs)
    source = FileBlobStore(src / "blobs")
    bar = progress_bar(len(entries), progress, unit="blob")
    for _uid, key, _size, _digest in entries:
        if source.exists(key):
            archive.blobs.put(key, source.get(key))
        if bar is not None:
            bar.update(1)
    if bar is not None:
        bar.close()
    return archive, verify(archive)


# -- command line ----------------------------------------------------------------------------

def add_cli(sub, archive_arg) -> None:
    p = sub.add_parser("verify", help="check every entry against its blob; list orphan blobs")
    archive_arg(p)
    p.add_argument("--repair", action="store_true", help="remove orphan blobs")
    p.add_argument("--no-checksums", action="store_true", help="check sizes only")
    p.set_defaults(func=_cmd_verify)
    p = sub.add_parser("backup", help="hot backup into a folder (incremental)")
    archive_arg(p)
    p.add_argument("dest")
    p.add_argument("--quiet", "-q", action="store_true")
    p.set_defaults(func=_cmd_backup)
    p = sub.add_parser("restore", help="restore a backup into a new archive folder, then verify")
    p.add_argument("src")
    p.add_argument("folder")
    p.add_argument("--blobs", default=None)
    p.add_argument("--quiet", "-q", action="store_true")
    p.set_defaults(func=_cmd_restore)


def _cmd_verify(args) -> int:
    from .archive import open as open_archive
    with open_archive(args.archive, blobs=args.blobs) as arc:
        report = verify(arc, repair=args.repair, checksums=not args.no_checksums)
    print(report.summary())
    return 1 if report.damaged or (report.orphans and not args.repair) else 0


def _cmd_backup(args) -> int:
    from .archive import open as open_archive
    with open_archive(args.archive, blobs=args.blobs) as arc:
        print(backup(arc, args.dest, progress=not args.quiet))
    return 0


def _cmd_restore(args) -> int:
    archive, report = restore(args.src, args.folder, blobs=args.blobs, progress=not args.quiet)
    archive.close()
    print(report.summary())
    return 1 if report.damaged else 0


__all__ = ["verify", "backup", "restore", "VerifyReport", "BackupReport"]
