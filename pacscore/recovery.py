"""Disaster recovery: an archive brought back from a backup folder (maintenance.backup), then
verified. Its own module because it makes an Archive from maintenance's pieces: maintenance
itself never needs the Archive class, so neither imports the other in a cycle."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

from .archive import Archive
from .blobs.file import FileBlobStore
from .errors import PacsError
from .index.lmdb_index import Index
from .maintenance import VerifyReport, drop_journal, entries, verify
from .progress import progress_bar
from .settings import public_url


def restore(
    src: str | os.PathLike, folder: str | os.PathLike, blobs: str | None = None, progress: bool = False
) -> tuple[Archive, VerifyReport]:
    """Bring an archive back from a backup into ``folder`` (which must not hold an archive),
    then verify it. Returns ``(archive, verify_report)``; ``blobs`` is the restored archive's
    blob store (its credentials, if any, are not kept: docs/security.md)."""
    src, folder = Path(src), Path(folder)
    if not (src / "index" / "data.mdb").exists() or not (src / "manifest.json").exists():
        raise PacsError(f"{src} is not a pacscore backup (no index/ or manifest.json)")
    if (folder / "index" / "data.mdb").exists():
        raise PacsError(f"{folder} already holds an archive; restore into a new folder")
    folder.mkdir(parents=True, exist_ok=True)
    shutil.copytree(src / "index", folder / "index")
    index = Index(folder / "index")
    drop_journal(index)
    settings = index.settings()
    # the restored archive uses its own store, not the original's
    if blobs is None:
        settings.pop("blobs", None)
    else:
        settings["blobs"] = public_url(blobs)
    index.save_settings(settings)
    listed = list(entries(index))
    index.close()
    archive = Archive(folder, blobs=blobs)
    source = FileBlobStore(src / "blobs")
    bar = progress_bar(len(listed), progress, unit="blob")
    for _uid, key, _size, _digest in listed:
        if source.exists(key):
            archive.blobs.put(key, source.get(key))
        if bar is not None:
            bar.update(1)
    if bar is not None:
        bar.close()
    return archive, verify(archive)


__all__ = ["restore"]
