"""Presentation context negotiation in time independent of how many contexts the SCP supports.

pynetdicom's acceptor copies every supported presentation context for each association
(``deepcopy`` of the server's list: about 30 ms for pacscore's ~180 SOP classes x ~40 transfer
syntaxes) and then builds each result context through validating setters (a UID regular
expression per abstract and transfer syntax). Neither depends on what the requestor proposed,
so a findscu asking for one Q/R model paid for every storage SOP class.

``ContextIndex`` holds the supported contexts once, keyed by abstract syntax, with each one's
transfer syntaxes ranked by preference; ``negotiate`` answers a request by looking each
proposed context up (PS3.8 9.3.2.2 and 9.3.3.2: per context, accept the abstract syntax if
supported, with one of the proposed transfer syntaxes; PS3.7 D.3.3.4 for SCP/SCU role
selection) and gives the same answer as ``pynetdicom.presentation.negotiate_as_acceptor``
(tests/test_dimse_wire_negotiation.py checks it with Hypothesis). ``IndexedServer`` is
pynetdicom's threaded server with the per-association copy replaced by the shared index.
"""

from __future__ import annotations

import socket
import threading
import types
from collections.abc import Iterable, Sequence
from datetime import datetime
from typing import Any, cast

from pydicom.uid import UID
from pynetdicom import acse as _acse
from pynetdicom.acse import ACSE
from pynetdicom.pdu_primitives import SCP_SCU_RoleSelectionNegotiation
from pynetdicom.presentation import SCP_SCU_ROLES, PresentationContext, negotiate_as_acceptor
from pynetdicom.transport import RequestHandler, ThreadedAssociationServer
from pynetdicom.utils import make_target

from .dimse_direct import DirectServerMixin
from .dimse_rebind import rebound

__all__ = [
    "ContextIndex",
    "IndexedACSE",
    "IndexedRequestHandler",
    "IndexedServer",
    "SharedSocketServer",
    "negotiate",
    "start_server",
]

#: (SCU role, SCP role) proposed by a requestor, None when it sent no role selection item
Roles = dict[str, tuple[bool | None, bool | None]]


class ContextIndex(list):
    """The supported presentation contexts, as the list pynetdicom expects, plus an index.

    A ``list`` so that it can stand wherever pynetdicom reads an acceptor's supported
    contexts; shared by every association of a server and never modified by negotiation
    (results are new PresentationContext objects)."""

    def __init__(self, contexts: Iterable[PresentationContext]) -> None:
        super().__init__(contexts)
        #: abstract syntax -> (context, {transfer syntax: preference rank})
        self.by_syntax: dict[str, tuple[PresentationContext, dict[str, int]]] = {}
        for cx in self:  # as pynetdicom: a later context for the same abstract syntax wins
            ranks: dict[str, int] = {}
            for rank, ts in enumerate(cx.transfer_syntax):
                ranks.setdefault(str(ts), rank)
            self.by_syntax[str(cx.abstract_syntax)] = (cx, ranks)

    def preferred_syntax(self, abstract_syntax: str, proposed: Sequence[str]) -> str | None:
        """Our most preferred of the ``proposed`` transfer syntaxes for ``abstract_syntax``
        (None: the abstract syntax or every proposed transfer syntax is unsupported)."""
        entry = self.by_syntax.get(str(abstract_syntax))
        if entry is None:
            return None
        ranks = entry[1]
        best: str | None = None
        best_rank = len(ranks)
        for ts in proposed:
            rank = ranks.get(str(ts), best_rank)
            if rank < best_rank:
                best, best_rank = ts, rank
        return best


def _result(context_id: int | None, abstract_syntax: UID | None, ts: UID | str | None, result: int):
    """A result context without pynetdicom's validating setters: every value comes from a
    context pynetdicom decoded (and validated) from the request, or from our own list."""
    cx = PresentationContext()
    cx._context_id = context_id
    cx._abstract_syntax = abstract_syntax
    cx._transfer_syntax = [] if ts is None else [ts if isinstance(ts, UID) else UID(ts)]
    cx.result = result
    cx._as_scu = False
    cx._as_scp = False
    return cx


