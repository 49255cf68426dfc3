"""Serve an Archive over DICOM DIMSE with pynetdicom: C-ECHO, C-STORE, C-FIND, C-GET, C-MOVE, the
Modality Worklist C-FIND (dimse_worklist.py), MPPS N-CREATE / N-SET and Storage Commitment
N-ACTION / N-EVENT-REPORT (dimse_workflow.py).

Two ways to use it::

    # 1. a standalone SCP
    from pacscore.adapters import dimse
    config = dimse.ServeConfig(port=11112, block=False,
                               handlers=dimse.DimseConfig(move_destinations={"VIEWER": ("10.0.0.5", 104)}))
    server = dimse.serve(arc, config)    # or dimse.serve(arc, port=11112, block=False, move_destinations=...)
    ...
    server.shutdown()

    # 2. bind the handlers to your own pynetdicom AE
    ae = dimse.make_ae("MYPACS")          # or your AE + ae.add_supported_context(...) per
                                          # dimse.supported_contexts()
    ae.start_server(("0.0.0.0", 104), evt_handlers=dimse.handlers(arc), block=False)

What the adapter does and does not do is in docs/conformance-dimse.md. Matching is the
Archive's; this module only translates: identifier Dataset -> ``Archive.find(ds, level, model,
**negotiated options)``, results -> pending responses, exceptions -> statuses.
"""

from __future__ import annotations

import logging
import socket
import ssl
import threading
from dataclasses import dataclass, field, fields, replace
from functools import partial
from typing import cast

from pynetdicom import AE, build_context, evt
from pynetdicom import _config as _pynetdicom_config
from pynetdicom.presentation import PresentationContext
from pynetdicom.sop_class import Verification

from . import dimse_worklist
from .dimse_convert import STORAGE_TRANSFER_SYNTAXES, storage_sop_classes
from .dimse_direct import Eligibility
from .dimse_fastpath import make_fast
from .dimse_negotiation import start_server
from .dimse_service import FIND_MODELS, LOG, RETRIEVE_MODELS, DimseConfig, DimseService, set_nodelay
from .dimse_workflow import workflow_bindings, workflow_contexts
from .match_options import check_options

__all__ = [
    "DimseConfig",
    "DimseService",
    "ServeConfig",
    "handlers",
    "serve",
    "make_ae",
    "supported_contexts",
    "tls_context",
    "set_nodelay",
    "DEFAULT_MAX_PDU",
]

DEFAULT_MAX_PDU = 16382  # pynetdicom's default; 0 means unlimited


def _config(config: DimseConfig | None = None, **options) -> DimseConfig:
    """``config`` (or the defaults) with ``options`` on top, checked and normalised."""
    known = {f.name for f in fields(DimseConfig)}
    unknown = sorted(set(options) - known)
    if unknown:
        raise TypeError(f"unknown DIMSE option(s): {', '.join(unknown)} (known: {', '.join(sorted(known))})")
    cfg = replace(config or DimseConfig(), **options)
    if cfg.invalid_keys not in (None, "nomatch", "error"):
        raise ValueError(f"invalid_keys must be 'nomatch' or 'error', not {cfg.invalid_keys!r}")
    aets = cfg.allowed_calling_aets
    return replace(
        cfg,
        move_destinations={str(k).strip(): (str(v[0]), int(v[1])) for k, v in (cfg.move_destinations or {}).items()},
        commitment_peers={str(k).strip(): (str(v[0]), int(v[1])) for k, v in (cfg.commitment_peers or {}).items()},
        allowed_calling_aets=None if aets is None else [str(a).strip() for a in aets],
        find_options=check_options(cfg.find_options),
    )


