"""Group commit: instances stored at the same time by several callers share one durable commit.

``Archive.store`` makes each instance durable on its own: a journal commit, a blob put (fsync)
and an index commit per instance. With several associations storing at once, each would wait
for its own commits. ``GroupCommitter.store`` parses in the caller's thread, then queues the
instance; a caller that finds no commit running becomes the leader and commits everything
queued in one ``Archive._store_parsed`` call (journal, ``put_many``, one index transaction),
while callers that arrive meanwhile queue up for the next leader. A lone caller commits at once
(no timer), and every caller returns only once the commit holding its instance is durable, so
an acknowledgement (a C-STORE success, PS3.4 B.2.3) is never sent for bytes a crash could lose.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field

from . import ingest
from .archive import BATCH_BYTES, BATCH_INSTANCES, Archive
from .errors import IngestError, StorageError
from .events import API, Origin
from .reports import StoreResult

__all__ = ["GroupCommitter"]


@dataclass
class _Waiting:
    """One caller's instance, queued until a leader commits it."""

    parsed: ingest.ParsedInstance
    origin: Origin
    done: bool = False
    outcome: StoreResult | BaseException | None = field(default=None, repr=False)


class GroupCommitter:
    """Commits concurrent ``store`` calls on one archive together (leader/follower).

    ``max_instances`` and ``max_bytes`` bound one commit; what is queued beyond them waits for
    the next. ``commits`` counts the commits made (batches, not instances)."""

    def __init__(self, archive: Archive, max_instances: int = BATCH_INSTANCES, max_bytes: int = BATCH_BYTES) -> None:
        if max_instances < 1:
            raise ValueError("max_instances must be at least 1")
        self.archive = archive
        self.max_instances = max_instances
        self.max_bytes = max_bytes
        self.commits = 0
        self._cond = threading.Condition(threading.Lock())
        self._queue: list[_Waiting] = []
        self._committing = False

    def store(self, data: bytes, origin: Origin = API) -> StoreResult:
        """Store one instance (Part-10 bytes) as ``Archive.store`` does, sharing the commit with
        whoever stores at the same time: IngestError when this instance alone is refused,
        StorageError when the commit that held it could not be made durable."""
        parsed = ingest.parse(data, uid_policy=self.archive.uid_policy)  # outside any lock
        mine = _Waiting(parsed, origin)
        with self._cond:
            self._queue.append(mine)
            while not mine.done:
                if self._committing:
                    self._cond.wait()
                    continue
                batch = self._take()
                self._committing = True
                self._cond.release()
                try:
                    self._commit(batch)
                finally:
                    self._cond.acquire()
                    self._committing = False
                    for w in batch:
                        w.done = True
                    self._cond.notify_all()
        if isinstance(mine.outcome, BaseException):
            raise mine.outcome
        assert mine.outcome is not None
        return mine.outcome

    def _take(self) -> list[_Waiting]:
        """The head of the queue, up to the bounds (at least one instance); called locked."""
        n, size = 0, 0
        for w in self._queue:
            if n and (n >= self.max_instances or size + len(w.parsed.data) > self.max_bytes):
                break
            n += 1
            size += len(w.parsed.data)
        batch, self._queue = self._queue[:n], self._queue[n:]
        return batch

    def _commit(self, batch: list[_Waiting]) -> None:
        """Commit ``batch`` and set each one's outcome; never raises for an Exception.

        A storage failure fails the whole batch (none of it is indexed: ``_store_parsed`` commits
        the index in one transaction after the blobs). Any other error may be one instance's
        doing, so the batch is then committed again one instance at a time, and only the
        instance that fails alone gets the error."""
        try:
            self._commit_together(batch)
        except (StorageError, OSError, MemoryError) as exc:
            for w in batch:
                w.outcome = exc
        except Exception as exc:
            if len(batch) == 1:
                batch[0].outcome = exc
                return
            for w in batch:
                try:
                    self._commit_together([w])
                except Exception as alone:
                    w.outcome = alone
        except BaseException as exc:  # the leader is interrupted: the others learn why, it re-raises
            for w in batch:
                w.outcome = exc
            raise

    def _commit_together(self, batch: list[_Waiting]) -> None:
        each: list[StoreResult | IngestError] = []
        self.commits += 1
        self.archive._store_parsed([w.parsed for w in batch], origins=[w.origin for w in batch], each=each)
        if len(each) != len(batch):
            raise RuntimeError(f"{len(each)} outcomes for a batch of {len(batch)} instances")
        for w, outcome in zip(batch, each):
            w.outcome = outcome
