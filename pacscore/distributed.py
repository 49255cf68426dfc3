"""Distributed ingest: Dask workers read, parse and put blobs; this process is the one index writer.

``Archive.store_many(sources, executor=client)`` lands here. LMDB has one writer per
environment, so the index cannot be written from the cluster; everything else can. The work
per chunk of sources is split in three steps so that the archive's ordering rules hold exactly
as in a local ``store_many`` (docs/scaling.md):

1. ``read``: a worker reads each source (a local path, an ``s3://`` URL or bytes), parses it with
   the compiled reader and checksums it. The result (with the bytes) stays on that worker; only
   the parsed rows, without the bytes, come back here.
2. Here: the blob keys of the chunk are journaled (index/pending.py) in one small write
   transaction, so that ``verify --repair`` never takes them for orphans.
3. ``put``: the same worker (Dask sends the task to the data) puts the blobs straight into the
   archive's object store, each durable when ``put`` returns.

Then a batch of chunks is indexed here in one write transaction (``Archive._store_parsed`` with
the journal token): blob before index, nothing reported stored before its commit. Chunks are
consumed in submission order, so the outcome equals a local ``store_many`` of the same sources,
and at most ``in_flight`` chunks are outstanding (backpressure: memory stays bounded however
long the input is).
"""

from __future__ import annotations

import collections
import os
import threading
import urllib.parse
from collections.abc import Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pydicom.dataset import Dataset

from . import ingest
from .blobs import BlobStore, open_blobstore
from .errors import ConfigError, IngestError
from .events import API, Origin
from .index import pending
from .parse_pool import Outcome, expand_sources, parse_one
from .progress import progress_bar
from .reports import IngestReport

if TYPE_CHECKING:
    from .archive import Archive

__all__ = ["store_many", "read_source", "s3_listing", "CHUNK", "SHARED_BLOB_SCHEMES"]

#: sources per task: enough to amortise a task's scheduling and a file store's one sync per
#: put_many (128 stored ~1.5x faster than 32 on a 2-worker LocalCluster: docs/scaling.md)
CHUNK = 128
#: blob stores a worker on another process or machine can write to: a folder (shared, or the
#: same machine) or an object store. memory: and lmdb: live inside one process.
SHARED_BLOB_SCHEMES = ("file", "s3")
_S3_PARAMS = ("endpoint_url", "region", "aws_access_key_id", "aws_secret_access_key", "aws_session_token")


# -- reading a source (on a worker) ---------------------------------------------------------


def read_source(source: object) -> tuple[bytes, str]:
    """The bytes of a local path, an ``s3://bucket/key`` URL or bytes, and a name for messages.

    An S3 URL may carry ``?endpoint_url=...&region=...`` (and credentials, as blob store URLs
    do); otherwise boto3's usual chain applies (``AWS_ENDPOINT_URL``, ``AWS_ACCESS_KEY_ID``,
    instance roles).
    """
    if isinstance(source, str) and source.startswith("s3://"):
        bucket, key, params = _split_s3(source)
        name = f"s3://{bucket}/{key}"
        from botocore.exceptions import BotoCoreError, ClientError

        try:
            response = _s3_client(params).get_object(Bucket=bucket, Key=key)
            with response["Body"] as body:
                return body.read(), name
        except ClientError as exc:
            code = exc.response.get("Error", {}).get("Code", "")
            raise IngestError(name, f"cannot read: {code or exc}") from None
        except BotoCoreError as exc:
            raise IngestError(name, f"cannot read: {exc}") from None
    return ingest.read_source(source)


def _split_s3(url: str) -> tuple[str, str, dict[str, str]]:
    parts = urllib.parse.urlsplit(url)
    params = dict(urllib.parse.parse_qsl(parts.query))
    unknown = set(params) - set(_S3_PARAMS)
    if unknown or not parts.netloc:
        what = f"unknown parameter {sorted(unknown)[0]!r}" if unknown else "no bucket"
        raise IngestError(f"s3://{parts.netloc}{parts.path}", f"bad S3 URL: {what}")
    return parts.netloc, urllib.parse.unquote(parts.path.lstrip("/")), params


_clients: dict[tuple, Any] = {}
_clients_lock = threading.Lock()


def _s3_client(params: dict[str, str]) -> Any:
    """One boto3 client per process and endpoint (clients are thread-safe, not fork-safe)."""
    key = (os.getpid(), tuple(sorted(params.items())))
    with _clients_lock:
        if key not in _clients:
            import boto3

            session = boto3.session.Session(
                **{k: v for k, v in params.items() if k.startswith("aws_")},
            )
            _clients[key] = session.client(
                "s3", endpoint_url=params.get("endpoint_url"), region_name=params.get("region")
            )
        return _clients[key]


