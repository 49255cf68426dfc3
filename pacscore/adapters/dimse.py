"""Serve an Archive over DICOM DIMSE with pynetdicom: C-ECHO, C-STORE, C-FIND, C-GET, C-MOVE.

Two ways to use it::

    # 1. a standalone SCP
    from pacscore.adapters import dimse
    server = dimse.serve(arc, "PACSCORE", 11112, move_destinations={"VIEWER": ("10.0.0.5", 104)},
                         block=False)
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
import os
import ssl
import threading
from dataclasses import fields

from pynetdicom import AE, build_context, evt
from pynetdicom import _config as _pynetdicom_config
from pynetdicom.presentation import PresentationContext
from pynetdicom.sop_class import Verification
from pynetdicom.transport import ThreadedAssociationServer

from .dimse_convert import STORAGE_TRANSFER_SYNTAXES, storage_sop_classes
from .dimse_service import FIND_MODELS, LOG, RETRIEVE_MODELS, DimseConfig, DimseService, set_nodelay
from .match_options import OPTION_HELP, check_options, option_argument

__all__ = [
    "DimseConfig", "DimseService", "handlers", "serve", "make_ae", "supported_contexts", "tls_context",
    "set_nodelay", "add_cli", "main_serve",
]

DEFAULT_MAX_PDU = 16382  # pynetdicom's default; 0 means unlimited


def _config(**config) -> DimseConfig:
    known = {f.name for f in fields(DimseConfig)}
    unknown = sorted(set(config) - known)
    if unknown:
        raise TypeError(f"unknown DIMSE option(s): {', '.join(unknown)} (known: {', '.join(sorted(known))})")
    cfg = DimseConfig(**config)
    cfg.move_destinations = {str(k).strip(): (str(v[0]), int(v[1])) for k, v in (cfg.move_destinations or {}).items()}
    if cfg.allowed_calling_aets is not None:
        cfg.allowed_calling_aets = [str(a).strip() for a in cfg.allowed_calling_aets]
    if cfg.invalid_keys not in (None, "nomatch", "error"):
        raise ValueError(f"invalid_keys must be 'nomatch' or 'error', not {cfg.invalid_keys!r}")
    cfg.find_options = check_options(cfg.find_options)
    return cfg


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
    return DimseService(archive, _config(**config)).bindings()


def supported_contexts(storage: bool = True, query_retrieve: bool = True) -> list[PresentationContext]:
    """The presentation contexts the SCP accepts: Verification, every storage SOP class of patient
    data with every transfer syntax pynetdicom knows (SCU and SCP roles, for C-GET), the nine
    Q/R models. Non-patient objects (hanging protocols, colour palettes, ...; PS3.4 Annex GG)
    are not offered: they have no study to be filed under."""
    contexts = [build_context(Verification)]
    if storage:
        for uid in storage_sop_classes():
            cx = build_context(uid, list(STORAGE_TRANSFER_SYNTAXES))
            cx.scu_role = True
            cx.scp_role = True
            contexts.append(cx)
    if query_retrieve:
        for uid in list(FIND_MODELS) + list(RETRIEVE_MODELS):
            contexts.append(build_context(uid))
    return contexts


def make_ae(ae_title: str = "PACSCORE", *, allowed_calling_aets: list[str] | None = None,
            max_pdu: int = DEFAULT_MAX_PDU, acse_timeout: float | None = 30, dimse_timeout: float | None = 30,
            network_timeout: float | None = 60, connection_timeout: float | None = None,
            max_associations: int = 10) -> AE:
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
        ae.add_supported_context(cx.abstract_syntax, cx.transfer_syntax, scu_role=cx.scu_role, scp_role=cx.scp_role)
    return ae


def serve(archive, ae_title: str = "PACSCORE", port: int = 11112, host: str = "127.0.0.1", *,
          move_destinations: dict[str, tuple[str, int]] | None = None,
          allowed_calling_aets: list[str] | None = None, max_pdu: int = DEFAULT_MAX_PDU,
          acse_timeout: float | None = 30, dimse_timeout: float | None = 30,
          network_timeout: float | None = 60, connection_timeout: float | None = None,
          max_associations: int = 10, ssl_context: ssl.SSLContext | None = None, block: bool = True,
          **config):
    """Run a DICOM SCP for ``archive`` on ``host:port`` as ``ae_title``.

    With ``block=False`` returns pynetdicom's ThreadedAssociationServer (``.shutdown()`` stops
    it; ``.server_address`` has the bound port, useful with ``port=0``); with ``block=True``
    serves until KeyboardInterrupt and returns None. ``config``: see ``handlers()``.

    Unless ``log_phi=True``, pynetdicom's own logging of request and response identifiers is
    switched off (a process-wide pynetdicom setting).
    """
    cfg = dict(config)
    cfg["move_destinations"] = move_destinations or {}
    cfg["allowed_calling_aets"] = allowed_calling_aets
    evt_handlers = handlers(archive, **cfg)
    if not cfg.get("log_phi"):
        _pynetdicom_config.LOG_REQUEST_IDENTIFIERS = False
        _pynetdicom_config.LOG_RESPONSE_IDENTIFIERS = False
    ae = make_ae(ae_title, allowed_calling_aets=allowed_calling_aets, max_pdu=max_pdu, acse_timeout=acse_timeout,
                 dimse_timeout=dimse_timeout, network_timeout=network_timeout,
                 connection_timeout=connection_timeout, max_associations=max_associations)
    server = ae.make_server((host, int(port)), ssl_context=ssl_context, evt_handlers=evt_handlers,
                            server_class=ThreadedAssociationServer)
    if not logging.getLogger("pynetdicom").isEnabledFor(logging.DEBUG):
        _unbind_debug_handlers(server)
    LOG.info("serving %s as %s on %s:%s%s", archive, ae_title, host, server.server_address[1],
             " (TLS)" if ssl_context else "")
    if not block:
        thread = threading.Thread(target=server.serve_forever, name=f"pacscore-dimse-{ae_title}", daemon=True)
        thread.start()
        ae._servers.append(server)  # so that ae.shutdown() and server.shutdown() work as with start_server
        return server
    ae._servers.append(server)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.shutdown()
    return None


def _unbind_debug_handlers(server) -> None:
    """pynetdicom binds four handlers that format every PDU and DIMSE message for DEBUG logging,
    whether or not DEBUG is enabled; about a tenth of the SCP's CPU per C-FIND response."""
    from pynetdicom import _handlers as h

    for event, handler in ((evt.EVT_DIMSE_RECV, h.standard_dimse_recv_handler),
                           (evt.EVT_DIMSE_SENT, h.standard_dimse_sent_handler),
                           (evt.EVT_PDU_RECV, h.standard_pdu_recv_handler),
                           (evt.EVT_PDU_SENT, h.standard_pdu_sent_handler)):
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


