"""Every built-in blob store passes the conformance kit; plus URLs, the registry and each
store's own promises (sharding, temp files, map growth, fork, S3 errors, mirroring)."""

from __future__ import annotations

import hashlib
import importlib.metadata
import os
import socket
import stat
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

import pacscore.blobs as blobs
import pacscore.blobs.lmdb as lmdb_blobs
from pacscore.blobs import BlobStore, open_blobstore, register_blobstore, validate_key
from pacscore.blobs.file import FileBlobStore
from pacscore.blobs.lmdb import LmdbBlobStore
from pacscore.blobs.memory import MemoryBlobStore
from pacscore.blobs.mirror import MirrorBlobStore
from pacscore.errors import NotFound, StorageError
from pacscore.testing import BlobStoreTests

from .factories import BUCKET, CREDENTIALS, s3_prefix_for, s3_url

UID = "1.2.840.113619.2.55.3.604688119.868.1249343495.1"


# -- the conformance kit, bound to each built-in store -------------------------------------


class TestFileBlobStore(BlobStoreTests):
    def make_store(self, tmp_path: Path) -> BlobStore:
        return open_blobstore(None, root=tmp_path)


class TestMemoryBlobStore(BlobStoreTests):
    def make_store(self, tmp_path: Path) -> BlobStore:
        return open_blobstore("memory://", root=tmp_path)


class TestLmdbBlobStore(BlobStoreTests):
    def make_store(self, tmp_path: Path) -> BlobStore:
        return open_blobstore("lmdb://", root=tmp_path)


class TestMirrorFileMemory(BlobStoreTests):
    def make_store(self, tmp_path: Path) -> BlobStore:
        return open_blobstore("mirror:file:blobs|memory://", root=tmp_path)


class TestMirrorFileLmdb(BlobStoreTests):
    def make_store(self, tmp_path: Path) -> BlobStore:
        return open_blobstore("mirror:file:blobs|lmdb://", root=tmp_path)


class TestS3BlobStore(BlobStoreTests):
    @pytest.fixture(autouse=True)
    def _endpoint(self, s3_endpoint: str) -> None:
        self.endpoint = s3_endpoint

    def make_store(self, tmp_path: Path) -> BlobStore:
        return open_blobstore(s3_url(self.endpoint, s3_prefix_for(tmp_path)), root=tmp_path)


class DictBlobStore(BlobStore):
    """A third-party store written against the ABC alone, as docs/storage.md shows."""

    scheme = "dict-test"

    def __init__(self) -> None:
        self.url = "dict-test:"
        self._data: dict[str, bytes] = {}
        self._lock = threading.Lock()

    @classmethod
    def from_url(cls, url: str, root: Path) -> DictBlobStore:
        return cls()

    def put(self, key: str, data: bytes) -> None:
        with self._lock:
            self._data[validate_key(key)] = bytes(data)

    def get(self, key: str, start: int | None = None, end: int | None = None) -> bytes:
        begin, stop = blobs.check_range(start, end)
        with self._lock:
            if validate_key(key) not in self._data:
                raise NotFound(f"no blob {key!r}")
            return self._data[key][begin:stop]

    def delete(self, key: str) -> None:
        with self._lock:
            self._data.pop(validate_key(key), None)

    def exists(self, key: str) -> bool:
        with self._lock:
            return validate_key(key) in self._data

    def size(self, key: str) -> int:
        return len(self.get(key))

    def keys(self) -> Iterator[str]:
        with self._lock:
            return iter(list(self._data))

    durable = False


class TestThirdPartyStoreThroughTheRegistry(BlobStoreTests):
    @pytest.fixture(autouse=True)
    def _registered(self, monkeypatch: pytest.MonkeyPatch) -> None:
        monkeypatch.setattr(blobs, "_registered", dict(blobs._registered))
        register_blobstore("dict-test", DictBlobStore)

    def make_store(self, tmp_path: Path) -> BlobStore:
        return open_blobstore("dict-test:", root=tmp_path)


# -- keys --------------------------------------------------------------------------------------


@pytest.mark.parametrize("key", ["1.2.3", "a", "A-z_0.9", "x" * 128, "-"])
def test_validate_key_accepts(key: str) -> None:
    assert validate_key(key) == key