def s3_listing(url: str) -> Iterator[str]:
    """The object URLs under an ``s3://bucket/prefix/`` URL (a "folder"), in key order."""
    bucket, prefix, params = _split_s3(url)
    query = urllib.parse.urlsplit(url).query
    paginator = _s3_client(params).get_paginator("list_objects_v2")
    for page in paginator.paginate(Bucket=bucket, Prefix=prefix):
        for item in page.get("Contents", ()):
            yield f"s3://{bucket}/{urllib.parse.quote(item['Key'])}" + (f"?{query}" if query else "")


def _expand(sources: object) -> Iterator[object]:
    """``expand_sources`` plus S3 "folders" (URLs ending in ``/``); Datasets and file objects are
    encoded here, since only paths, URLs and bytes travel to a worker."""
    if isinstance(sources, str) and sources.startswith("s3://"):
        sources = [sources]
    for src in expand_sources(sources):
        if isinstance(src, str) and src.startswith("s3://"):
            if urllib.parse.urlsplit(src).path.endswith("/"):
                yield from s3_listing(src)
            else:
                yield src
        elif isinstance(src, (str, os.PathLike)):
            yield os.path.abspath(src)  # workers may run in another directory
        elif isinstance(src, Dataset):
            yield ingest.dataset_to_part10(src)
        elif hasattr(src, "read"):
            yield ingest.read_source(src)[0]
        else:
            yield src


# -- the worker's tasks ---------------------------------------------------------------------


@dataclass
class _Chunk:
    """What ``_read_chunk`` leaves on a worker: the outcomes, bytes included."""

    outcomes: list[Outcome]


def _read_one(src: object) -> Outcome:
    try:
        data, name = read_source(src)
    except IngestError as exc:
        return (str(exc.source), exc.reason)
    return parse_one(_Named(data, name))


class _Named:
    """Bytes with the name of their source, so that rejections name the file, not "<bytes>"."""

    def __init__(self, data: bytes, name: str) -> None:
        self.data, self.name = data, name

    def read(self) -> bytes:
        return self.data


def _read_chunk(sources: list) -> _Chunk:
    return _Chunk([_read_one(src) for src in sources])


def _rows(chunk: _Chunk) -> list[Outcome]:
    """The chunk without its bytes: what travels back to the writer."""
    return [o if isinstance(o, tuple) else replace(o, data=b"", size=len(o.data)) for o in chunk.outcomes]


_stores: dict[tuple[int, str, str], BlobStore] = {}


def _store(url: str, root: str) -> BlobStore:
    key = (os.getpid(), url, root)
    with _clients_lock:
        if key not in _stores:
            _stores[key] = open_blobstore(url, root=Path(root))
        return _stores[key]


#: concurrent puts per task into a store that puts one blob at a time (an object store: each put
#: is a round trip, so threads overlap their latency; boto3 clients are shared between threads)
PUT_THREADS = 8


def _put_chunk(chunk: _Chunk, url: str, root: str) -> dict[str, str]:
    """Put the chunk's blobs; returns ``{SOP Instance UID: reason}`` for the ones that failed.

    A store that makes a batch durable at once (the file store: one filesystem sync for all,
    not one per blob) gets the whole chunk; if that fails, each blob is put again on its own
    (puts are idempotent) to tell which failed. Other stores get concurrent single puts."""
    from .archive import _blob_key

    store = _store(url, root)
    items = [(o.sop_instance_uid, _blob_key(o), o.data) for o in chunk.outcomes if not isinstance(o, tuple)]
    if type(store).put_many is not BlobStore.put_many:
        try:
            store.put_many([(key, data) for _, key, data in items])
            return {}
        except Exception:
            pass

    def put(item: tuple[str, str, bytes]) -> tuple[str, str] | None:
        uid, key, data = item
        try:
            store.put(key, data)
        except Exception as exc:  # one failed put rejects that instance, not the chunk
            return uid, f"blob store write failed: {exc}"
        return None

    with ThreadPoolExecutor(max_workers=min(PUT_THREADS, max(1, len(items)))) as pool:
        return dict(r for r in pool.map(put, items) if r is not None)


# -- the writer (this process) --------------------------------------------------------------


@dataclass
class _InFlight:
    data: Any  # the future of _read_chunk (bytes, on a worker)
    rows: Any  # the future of _rows (small, comes here)
    put: Any = None  # the future of _put_chunk, once the keys are journaled
    parsed: list[ingest.ParsedInstance] = field(default_factory=list)


class _Batch:
    """The chunks of one index write transaction, under one journal entry."""

    def __init__(self) -> None:
        self.token = pending.new_token()
        self.tasks: list[_InFlight] = []
        self.keys: list[str] = []
        self.done = False  # committed, or its blobs discarded

    def __len__(self) -> int:
        return sum(len(t.parsed) for t in self.tasks)


