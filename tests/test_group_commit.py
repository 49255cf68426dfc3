"""GroupCommitter (pacscore/group_commit.py): concurrent stores share durable commits, and each
caller still gets what ``Archive.store`` would have told it.

Which callers share a commit depends on thread timing; the tests that need a given batch hold
the first commit back (``hold_first_commit``) until the others have queued, so the next commit
is known to hold them all."""

from __future__ import annotations

import threading
import time
from concurrent.futures import ThreadPoolExecutor

import pytest

import pacscore
from pacscore import group_commit
from pacscore.errors import IngestError, NotFound, StorageError
from pacscore.events import Origin
from pacscore.group_commit import GroupCommitter

from .expected_warnings import VR_MISMATCH
from .factories import make_instance, to_bytes

FIRST = Origin("dimse", calling_ae="FIRST")  # the origin of the held commit's caller
WAIT = 20.0  # seconds: only reached when the callers never queue (the test then fails)


def instance(sop: str, number: str = "1", **extra) -> bytes:
    return to_bytes(make_instance(sop=sop, instance_number=number, **extra))


class Held:
    """Wraps ``arc._store_parsed``: records each commit's size and holds the first one back
    until ``waiting`` callers are queued behind it."""

    def __init__(self, monkeypatch, arc: pacscore.Archive, committer: GroupCommitter, waiting: int) -> None:
        self.sizes: list[int] = []
        self.entered = threading.Event()
        self._real = arc._store_parsed
        self._committer = committer
        self._waiting = waiting
        monkeypatch.setattr(arc, "_store_parsed", self)

    def __call__(self, batch, *args, **kwargs):
        if not self.sizes:
            self.entered.set()
            deadline = time.monotonic() + WAIT
            while len(self._committer._queue) < self._waiting and time.monotonic() < deadline:
                time.sleep(0.002)
        self.sizes.append(len(batch))
        return self._real(batch, *args, **kwargs)


def run_held(monkeypatch, arc, committer, first: bytes, others: list, waiting: int | None = None):
    """Store ``first`` (its commit held), then ``others`` ((bytes, origin) pairs) at once; the
    outcome of each (a StoreResult or the exception raised), first's first."""
    held = Held(monkeypatch, arc, committer, len(others) if waiting is None else waiting)

    def call(data, origin=FIRST):
        try:
            return committer.store(data, origin)
        except Exception as exc:
            return exc

    with ThreadPoolExecutor(len(others) + 1) as pool:
        lead = pool.submit(call, first)
        assert held.entered.wait(WAIT)
        rest = [pool.submit(call, data, origin) for data, origin in others]
        outcomes = [lead.result(WAIT)] + [f.result(WAIT) for f in rest]
    return held, outcomes


@VR_MISMATCH  # the bytes that are not DICOM
def test_a_lone_caller_commits_at_once_like_archive_store(arc):
    committer = GroupCommitter(arc)
    data = instance("1.7.1")
    first = committer.store(data)
    assert (first.sop_instance_uid, first.status, first.moved) == ("1.7.1", "stored", None)
    assert committer.commits == 1
    assert committer.store(data).status == "duplicate"
    assert committer.store(instance("1.7.1", number="2")).status == "replaced"
    moved = committer.store(instance("1.7.1", number="2", study="9.9", series="9.9.1"))
    assert moved.status == "replaced" and moved.moved is not None
    with pytest.raises(IngestError):
        committer.store(b"not DICOM at all")
    assert committer.commits == 4  # a refusal while parsing never reaches a commit
    assert arc.get("1.7.1") == instance("1.7.1", number="2", study="9.9", series="9.9.1")


def test_on_conflict_keep_and_error_as_archive_store(tmp_path):
    with pacscore.open(tmp_path / "keep", on_conflict="keep") as arc:
        committer = GroupCommitter(arc)
        committer.store(instance("1.8.1"))
        assert committer.store(instance("1.8.1", number="2")).status == "kept"
        assert arc.get("1.8.1") == instance("1.8.1")
    with pacscore.open(tmp_path / "error", on_conflict="error") as arc:
        committer = GroupCommitter(arc)
        committer.store(instance("1.8.1"))
        with pytest.raises(IngestError, match="on_conflict='error'"):
            committer.store(instance("1.8.1", number="2"))


def test_many_threads_share_commits_and_every_instance_lands(arc, monkeypatch):
    committer = GroupCommitter(arc)
    threads, each = 8, 100
    held = Held(monkeypatch, arc, committer, threads - 1)
    sent = {
        f"1.9.{t}.{i}": instance(f"1.9.{t}.{i}", study=f"1.9.{t}", series=f"1.9.{t}.1")
        for t in range(threads)
        for i in range(each)
    }

    def worker(t: int) -> list[str]:
        return [committer.store(sent[f"1.9.{t}.{i}"], Origin("dimse", calling_ae=f"T{t}")).status for i in range(each)]

    with ThreadPoolExecutor(threads) as pool:
        statuses = [s for got in pool.map(worker, range(threads)) for s in got]
    assert statuses == ["stored"] * len(sent)
    assert sum(held.sizes) == len(sent)
    assert len(held.sizes) == committer.commits < len(sent)
    assert max(held.sizes) >= threads - 1  # the commit after the held one took every waiting caller
    assert arc.count({}, level="IMAGE", relational=True) == len(sent)
    assert all(arc.get(uid) == data for uid, data in sent.items())


