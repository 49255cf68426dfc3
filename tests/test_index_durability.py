"""Every commit the archive acknowledges is on disk when the call returns (pacscore/index/
lmdb_index.py: durability). The index runs without LMDB's meta-page sync and syncs explicitly;
only the blob journal's records, which must be seen but need not survive, skip the sync."""

from __future__ import annotations

from pathlib import Path

import pacscore

from .factories import make_instance, to_bytes


class _Txn:
    def __init__(self, txn, log: list[str]) -> None:
        self._txn, self._log = txn, log

    def __enter__(self):
        self._txn.__enter__()
        return self._txn

    def __exit__(self, kind, *rest):
        result = self._txn.__exit__(kind, *rest)
        self._log.append("commit" if kind is None else "abort")
        return result


class _Recorded:
    """The index's LMDB environment, recording each write commit and each forced sync."""

    def __init__(self, env, log: list[str]) -> None:
        self._env, self._log = env, log

    def begin(self, *args, write: bool = False, **kwargs):
        txn = self._env.begin(*args, write=write, **kwargs)
        return _Txn(txn, self._log) if write else txn

    def sync(self, force: bool = False):
        self._log.append("sync" if force else "sync (not forced)")
        return self._env.sync(force)

    def __getattr__(self, name: str):
        return getattr(self._env, name)


def _recorded(arc) -> list[str]:
    log: list[str] = []
    arc.index._env = _Recorded(arc.index._env, log)
    return log


def test_a_store_returns_after_its_index_commit_is_synced(tmp_path: Path) -> None:
    with pacscore.open(tmp_path / "arc") as arc:
        log = _recorded(arc)
        arc.store(to_bytes(make_instance(sop="1.2.3.1.1")))
        # the journal's record (seen by a repair, not synced), then the index commit and its sync
        assert log == ["commit", "commit", "sync"]


def test_deletes_settings_and_batches_are_synced_before_they_return(tmp_path: Path) -> None:
    with pacscore.open(tmp_path / "arc") as arc:
        log = _recorded(arc)
        report = arc.store_many([to_bytes(make_instance(sop=f"1.2.3.1.{i}")) for i in range(3)])
        assert len(report.stored) == 3
        assert log[-2:] == ["commit", "sync"]
        log.clear()
        assert arc.delete(instance=report.stored[0]) == 1
        assert log[-2:] == ["commit", "sync"] and "abort" not in log
        log.clear()
        arc.configure(on_conflict="keep")
        assert log[-2:] == ["commit", "sync"]


def test_the_environment_leaves_meta_syncs_to_the_archive(tmp_path: Path) -> None:
    """Without LMDB's meta sync, an unsynced commit could be undone by a power loss; the tests
    above hold only while the explicit syncs are what makes commits durable."""
    with pacscore.open(tmp_path / "arc") as arc:
        flags = arc.index.env.flags()
        assert flags["sync"] is True and flags["metasync"] is False