def negotiate(
    requested: Sequence[PresentationContext], index: ContextIndex, roles: Roles | None = None
) -> tuple[list[PresentationContext], list[SCP_SCU_RoleSelectionNegotiation]]:
    """Answer the requested presentation contexts from ``index``: the result contexts (sorted by
    context ID) and the SCP/SCU role selection replies (sorted by SOP class), exactly as
    ``pynetdicom.presentation.negotiate_as_acceptor(requested, list(index), roles)``."""
    roles = roles or {}
    results: list[PresentationContext] = []
    reply_roles: dict[str, SCP_SCU_RoleSelectionNegotiation] = {}
    if not requested:
        return results, []
    if not index:
        for rq in requested:
            cx = _result(rq.context_id, rq.abstract_syntax, rq.transfer_syntax[0], 0x03)
            cx._as_scu = cx._as_scp = None  # as pynetdicom, which leaves them unset here
            results.append(cx)
        return results, []
    # keyed as pynetdicom keys the request: a repeated (context ID, abstract syntax) keeps the
    # position of its first occurrence and the transfer syntaxes of its last
    unique = {(rq.context_id, rq.abstract_syntax): rq for rq in requested}
    for (context_id, abstract_syntax), rq in unique.items():
        syntax = str(abstract_syntax)
        entry = index.by_syntax.get(syntax)
        proposed = rq.transfer_syntax
        if entry is None:  # abstract syntax not supported
            results.append(_result(context_id, abstract_syntax, proposed[0] if proposed else None, 0x03))
            continue
        ours, _ = entry
        ts = index.preferred_syntax(syntax, proposed)
        if ts is None:  # no proposed transfer syntax supported
            results.append(_result(context_id, abstract_syntax, proposed[0] if proposed else None, 0x04))
            continue
        # the UID object of our own list, as pynetdicom puts it in the result
        ts = next(t for t in ours.transfer_syntax if t == ts)
        cx = _result(context_id, abstract_syntax, ts, 0x00)
        results.append(cx)
        ac_roles = (ours.scu_role, ours.scp_role)
        has_role = syntax in roles
        rq_roles = roles[syntax] if has_role else (None, None)
        if None in ac_roles:
            cx._as_scu, cx._as_scp = False, True
            has_role = False
        else:
            outcome = SCP_SCU_ROLES[rq_roles][ac_roles]
            cx._as_scu, cx._as_scp = outcome[2], outcome[3]
        if cx._as_scu is False and cx._as_scp is False:
            cx.result = 0x01  # user rejection: neither role is possible
        elif has_role:
            item = SCP_SCU_RoleSelectionNegotiation()
            item.sop_class_uid = abstract_syntax
            item.scu_role = False if rq_roles[0] is False else ours.scu_role
            item.scp_role = False if rq_roles[1] is False else ours.scp_role
            reply_roles[syntax] = item
    results.sort(key=lambda cx: cast(int, cx.context_id))
    return results, sorted(reply_roles.values(), key=lambda item: cast(UID, item.sop_class_uid))


def _negotiate_as_acceptor(rq_contexts, ac_contexts, roles=None):
    """What IndexedACSE calls in place of pynetdicom's function of the same name."""
    if isinstance(ac_contexts, ContextIndex):
        return negotiate(rq_contexts, ac_contexts, roles)
    return negotiate_as_acceptor(rq_contexts, ac_contexts, roles)


def _with_indexed_negotiation(method: types.FunctionType) -> types.FunctionType | None:
    """``method`` (pynetdicom's ACSE._negotiate_as_acceptor) with its global name
    ``negotiate_as_acceptor`` bound to the indexed negotiation instead of pynetdicom's; None if
    that pynetdicom no longer calls the function by that name (then nothing is replaced).

    Everything else the method does (calling / called AE title checks, user identity,
    extended negotiation, the association limit, sending the accept) stays pynetdicom's own."""
    return cast(types.FunctionType | None, rebound(method, _acse, negotiate_as_acceptor=_negotiate_as_acceptor))