# ---- command line ---------------------------------------------------------------------------
def _move_dest(text: str) -> tuple[str, tuple[str, int]]:
    import argparse

    try:
        title, address = text.split("=", 1)
        host, port = address.rsplit(":", 1)
        return title.strip(), (host.strip("[] "), int(port))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected AE=host:port, got {text!r}") from None


def add_cli(subparsers) -> None:
    """Register ``dimse`` (the `serve dimse` command) on an argparse subparsers object."""
    p = subparsers.add_parser("dimse", help="serve the archive over DICOM DIMSE (C-ECHO/STORE/FIND/GET/MOVE)",
                              description="Run a DICOM SCP for an archive (pynetdicom).")
    p.add_argument("--archive", "-a", default=os.environ.get("PACSCORE_ARCHIVE", "archive"), metavar="DIR",
                   help="archive folder (default: $PACSCORE_ARCHIVE or ./archive)")
    p.add_argument("--blobs", default=None, help="blob store URL (default: file blobs in the archive)")
    p.add_argument("--ae", default="PACSCORE", help="our AE title (default PACSCORE)")
    p.add_argument("--port", type=int, default=11112, help="TCP port (default 11112)")
    p.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1)")
    p.add_argument("--move-dest", action="append", default=[], type=_move_dest, metavar="AE=HOST:PORT",
                   help="a C-MOVE destination (repeatable)")
    p.add_argument("--allow", action="append", default=None, metavar="AE",
                   help="a calling AE title allowed to associate (repeatable; default: any)")
    p.add_argument("--max-pdu", type=int, default=DEFAULT_MAX_PDU, help="max PDU we receive (0: unlimited)")
    p.add_argument("--max-results", type=int, default=None, help="C-FIND: refuse (A700) above this many matches")
    p.add_argument("--invalid-keys", choices=("nomatch", "error"), default=None,
                   help="C-FIND keys invalid for their VR: match nothing or fail (A900)")
    p.add_argument("--option", "-o", action="append", default=[], type=option_argument, metavar="NAME=VALUE",
                   help=OPTION_HELP)
    p.add_argument("--acse-timeout", type=float, default=30)
    p.add_argument("--dimse-timeout", type=float, default=30)
    p.add_argument("--network-timeout", type=float, default=60)
    p.add_argument("--tls-cert", help="PEM certificate: serve over TLS")
    p.add_argument("--tls-key", help="PEM private key of --tls-cert")
    p.add_argument("--tls-ca", help="PEM CA bundle: require client certificates signed by it")
    p.add_argument("--log-phi", action="store_true", help="log identifier values and UIDs (patient data)")
    p.add_argument("--no-nodelay", action="store_true", help="leave Nagle's algorithm on (for measurements)")
    p.set_defaults(func=main_serve)