@pytest.mark.parametrize(
    "key", ["", ".", "..", ".x", "../etc/passwd", "a/b", "a\\b", "x" * 129, "a\x00b", "a\n", "é", "C:x"]
)
def test_validate_key_refuses_naming_the_key(key: str) -> None:
    with pytest.raises(ValueError, match="invalid blob key"):
        validate_key(key)


# -- open_blobstore: URL forms ------------------------------------------------------------------


def test_no_url_is_a_file_store_in_root_blobs(tmp_path: Path) -> None:
    with open_blobstore(None, root=tmp_path) as store:
        assert isinstance(store, FileBlobStore)
        assert store.path == tmp_path / "blobs"


def test_file_url_relative_to_root(tmp_path: Path) -> None:
    with open_blobstore("file:data/blobs", root=tmp_path) as store:
        assert store.path == tmp_path / "data" / "blobs"


def test_file_url_absolute(tmp_path: Path) -> None:
    target = tmp_path / "elsewhere"
    with open_blobstore(target.as_uri(), root=tmp_path / "root") as store:
        assert store.path == target
    with open_blobstore("file://localhost" + target.as_posix(), root=tmp_path) as store:
        assert store.path == target


def test_file_url_is_percent_decoded(tmp_path: Path) -> None:
    with open_blobstore("file:my%20blobs", root=tmp_path) as store:
        assert store.path == tmp_path / "my blobs"


def test_store_url_reopens_the_same_store(tmp_path: Path) -> None:
    for url in ("file:blobs", "lmdb://"):
        with open_blobstore(url, root=tmp_path) as store:
            store.put(UID, b"x")
            again_url = store.url
        with open_blobstore(again_url, root=tmp_path / "unrelated") as again:
            assert again.get(UID) == b"x"


@pytest.mark.parametrize(
    "url", ["file://server/share", "file:", "file:blobs?x=1", "memory://somewhere", "lmdb://host/x"]
)
def test_malformed_urls_are_refused(tmp_path: Path, url: str) -> None:
    with pytest.raises(ValueError):
        open_blobstore(url, root=tmp_path)


def test_memory_url(tmp_path: Path) -> None:
    with open_blobstore("memory://", root=tmp_path) as store:
        assert isinstance(store, MemoryBlobStore)
        assert not store.durable
    assert list(tmp_path.iterdir()) == []  # a memory store touches no disk


def test_lmdb_url_default_and_absolute(tmp_path: Path) -> None:
    with open_blobstore("lmdb://", root=tmp_path) as store:
        assert isinstance(store, LmdbBlobStore)
        assert store.path == tmp_path / "blobs.lmdb"
        assert store.url == "lmdb://" + (tmp_path / "blobs.lmdb").as_posix()
    with open_blobstore("lmdb://" + (tmp_path / "x.lmdb").as_posix(), root=tmp_path / "r") as store:
        assert store.path == tmp_path / "x.lmdb"


def test_s3_url_is_parsed_and_secrets_stay_out_of_url(tmp_path: Path) -> None:
    url = "s3://scans/site/a?endpoint_url=http://127.0.0.1:9&region=eu-west-1&" + CREDENTIALS
    store = open_blobstore(url, root=tmp_path)
    assert (store.bucket, store.prefix) == ("scans", "site/a")
    assert (store.endpoint_url, store.region) == ("http://127.0.0.1:9", "eu-west-1")
    assert "testing-secret" not in store.url and "testing-secret" not in repr(store)
    assert store.url.startswith("s3://scans/site/a?")
    store.close()  # no client was made: nothing was sent anywhere


@pytest.mark.parametrize(
    "url", ["s3://", "s3:///prefix", "s3://b/p?endpoint=http://x", "s3://b/p?aws_secret_access_key=s&bogus=1"]
)
def test_malformed_s3_urls_are_refused(tmp_path: Path, url: str) -> None:
    with pytest.raises(ValueError) as info:
        open_blobstore(url, root=tmp_path)
    assert "aws_secret_access_key=s&" not in str(info.value)


def test_mirror_url(tmp_path: Path) -> None:
    with open_blobstore("mirror:file:a|memory://", root=tmp_path) as store:
        assert isinstance(store, MirrorBlobStore)
        assert isinstance(store.primary, FileBlobStore) and store.primary.path == tmp_path / "a"
        assert isinstance(store.secondary, MemoryBlobStore)
        assert store.durable  # one durable side is enough
        assert store.url == f"mirror:{(tmp_path / 'a').as_uri()}|memory://"


