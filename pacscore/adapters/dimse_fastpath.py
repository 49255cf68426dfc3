"""The SCP's per-message path without pynetdicom's polling sleeps.

pynetdicom 3.0 runs each association as two threads that poll each other:

- the DUL reactor (``DULServiceProvider.run_reactor``) sleeps ``_run_loop_delay`` (1 ms) whenever
  a loop found nothing to do, so a PDU the handler queued for sending, or one that arrived on the
  socket, waits for the end of that sleep;
- the association reactor (``Association._run_reactor``) sleeps 1 ms before *every* look at
  the queue of decoded DIMSE messages and at the release / abort indications.

A request therefore waits up to a millisecond at each hand-over, about 2-4 ms a round trip on a
loaded 2-core machine (docs/benchmarks-wire.md). Neither sleep is a setting: ``_run_loop_delay``
is a private attribute that only shortens the DUL's sleep (more idle CPU per open association,
``DimseConfig.poll_interval``), and the association reactor's 1 ms is a literal. So the fast path
replaces the two loops, and only them, for the associations pacscore accepts:

- ``WakingDUL.run_reactor`` blocks in ``select`` on the association's socket and on a wake-up
  socket pair written when another thread queues a primitive to send (or stops the DUL), with
  a timeout that ends when the ARTIM timer does (PS3.8 9.1.5);
- ``FastAssociation._run_reactor`` blocks on an Event set when a DIMSE message is decoded, an
  A-RELEASE / A-ABORT indication is queued, the DUL stops or the association is killed; the
  wait ends at the network (idle) timeout at the latest.

Every decision the loops take (state machine events, release, abort, timeouts, the pause used by
C-GET / C-MOVE sub-operations) is pynetdicom's, in pynetdicom's order; only the waiting changed.
C-CANCEL is unaffected: pynetdicom records it on the DUL thread as it arrives, and the C-FIND
handler checks ``event.is_cancelled`` between responses. The loops are written against
pynetdicom 3.0 (``SUPPORTED``); another version gets the stock loops and a log line.
"""

from __future__ import annotations

import logging
import queue
import select
import socket
import threading
import time
import types
from typing import Any, cast

import pynetdicom
from pynetdicom import association as _association
from pynetdicom import dimse as _dimse
from pynetdicom import evt
from pynetdicom.association import Association
from pynetdicom.dimse import DIMSEServiceProvider
from pynetdicom.dimse_primitives import C_FIND
from pynetdicom.dul import DULServiceProvider
from pynetdicom.pdu import A_ABORT_RQ
from pynetdicom.sop_class import uid_to_service_class

from .dimse_common import FIND_MODELS
from .dimse_encode import ENCODED_RESPONSES, EncodedFindServiceClass, FindResponse, fast_command_encoding
from .dimse_rebind import rebound

__all__ = ["SUPPORTED", "FastAssociation", "WakingDUL", "guard_requestor", "make_fast", "supported"]

LOG = logging.getLogger("pacscore.dimse")

#: the pynetdicom versions (major, minor) whose reactor loops these replace
SUPPORTED = ((3, 0),)
#: the longest a reactor blocks without a reason to wake (bounds how late a timer is seen)
MAX_WAIT = 0.5


def supported(version: str = pynetdicom.__version__) -> bool:
    """True when the installed pynetdicom's reactors are the ones this module replaces."""
    try:
        major, minor = (int(p) for p in version.split(".")[:2])
    except ValueError:
        return False
    return (major, minor) in SUPPORTED


def _timer_wait(timer, cap: float) -> float:
    """Seconds until a pynetdicom Timer expires, at most ``cap`` (``cap`` when not running)."""
    if timer.timeout is None or timer._start_time is None or timer._end_time is not None:
        return cap
    return max(0.0, min(cap, timer.remaining))


class _WakingQueue(queue.Queue):
    """A Queue that sets an Event on every put: the association reactor waits on that Event."""

    def __init__(self, wake: threading.Event) -> None:
        super().__init__()
        self._wake = wake

    def put(self, item: Any, block: bool = True, timeout: float | None = None) -> None:
        super().put(item, block, timeout)
        self._wake.set()


class _DULWakingQueue(queue.Queue):
    """A Queue whose puts from other threads wake the DUL reactor out of its ``select``."""

    def __init__(self, dul: WakingDUL) -> None:
        super().__init__()
        self._dul = dul

    def put(self, item: Any, block: bool = True, timeout: float | None = None) -> None:
        super().put(item, block, timeout)
        self._dul.wake()