def main_serve(args) -> int:
    """Run ``serve dimse`` from parsed arguments; returns the process exit code."""
    import pacscore

    if not logging.getLogger().handlers:
        logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    log = logging.getLogger("pacscore.dimse")
    if log.getEffectiveLevel() > logging.INFO:  # a server should say who connected and what they asked
        log.setLevel(logging.INFO)
    ssl_context = None
    if args.tls_cert or args.tls_key:
        if not (args.tls_cert and args.tls_key):
            print("serve dimse: --tls-cert and --tls-key go together")
            return 2
        ssl_context = tls_context(args.tls_cert, args.tls_key, args.tls_ca)
    elif args.tls_ca:
        print("serve dimse: --tls-ca needs --tls-cert and --tls-key")
        return 2
    _stop_on_sigterm()
    with pacscore.open(args.archive, blobs=getattr(args, "blobs", None), create=False) as arc:
        try:
            serve(arc, args.ae, args.port, args.host, move_destinations=dict(args.move_dest),
                  allowed_calling_aets=args.allow, max_pdu=args.max_pdu, acse_timeout=args.acse_timeout,
                  dimse_timeout=args.dimse_timeout, network_timeout=args.network_timeout,
                  ssl_context=ssl_context, block=True, max_results=args.max_results,
                  invalid_keys=args.invalid_keys, log_phi=args.log_phi, tcp_nodelay=not args.no_nodelay,
                  find_options=dict(getattr(args, "option", None) or []))
        except KeyboardInterrupt:
            pass
        except OSError as exc:
            print(f"serve dimse: cannot listen on {args.host}:{args.port}: {exc}")
            return 1
    return 0


def _stop_on_sigterm() -> None:
    """Turn SIGTERM into KeyboardInterrupt so that `serve dimse` shuts down and closes the archive."""
    import signal

    def stop(signum, frame):
        raise KeyboardInterrupt

    try:
        signal.signal(signal.SIGTERM, stop)
    except ValueError:  # not the main thread
        pass
