"""``file:`` — one file per blob in a folder tree, the default store.

Layout: ``<root>/<aa>/<bb>/<key>`` where ``aabb`` are the first hex digits of a hash of the
key. 65,536 leaf folders keep a million blobs at a few dozen files per folder, and the hash
spreads UIDs that share a long prefix (they all do) evenly.

A put writes a temp file beside its target, fsyncs it, renames it over the target and fsyncs
the folder: the rename is the atomic step, the two fsyncs make it durable. Temp files are
dot-names, which no key can be, so one left by a crash is never listed or read as a blob.
"""

from __future__ import annotations

import contextlib
import ctypes
import errno
import hashlib
import os
import secrets
import sys
import urllib.parse
import urllib.request
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import BinaryIO

from ..errors import NotFound, StorageError
from .base import BlobStore, check_range, is_valid_key, validate_key

__all__ = ["FileBlobStore", "local_path_from_url"]

_TEMP_PREFIX = ".tmp-"
_CHUNK = 1 << 20


def local_path_from_url(url: str, root: Path, default: str) -> Path:
    """The folder a ``scheme:`` URL names: ``scheme:///abs``, ``scheme:rel`` (inside ``root``),
    or ``scheme://`` for ``<root>/<default>``. Percent-escapes are decoded; no host is allowed."""
    parts = urllib.parse.urlsplit(url)
    if parts.query or parts.fragment:
        raise ValueError(f"{url!r}: a {parts.scheme}: URL takes no query or fragment")
    if parts.netloc not in ("", "localhost"):
        raise ValueError(f"{url!r}: a {parts.scheme}: URL names a local path, not host {parts.netloc!r}")
    if not parts.path:
        if url.endswith("//"):
            return root / default
        raise ValueError(f"{url!r}: no path; write {parts.scheme}:///absolute/path or {parts.scheme}:relative")
    path = Path(urllib.request.url2pathname(parts.path))
    return path if path.is_absolute() else root / path


def _fsync_dir(path: Path) -> None:
    # A rename or a new entry is durable only once its folder is synced. Windows cannot open a
    # folder for fsync (and does not need to), so the step is skipped there.
    if os.name != "posix":
        return
    fd = os.open(path, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _load_syncfs():
    """``syncfs(2)`` through libc, or None where the platform has none."""
    if not sys.platform.startswith("linux"):
        return None
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        fn = libc.syncfs
    except (OSError, AttributeError):
        return None

    def syncfs(path: Path) -> None:
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))
        try:
            if fn(fd) != 0:
                err = ctypes.get_errno()
                raise OSError(err, os.strerror(err))
        finally:
            os.close(fd)

    return syncfs


_syncfs = _load_syncfs()


def _storage_error(exc: OSError, what: str) -> StorageError:
    return StorageError(exc.errno or errno.EIO, f"{what}: {exc.strerror or exc}")