class WakingDUL(DULServiceProvider):
    """pynetdicom's DUL service provider whose reactor waits on socket readiness."""

    def __init__(self, assoc: Association, assoc_wake: threading.Event) -> None:
        super().__init__(assoc)
        self._assoc_wake = assoc_wake
        self._wake_r, self._wake_w = socket.socketpair()
        self._wake_r.setblocking(False)
        self._wake_w.setblocking(False)
        self.to_provider_queue = _DULWakingQueue(self)
        self.event_queue = _DULWakingQueue(self)
        self.to_user_queue = _WakingQueue(assoc_wake)
        #: set while the reactor is about to block or blocked in select (see _wait)
        self._blocked = False

    def wake(self) -> None:
        """Make the reactor look at its queues now: a no-op from the reactor's own thread and
        while the reactor is not blocked (it looks at its queues before it blocks again)."""
        if not self._blocked or threading.get_ident() == self.ident:
            return
        try:
            self._wake_w.send(b"\0")
        except OSError:  # full (a wake-up is pending anyway) or closed (the reactor ended)
            pass

    def kill_dul(self) -> None:
        super().kill_dul()
        self.wake()

    def stop_dul(self) -> bool:
        """As pynetdicom's: stop the reactor when idle (Sta1); joins instead of polling."""
        if self.state_machine.current_state == "Sta1":
            self._kill_thread = True
            self.wake()
            if threading.get_ident() != self.ident:
                self.join()
            return True
        return False

    def _wait(self) -> None:
        """Block until the socket is readable, another thread woke us, or ARTIM expires."""
        watched: list[Any] = [self._wake_r]
        sock = getattr(self.socket, "socket", None)
        if sock is not None:
            try:
                if sock.fileno() >= 0:
                    watched.append(sock)
            except OSError:
                pass
        # announce the block first, then look at the queues once more: a primitive queued
        # before the announcement is seen here, one queued after it writes a wake-up byte
        self._blocked = True
        try:
            if self.to_provider_queue.empty() and self.event_queue.empty() and not self._kill_thread:
                select.select(watched, [], [], _timer_wait(self.artim_timer, MAX_WAIT))
        except (OSError, ValueError):  # the socket closed under us: look again shortly
            time.sleep(self._run_loop_delay)
        finally:
            self._blocked = False
        try:
            while self._wake_r.recv(4096):
                pass
        except OSError:
            pass

    def run_reactor(self) -> None:
        """pynetdicom's DUL loop with ``_wait()`` where it sleeps ``_run_loop_delay``."""
        try:
            self._run()
        finally:
            self._wake_r.close()
            self._wake_w.close()
            self._assoc_wake.set()  # the association reactor sees the DUL has stopped

    def _run(self) -> None:
        self._idle_timer.start()
        idle = False
        while True:
            if not self.assoc._dul_ready.is_set():
                self.assoc._dul_ready.set()
                idle = True
            if idle:
                self._wait()
            if self._kill_thread:
                break
            if self.artim_timer.expired:
                self.event_queue.put("Evt18")
            try:
                # as pynetdicom: send one queued primitive *or* read one PDU per loop
                if self._process_recv_primitive():
                    pass
                elif self._is_transport_event():
                    self._idle_timer.restart()
            except Exception as exc:
                LOG.error("exception in the DUL reactor, aborting the association", exc_info=exc)
                abort_pdu = A_ABORT_RQ()
                abort_pdu.source = 0x02
                abort_pdu.reason_diagnostic = 0x00
                if self.socket is not None:
                    self.socket.send(abort_pdu.encode())
                self.assoc.is_aborted = True
                self.assoc.is_established = False
                self.assoc._kill = True
                self._kill_thread = True
                return
            try:
                event = self.event_queue.get(block=False)
            except queue.Empty:
                idle = True
                continue
            self.state_machine.do_action(event)
            idle = False


def _service_class_for(uid):
    """pynetdicom's service class for ``uid``; for the Q/R FIND SOP classes the one whose C-FIND
    SCP also sends identifiers the handler already encoded (dimse_encode)."""
    if str(uid) in FIND_MODELS and ENCODED_RESPONSES:
        return EncodedFindServiceClass
    return uid_to_service_class(uid)


def _with_service_classes(method: types.FunctionType) -> types.FunctionType | None:
    """``Association._serve_request`` looking its service class up through _service_class_for."""
    return cast(types.FunctionType | None, rebound(method, _association, uid_to_service_class=_service_class_for))


_SERVE_REQUEST = _with_service_classes(cast(types.FunctionType, Association._serve_request))


class FastDIMSE(DIMSEServiceProvider):
    """pynetdicom's DIMSE provider whose outgoing messages encode their command set with
    dimse_encode (pydicom encoded each one twice), C-FIND responses without building it as a
    Dataset at all (dimse_encode.FindResponse)."""

    def send_msg(self, primitive, context_id: int) -> None:
        """As pynetdicom's send_msg, with the message's command set encoding swapped."""
        if primitive.MessageIDBeingRespondedTo is None:
            message = _dimse._RQ_TO_MESSAGE[primitive.__class__]()
            fast_command_encoding(message)
        elif FindResponse is not None and isinstance(primitive, C_FIND):
            message = FindResponse(primitive)  # its command set is encoded from the primitive
        else:
            message = _dimse._RSP_TO_MESSAGE[primitive.__class__]()
            fast_command_encoding(message)
        message.primitive_to_message(primitive)
        message.context_id = context_id
        evt.trigger(self.assoc, evt.EVT_DIMSE_SENT, {"message": message})
        for pdata in message.encode_msg(context_id, self.maximum_pdu_size):
            self.dul.send_pdu(pdata)


