"""Runs a Query in one LMDB read transaction (a consistent snapshot) and yields matches.

Candidates come from the plan (query/plan.py): unique-key lookups, navigation down from matched
ancestors, a secondary index, or a scan of the level. Every candidate is verified against every
condition of its level and of its ancestors: the index proposes, the matcher decides. Candidates
are visited in ascending unique-key order, so answers are deterministic and pages are stable.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator

from ..index import codec as records
from ..index.layout import T_PARENT, T_PATIENT, T_STUDY
from ..index.snapshot import Snapshot
from . import fast
from .keys import Query
from .plan import Plan, choose_plan

_PARENT_FIELD = {"STUDY": T_PARENT, "SERIES": T_PARENT, "IMAGE": T_PARENT}
_STORAGE_PARENT = {"STUDY": "PATIENT", "SERIES": "STUDY", "IMAGE": "SERIES"}


class Match:
    """One matching entity at the query level; ``records`` holds its record and its ancestors'
    (raw bytes), read on first use: counting never needs them."""

    __slots__ = ("level", "key", "_records", "_executor")

    def __init__(self, level: str, key: bytes, records: dict[str, bytes], executor: Executor | None = None):
        self.level, self.key, self._records, self._executor = level, key, records, executor

    def record(self, level: str) -> bytes | None:
        """The raw record of ``level``: the match's own without reading any ancestor, an
        ancestor's by reading only the levels up to it."""
        rec = self._records.get(level)
        if rec is not None or self._executor is None:
            return rec
        self._records.update(self._executor.ancestors(self.level, self._records[self.level], stop=level))
        return self._records.get(level)

    @property
    def records(self) -> dict[str, bytes]:
        if self._executor is not None:
            rec = self._records[self.level]
            if self.level != "PATIENT":
                self._records.update(self._executor.ancestors(self.level, rec))
            self._executor = None
        return self._records