def store_many(
    archive: Archive,
    sources: object,
    client: Any,
    *,
    origin: Origin = API,
    progress: bool = False,
    batch_size: int = 500,
    in_flight: int | None = None,
) -> IngestReport:
    """Store ``sources`` with the workers of the Dask ``client``; see the module docstring.

    >>> from dask.distributed import Client  # doctest: +SKIP
    >>> arc.store_many(["s3://scans/2024/"], executor=Client("tcp://scheduler:8786"))  # doctest: +SKIP
    """
    archive._check_writable("store")
    scheme = archive.blobs.scheme
    if scheme not in SHARED_BLOB_SCHEMES:
        raise ConfigError(
            "blobs",
            f"distributed ingest puts blobs from the workers, so the archive's blob store must be one "
            f"they can reach ({', '.join(SHARED_BLOB_SCHEMES)}), not {scheme}:",
        )
    url = archive.settings.blobs or archive.blobs.url
    root = str(archive.folder.resolve())
    if in_flight is None:
        in_flight = max(4, 2 * sum(client.nthreads().values()))
    total = None
    if progress and isinstance(sources, (str, os.PathLike, list, tuple)):
        total = sum(1 for _ in _expand(sources))
    bar = progress_bar(total, progress, unit="file", desc="ingest")
    report = IngestReport()
    queue: collections.deque[_InFlight] = collections.deque()
    batch = _Batch()
    meta = archive.index.db("meta")

    def journal(task: _InFlight) -> None:
        """Take a chunk's rows, journal its blob keys, then let its worker put the blobs."""
        from .archive import _blob_key

        outcomes = task.rows.result()
        task.parsed = [o for o in outcomes if not isinstance(o, tuple)]
        report.rejected.extend(o for o in outcomes if isinstance(o, tuple))
        if bar is not None:
            bar.update(len(outcomes))
        batch.tasks.append(task)
        if task.parsed:
            batch.keys += [_blob_key(p) for p in task.parsed]
            # seen by any repair; need not survive a crash (Archive._store_parsed)
            record = lambda txn: pending.record(txn, meta, batch.token, batch.keys)  # noqa: E731
            archive._write_txn(record, durable=False)
            task.put = client.submit(_put_chunk, task.data, url, root, pure=False)

    try:
        for chunk in _chunks(_expand(sources), CHUNK):
            data = client.submit(_read_chunk, chunk, pure=False)
            queue.append(_InFlight(data, client.submit(_rows, data, pure=False)))
            while len(queue) >= in_flight:
                journal(queue.popleft())
                if len(batch) >= batch_size:
                    _commit(archive, batch, report, origin)
                    batch = _Batch()
        while queue:
            journal(queue.popleft())
            if len(batch) >= batch_size:
                _commit(archive, batch, report, origin)
                batch = _Batch()
        _commit(archive, batch, report, origin)
    except BaseException:
        _abandon(archive, batch, list(queue))
        raise
    finally:
        if bar is not None:
            bar.close()
    return report


def _commit(archive: Archive, batch: _Batch, report: IngestReport, origin: Origin) -> None:
    """Index a batch whose blobs the workers put: one write transaction, after all its puts."""
    from .archive import _blob_key

    parsed, unput = [], []
    try:
        for task in batch.tasks:
            if not task.parsed:
                continue
            try:
                failed = task.put.result()
            except Exception as exc:  # the worker died mid-put: nothing of the chunk is indexed
                failed = {p.sop_instance_uid: f"blob store write failed: {exc}" for p in task.parsed}
            for p in task.parsed:
                if p.sop_instance_uid in failed:
                    report.rejected.append((p.source, failed[p.sop_instance_uid]))
                    unput.append(_blob_key(p))
                else:
                    parsed.append(p)
        if batch.keys:
            if parsed:
                archive._store_parsed(parsed, report, origin, journaled=batch.token)
                if unput:  # a put that failed may still have left an object behind
                    archive._discard_journaled(batch.token, unput)
            else:
                archive._discard_journaled(batch.token, batch.keys)
    finally:
        batch.done = True
        for task in batch.tasks:
            task.data.release()
        pending.forget(batch.token)


def _abandon(archive: Archive, batch: _Batch, queued: list[_InFlight]) -> None:
    """After an error: wait for the batch's puts, then remove its blobs (none is indexed)."""
    for task in queued:
        task.data.release()
    if batch.done:
        return
    try:
        for task in batch.tasks:
            if task.put is not None:
                try:
                    task.put.result()
                except Exception:
                    pass
            task.data.release()
        if batch.keys:
            archive._discard_journaled(batch.token, batch.keys)
    finally:
        pending.forget(batch.token)


def _chunks(items: Iterable[object], size: int) -> Iterator[list]:
    chunk: list = []
    for item in items:
        chunk.append(item)
        if len(chunk) >= size:
            yield chunk
            chunk = []
    if chunk:
        yield chunk