class FastAssociation(Association):
    """An acceptor Association whose reactor waits on an Event instead of sleeping 1 ms a loop.

    Made from a pynetdicom Association by ``make_fast`` before its thread starts. Its C-FIND
    handler may yield dimse_encode.EncodedIdentifier responses (``accepts_encoded_identifiers``)."""

    _wake: threading.Event
    accepts_encoded_identifiers = _SERVE_REQUEST is not None and ENCODED_RESPONSES

    if _SERVE_REQUEST is not None:
        _serve_request = _SERVE_REQUEST

    def kill(self) -> None:
        self._wake.set()
        super().kill()

    def _run_reactor(self) -> None:
        """pynetdicom's acceptor loop, waiting for a reason to look instead of polling."""
        self._is_paused = False
        busy = False
        while not self._kill:
            if not busy:
                self._wake.wait(_timer_wait(self.dul._idle_timer, MAX_WAIT))
            self._wake.clear()
            # as pynetdicom: a send_*() of the handler may pause the reactor
            self._is_paused = True
            self._reactor_checkpoint.wait()
            self._is_paused = False

            context_id, msg = self.dimse.get_msg(block=False)
            busy = msg is not None
            if msg is not None and context_id is not None:
                self._serve_request(msg, context_id)

            if self.is_established and self.acse.is_release_requested():
                self.acse.send_release(is_response=True)
                self.is_released = True
                self.is_established = False
                evt.trigger(self, evt.EVT_RELEASED, {})
                self.kill()
                return

            if self.acse.is_aborted():
                self.dul.receive_pdu(wait=False)  # so that EVT_ACSE_RECV fires, as pynetdicom
                self.is_aborted = True
                self.is_established = False
                evt.trigger(self, evt.EVT_ABORTED, {})
                self.kill()
                return

            if not self.dul.is_alive():
                self.kill()
                return

            if self.dul.idle_timer_expired():
                LOG.error("network timeout reached")
                if self.network_timeout_response == "A-RELEASE":
                    self._is_paused = True
                    self._reactor_checkpoint.wait()
                    self.release()
                    self._is_paused = False
                else:
                    self.abort()
                self.kill()
                return


def make_fast(assoc: Association) -> Association:
    """Give a new acceptor Association (its thread not started) the waking reactors; returns
    it unchanged when this pynetdicom is not one the loops were written for."""
    if not supported():
        LOG.warning("DIMSE fast path off: written for pynetdicom %s, found %s", SUPPORTED, pynetdicom.__version__)
        return assoc
    if assoc.is_alive() or assoc._started_dul:
        raise RuntimeError("make_fast() needs an association whose threads have not started")
    wake = threading.Event()
    old = assoc.dul
    dul = WakingDUL(assoc, wake)
    dul.socket = old.socket
    dul._idle_timer.timeout = old._idle_timer.timeout
    dul.artim_timer.timeout = old.artim_timer.timeout
    dul._run_loop_delay = old._run_loop_delay
    for name in ("event_queue", "to_provider_queue", "to_user_queue"):
        # what is already queued (Evt5, "transport connection open", from the accepted socket)
        pending, fresh = getattr(old, name), getattr(dul, name)
        while not pending.empty():
            fresh.put(pending.get_nowait())
    assoc.dul = dul
    assoc.dimse.msg_queue = _WakingQueue(wake)
    assoc.dimse.__class__ = FastDIMSE
    assoc.__class__ = FastAssociation
    fast = cast(FastAssociation, assoc)
    fast._wake = wake
    return fast


# ---- the requestor's side -------------------------------------------------------------------------
def guard_requestor(assoc: Association) -> Association:
    """Keep a pynetdicom *requestor*'s reactor from taking the responses to its own requests.

    pynetdicom's ``send_c_find`` (and the other ``send_*``) pause the requestor's reactor by
    clearing an Event and waiting for a flag that the reactor sets *before* it blocks on that
    Event; a reactor just past the Event still reads the DIMSE queue once. When the response
    arrives in that window (a fast SCP answers in well under a millisecond) the reactor takes
    it, logs "Received unexpected C-FIND service message" and drops it, and ``send_c_find``
    waits for the DIMSE timeout. Responses are never the reactor's business (it serves incoming
    *requests*), so here its non-blocking reads leave them queued for the ``send_*`` loop.
    pacscore's own clients (pacscore.testing.targets) call this on every association."""
    dimse = assoc.dimse
    stock = dimse.get_msg

    def get_msg(block: bool = False):
        if block:
            return stock(block)
        q = dimse.msg_queue
        with q.mutex:  # look and take in one step: the send_* loop reads the same queue
            # (None, None) is what pynetdicom queues to wake a blocked send_* loop: its, too
            if not q.queue or q.queue[0][1] is None or not q.queue[0][1].is_valid_request:
                return None, None
            item = q._get()
            q.not_full.notify()
            return item

    dimse.get_msg = get_msg  # type: ignore[method-assign]
    return assoc
