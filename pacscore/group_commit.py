"""Group commit: instances stored at the same time by several callers share one durable commit.

``Archive.store`` makes each instance durable on its own: a journal commit, a blob put (fsync)
and an index commit per instance. With several associations storing at once, each would wait
for its own commits. ``GroupCommitter.store`` parses in the caller's thread, then queues the
instance; a caller that finds no commit running becomes the leader and commits everything
queued in one ``Archive._store_parsed`` call (journal, ``put_many``, one index transaction),
while callers that arrive meanwhile queue up for the next leader. A lone caller commits at once
(no timer), and every caller returns only once the commit holding its instance is durable, so
an acknowledgement (a C-STORE success, PS3.4 B.2.3) is never sent for bytes a crash could lose.

Associations store one instance after another, each sending the next once the last is
answered; with four of them the commits alternated between two halves (two instances a
commit). A leader therefore waits, for at most ``gather_seconds``, until it holds an instance
from every caller that stored lately (``_gather``): four associations commit four at a time
(storescu × 4 here: 924-978 -> 1,095-1,139 instances/s, docs/benchmarks-wire.md).
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field

from . import ingest
from .archive import BATCH_BYTES, BATCH_INSTANCES, Archive
from .errors import IngestError, StorageError
from .events import API, Origin
from .reports import StoreResult

__all__ = ["GroupCommitter"]

#: callers that stored within this many seconds count as storing now (GroupCommitter._gather)
ACTIVE_SECONDS = 0.05
#: the longest a leader waits for the instances of the other callers storing now
GATHER_SECONDS = 0.002


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

    def __init__(
        self,
        archive: Archive,
        max_instances: int = BATCH_INSTANCES,
        max_bytes: int = BATCH_BYTES,
        gather_seconds: float = GATHER_SECONDS,
    ) -> None:
        if max_instances < 1:
            raise ValueError("max_instances must be at least 1")
        if gather_seconds < 0:
            raise ValueError("gather_seconds must not be negative")
        self.archive = archive
        self.max_instances = max_instances
        self.max_bytes = max_bytes
        self.gather_seconds = gather_seconds
        self.commits = 0
        self.gathers = 0  # commits whose leader waited for other callers' instances
        self._cond = threading.Condition(threading.Lock())
        self._queue: list[_Waiting] = []
        self._committing = False
        self._callers: dict[int, float] = {}  # thread id -> when it last stored
        self._last_commit = 0.0  # seconds the last commit took

    def store(self, data: bytes, origin: Origin = API) -> StoreResult:
        """Store one instance (Part-10 bytes) as ``Archive.store`` does, sharing the commit with
        whoever stores at the same time: IngestError when this instance alone is refused,
        StorageError when the commit that held it could not be made durable."""
        parsed = ingest.parse(data, uid_policy=self.archive.uid_policy)  # outside any lock
        mine = _Waiting(parsed, origin)
        with self._cond:
            now = time.monotonic()
            self._callers[threading.get_ident()] = now
            self._queue.append(mine)
            self._cond.notify_all()  # a leader gathering its batch counts this one
            while not mine.done:
                if self._committing:
                    self._cond.wait()
                    continue
                self._committing = True  # from here, callers arriving queue for this commit
                self._gather(now)
                batch = self._take()
                self._cond.release()
                began = time.monotonic()
                try:
                    self._commit(batch)
                finally:
                    self._last_commit = time.monotonic() - began
                    self._cond.acquire()
                    self._committing = False
                    for w in batch:
                        w.done = True
                    self._cond.notify_all()
        if isinstance(mine.outcome, BaseException):
            raise mine.outcome
        assert mine.outcome is not None
        return mine.outcome

    def _gather(self, now: float) -> None:
        """Wait (at most ``gather_seconds``) until an instance is queued from every caller that
        stored in the last ``ACTIVE_SECONDS`` (or two commits' time, if longer): associations
        each send their next instance as soon as their last one is answered, so without this
        the commits alternate between halves of them. A lone caller never waits. Called locked,
        by the leader (callers arriving meanwhile queue for its commit)."""
        recent = now - max(ACTIVE_SECONDS, 2 * self._last_commit)  # a slow disk spaces stores out
        for ident in [i for i, t in self._callers.items() if t < recent]:
            del self._callers[ident]
        wanted = min(len(self._callers), self.max_instances)
        if len(self._queue) >= wanted or not self.gather_seconds:
            return
        self.gathers += 1
        deadline = now + self.gather_seconds
        while len(self._queue) < wanted:
            left = deadline - time.monotonic()
            if left <= 0:
                return
            self._cond.wait(left)

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