def test_a_failed_blob_put_fails_its_whole_batch_and_only_it(arc, monkeypatch):
    committer = GroupCommitter(arc)
    real_put = arc.blobs.put_many
    puts = []

    def put_many(items):
        items = list(items)
        puts.append(len(items))
        if len(puts) == 2:  # the batch of the three callers queued behind the held commit
            raise OSError(28, "No space left on device")
        return real_put(items)

    monkeypatch.setattr(arc.blobs, "put_many", put_many)
    others = [(instance(f"1.10.{i}"), Origin("dimse", calling_ae=f"T{i}")) for i in range(3)]
    held, outcomes = run_held(monkeypatch, arc, committer, instance("1.10.99"), others)
    assert held.sizes == [1, 3]
    assert outcomes[0].status == "stored"
    assert all(isinstance(o, StorageError) for o in outcomes[1:]), outcomes
    for i in range(3):
        with pytest.raises(NotFound):
            arc.get(f"1.10.{i}")
    assert arc.count({}, level="IMAGE", relational=True) == 1
    # later commits are fine, the refused instances too when sent again
    assert committer.store(instance("1.10.95")).status == "stored"
    assert [committer.store(data).status for data, _ in others] == ["stored"] * 3
    assert arc.count({}, level="IMAGE", relational=True) == 5


def test_a_refused_instance_in_a_batch_is_refused_alone(tmp_path, monkeypatch):
    with pacscore.open(tmp_path / "arc", on_conflict="error") as arc:
        arc.store(instance("1.11.96"))
        committer = GroupCommitter(arc)
        others = [
            (instance("1.11.1"), Origin("dimse", calling_ae="A")),
            (instance("1.11.96", number="2"), Origin("dimse", calling_ae="B")),  # refused in the commit
            (b"\x00" * 200, Origin("dimse", calling_ae="C")),  # refused while parsing, never queued
            (instance("1.11.2"), Origin("dimse", calling_ae="D")),
        ]
        held, outcomes = run_held(monkeypatch, arc, committer, instance("1.11.99"), others, waiting=3)
        assert held.sizes == [1, 3]
        assert [getattr(o, "status", None) for o in outcomes] == ["stored", "stored", None, None, "stored"]
        assert isinstance(outcomes[2], IngestError) and "on_conflict='error'" in str(outcomes[2])
        assert isinstance(outcomes[3], IngestError)
        assert arc.get("1.11.96") == instance("1.11.96")
        assert arc.count({}, level="IMAGE", relational=True) == 4


def test_an_error_one_instance_causes_is_its_own(arc, monkeypatch):
    """An unexpected failure of the shared commit: the batch is committed again one instance at
    a time, so only the instance that fails alone gets the error."""
    committer = GroupCommitter(arc)
    real = arc._store_parsed

    def store(batch, *args, **kwargs):
        if any(p.sop_instance_uid == "1.12.97" for p in batch):
            raise RuntimeError("this instance breaks the index writer")
        return real(batch, *args, **kwargs)

    monkeypatch.setattr(arc, "_store_parsed", store)
    others = [(instance(uid), Origin("dimse", calling_ae="X")) for uid in ("1.12.1", "1.12.97", "1.12.2")]
    held, outcomes = run_held(monkeypatch, arc, committer, instance("1.12.99"), others)
    assert held.sizes[:2] == [1, 3]
    assert [getattr(o, "status", None) for o in outcomes] == ["stored", "stored", None, "stored"]
    assert isinstance(outcomes[2], RuntimeError)
    assert arc.count({}, level="IMAGE", relational=True) == 3


@pytest.mark.parametrize("together", [True, False])
def test_two_versions_from_two_threads_the_later_acknowledged_is_stored(arc, monkeypatch, together):
    """Either both versions share a commit (batch order decides) or they do not; either way one
    is told "stored", the other "replaced", and the index holds the "replaced" one's bytes."""
    committer = GroupCommitter(arc)
    if together:
        versions = [instance("1.13.1", number="1"), instance("1.13.1", number="2")]
        held, outcomes = run_held(monkeypatch, arc, committer, instance("1.13.99"), [(v, Origin()) for v in versions])
        assert held.sizes == [1, 2]
        outcomes = outcomes[1:]
        checks = [("1.13.1", versions, outcomes)]
    else:
        checks = []
        for round_ in range(10):
            uid = f"1.13.2.{round_}"
            versions = [instance(uid, number="1"), instance(uid, number="2")]
            with ThreadPoolExecutor(2) as pool:
                outcomes = list(pool.map(committer.store, versions))
            checks.append((uid, versions, outcomes))
    for uid, versions, outcomes in checks:
        assert sorted(o.status for o in outcomes) == ["replaced", "stored"]
        later = next(v for v, o in zip(versions, outcomes) if o.status == "replaced")
        assert arc.get(uid) == later
        assert arc.count({"SOPInstanceUID": uid}, level="IMAGE", relational=True) == 1


