"""Event hooks for embedders: what was stored, what was deleted, and which studies went quiet.

An archive calls its hooks only after the index commit that made the change durable, so a hook
never sees something a crash could take back. Stored and deleted hooks run in the thread that
stored or deleted (a DIMSE association's thread, a STOW-RS request's, the caller's own): a slow
hook slows that store. Study-stable hooks run on one background thread per archive handle that
sleeps until the next quiet period ends (no polling) and stops at ``Archive.close()``; studies
still inside their quiet period then get no event (the timer lives in this process only).

A hook that raises is logged with its name and skipped: the data is already durable, so the
store or delete still succeeds, and the other hooks still run.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any, TypeVar

from .reports import Move

log = logging.getLogger("pacscore.events")

#: the sources of a stored instance: the Python API, a DIMSE C-STORE, a STOW-RS request
SOURCES = ("api", "dimse", "stow")


@dataclass(frozen=True)
class Origin:
    """Where an instance came from; ``calling_ae`` is the DIMSE peer's calling AE title."""

    source: str = "api"
    calling_ae: str | None = None

    def __post_init__(self) -> None:
        if self.source not in SOURCES:
            raise ValueError(f"unknown event source {self.source!r}: one of {', '.join(SOURCES)}")


API = Origin()
STOW = Origin("stow")


@dataclass(frozen=True)
class StoredEvent:
    """One instance an archive took in (``status`` as StoreResult's: stored, duplicate,
    replaced, kept). The UIDs are where the instance is indexed now: for a kept instance, the
    stored one's place."""

    sop_instance_uid: str
    study_instance_uid: str
    series_instance_uid: str
    patient_key: str  # PatientID, NUL, IssuerOfPatientID (as InstanceRef.patient_key)
    status: str
    source: str = "api"
    calling_ae: str | None = None
    moved: Move | None = None  # a replacement that moved the instance to another entity

    @property
    def new_content(self) -> bool:
        """Whether the archive's content changed (stored or replaced): what restarts a study's
        quiet period."""
        return self.status in ("stored", "replaced")


@dataclass(frozen=True)
class DeletedEvent:
    """One instance removed by ``Archive.delete``."""

    sop_instance_uid: str
    study_instance_uid: str
    series_instance_uid: str
    patient_key: str


@dataclass(frozen=True)
class StudyStableEvent:
    """A study that received no new instance for the hook's ``seconds``; ``instances`` are the
    SOP Instance UIDs stored or replaced during that quiet period (the study may hold more),
    ``last_stored_at`` the wall-clock time (``time.time()``) of the last of them."""

    study_instance_uid: str
    patient_key: str
    instances: tuple[str, ...]
    last_stored_at: float


Hook = TypeVar("Hook", bound=Callable[..., Any])


def hook_name(fn: Callable[..., Any]) -> str:
    module = getattr(fn, "__module__", None)
    name = getattr(fn, "__qualname__", None) or repr(fn)
    return f"{module}.{name}" if module else name


def _call(fn: Callable[..., Any], event: object) -> None:
    try:
        fn(event)
    except Exception:
        log.exception("event hook %s failed on a %s; ignored", hook_name(fn), type(event).__name__)


def _call_each(hooks: tuple[Callable[..., Any], ...], events: list) -> None:
    """Every hook on every event, event by event, in the order they were registered."""
    for event in events:
        for fn in hooks:
            _call(fn, event)


@dataclass
class _Quiet:
    """A study inside its quiet period for one stable hook."""

    deadline: float  # on the monotonic clock
    patient_key: str
    last_stored_at: float
    instances: dict[str, None] = field(default_factory=dict)  # ordered set of SOP Instance UIDs


class _StableHook:
    def __init__(self, fn: Callable[[StudyStableEvent], Any], seconds: float) -> None:
        self.fn = fn
        self.seconds = seconds
        self.pending: dict[str, _Quiet] = {}