class Executor:
    def __init__(self, index, txn, query: Query) -> None:
        self.index = index
        self.txn = txn
        self.snapshot = Snapshot(index, txn)
        self.query = query
        self._cache: dict[tuple[str, bytes], bytes | None] = {}  # ancestors only
        self._verdict: dict[tuple[str, bytes], bool] = {}
        self.test: Callable[[str, bytes], bool] = fast.record_tester(query, self._pure_test)  # compiled when built
        self.plan: Plan = choose_plan(self)

    def __enter__(self) -> Executor:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def close(self) -> None:
        """Let go of the read transaction. The plan and the compiled tester refer back to this
        executor, so without this the transaction (and the LMDB reader slot it holds until it
        is freed) would live until the next cyclic collection; an application that makes few
        tracked objects, or turns the GC off, would then run out of reader slots."""
        self.plan = None  # type: ignore[assignment]  # closed: nothing reads the plan after close()
        self.test = None  # type: ignore[assignment]  # closed: nothing tests after close()
        self._cache.clear()
        self.txn = None
        self.snapshot = None  # type: ignore[assignment]  # closed: the transaction is let go

    # -- records ----------------------------------------------------------------------------
    def record(self, level: str, key: bytes) -> bytes | None:
        """An ancestor's record, read once per query (many children share it)."""
        ck = (level, key)
        if ck not in self._cache:
            raw = self.snapshot.record(level, key)
            self._cache[ck] = None if raw is None else bytes(raw)
        return self._cache[ck]

    def parent_key(self, level: str, rec: bytes) -> bytes:
        return records.get_value(rec, T_PARENT).encode("utf-8")

    def ancestors(self, level: str, rec: bytes, stop: str | None = None) -> dict[str, bytes]:
        """Records of the storage ancestors of an entity (patient, study, series as needed),
        up to the ``stop`` level when given."""
        out = {}
        while level in _STORAGE_PARENT and level != stop:
            parent_level = _STORAGE_PARENT[level]
            key = self.parent_key(level, rec)
            prec = self.record(parent_level, key)
            if prec is None:
                break
            out[parent_level] = prec
            level, rec = parent_level, prec
        return out

    # -- matching ---------------------------------------------------------------------------
    def _pure_test(self, level: str, rec: bytes) -> bool:
        """``test`` without the compiled kernels: every condition of the level, in Python."""
        for cond in self.query.conditions.get(level, ()):
            values = [records.get_value(rec, t) for t in cond.tags]
            if not cond.test(*values):
                return False
        return True

    def test_cached(self, level: str, key: bytes, rec: bytes) -> bool:
        ck = (level, key)
        verdict = self._verdict.get(ck)
        if verdict is None:
            verdict = self._verdict[ck] = self.test(level, rec)
        return verdict

    def own_record_batches(self) -> Iterator[list[bytes]] | None:
        """The matches' own records (bytes, in key order), a list at a time, when no upper level
        has conditions (no ancestor needs reading to decide); else None. A result built from the
        match's own record alone skips Match objects and is built a list at a time."""
        if self._upper_levels():
            return None
        return self._match_batches(False)

    def _upper_levels(self) -> list[str]:
        q = self.query
        return [lvl for lvl in q.ancestors if q.conditions.get(lvl)]

    def matches(self) -> Iterator[Match]:
        target = self.query.level
        upper = self._upper_levels()
        for key, rec in self._candidates_that_match():
            if not upper:
                yield Match(target, key, {target: rec}, self)
                continue
            ancestors = self.ancestors(target, rec) if target != "PATIENT" else {}
            if any(lvl not in ancestors for lvl in upper):
                continue
            if not all(
                self.test_cached(lvl, self._key_of(lvl, ancestors, target, rec), ancestors[lvl]) for lvl in upper
            ):
                continue
            yield Match(target, key, {target: rec, **ancestors})

    def _candidates_that_match(self) -> Iterator[tuple[bytes, bytes]]:
        """(key, record) of the candidates that pass the query level's own conditions."""
        for batch in self._match_batches(True):
            yield from batch

    def _match_batches(self, with_keys: bool) -> Iterator[list]:
        """Lists of the candidates that pass the query level's own conditions, in key order:
        (key, record) pairs, or the records alone when ``with_keys`` is false."""
        target = self.query.level
        record_test = getattr(self.test, "record_test", None)
        if self.plan.keys is None and record_test is not None:
            rt = record_test(target)
            if self.plan.segmented:
                # a level scan over the packed segments: one C loop per segment
                for value in self.plan.segment_values():
                    yield rt.scan_segment(value, with_keys)
                return
            # an unsegmented level: the compiled kernels test the cursor's records in a C loop
            scan, it = rt.scan, self.plan.candidates()
            while True:
                batch, exhausted = scan(it, 1024, with_keys)
                yield batch
                if exhausted:
                    return
        keys = self.plan.keys
        if record_test is not None and keys is not None:  # past the scan above, keys come with the kernels
            # candidate keys from a plan: fetched and tested in a C loop, a batch at a time
            fetch = record_test(target).fetch
            get, db = self.snapshot.getter(target)
            for i in range(0, len(keys), 1024):
                yield fetch(get, keys[i : i + 1024], db, with_keys)
            return
        test = self.test
        # the plan yields (key, record) with the record possibly a buffer into the map: test in
        # place, copy only what matches (buffers are valid until the next read)
        batch = []
        for key, rec in self.plan.candidates():
            if rec is not None and test(target, rec):
                batch.append((bytes(key), bytes(rec)) if with_keys else bytes(rec))
                if len(batch) >= 1024:
                    yield batch
                    batch = []
        yield batch

    def _key_of(self, level: str, ancestors: dict[str, bytes], target: str, rec: bytes) -> bytes:
        # the key of an ancestor is stored in its child's parent field
        chain = ["IMAGE", "SERIES", "STUDY", "PATIENT"]
        child_level = chain[chain.index(level) - 1]
        child_rec = rec if child_level == target else ancestors[child_level]
        return self.parent_key(child_level, child_rec)


def run(index, txn, query: Query) -> Iterator[Match]:
    with Executor(index, txn, query) as executor:
        yield from executor.matches()


__all__ = ["Executor", "Match", "run", "T_PATIENT", "T_STUDY"]