def handlers(archive, **config) -> list[tuple]:
    """The pynetdicom ``evt_handlers`` that serve ``archive``; bind them to your own AE.

    ``config`` takes the fields of DimseConfig: ``move_destinations`` ({AE: (host, port)}),
    ``allowed_calling_aets``, ``max_results``, ``invalid_keys``, ``extended_negotiation``,
    ``relational_retrieve``, ``strict_negotiation``, ``find_options``, ``tcp_nodelay``,
    ``log_phi``, ``retrieve_ae_title``, ``move_max_pdu``, ``move_tls_args``.

    ``find_options`` ({name: value}, the names of ``Archive.find``'s matching options, e.g.
    ``{"empty_record_matches": False}``) go to every C-FIND query as it is made, whatever the
    archive was opened with; negotiated options (relational, combined date-time) come on top.
    C-GET / C-MOVE select by unique keys and use none of them (docs/conformance-dimse.md).

    Your AE must support the presentation contexts of ``supported_contexts()`` (``make_ae``
    does it). A calling AE title outside ``allowed_calling_aets`` is rejected from the
    EVT_REQUESTED handler with reason 3, "calling AE title not recognised".
    """
    return _bindings(DimseService(archive, _config(**config)))


def _bindings(service: DimseService) -> list[tuple]:
    """The service's handlers, with C-FIND of the Modality Worklist model served too, and the
    workflow services (MPPS, storage commitment: dimse_workflow.py)."""
    workflow = workflow_bindings(service.archive, service.config, service.state)
    return dimse_worklist.bind(service, service.bindings()) + workflow


def supported_contexts(
    storage: bool = True, query_retrieve: bool = True, workflow: bool = True
) -> list[PresentationContext]:
    """The presentation contexts the SCP accepts: Verification, every storage SOP class of patient
    data with every transfer syntax pynetdicom knows (SCU and SCP roles, for C-GET), the nine
    Q/R models, the Modality Worklist model, MPPS and Storage Commitment Push Model. Non-patient
    objects (hanging protocols, colour palettes, ...; PS3.4 Annex GG) are not offered: they have
    no study to be filed under."""
    contexts = [build_context(Verification)]
    if workflow:
        contexts += workflow_contexts()
    if storage:
        for uid in storage_sop_classes():
            cx = build_context(uid, list(STORAGE_TRANSFER_SYNTAXES))
            cx.scu_role = True
            cx.scp_role = True
            contexts.append(cx)
    if query_retrieve:
        for uid in [*FIND_MODELS, *RETRIEVE_MODELS, dimse_worklist.MODALITY_WORKLIST_FIND]:
            contexts.append(build_context(uid))
    return contexts


def make_ae(
    ae_title: str = "PACSCORE",
    *,
    allowed_calling_aets: list[str] | None = None,
    max_pdu: int = DEFAULT_MAX_PDU,
    acse_timeout: float | None = 30,
    dimse_timeout: float | None = 30,
    network_timeout: float | None = 60,
    connection_timeout: float | None = None,
    max_associations: int = 10,
) -> AE:
    """A pynetdicom AE configured with our contexts, timeouts and calling-AE restriction."""
    ae = AE(ae_title=ae_title)
    ae.maximum_pdu_size = max_pdu
    ae.acse_timeout = acse_timeout
    ae.dimse_timeout = dimse_timeout
    ae.network_timeout = network_timeout
    ae.connection_timeout = connection_timeout
    ae.maximum_associations = max_associations
    if allowed_calling_aets is not None:
        ae.require_calling_aet = [a.strip() for a in allowed_calling_aets]
    for cx in supported_contexts():  # the supported_contexts setter would drop the roles
        # every context built by supported_contexts() names its abstract syntax
        ae.add_supported_context(
            cast(str, cx.abstract_syntax), cx.transfer_syntax, scu_role=cx.scu_role, scp_role=cx.scp_role
        )
    return ae