class Hooks:
    """The hooks of one archive handle, and the study-stable timer thread (started with the
    first stable hook)."""

    def __init__(self, label: str = "") -> None:
        self._label = label
        self._stored: tuple[Callable[[StoredEvent], Any], ...] = ()
        self._deleted: tuple[Callable[[DeletedEvent], Any], ...] = ()
        self._stable: tuple[_StableHook, ...] = ()
        self._wake = threading.Condition()
        self._thread: threading.Thread | None = None
        self._closed = False

    # -- registering ------------------------------------------------------------------------
    def add_stored(self, fn: Hook) -> Hook:
        with self._wake:
            self._stored += (fn,)
        return fn

    def add_deleted(self, fn: Hook) -> Hook:
        with self._wake:
            self._deleted += (fn,)
        return fn

    def add_stable(self, fn: Hook, seconds: float) -> Hook:
        if not seconds > 0:
            raise ValueError(f"on_study_stable needs seconds > 0 (got {seconds!r})")
        with self._wake:
            if self._closed:
                raise RuntimeError("the archive is closed: no study-stable hook can start")
            self._stable += (_StableHook(fn, float(seconds)),)
            if self._thread is None:
                self._thread = threading.Thread(
                    target=self._run_timer, name=f"pacscore-study-stable {self._label}", daemon=True
                )
                self._thread.start()
        return fn

    def remove(self, fn: Callable[..., Any]) -> bool:
        """Unregister ``fn`` from every event it was registered for; whether it was."""
        with self._wake:
            before = len(self._stored) + len(self._deleted) + len(self._stable)
            self._stored = tuple(h for h in self._stored if h is not fn)
            self._deleted = tuple(h for h in self._deleted if h is not fn)
            self._stable = tuple(h for h in self._stable if h.fn is not fn)
            self._wake.notify()
            return len(self._stored) + len(self._deleted) + len(self._stable) < before

    @property
    def wants_stored(self) -> bool:
        return bool(self._stored or self._stable)

    @property
    def wants_deleted(self) -> bool:
        return bool(self._deleted or self._stable)

    # -- emitting (after the commit) --------------------------------------------------------
    def stored(self, events: Iterable[StoredEvent]) -> None:
        events = list(events)
        if self._stable:
            self._start_quiet_periods(events)
        _call_each(self._stored, events)

    def deleted(self, events: Iterable[DeletedEvent]) -> None:
        events = list(events)
        if self._stable:
            self._forget(events)
        _call_each(self._deleted, events)

    def _start_quiet_periods(self, events: list[StoredEvent]) -> None:
        now, wall = time.monotonic(), time.time()
        with self._wake:
            for hook in self._stable:
                for e in events:
                    if not e.new_content:
                        continue
                    quiet = hook.pending.pop(e.study_instance_uid, None)
                    if quiet is None:
                        quiet = _Quiet(0.0, e.patient_key, wall)
                    quiet.deadline, quiet.patient_key, quiet.last_stored_at = now + hook.seconds, e.patient_key, wall
                    quiet.instances[e.sop_instance_uid] = None
                    hook.pending[e.study_instance_uid] = quiet  # re-inserted: pending stays in deadline order
            self._wake.notify()

    def _forget(self, events: list[DeletedEvent]) -> None:
        """Deleted instances leave the quiet periods; a study with none left has nothing to announce."""
        with self._wake:
            for hook in self._stable:
                for e in events:
                    quiet = hook.pending.get(e.study_instance_uid)
                    if quiet is not None:
                        quiet.instances.pop(e.sop_instance_uid, None)
                        if not quiet.instances:
                            del hook.pending[e.study_instance_uid]

    # -- the study-stable timer -------------------------------------------------------------
    def _run_timer(self) -> None:
        while True:
            due: list[tuple[_StableHook, StudyStableEvent]] = []
            with self._wake:
                while not self._closed:
                    now = time.monotonic()
                    due = self._take_due(now)
                    if due:
                        break
                    deadlines = [next(iter(h.pending.values())).deadline for h in self._stable if h.pending]
                    self._wake.wait(min(deadlines) - now if deadlines else None)
                if self._closed:
                    return
            for hook, event in due:
                _call(hook.fn, event)

    def _take_due(self, now: float) -> list[tuple[_StableHook, StudyStableEvent]]:
        due = []
        for hook in self._stable:
            while hook.pending:
                study, quiet = next(iter(hook.pending.items()))
                if quiet.deadline > now:
                    break
                del hook.pending[study]
                due.append(
                    (hook, StudyStableEvent(study, quiet.patient_key, tuple(quiet.instances), quiet.last_stored_at))
                )
        return due

    def close(self) -> None:
        """Stop the timer thread (waiting for a hook it is running) and drop every hook."""
        with self._wake:
            self._closed = True
            self._stored, self._deleted, self._stable = (), (), ()
            self._wake.notify_all()
            thread, self._thread = self._thread, None
        if thread is not None and thread is not threading.current_thread():
            thread.join()


__all__ = ["Origin", "StoredEvent", "DeletedEvent", "StudyStableEvent", "Hooks", "API", "STOW"]
