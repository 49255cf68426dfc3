"""``BlobStoreTests``: the behaviour every BlobStore owes the archive, as inheritable tests.

Subclass it in a ``Test*`` class and say how to make your store::

    from pacscore.testing import BlobStoreTests

    class TestMyStore(BlobStoreTests):
        def make_store(self, tmp_path):
            return MyStore(tmp_path / "blobs")

Every test receives a fresh store from the ``store`` fixture, which closes it afterwards.
Tests of a capability the store does not claim (``supports_listing``, ``supports_deletes``,
``durable``) are skipped. Override ``reopen_store`` if reopening needs more than calling
``make_store`` again with the same folder.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from pacscore.blobs.base import BlobStore
from pacscore.errors import NotFound

__all__ = ["BlobStoreTests"]

UID = "1.2.840.113619.2.55.3.604688119.868.1249343495.1"
RANGE_BLOB = bytes(range(256)) * 4  # 1 KiB whose every offset holds a recognisable byte

INVALID_KEYS = [
    "../etc/passwd",
    "a/b",
    "a\\b",
    "",
    ".",
    "..",
    ".hidden",
    "x" * 200,
    "a\x00b",
    "a b",
    "a\nb",
    "a:b",
    "a?b",
    "é",
]
VALID_KEYS = [UID, "1", "a-b_c.D", "-", "_x", "x" * 128, "1.2.3."]


class BlobStoreTests:
    """The conformance tests; the class name does not start with ``Test``, so pytest only
    collects the subclasses that bind a store."""

    #: How many blobs ``test_many_keys`` stores.
    many_keys = 1100

    def make_store(self, tmp_path: Path) -> BlobStore:
        """Return a new, empty store that keeps anything it persists under ``tmp_path``."""
        raise NotImplementedError("subclasses of BlobStoreTests define make_store(tmp_path)")

    def reopen_store(self, tmp_path: Path) -> BlobStore:
        """Open the same store again after ``close()`` (for the persistence test)."""
        return self.make_store(tmp_path)

    @pytest.fixture
    def store(self, tmp_path: Path) -> Iterator[BlobStore]:
        store = self.make_store(tmp_path)
        try:
            yield store
        finally:
            store.close()

    @staticmethod
    def require(store: BlobStore, capability: str) -> None:
        if not getattr(store, capability):
            pytest.skip(f"{type(store).__name__} does not claim {capability}")

    # -- the shape of a store -------------------------------------------------------------

    def test_is_a_blobstore_with_capabilities(self, store: BlobStore) -> None:
        assert isinstance(store, BlobStore)
        assert isinstance(type(store).scheme, str) and type(store).scheme
        assert isinstance(store.url, str) and store.url
        for flag in ("supports_ranges", "supports_listing", "supports_deletes", "durable"):
            assert isinstance(getattr(store, flag), bool), flag

    def test_close_is_idempotent(self, tmp_path: Path) -> None:
        store = self.make_store(tmp_path)
        store.close()
        store.close()

    def test_context_manager_closes(self, tmp_path: Path) -> None:
        with self.make_store(tmp_path) as store:
            store.put(UID, b"x")
            assert store.get(UID) == b"x"

    # -- put / get ------------------------------------------------------------------------

    def test_round_trip(self, store: BlobStore) -> None:
        store.put(UID, b"DICM\x00\x01payload")
        assert store.get(UID) == b"DICM\x00\x01payload"

    def test_get_returns_bytes(self, store: BlobStore) -> None:
        store.put(UID, bytearray(b"abc"))  # type: ignore[arg-type]  # a bytes-like value on purpose
        assert type(store.get(UID)) is bytes
        assert type(store.get(UID, 1, 2)) is bytes

    def test_empty_blob(self, store: BlobStore) -> None:
        store.put(UID, b"")
        assert store.get(UID) == b""
        assert store.exists(UID)
        assert store.size(UID) == 0

    def test_overwrite_replaces_the_whole_blob(self, store: BlobStore) -> None:
        store.put(UID, b"a much longer first version")
        store.put(UID, b"short")
        assert store.get(UID) == b"short"
        assert store.size(UID) == 5

    def test_put_many_stores_every_blob_and_overwrites(self, store: BlobStore) -> None:
        store.put("1.2.3.0", b"old")
        batch = [(f"1.2.3.{i}", f"blob {i}".encode() * (i + 1)) for i in range(12)]
        store.put_many(batch)
        for key, data in batch:
            assert store.get(key) == data
        store.put_many([])
        with pytest.raises(ValueError):
            store.put_many([("1.2.3.99", b"x"), ("../escape", b"y")])

    def test_every_byte_value_round_trips(self, store: BlobStore) -> None:
        data = bytes(range(256)) + bytes(reversed(range(256))) + b"\r\n\n\r\x1a\x00"
        store.put(UID, data)
        assert store.get(UID) == data

    def test_large_blob(self, store: BlobStore) -> None:
        data = bytes(range(251)) * (5 * 1024 * 1024 // 251 + 1)  # 5 MiB and a bit; 251 is prime
        store.put(UID, data)
        assert store.size(UID) == len(data)
        assert store.get(UID) == data
        middle = 3 * 1024 * 1024 + 7
        assert store.get(UID, middle, middle + 1000) == data[middle : middle + 1000]

    @pytest.mark.parametrize("key", VALID_KEYS)
    def test_valid_key_forms(self, store: BlobStore, key: str) -> None:
        store.put(key, key.encode())
        assert store.get(key) == key.encode()

    def test_keys_are_distinct(self, store: BlobStore) -> None:
        store.put("1.2.3", b"a")
        store.put("1.2.3.4", b"b")
        store.put("1.2", b"c")
        assert [store.get(k) for k in ("1.2.3", "1.2.3.4", "1.2")] == [b"a", b"b", b"c"]

    # -- byte ranges ----------------------------------------------------------------------

    @pytest.mark.parametrize(
        ("start", "end"),
        [
            (100, None),  # start only
            (None, 100),  # end only
            (10, 20),  # both
            (0, 1),
            (1023, 1024),  # the last byte
            (0, 1024),  # the whole blob, asked for as a range
            (5, 5),  # empty range
            (20, 10),  # end before start: empty, as slicing
            (0, 0),
            (1000, 5000),  # end beyond the end: cut short
            (1024, None),  # start at the end
            (2000, None),  # start beyond the end
            (2000, 3000),
        ],
    )
    def test_byte_range_is_a_slice(self, store: BlobStore, start: int | None, end: int | None) -> None:
        store.put(UID, RANGE_BLOB)
        assert store.get(UID, start, end) == RANGE_BLOB[start:end]

    def test_range_of_an_empty_blob(self, store: BlobStore) -> None:
        store.put(UID, b"")
        assert store.get(UID, 0, 10) == b""
        assert store.get(UID, 3) == b""

    @pytest.mark.parametrize(("start", "end"), [(-1, None), (None, -1), (-5, -1)])
    def test_negative_offsets_are_refused(self, store: BlobStore, start: int | None, end: int | None) -> None:
        store.put(UID, RANGE_BLOB)
        with pytest.raises(ValueError):
            store.get(UID, start, end)

    def test_range_of_a_missing_blob_is_not_found(self, store: BlobStore) -> None:
        with pytest.raises(NotFound):
            store.get(UID, 0, 10)
        with pytest.raises(NotFound):
            store.get(UID, 5, 5)

    # -- open -------------------------------------------------------------------------------

    def test_open_reads_the_blob(self, store: BlobStore) -> None:
        store.put(UID, RANGE_BLOB)
        with store.open(UID) as fh:
            assert fh.read(4) == RANGE_BLOB[:4]
            assert fh.read() == RANGE_BLOB[4:]

    def test_open_missing_is_not_found(self, store: BlobStore) -> None:
        with pytest.raises(NotFound):
            store.open(UID)

    # -- exists / size / delete ----------------------------------------------------------

    def test_exists_and_size(self, store: BlobStore) -> None:
        assert not store.exists(UID)
        store.put(UID, b"12345")
        assert store.exists(UID)
        assert store.size(UID) == 5

    def test_missing_blob_is_not_found_naming_the_key(self, store: BlobStore) -> None:
        with pytest.raises(NotFound, match=r"1.2.3.404"):
            store.get("1.2.3.404")
        with pytest.raises(NotFound, match=r"1.2.3.404"):
            store.size("1.2.3.404")
        with pytest.raises(KeyError):  # NotFound is a KeyError, as callers of a mapping expect
            store.get("1.2.3.404")

    def test_delete_removes_the_blob(self, store: BlobStore) -> None:
        self.require(store, "supports_deletes")
        store.put(UID, b"x")
        store.put("1.2.3", b"y")
        store.delete(UID)
        assert not store.exists(UID)
        with pytest.raises(NotFound):
            store.get(UID)
        assert store.get("1.2.3") == b"y"

    def test_delete_is_idempotent(self, store: BlobStore) -> None:
        self.require(store, "supports_deletes")
        store.delete(UID)  # never stored
        store.put(UID, b"x")
        store.delete(UID)
        store.delete(UID)
        assert not store.exists(UID)

    def test_put_after_delete(self, store: BlobStore) -> None:
        self.require(store, "supports_deletes")
        store.put(UID, b"first")
        store.delete(UID)
        store.put(UID, b"second")
        assert store.get(UID) == b"second"

    # -- keys ------------------------------------------------------------------------------

    def test_keys_of_an_empty_store(self, store: BlobStore) -> None:
        self.require(store, "supports_listing")
        assert list(store.keys()) == []

    def test_keys_lists_every_key_once(self, store: BlobStore) -> None:
        self.require(store, "supports_listing")
        expected = {UID, "1.2.3", "1.2.3.4", "a-b_c.D"}
        for key in expected:
            store.put(key, key.encode())
        store.put("1.2.3", b"overwritten")
        listed = list(store.keys())
        assert sorted(listed) == sorted(expected)

    def test_keys_forgets_deleted_keys(self, store: BlobStore) -> None:
        self.require(store, "supports_listing")
        self.require(store, "supports_deletes")
        store.put("1.1", b"a")
        store.put("1.2", b"b")
        store.delete("1.1")
        assert list(store.keys()) == ["1.2"]

    def test_many_keys(self, store: BlobStore) -> None:
        # More than 1000: the page size of S3 listings and of many other paginated APIs.
        keys = {f"1.2.826.0.1.3680043.8.498.{i}" for i in range(self.many_keys)}
        with ThreadPoolExecutor(8) as pool:  # stores are thread-safe; remote ones are slow
            list(pool.map(lambda key: store.put(key, key.encode()[-8:]), keys))
        if store.supports_listing:
            assert set(store.keys()) == keys
        for key in list(keys)[:50]:
            assert store.get(key) == key.encode()[-8:]

    def test_keys_survive_deletes_while_listing(self, store: BlobStore) -> None:
        self.require(store, "supports_listing")
        self.require(store, "supports_deletes")
        keys = {f"9.{i}" for i in range(300)}
        with ThreadPoolExecutor(8) as pool:
            list(pool.map(lambda key: store.put(key, b"x"), keys))
        for key in store.keys():  # the way verify --repair removes orphans
            store.delete(key)
        assert list(store.keys()) == []

    # -- invalid keys ------------------------------------------------------------------------

    @pytest.mark.parametrize("key", INVALID_KEYS)
    def test_invalid_key_is_refused_and_nothing_written(self, store: BlobStore, key: str) -> None:
        with pytest.raises(ValueError):
            store.put(key, b"evil")
        for call in (store.get, store.exists, store.size, store.delete, store.open):
            with pytest.raises(ValueError):
                call(key)
        if store.supports_listing:
            assert list(store.keys()) == []

    def test_non_string_key_is_refused(self, store: BlobStore) -> None:
        for key in (b"1.2.3", 123, None):
            with pytest.raises((ValueError, TypeError)):
                store.put(key, b"x")  # type: ignore[arg-type]

    # -- concurrency ---------------------------------------------------------------------------

    def test_concurrent_puts_from_threads(self, store: BlobStore) -> None:
        errors: list[BaseException] = []

        def writer(n: int) -> None:
            try:
                for i in range(25):
                    store.put(f"2.{n}.{i}", f"{n}:{i}".encode() * 100)
            except BaseException as exc:  # pragma: no cover - reported below
                errors.append(exc)

        threads = [threading.Thread(target=writer, args=(n,)) for n in range(8)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert not errors
        for n in range(8):
            for i in range(25):
                assert store.get(f"2.{n}.{i}") == f"{n}:{i}".encode() * 100
        if store.supports_listing:
            assert len(set(store.keys())) == 200

    def test_concurrent_overwrites_are_atomic(self, store: BlobStore) -> None:
        # Readers racing writers of one key must see one whole version, never a torn mix.
        versions = [bytes([v]) * 200_000 for v in range(4)]
        store.put(UID, versions[0])
        reads = 0
        torn: list[int] = []
        errors: list[BaseException] = []
        stop = threading.Event()

        def writer(v: int) -> None:
            try:
                for _ in range(10):
                    store.put(UID, versions[v])
            except BaseException as exc:  # pragma: no cover
                errors.append(exc)

        def reader() -> None:
            nonlocal reads
            try:
                while not stop.is_set():
                    blob = store.get(UID)
                    reads += 1
                    if blob not in versions:
                        torn.append(len(blob))
            except BaseException as exc:  # pragma: no cover
                errors.append(exc)

        readers = [threading.Thread(target=reader) for _ in range(2)]
        writers = [threading.Thread(target=writer, args=(v,)) for v in range(1, 4)]
        for t in readers + writers:
            t.start()
        for t in writers:
            t.join()
        stop.set()
        for t in readers:
            t.join()
        assert not errors
        assert reads and not torn
        assert store.get(UID) in versions[1:]

    # -- persistence -----------------------------------------------------------------------------

    def test_reopen_after_close_keeps_the_blobs(self, tmp_path: Path) -> None:
        store = self.make_store(tmp_path)
        if not store.durable:
            store.close()
            pytest.skip(f"{type(store).__name__} does not claim durable")
        try:
            store.put(UID, RANGE_BLOB)
            store.put("1.2.3", b"")
        finally:
            store.close()
        again = self.reopen_store(tmp_path)
        try:
            assert again.get(UID) == RANGE_BLOB
            assert again.get("1.2.3") == b""
            if again.supports_listing:
                assert sorted(again.keys()) == sorted([UID, "1.2.3"])
        finally:
            again.close()