_INDEXED = _with_indexed_negotiation(cast(types.FunctionType, ACSE._negotiate_as_acceptor))


class IndexedACSE(ACSE):
    """pynetdicom's ACSE, negotiating presentation contexts through a ContextIndex when the
    acceptor's supported contexts are one."""

    if _INDEXED is not None:
        _negotiate_as_acceptor = _INDEXED


#: True when IndexedACSE really negotiates through the index (this pynetdicom calls
#: ``negotiate_as_acceptor`` from ACSE._negotiate_as_acceptor)
INDEXED_NEGOTIATION = _INDEXED is not None


class IndexedRequestHandler(RequestHandler):
    """pynetdicom's request handler without the per-association copy of the supported contexts:
    the association negotiates against the server's shared ContextIndex."""

    server: IndexedServer

    def _create_association(self):
        assoc = super()._create_association()  # copies the server's (empty) context list
        assoc.acse = IndexedACSE(assoc)
        assoc.acceptor.supported_contexts = self.server.context_index
        prepare = self.server.prepare_association
        if prepare is not None:
            assoc = prepare(assoc)
        return assoc


class IndexedServer(DirectServerMixin, ThreadedAssociationServer):
    """A ThreadedAssociationServer whose associations negotiate against one ContextIndex.

    ``prepare_association`` (optional) gets each new acceptor Association before it starts
    and returns the one to run (the fast path of dimse_fastpath uses it). With a
    ``direct_service`` set, the associations the direct loop serves never reach pynetdicom
    (dimse_direct.py)."""

    def __init__(self, *args: Any, context_index: ContextIndex, prepare_association=None, **kwargs: Any) -> None:
        self.context_index = context_index
        self.prepare_association = prepare_association
        self._direct_init()
        super().__init__(*args, **kwargs)

    def shutdown(self) -> None:
        self.close_direct()  # before the base class joins the connection threads
        super().shutdown()


class SharedSocketServer(IndexedServer):
    """An IndexedServer that accepts on a socket already bound and listening (maybe shared with
    other processes, ``serve dimse --processes``) instead of binding its address."""

    def __init__(self, *args: Any, listen_socket: socket.socket, **kwargs: Any) -> None:
        self._listen_socket = listen_socket
        super().__init__(*args, **kwargs)

    def server_bind(self) -> None:
        # the socket the base class made is never bound: this process accepts on the shared
        # one, non-blocking (a connection another process took first is no error)
        if self.socket is not None:
            self.socket.close()
        self.socket = self._listen_socket
        self.server_address = self._listen_socket.getsockname()

    def server_activate(self) -> None:
        pass  # listening already


def start_server(
    ae,
    address: tuple[str, int],
    *,
    ssl_context=None,
    evt_handlers: list | None = None,
    prepare_association=None,
    listen_socket: socket.socket | None = None,
) -> IndexedServer:
    """``ae.start_server(address, block=False, ...)`` with indexed negotiation: the server runs
    in a daemon thread, and ``ae.shutdown()`` stops it as it would pynetdicom's own. With
    ``listen_socket`` it accepts there (already listening) instead of binding ``address``."""
    index = ContextIndex(ae.supported_contexts)
    shared = {} if listen_socket is None else {"listen_socket": listen_socket}
    server = ae.make_server(
        address if listen_socket is None else listen_socket.getsockname(),
        contexts=index,  # what the AE's server reports as its contexts
        ssl_context=ssl_context,
        evt_handlers=evt_handlers,
        server_class=IndexedServer if listen_socket is None else SharedSocketServer,
        request_handler=IndexedRequestHandler,
        context_index=index,
        prepare_association=prepare_association,
        **shared,
    )
    server.contexts = []  # what pynetdicom's handler copies per association: nothing
    timestamp = datetime.strftime(datetime.now(), "%Y%m%d%H%M%S")
    thread = threading.Thread(target=make_target(server.serve_forever), name=f"AcceptorServer@{timestamp}")
    thread.daemon = True
    thread.start()
    ae._servers.append(server)  # pynetdicom's own list, so that ae.shutdown() stops this server
    return server
