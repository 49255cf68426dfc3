"""``s3:`` — blobs as objects in an S3-compatible bucket (AWS, MinIO, Ceph, moto, ...).

``s3://bucket/prefix?endpoint_url=http://host:port&region=eu-west-1`` puts blob ``k`` at
object ``prefix/k``. Credentials come from the usual boto3 chain (environment, config files,
instance roles) unless the URL gives ``aws_access_key_id`` / ``aws_secret_access_key`` /
``aws_session_token``; those are never echoed back in ``store.url`` or in error messages.

S3 writes are atomic per object and durable once acknowledged, which is the whole contract;
ranged reads are native (HTTP ``Range``). A boto3 client is made per process, because clients
may be shared between threads but not across ``fork()``.
"""

from __future__ import annotations

import os
import threading
import urllib.parse
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, TypeVar

from ..errors import NotFound, StorageError
from .base import BlobStore, check_range, is_valid_key, validate_key

__all__ = ["S3BlobStore"]

T = TypeVar("T")

_PUBLIC_PARAMS = ("endpoint_url", "region")
_SECRET_PARAMS = ("aws_access_key_id", "aws_secret_access_key", "aws_session_token")
_MISSING = ("NoSuchKey", "404", "NotFound")


class S3BlobStore(BlobStore):
    """Blobs as S3 objects under ``prefix/`` in ``bucket``.

    >>> S3BlobStore("scans", "archive1", endpoint_url="http://127.0.0.1:9000")  # doctest: +SKIP
    """

    scheme = "s3"
    supports_ranges = True
    supports_listing = True
    supports_deletes = True
    durable = True

    def __init__(
        self,
        bucket: str,
        prefix: str = "",
        *,
        endpoint_url: str | None = None,
        region: str | None = None,
        **credentials: str,
    ) -> None:
        try:
            import boto3  # noqa: F401  (optional dependency: fail here, with the fix, not later)
        except ImportError as exc:  # pragma: no cover - depends on the environment
            raise ImportError("the s3: blob store needs boto3: pip install 'pacscore[s3]'") from exc
        unknown = set(credentials) - set(_SECRET_PARAMS)
        if unknown:
            raise TypeError(f"unexpected S3BlobStore arguments: {', '.join(sorted(unknown))}")
        if not bucket:
            raise ValueError("an s3: blob store needs a bucket")
        self.bucket = bucket
        self.prefix = prefix.strip("/")
        self.endpoint_url = endpoint_url
        self.region = region
        self._credentials = {k: v for k, v in credentials.items() if v}
        public = {k: v for k, v in (("endpoint_url", endpoint_url), ("region", region)) if v}
        query = f"?{urllib.parse.urlencode(public)}" if public else ""
        self.url = f"s3://{bucket}/{self.prefix}{query}"
        self._lock = threading.Lock()
        self._client_pid = 0
        self._s3: Any = None

    @classmethod
    def from_url(cls, url: str, root: Path) -> S3BlobStore:
        parts = urllib.parse.urlsplit(url)
        if not parts.netloc:
            raise ValueError(f"{_redact(url)!r}: no bucket; write s3://bucket/prefix")
        params: dict[str, str] = {}
        for name, value in urllib.parse.parse_qsl(parts.query, keep_blank_values=True):
            if name not in _PUBLIC_PARAMS + _SECRET_PARAMS:
                raise ValueError(
                    f"{_redact(url)!r}: unknown parameter {name!r}; known: {', '.join(_PUBLIC_PARAMS + _SECRET_PARAMS)}"
                )
            params[name] = value
        return cls(parts.netloc, urllib.parse.unquote(parts.path), **params)

    # -- plumbing -----------------------------------------------------------------------

    def _client(self) -> Any:
        pid = os.getpid()
        if self._client_pid != pid:
            with self._lock:
                if self._client_pid != pid:
                    import boto3
                    from botocore.config import Config

                    session = boto3.session.Session(**self._credentials)
                    self._s3 = session.client(
                        "s3",
                        endpoint_url=self.endpoint_url,
                        region_name=self.region,
                        # Threads share this client: let them each have a connection.
                        config=Config(max_pool_connections=32, retries={"mode": "standard"}),
                    )
                    self._client_pid = pid
        return self._s3

    def _object(self, key: str) -> str:
        key = validate_key(key)
        return f"{self.prefix}/{key}" if self.prefix else key

    def _call(self, key: str, what: str, op: Callable[[Any], T]) -> T:
        from botocore.exceptions import BotoCoreError, ClientError

        try:
            return op(self._client())
        except ClientError as exc:
            if _code(exc) in _MISSING:
                raise NotFound(f"no blob {key!r} in {self.url}") from None
            raise StorageError(f"s3 blob store {self.url}: {what} {key!r}: {exc}") from exc
        except BotoCoreError as exc:
            raise StorageError(f"s3 blob store {self.url}: {what} {key!r}: {exc}") from exc

    # -- the contract -------------------------------------------------------------------

    def put(self, key: str, data: bytes) -> None:
        name = self._object(key)
        self._call(key, "put", lambda s3: s3.put_object(Bucket=self.bucket, Key=name, Body=bytes(data)))

    def get(self, key: str, start: int | None = None, end: int | None = None) -> bytes:
        begin, stop = check_range(start, end)
        name = self._object(key)
        if stop is not None and stop <= begin:
            self.size(key)  # an empty range of a missing blob is still NotFound
            return b""
        extra = {}
        if begin or stop is not None:
            extra["Range"] = f"bytes={begin}-{'' if stop is None else stop - 1}"

        def op(s3: Any) -> bytes:
            from botocore.exceptions import ClientError

            try:
                response = s3.get_object(Bucket=self.bucket, Key=name, **extra)
            except ClientError as exc:
                if _code(exc) == "InvalidRange":  # the range starts past the end: an empty slice
                    return b""
                raise
            with response["Body"] as body:
                return body.read()

        return self._call(key, "get", op)

    def delete(self, key: str) -> None:
        # S3 answers 204 whether or not the object existed: idempotent by nature.
        name = self._object(key)
        self._call(key, "delete", lambda s3: s3.delete_object(Bucket=self.bucket, Key=name))

    def exists(self, key: str) -> bool:
        try:
            self.size(key)
        except NotFound:
            return False
        return True

    def size(self, key: str) -> int:
        # HEAD answers a bare 404 for a missing bucket as for a missing key: both read as
        # NotFound here, while put and get name a missing bucket (NoSuchBucket).
        name = self._object(key)
        head = self._call(key, "size", lambda s3: s3.head_object(Bucket=self.bucket, Key=name))
        return int(head["ContentLength"])

    def keys(self) -> Iterator[str]:
        folder = f"{self.prefix}/" if self.prefix else ""

        def pages(s3: Any) -> list[dict[str, Any]]:
            paginator = s3.get_paginator("list_objects_v2")
            # The delimiter keeps objects in deeper "folders" (not ours) out of the listing.
            return paginator.paginate(Bucket=self.bucket, Prefix=folder, Delimiter="/")

        iterator = iter(self._call("*", "list", pages))
        while True:
            page = self._call("*", "list", lambda s3: next(iterator, None))
            if page is None:
                return
            for item in page.get("Contents", ()):
                name = item["Key"][len(folder) :]
                if is_valid_key(name):
                    yield name

    def close(self) -> None:
        with self._lock:
            client, self._s3, self._client_pid = self._s3, None, 0
        if client is not None:
            client.close()


def _code(exc: Any) -> str:
    return str(exc.response.get("Error", {}).get("Code", ""))


def _redact(url: str) -> str:
    parts = urllib.parse.urlsplit(url)
    query = [(k, "***" if k in _SECRET_PARAMS else v) for k, v in urllib.parse.parse_qsl(parts.query)]
    return urllib.parse.urlunsplit(parts._replace(query=urllib.parse.urlencode(query)))