def test_hooks_hear_each_instance_with_its_own_origin(arc, monkeypatch):
    committer = GroupCommitter(arc)
    arc.store(instance("1.14.98"))
    heard = []
    arc.on_stored(heard.append)
    others = [
        (instance("1.14.1"), Origin("dimse", calling_ae="ALPHA")),
        (instance("1.14.98"), Origin("dimse", calling_ae="BETA")),  # a duplicate: told, not written
        (instance("1.14.2"), Origin("stow")),
        (instance("1.14.3"), Origin("dimse", calling_ae="GAMMA")),
    ]
    held, outcomes = run_held(monkeypatch, arc, committer, instance("1.14.99"), others)
    assert [o.status for o in outcomes] == ["stored", "stored", "duplicate", "stored", "stored"]
    assert held.sizes == [1, 4]
    deadline = time.monotonic() + WAIT
    while len(heard) < 5 and time.monotonic() < deadline:  # hooks may run off the committing thread
        time.sleep(0.01)
    told = {(e.sop_instance_uid, e.status, e.source, e.calling_ae) for e in heard}
    assert told == {
        ("1.14.99", "stored", "dimse", "FIRST"),
        ("1.14.1", "stored", "dimse", "ALPHA"),
        ("1.14.98", "duplicate", "dimse", "BETA"),
        ("1.14.2", "stored", "stow", None),
        ("1.14.3", "stored", "dimse", "GAMMA"),
    }


def test_bounds_split_what_is_queued(arc, monkeypatch):
    committer = GroupCommitter(arc, max_instances=2)
    others = [(instance(f"1.15.{i}"), Origin()) for i in range(5)]
    held, outcomes = run_held(monkeypatch, arc, committer, instance("1.15.99"), others)
    assert held.sizes == [1, 2, 2, 1]
    assert all(o.status == "stored" for o in outcomes)
    with pytest.raises(ValueError):
        GroupCommitter(arc, max_instances=0)


def test_per_instance_origins_must_match_the_batch(arc):
    from pacscore import ingest

    parsed = [ingest.parse(instance("1.16.1"))]
    with pytest.raises(ValueError, match="origins"):
        arc._store_parsed(parsed, origins=[Origin(), Origin()])


def test_a_leader_gathers_an_instance_from_every_caller_storing_now(arc, monkeypatch):
    """Callers that each store their next instance once the last returns (associations) would
    alternate between commits of half of them; the leader waits until each one storing now has
    queued, so after the first round every commit holds one instance from each."""
    monkeypatch.setattr(group_commit, "ACTIVE_SECONDS", WAIT)  # "storing now", however slow the machine
    committer = GroupCommitter(arc, gather_seconds=0.5)
    threads, rounds = 4, 12
    start = threading.Barrier(threads)

    def worker(t: int) -> list[str]:
        start.wait()
        return [
            committer.store(instance(f"1.12.{t}.{i}", study=f"1.12.{t}", series=f"1.12.{t}.1")).status
            for i in range(rounds)
        ]

    with ThreadPoolExecutor(threads) as pool:
        statuses = [s for got in pool.map(worker, range(threads)) for s in got]
    assert statuses == ["stored"] * threads * rounds
    assert committer.gathers >= 1
    # one commit a round, and a caller or two a round ahead at the start (the first leader knew
    # only itself); without gathering the commits alternate and there are about twice as many
    assert committer.commits <= rounds + 2
    assert arc.count({}, level="IMAGE", relational=True) == threads * rounds


def test_a_lone_caller_never_waits_to_gather(arc):
    committer = GroupCommitter(arc, gather_seconds=WAIT)
    for i in range(5):
        assert committer.store(instance(f"1.13.{i}")).status == "stored"
    assert (committer.gathers, committer.commits) == (0, 5)


def test_a_caller_that_stopped_storing_is_waited_for_at_most_gather_seconds(arc, monkeypatch):
    monkeypatch.setattr(group_commit, "ACTIVE_SECONDS", WAIT)  # it stored just now, however slow the machine
    committer = GroupCommitter(arc, gather_seconds=0.05)
    other = threading.Thread(target=committer.store, args=(instance("1.14.1"),))
    other.start()
    other.join(WAIT)
    assert committer.store(instance("1.14.2")).status == "stored"  # alone: waited, then committed
    assert (committer.gathers, committer.commits) == (1, 2)
    with pytest.raises(ValueError, match="gather_seconds"):
        GroupCommitter(arc, gather_seconds=-1)