@dataclass(frozen=True)
class ServeConfig:
    """How ``serve()`` runs an SCP: the network side here, the handlers' side in ``handlers``."""

    ae_title: str = "PACSCORE"
    #: 0: any free port, read back from the returned server's ``server_address``
    port: int = 11112
    host: str = "127.0.0.1"
    #: the largest PDU we receive (0: unlimited)
    max_pdu: int = DEFAULT_MAX_PDU
    acse_timeout: float | None = 30
    dimse_timeout: float | None = 30
    network_timeout: float | None = 60
    connection_timeout: float | None = None
    max_associations: int = 10
    #: serve over TLS (``tls_context()`` builds one)
    ssl_context: ssl.SSLContext | None = None
    #: True: serve until KeyboardInterrupt; False: serve in a thread and return the server
    block: bool = True
    #: what the handlers do: move destinations, allowed calling AE titles, matching options, ...
    handlers: DimseConfig = field(default_factory=DimseConfig)
    #: answer without pynetdicom's 1 ms polling sleeps (dimse_fastpath; docs/benchmarks-wire.md)
    fastpath: bool = True
    #: serve C-ECHO / C-FIND / C-STORE associations in one thread each, below pynetdicom
    #: (dimse_direct; plain TCP with ``fastpath`` only; docs/benchmarks-wire.md)
    direct: bool = True
    #: accept on this listening socket instead of binding host:port (``serve dimse --processes``:
    #: processes forked after it was bound share it; pacscore/serve_processes.py)
    listen_socket: socket.socket | None = None

    @classmethod
    def from_options(
        cls, ae_title: str = "PACSCORE", port: int = 11112, host: str = "127.0.0.1", **options
    ) -> ServeConfig:
        """A config from ``serve()``'s keyword arguments: this class's fields and DimseConfig's
        (TypeError naming any other)."""
        own = {f.name for f in fields(cls)} - {"handlers"}
        server = {k: v for k, v in options.items() if k in own}
        handler_options = {k: v for k, v in options.items() if k not in own}
        return cls(ae_title=ae_title, port=port, host=host, handlers=_config(**handler_options), **server)


def serve(archive, config: ServeConfig | str | None = None, *args, **options):
    """Run a DICOM SCP for ``archive`` as ``config`` says.

    ``serve(archive, ServeConfig(...))``; or, as before, ``serve(archive, ae_title, port, host,
    **options)`` with ServeConfig's and DimseConfig's field names as keywords (they build the
    config; one code path). With ``block=False`` returns pynetdicom's ThreadedAssociationServer
    (``.shutdown()`` stops it; ``.server_address`` has the bound port, useful with ``port=0``);
    with ``block=True`` serves until KeyboardInterrupt and returns None.

    Unless ``log_phi=True``, pynetdicom's own logging of request and response identifiers is
    switched off (a process-wide pynetdicom setting).
    """
    if isinstance(config, ServeConfig):
        if args or options:
            raise TypeError("serve(archive, config) takes no other arguments: use dataclasses.replace(config, ...)")
        return _run(archive, config)
    positional = (config, *args) if config is not None else args
    if len(positional) > len(_POSITIONAL):
        raise TypeError(
            f"serve() takes at most {len(_POSITIONAL)} positional arguments after the archive "
            f"({', '.join(_POSITIONAL)})"
        )
    for name, value in zip(_POSITIONAL, positional):
        if name in options:
            raise TypeError(f"serve() got {name} twice, by position and by keyword")
        options[name] = value
    return _run(archive, ServeConfig.from_options(**options))


#: serve()'s positional arguments after the archive, as they were before ServeConfig
_POSITIONAL = ("ae_title", "port", "host")


