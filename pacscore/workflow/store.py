"""JSON records in a named database of the archive's LMDB environment, for the workflow services.

Performed procedure steps and storage commitment reports are few and small next to the Q/R
index, so each is one JSON value under its UID. Their databases are created at the first write
(``Index.optional_db``): reading an archive that never used a service finds nothing and changes
nothing, and the Q/R schema version does not move.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from typing import Any

from ..errors import StorageError


class JsonRecords:
    """The records of one named database: ``key (str) -> JSON object``."""

    def __init__(self, archive, name: str) -> None:
        self._archive = archive
        self.name = name

    def _db(self, create: bool):
        return self._archive.index.optional_db(self.name, create=create)

    @staticmethod
    def _key(key: str) -> bytes:
        raw = key.encode()
        if not 0 < len(raw) <= 511:  # LMDB's key limit
            raise StorageError(f"a key of {len(raw)} bytes cannot be stored (1 to 511)")
        return raw

    def get(self, key: str) -> dict | None:
        db = self._db(create=False)
        if db is None:
            return None
        with self._archive.index.read() as txn:  # adopts a map another process grew
            raw = txn.get(self._key(key), db=db)
            return None if raw is None else json.loads(bytes(raw))

    def items(self) -> Iterator[tuple[str, dict]]:
        """Every record in key order, read in one snapshot."""
        db = self._db(create=False)
        if db is None:
            return iter(())
        with self._archive.index.read() as txn:
            rows = [(bytes(k).decode(), json.loads(bytes(v))) for k, v in txn.cursor(db=db)]
        return iter(rows)

    def update(self, key: str, change: Callable[[dict | None], dict | None]) -> Any:
        """Replace the record of ``key`` by ``change(current)`` in one write transaction
        (``current`` is None when there is none; a None result deletes it). ``change`` may
        raise to leave everything as it was. Returns what ``change`` returned."""
        raw_key = self._key(key)
        db = self._db(create=True)  # before the write transaction: opening one takes the write lock

        def apply(txn):
            raw = txn.get(raw_key, db=db)
            new = change(None if raw is None else json.loads(bytes(raw)))
            if new is None:
                txn.delete(raw_key, db=db)  # False when there was none: nothing to do
            else:
                txn.put(raw_key, json.dumps(new, separators=(",", ":")).encode(), db=db)
            return new

        return self._archive._write_txn(apply)

    def delete(self, key: str) -> bool:
        """Remove the record of ``key``; whether there was one."""
        if self._db(create=False) is None:
            return False
        existed: list[bool] = []

        def remove(current: dict | None) -> None:
            existed.append(current is not None)
            return None

        self.update(key, remove)
        return existed[0]