class FileBlobStore(BlobStore):
    """Blobs as files under a folder, sharded two levels deep by a hash of the key.

    >>> store = FileBlobStore("archive/blobs")        # doctest: +SKIP
    >>> store.put("1.2.3", b"DICM")                    # doctest: +SKIP
    """

    scheme = "file"
    supports_ranges = True
    supports_listing = True
    supports_deletes = True
    durable = True

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = Path(path).absolute()
        self.url = self.path.as_uri()
        self._known_folders: set[str] = set()  # shard folders put_many made or found (never removed)
        try:
            self.path.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise _storage_error(exc, f"file blob store {self.path}") from exc

    @classmethod
    def from_url(cls, url: str, root: Path) -> FileBlobStore:
        return cls(local_path_from_url(url, Path(root), "blobs"))

    def _path(self, key: str) -> Path:
        digest = hashlib.blake2b(validate_key(key).encode("ascii"), digest_size=2).hexdigest()
        return self.path / digest[:2] / digest[2:] / key

    def _folder(self, folder: Path, sync: bool = True) -> None:
        if folder.is_dir():
            return
        folder.mkdir(parents=True, exist_ok=True)
        if not sync:  # the caller syncs the whole file system afterwards
            return
        # Make the new shard folders themselves durable, from the leaf up to the store root.
        _fsync_dir(folder.parent)
        _fsync_dir(self.path)

    def put(self, key: str, data: bytes) -> None:
        target = self._path(key)
        temp = target.parent / f"{_TEMP_PREFIX}{key}-{secrets.token_hex(6)}"
        try:
            self._folder(target.parent)
            # os.open with 0o666 lets the umask decide permissions, as an ordinary file would.
            fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_BINARY", 0), 0o666)
            try:
                with os.fdopen(fd, "wb", closefd=True) as fh:
                    fh.write(data)
                    fh.flush()
                    os.fsync(fh.fileno())
                os.replace(temp, target)
            except BaseException:
                temp.unlink(missing_ok=True)
                raise
            _fsync_dir(target.parent)
        except OSError as exc:
            raise _storage_error(exc, f"file blob store {self.path}: put {key!r}") from exc

    def put_many(self, items: Iterable[tuple[str, bytes]]) -> None:
        """Write every blob (temp file, rename), then make the whole batch durable with one
        ``syncfs`` of the store's file system instead of an fsync per file and folder: ingest
        stores hundreds of small instances per batch, and per-file syncs cost more than the rest
        of ingest together. A batch of one too (a C-STORE on one association): its file and
        folder fsyncs, two to four, took 370-700 us here against 220-285 us for the syncfs
        (docs/benchmarks-wire.md). Where ``syncfs`` is missing, it falls back to ``put`` per blob."""
        items = list(items)
        if not items or _syncfs is None:
            for key, data in items:
                self.put(key, data)
            return
        root = os.fspath(self.path)
        known = self._known_folders
        try:
            for key, data in items:
                # plain strings, not pathlib: this loop runs once per ingested instance
                digest = hashlib.blake2b(validate_key(key).encode("ascii"), digest_size=2).hexdigest()
                folder = f"{root}{os.sep}{digest[:2]}{os.sep}{digest[2:]}"
                target = f"{folder}{os.sep}{key}"
                temp = f"{folder}{os.sep}{_TEMP_PREFIX}{key}-{secrets.token_hex(6)}"
                if folder not in known:
                    _make_folder(folder)
                    known.add(folder)
                try:
                    fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
                except FileNotFoundError:  # the folder went away since it was made: again
                    os.makedirs(folder, exist_ok=True)
                    fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
                try:
                    try:
                        view, done = memoryview(data), 0
                        while done < len(view):
                            done += os.write(fd, view[done:])
                    finally:
                        os.close(fd)
                    os.replace(temp, target)
                except BaseException:
                    with contextlib.suppress(OSError):
                        os.unlink(temp)
                    raise
            _syncfs(self.path)
        except OSError as exc:
            raise _storage_error(exc, f"file blob store {self.path}: put of {len(items)} blobs") from exc

    def get(self, key: str, start: int | None = None, end: int | None = None) -> bytes:
        begin, stop = check_range(start, end)
        path = self._path(key)
        try:
            with open(path, "rb") as fh:
                if stop is not None and stop <= begin:
                    return b""
                if begin:
                    fh.seek(begin)
                return fh.read() if stop is None else fh.read(stop - begin)
        except FileNotFoundError:
            raise NotFound(f"no blob {key!r} in {self.url}") from None
        except OSError as exc:
            raise _storage_error(exc, f"file blob store {self.path}: get {key!r}") from exc

    def open(self, key: str) -> BinaryIO:
        """The blob's file itself, opened for reading: streams without loading it whole."""
        try:
            return open(self._path(key), "rb")
        except FileNotFoundError:
            raise NotFound(f"no blob {key!r} in {self.url}") from None
        except OSError as exc:
            raise _storage_error(exc, f"file blob store {self.path}: open {key!r}") from exc

    def delete(self, key: str) -> None:
        # The folder is not fsynced: a delete lost to a crash leaves an orphan blob, which
        # the archive tolerates (verify --repair removes it); a fsync per deleted instance would not pay.
        try:
            self._path(key).unlink(missing_ok=True)
        except OSError as exc:
            raise _storage_error(exc, f"file blob store {self.path}: delete {key!r}") from exc

    def exists(self, key: str) -> bool:
        return self._path(key).is_file()

    def size(self, key: str) -> int:
        try:
            return self._path(key).stat().st_size
        except FileNotFoundError:
            raise NotFound(f"no blob {key!r} in {self.url}") from None
        except OSError as exc:
            raise _storage_error(exc, f"file blob store {self.path}: size {key!r}") from exc

    def keys(self) -> Iterator[str]:
        for first in _subfolders(self.path):
            for second in _subfolders(first):
                try:
                    with os.scandir(second) as entries:
                        names = [e.name for e in entries if e.is_file()]
                except FileNotFoundError:
                    continue
                for name in names:
                    # Temp files (dot-names), strays and files in the wrong shard are not blobs.
                    if not is_valid_key(name):
                        continue
                    if self._path(name).parent == second:
                        yield name

    def temp_files(self) -> Iterator[Path]:
        """Temp files left by interrupted puts (for ``verify --repair``; safe to remove when
        no put is running)."""
        for first in _subfolders(self.path):
            for second in _subfolders(first):
                yield from (p for p in second.iterdir() if p.name.startswith(_TEMP_PREFIX))


def _make_folder(folder: str) -> None:
    """``os.makedirs(folder, exist_ok=True)`` without its ``stat`` of the parent first: ingest
    makes a new shard folder for most new blobs until the layout's folders all exist."""
    try:
        os.mkdir(folder)
    except FileExistsError:
        pass
    except FileNotFoundError:  # the first-level folder is new too
        os.makedirs(folder, exist_ok=True)


def _subfolders(path: Path) -> list[Path]:
    # Shard folders only: exactly two hex digits, anything else in the tree is not ours.
    try:
        with os.scandir(path) as entries:
            return sorted(
                Path(e.path)
                for e in entries
                if len(e.name) == 2 and e.is_dir() and all(c in "0123456789abcdef" for c in e.name)
            )
    except FileNotFoundError:
        return []