def test_mirror_urls_nest_on_the_right(tmp_path: Path) -> None:
    with open_blobstore("mirror:file:a|mirror:file:b|lmdb://", root=tmp_path) as store:
        assert isinstance(store.secondary, MirrorBlobStore)
        assert isinstance(store.secondary.secondary, LmdbBlobStore)
        store.put(UID, b"three copies")
        assert store.secondary.secondary.get(UID) == b"three copies"


@pytest.mark.parametrize("url", ["mirror:", "mirror:file:a", "mirror:file:a|", "mirror:|file:a"])
def test_mirror_needs_two_urls(tmp_path: Path, url: str) -> None:
    with pytest.raises(ValueError, match="mirror"):
        open_blobstore(url, root=tmp_path)


def test_unknown_scheme_lists_the_known_ones(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="unknown blob store scheme 'ftp'") as info:
        open_blobstore("ftp://example/blobs", root=tmp_path)
    for scheme in ("file", "lmdb", "memory", "mirror", "s3"):
        assert scheme in str(info.value)


@pytest.mark.parametrize("url", ["blobs", "/abs/path", "", "1x:y"])
def test_a_bare_path_is_not_a_url(tmp_path: Path, url: str) -> None:
    with pytest.raises(ValueError, match="known schemes"):
        open_blobstore(url, root=tmp_path)


# -- the registry ----------------------------------------------------------------------------


def test_builtin_stores_are_entry_points() -> None:
    found = {ep.name: ep.value for ep in importlib.metadata.entry_points(group="pacscore.blobstores")}
    assert found == {
        "file": "pacscore.blobs.file:FileBlobStore",
        "memory": "pacscore.blobs.memory:MemoryBlobStore",
        "lmdb": "pacscore.blobs.lmdb:LmdbBlobStore",
        "s3": "pacscore.blobs.objectstore:S3BlobStore",
        "mirror": "pacscore.blobs.mirror:MirrorBlobStore",
    } | {k: v for k, v in found.items() if k not in blobs._BUILTIN}


@pytest.mark.parametrize("scheme", ["file", "memory", "lmdb", "s3", "mirror"])
def test_each_scheme_resolves_to_its_class(scheme: str) -> None:
    cls = blobs.get_blobstore_class(scheme)
    assert issubclass(cls, BlobStore)
    assert cls.scheme == scheme


