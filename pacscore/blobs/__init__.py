"""Blob stores: the contract, the registry of URL schemes, and ``open_blobstore``.

A blob store is chosen by URL. The scheme names a class found in, in order:

1. classes registered at runtime with :func:`register_blobstore`;
2. the entry-point group ``pacscore.blobstores`` of every installed distribution (this is how
   a third-party package adds a scheme: no change to pacscore needed);
3. the built-in stores, so a source checkout without installed metadata still works.

Entry points are listed once and loaded only when their scheme is first used, so an optional
backend (boto3 for ``s3://``) costs nothing until it is asked for.

>>> store = open_blobstore("memory://", root=".")
>>> store.put("1.2.3", b"DICM")
>>> store.get("1.2.3")
b'DICM'
"""

from __future__ import annotations

import importlib
import os
import re
import threading
from importlib.metadata import EntryPoint, entry_points
from pathlib import Path

from .base import BlobStore, check_range, validate_key

__all__ = [
    "BlobStore",
    "ENTRY_POINT_GROUP",
    "check_range",
    "get_blobstore_class",
    "known_schemes",
    "open_blobstore",
    "register_blobstore",
    "validate_key",
]

ENTRY_POINT_GROUP = "pacscore.blobstores"

# The same names as pyproject.toml declares; consulted only when no entry point provides them.
_BUILTIN = {
    "file": "pacscore.blobs.file:FileBlobStore",
    "memory": "pacscore.blobs.memory:MemoryBlobStore",
    "lmdb": "pacscore.blobs.lmdb:LmdbBlobStore",
    "s3": "pacscore.blobs.objectstore:S3BlobStore",
    "mirror": "pacscore.blobs.mirror:MirrorBlobStore",
}

_SCHEME = re.compile(r"[a-z][a-z0-9+.-]*")

_lock = threading.Lock()
_registered: dict[str, type[BlobStore]] = {}
_entry_points: dict[str, EntryPoint] | None = None


def register_blobstore(scheme: str, cls: type[BlobStore]) -> None:
    """Make ``scheme:`` URLs open with ``cls`` (which needs a ``from_url(url, root)`` classmethod).

    A runtime registration wins over an entry point of the same name; registering a scheme
    again replaces the class.
    """
    scheme = scheme.lower()
    if _SCHEME.fullmatch(scheme) is None:
        raise ValueError(f"invalid blob store scheme {scheme!r}")
    if not callable(getattr(cls, "from_url", None)):
        raise TypeError(f"{cls!r} has no from_url(url, root) classmethod")
    with _lock:
        _registered[scheme] = cls


def _discovered() -> dict[str, EntryPoint]:
    global _entry_points
    with _lock:
        if _entry_points is None:
            _entry_points = {ep.name.lower(): ep for ep in entry_points(group=ENTRY_POINT_GROUP)}
        return _entry_points


def known_schemes() -> list[str]:
    """Every scheme that can be opened now (registered, discovered or built in), sorted."""
    return sorted({*_registered, *_discovered(), *_BUILTIN})


def get_blobstore_class(scheme: str) -> type[BlobStore]:
    """The class serving ``scheme``; ValueError listing the known schemes if there is none."""
    scheme = scheme.lower()
    cls = _registered.get(scheme)
    if cls is not None:
        return cls
    ep = _discovered().get(scheme)
    if ep is not None:
        cls = ep.load()
    elif scheme in _BUILTIN:
        module, _, name = _BUILTIN[scheme].partition(":")
        cls = getattr(importlib.import_module(module), name)
    else:
        raise ValueError(f"unknown blob store scheme {scheme!r}; known schemes: {', '.join(known_schemes())}")
    with _lock:
        # Cache the loaded class, unless a registration raced us (a registration wins).
        return _registered.setdefault(scheme, cls)


def open_blobstore(url: str | None, *, root: str | os.PathLike[str]) -> BlobStore:
    """Open the blob store a URL names; relative locations are taken inside ``root``.

    ``None`` means the default, a file store at ``<root>/blobs``. URL forms:

    ``file:///abs/path`` or ``file:relative``, ``memory://``, ``lmdb://`` (at
    ``<root>/blobs.lmdb``) or ``lmdb:///abs/path``,
    ``s3://bucket/prefix?endpoint_url=...&region=...``, ``mirror:<url>|<url>``.
    """
    if url is None:
        url = "file:blobs"
    if not isinstance(url, str):
        raise TypeError(f"a blob store URL is a str, not {type(url).__name__}")
    scheme, sep, _ = url.partition(":")
    if not sep or _SCHEME.fullmatch(scheme.lower()) is None:
        raise ValueError(
            f"not a blob store URL: {url!r} (write scheme:location, e.g. 'file:blobs'; "
            f"known schemes: {', '.join(known_schemes())})"
        )
    return get_blobstore_class(scheme).from_url(url, Path(root))
