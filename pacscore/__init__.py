"""pacscore: an embeddable PACS core.

Store DICOM of any modality, query it with the exact C-FIND semantics of PS3.4, get it back.

>>> import pacscore
>>> with pacscore.open("archive/") as arc:
...     arc.store("ct.dcm")
...     studies = list(arc.find({"PatientName": "SMI*", "StudyDate": ""}, level="STUDY"))
"""

from __future__ import annotations

import os

from .errors import ArchiveNotFound, ConfigError, IngestError, NotFound, PacsError, QueryError, StorageError
from .query.options import MatchOptions

__version__ = "0.1.0"


from . import _impl

#: "cython" when every compiled twin is live, "pure" when none is ("mixed" otherwise);
#: ``pacscore._impl.state()`` says which twin is which, and why
IMPLEMENTATION = _impl.summary()

from .archive import Archive, IngestReport, InstanceRef, Move, StoreResult, open  # noqa: E402
from .maintenance import BackupReport, VerifyReport  # noqa: E402
from .query.oracle import match  # noqa: E402


def restore(src: str | os.PathLike, folder: str | os.PathLike, blobs: str | None = None, progress: bool = False):
    """Bring an archive back from a backup folder into ``folder``, verify it, return ``(archive, report)``."""
    from .recovery import restore as _restore

    return _restore(src, folder, blobs=blobs, progress=progress)


__all__ = [
    "Archive",
    "open",
    "restore",
    "match",
    "MatchOptions",
    "IMPLEMENTATION",
    "StoreResult",
    "IngestReport",
    "InstanceRef",
    "Move",
    "VerifyReport",
    "BackupReport",
    "PacsError",
    "IngestError",
    "QueryError",
    "NotFound",
    "ArchiveNotFound",
    "ConfigError",
    "StorageError",
    "__version__",
]