def _run(archive, cfg: ServeConfig):
    handler_cfg = _config(cfg.handlers)
    if not handler_cfg.log_phi:
        _pynetdicom_config.LOG_REQUEST_IDENTIFIERS = False
        _pynetdicom_config.LOG_RESPONSE_IDENTIFIERS = False
    ae = make_ae(
        cfg.ae_title,
        allowed_calling_aets=handler_cfg.allowed_calling_aets,
        max_pdu=cfg.max_pdu,
        acse_timeout=cfg.acse_timeout,
        dimse_timeout=cfg.dimse_timeout,
        network_timeout=cfg.network_timeout,
        connection_timeout=cfg.connection_timeout,
        max_associations=cfg.max_associations,
    )
    # pynetdicom's threaded server (ae.shutdown() and server.shutdown() both stop it), negotiating
    # through an index of the supported contexts (dimse_negotiation); on a listening socket shared
    # with other processes for ``serve dimse --processes``
    service = DimseService(archive, handler_cfg)
    server = start_server(
        ae,
        (cfg.host, int(cfg.port)),
        ssl_context=cfg.ssl_context,
        evt_handlers=_bindings(service),
        prepare_association=partial(_prepare_association, fast=cfg.fastpath),
        listen_socket=cfg.listen_socket,
    )
    if cfg.direct and cfg.fastpath and cfg.ssl_context is None:
        serve_directly(server, service, cfg)
    if not logging.getLogger("pynetdicom").isEnabledFor(logging.DEBUG):
        _unbind_debug_handlers(server)
    LOG.info(
        "serving %s as %s on %s:%s%s",
        archive,
        cfg.ae_title,
        cfg.host,
        server.server_address[1],
        " (TLS)" if cfg.ssl_context else "",
    )
    if not cfg.block:
        return server
    try:
        threading.Event().wait()  # the server runs in its thread until KeyboardInterrupt (or SIGTERM, see the CLI)
    except KeyboardInterrupt:
        pass
    finally:
        # the AE's shutdown also aborts the open associations: their threads are not daemons,
        # so after server.shutdown() alone a SIGTERM left the process running until each peer
        # released or the network timeout passed
        ae.shutdown()
    return None


def serve_directly(server, service: DimseService, cfg: ServeConfig) -> None:
    """Let ``server`` serve the associations the direct loop can serve (dimse_direct)."""
    server.direct_eligible = Eligibility(server.context_index, service.config.allowed_calling_aets)
    server.direct_network_timeout = cfg.network_timeout
    server.direct_acse_timeout = cfg.acse_timeout
    server.direct_nodelay = service.config.tcp_nodelay
    server.direct_max_associations = cfg.max_associations
    server.direct_service = service


def _prepare_association(assoc, fast: bool):
    """Each accepted association before it starts: without pynetdicom's DEBUG handlers (each
    Association binds them again for itself), and on the fast path (dimse_fastpath) if asked."""
    if not logging.getLogger("pynetdicom").isEnabledFor(logging.DEBUG):
        _unbind_debug_handlers(assoc)
    return make_fast(assoc) if fast else assoc


def _unbind_debug_handlers(server) -> None:
    """pynetdicom binds four handlers that format every PDU and DIMSE message for DEBUG logging,
    whether or not DEBUG is enabled; about a tenth of the SCP's CPU per C-FIND response.
    ``server``: the association server, or one association."""
    from pynetdicom import _handlers as h

    for event, handler in (
        (evt.EVT_DIMSE_RECV, h.standard_dimse_recv_handler),
        (evt.EVT_DIMSE_SENT, h.standard_dimse_sent_handler),
        (evt.EVT_PDU_RECV, h.standard_pdu_recv_handler),
        (evt.EVT_PDU_SENT, h.standard_pdu_sent_handler),
    ):
        try:
            server.unbind(event, handler)
        except Exception:  # not bound (LOG_HANDLER_LEVEL = "none")
            pass


def tls_context(cert: str, key: str, ca: str | None = None) -> ssl.SSLContext:
    """A server-side TLS context; with ``ca`` clients must present a certificate signed by it."""
    ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ctx.load_cert_chain(cert, key)
    if ca:
        ctx.load_verify_locations(ca)
        ctx.verify_mode = ssl.CERT_REQUIRED
    else:
        ctx.verify_mode = ssl.CERT_NONE
    return ctx