def test_register_blobstore_at_runtime(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(blobs, "_registered", dict(blobs._registered))
    register_blobstore("dict-test", DictBlobStore)
    assert "dict-test" in blobs.known_schemes()
    with open_blobstore("DICT-TEST:", root=tmp_path) as store:
        assert isinstance(store, DictBlobStore)


def test_a_registration_replaces_a_builtin(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(blobs, "_registered", dict(blobs._registered))
    register_blobstore("memory", DictBlobStore)
    assert isinstance(open_blobstore("memory://", root=tmp_path), DictBlobStore)


def test_register_blobstore_checks_its_arguments() -> None:
    with pytest.raises(ValueError):
        register_blobstore("no spaces", DictBlobStore)
    with pytest.raises(TypeError):
        register_blobstore("thing", object)  # type: ignore[arg-type]


def test_a_third_party_distribution_adds_a_scheme(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # A fake installed distribution: a module and a dist-info declaring the entry point.
    (tmp_path / "acme_blobs.py").write_text(
        "from pacscore.blobs.memory import MemoryBlobStore\n"
        "class AcmeBlobStore(MemoryBlobStore):\n"
        "    scheme = 'acme'\n"
        "    @classmethod\n"
        "    def from_url(cls, url, root):\n"
        "        store = cls()\n"
        "        store.url = url\n"
        "        return store\n"
    )
    dist = tmp_path / "acme_blobs-1.0.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: acme-blobs\nVersion: 1.0\n")
    (dist / "entry_points.txt").write_text("[pacscore.blobstores]\nacme = acme_blobs:AcmeBlobStore\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.setattr(blobs, "_registered", dict(blobs._registered))
    monkeypatch.setattr(blobs, "_entry_points", None)  # forget the listing made before
    monkeypatch.delitem(sys.modules, "acme_blobs", raising=False)

    assert "acme" in blobs.known_schemes()
    assert "acme_blobs" not in sys.modules  # listed, not loaded: loading waits for first use
    with open_blobstore("acme://vault", root=tmp_path) as store:
        assert type(store).__name__ == "AcmeBlobStore"
        store.put(UID, b"x")
        assert store.get(UID) == b"x"


# -- file store ----------------------------------------------------------------------------------


def _files(folder: Path) -> list[Path]:
    return sorted(p for p in folder.rglob("*") if p.is_file())


def test_file_store_shards_two_levels_by_hash(tmp_path: Path) -> None:
    store = FileBlobStore(tmp_path / "blobs")
    store.put(UID, b"x")
    (path,) = _files(tmp_path / "blobs")
    first, second, name = path.relative_to(tmp_path / "blobs").parts
    assert name == UID
    assert len(first) == len(second) == 2
    assert first + second == hashlib.blake2b(UID.encode(), digest_size=2).hexdigest()


def test_file_store_put_leaves_no_temp_files(tmp_path: Path) -> None:
    store = FileBlobStore(tmp_path)
    for i in range(20):
        store.put("1.2", bytes(i))
    assert [p.name for p in _files(tmp_path)] == ["1.2"]


def test_file_store_never_lists_a_crash_leftover_temp_file(tmp_path: Path) -> None:
    store = FileBlobStore(tmp_path / "blobs")
    store.put(UID, b"kept")
    shard = store._path("1.2.3").parent
    shard.mkdir(parents=True, exist_ok=True)
    (shard / ".tmp-1.2.3-0123456789ab").write_bytes(b"half a blo")  # put died before rename
    (tmp_path / "blobs" / ".tmp-stray").write_bytes(b"")
    assert list(store.keys()) == [UID]
    assert not store.exists("1.2.3")
    assert [p.name for p in store.temp_files()] == [".tmp-1.2.3-0123456789ab"]


def test_file_store_ignores_foreign_files(tmp_path: Path) -> None:
    store = FileBlobStore(tmp_path)
    store.put(UID, b"x")
    (tmp_path / "README").write_text("not a blob")
    (tmp_path / "zz").mkdir()
    (tmp_path / "zz" / "1.2").write_text("not a shard")
    wrong = tmp_path / "00" / "00"
    wrong.mkdir(parents=True, exist_ok=True)
    if store._path("misplaced").parent != wrong:
        (wrong / "misplaced").write_bytes(b"in the wrong shard")
    assert list(store.keys()) == [UID]


def test_file_store_invalid_keys_write_nothing_anywhere(tmp_path: Path) -> None:
    store = FileBlobStore(tmp_path / "a" / "b" / "blobs")
    for key in ("../etc/passwd", "../../x", "a/b", "..", "/abs", "a\x00b"):
        with pytest.raises(ValueError, match="invalid blob key"):
            store.put(key, b"evil")
    assert _files(tmp_path) == []


def test_file_store_fsyncs_the_file_and_its_folder(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    store = FileBlobStore(tmp_path)
    store.put("1.1", b"warm the shard folders up")  # later puts create no folders
    synced: list[str] = []
    real_fsync = os.fsync

    def fsync(fd: int) -> None:
        synced.append("dir" if stat.S_ISDIR(os.fstat(fd).st_mode) else "file")
        real_fsync(fd)

    monkeypatch.setattr(os, "fsync", fsync)
    store.put("1.1", b"again")
    if os.name == "posix":
        assert synced == ["file", "dir"]
    else:  # pragma: no cover
        assert synced == ["file"]


def test_file_store_open_streams_the_file(tmp_path: Path) -> None:
    store = FileBlobStore(tmp_path)
    store.put(UID, b"0123456789")
    with store.open(UID) as fh:
        fh.seek(5)
        assert fh.read(2) == b"56"


def test_file_store_reports_disk_errors_as_storage_errors(tmp_path: Path) -> None:
    store = FileBlobStore(tmp_path / "blobs")
    shard = store._path(UID).parent
    shard.parent.mkdir(parents=True)
    shard.write_bytes(b"a file where the shard folder should be")
    with pytest.raises(StorageError, match=UID.replace(".", r"\.")):
        store.put(UID, b"x")


# -- lmdb store ---------------------------------------------------------------------------------


def test_lmdb_store_grows_its_map(tmp_path: Path) -> None:
    store = LmdbBlobStore(tmp_path / "b.lmdb", map_size=1 << 16)
    big = os.urandom(3 << 20)
    store.put(UID, big)
    assert store.get(UID) == big
    assert store._current().env.info()["map_size"] > 1 << 16
    store.close()


def test_the_lmdb_store_asks_its_map_size_only_where_no_resize_can_run(tmp_path: Path) -> None:
    """Another thread's set_mapsize remaps the environment; an env.info() beside it failed in CI
    ("mdb_env_info: Invalid argument"). Every env call of the store runs inside its gate (shared
    for reads and writes, exclusive for a resize); the map fills up here, so resizes happen."""
    store = LmdbBlobStore(tmp_path / "b.lmdb", map_size=1 << 16)
    handle = store._current()
    outside: list[str] = []

    class Watched:
        def __init__(self, env) -> None:
            self._env = env

        def __getattr__(self, name: str):
            gate = handle.gate
            if not (gate._active or gate._exclusive):
                outside.append(name)
            return getattr(self._env, name)

    handle.env = Watched(handle.env)  # type: ignore[assignment]
    for i in range(6):
        store.put(f"k{i}", bytes([i]) * 100_000)
        assert store.get(f"k{i}", 0, 3) == bytes([i]) * 3
    assert store._current().env.info()["map_size"] > 1 << 16
    assert outside == ["info"]  # the assertion's own call above, and only it
    store.close()


def test_lmdb_store_grows_its_map_under_concurrent_writers(tmp_path: Path) -> None:
    store = LmdbBlobStore(tmp_path / "b.lmdb", map_size=1 << 16)
    errors: list[BaseException] = []

    def writer(n: int) -> None:
        try:
            for i in range(10):
                store.put(f"{n}.{i}", bytes([n]) * 100_000)
                assert store.get(f"{n}.{i}", 0, 3) == bytes([n]) * 3
        except BaseException as exc:  # pragma: no cover
            errors.append(exc)

    threads = [threading.Thread(target=writer, args=(n,)) for n in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    assert len(list(store.keys())) == 60
    store.close()


def test_lmdb_keys_lists_in_batches_across_deletes(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(lmdb_blobs, "_LIST_BATCH", 7)
    store = LmdbBlobStore(tmp_path / "b.lmdb")
    keys = [f"1.{i:03d}" for i in range(50)]
    for key in keys:
        store.put(key, b"x")
    assert sorted(store.keys()) == keys
    for key in store.keys():
        store.delete(key)
        if key == "1.010":
            store.put("1.005", b"re-added behind the cursor")  # may or may not be listed
    assert list(store.keys()) == ["1.005"]
    store.close()


def test_lmdb_stores_on_one_path_share_one_environment(tmp_path: Path) -> None:
    first = LmdbBlobStore(tmp_path / "b.lmdb")
    second = open_blobstore("lmdb:b.lmdb", root=tmp_path)
    assert first._current() is second._current()
    first.put(UID, b"x")
    first.close()
    assert second.get(UID) == b"x"  # closing one store leaves the other's handle open
    second.close()


def test_lmdb_store_used_after_close_is_an_error(tmp_path: Path) -> None:
    store = LmdbBlobStore(tmp_path / "b.lmdb")
    store.close()
    with pytest.raises(StorageError, match="closed"):
        store.get(UID)


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs fork()")
def test_lmdb_store_reopens_in_a_forked_child(tmp_path: Path) -> None:
    store = LmdbBlobStore(tmp_path / "b.lmdb")
    store.put("1.1", b"from the parent")
    pid = os.fork()
    if pid == 0:  # the child: use the inherited store, then leave without cleanup handlers
        code = 1
        try:
            ok = store.get("1.1") == b"from the parent"
            store.put("1.2", b"from the child")
            store.close()
            code = 0 if ok else 2
        finally:
            os._exit(code)
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0
    assert store.get("1.2") == b"from the child"
    assert store.get("1.1") == b"from the parent"
    store.close()


# -- s3 store -----------------------------------------------------------------------------------


def test_s3_missing_bucket_is_a_storage_error_naming_the_key(s3_endpoint: str, tmp_path: Path) -> None:
    store = open_blobstore(s3_url(s3_endpoint, "p", bucket="no-such-bucket"), root=tmp_path)
    with pytest.raises(StorageError, match=r"1.2.3"):
        store.put("1.2.3", b"x")
    with pytest.raises(StorageError, match=r"1.2.3"):
        store.get("1.2.3")
    store.close()


def test_s3_unreachable_endpoint_is_a_storage_error(tmp_path: Path) -> None:
    pytest.importorskip("boto3")
    with socket.socket() as refusing:  # bound and never listening: connections to it are refused
        refusing.bind(("127.0.0.1", 0))
        url = f"s3://b/p?endpoint_url=http://127.0.0.1:{refusing.getsockname()[1]}&region=us-east-1&{CREDENTIALS}"
        store = open_blobstore(url, root=tmp_path)
        with pytest.raises(StorageError, match=r"1.2.3"):
            store.put("1.2.3", b"x")
        store.close()


def test_s3_prefixes_keep_stores_apart_and_foreign_objects_unlisted(s3_endpoint: str, tmp_path: Path) -> None:
    prefix = s3_prefix_for(tmp_path)
    a = open_blobstore(s3_url(s3_endpoint, f"{prefix}/a"), root=tmp_path)
    b = open_blobstore(s3_url(s3_endpoint, f"{prefix}/b"), root=tmp_path)
    a.put("1.1", b"a")
    b.put("1.2", b"b")
    client = a._client()
    client.put_object(Bucket=BUCKET, Key=f"{prefix}/a/deeper/1.3", Body=b"not ours")
    client.put_object(Bucket=BUCKET, Key=f"{prefix}/a/bad key", Body=b"not ours")
    assert list(a.keys()) == ["1.1"]
    assert list(b.keys()) == ["1.2"]
    assert not a.exists("1.2")
    a.close()
    b.close()


# -- mirror store -------------------------------------------------------------------------------


class _BrokenStore(MemoryBlobStore):
    def put(self, key: str, data: bytes) -> None:
        raise StorageError(f"disk on fire: {key}")

    def get(self, key: str, start: int | None = None, end: int | None = None) -> bytes:
        raise StorageError(f"disk on fire: {key}")


def test_mirror_writes_both_and_reads_either() -> None:
    primary, secondary = MemoryBlobStore(), MemoryBlobStore()
    store = MirrorBlobStore(primary, secondary)
    store.put(UID, b"x")
    assert primary.get(UID) == secondary.get(UID) == b"x"
    primary.delete(UID)
    assert store.get(UID) == b"x" and store.size(UID) == 1 and store.exists(UID)
    secondary.put("1.2", b"only here")
    primary.put("1.3", b"only there")
    assert sorted(store.keys()) == sorted([UID, "1.2", "1.3"])
    store.delete("1.2")
    store.delete("1.3")
    assert not primary.exists("1.3") and not secondary.exists("1.2")


def test_mirror_put_fails_if_the_second_copy_fails() -> None:
    store = MirrorBlobStore(MemoryBlobStore(), _BrokenStore())
    with pytest.raises(StorageError, match="only the primary copy"):
        store.put(UID, b"x")


def test_mirror_reads_past_a_failing_primary() -> None:
    secondary = MemoryBlobStore()
    secondary.put(UID, b"safe")
    store = MirrorBlobStore(_BrokenStore(), secondary)
    assert store.get(UID) == b"safe"
    with pytest.raises(StorageError, match="disk on fire"):
        store.get("1.2.404")  # missing on the healthy side: the failure says more than NotFound


def test_file_put_many_remakes_a_shard_folder_removed_behind_its_back(tmp_path):
    """put_many remembers the shard folders it made; one deleted meanwhile (by an operator or a
    restore) is made again instead of failing the batch."""
    import shutil

    store = FileBlobStore(tmp_path / "blobs")
    store.put_many([("1.2.3", b"a"), ("1.2.4", b"b")])
    shard = store._path("1.2.3").parent
    shutil.rmtree(shard.parent)
    store.put_many([("1.2.3", b"again"), ("1.2.5", b"c")])
    assert store.get("1.2.3") == b"again" and store.get("1.2.5") == b"c"
    assert not [p for p in (tmp_path / "blobs").rglob(".tmp-*")]
    with pytest.raises(ValueError, match="invalid blob key"):
        store.put_many([("1.2.6", b"x"), ("../escape", b"y")])
