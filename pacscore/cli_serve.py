"""The ``pacscore serve dimse`` and ``pacscore serve web`` commands.

The adapters (``pacscore.adapters.dimse``, ``pacscore.adapters.dicomweb``) know nothing of the
command line; this module turns arguments into their configuration. ``pacscore.cli`` registers
each command only when its extra is installed (else it says what to install), so each adapter
is imported inside the function that registers or runs its command.
"""

from __future__ import annotations

import argparse
import ipaddress
import logging
import os
import sys

from .adapters.match_options import OPTION_HELP, option_argument


# -- serve dimse ------------------------------------------------------------------------------
def _move_dest(text: str) -> tuple[str, tuple[str, int]]:
    try:
        title, address = text.split("=", 1)
        host, port = address.rsplit(":", 1)
        return title.strip(), (host.strip("[] "), int(port))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected AE=host:port, got {text!r}") from None


def add_dimse_cli(subparsers) -> None:
    """Register ``dimse`` (the `serve dimse` command) on an argparse subparsers object."""
    from .adapters.dimse import DEFAULT_MAX_PDU

    p = subparsers.add_parser(
        "dimse",
        help="serve the archive over DICOM DIMSE (C-ECHO/STORE/FIND/GET/MOVE)",
        description="Run a DICOM SCP for an archive (pynetdicom).",
    )
    p.add_argument(
        "--archive",
        "-a",
        default=os.environ.get("PACSCORE_ARCHIVE", "archive"),
        metavar="DIR",
        help="archive folder (default: $PACSCORE_ARCHIVE or ./archive)",
    )
    p.add_argument("--blobs", default=None, help="blob store URL (default: file blobs in the archive)")
    p.add_argument("--ae", default="PACSCORE", help="our AE title (default PACSCORE)")
    p.add_argument("--port", type=int, default=11112, help="TCP port (default 11112; 0: any free port, logged)")
    p.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1)")
    p.add_argument(
        "--move-dest",
        action="append",
        default=[],
        type=_move_dest,
        metavar="AE=HOST:PORT",
        help="a C-MOVE destination (repeatable)",
    )
    p.add_argument(
        "--commitment-peer",
        action="append",
        default=[],
        type=_move_dest,
        metavar="AE=HOST:PORT",
        help="where the storage commitment reports of AE go when it closed the requesting association (repeatable)",
    )
    p.add_argument(
        "--allow",
        action="append",
        default=None,
        metavar="AE",
        help="a calling AE title allowed to associate (repeatable; default: any)",
    )
    p.add_argument("--max-pdu", type=int, default=DEFAULT_MAX_PDU, help="max PDU we receive (0: unlimited)")
    p.add_argument("--max-results", type=int, default=None, help="C-FIND: refuse (A700) above this many matches")
    p.add_argument(
        "--invalid-keys",
        choices=("nomatch", "error"),
        default=None,
        help="C-FIND keys invalid for their VR: match nothing or fail (A900)",
    )
    p.add_argument(
        "--option", "-o", action="append", default=[], type=option_argument, metavar="NAME=VALUE", help=OPTION_HELP
    )
    p.add_argument("--acse-timeout", type=float, default=30)
    p.add_argument("--dimse-timeout", type=float, default=30)
    p.add_argument("--network-timeout", type=float, default=60)
    p.add_argument("--tls-cert", help="PEM certificate: serve over TLS")
    p.add_argument("--tls-key", help="PEM private key of --tls-cert")
    p.add_argument("--tls-ca", help="PEM CA bundle: require client certificates signed by it")
    p.add_argument("--log-phi", action="store_true", help="log identifier values and UIDs (patient data)")
    p.add_argument("--no-nodelay", action="store_true", help="leave Nagle's algorithm on (for measurements)")
    p.add_argument(
        "--no-fastpath", action="store_true", help="pynetdicom's own polling reactors (docs/benchmarks-wire.md)"
    )
    p.add_argument(
        "--no-direct",
        action="store_true",
        help="serve every association through pynetdicom, not the direct loop (docs/benchmarks-wire.md)",
    )
    p.add_argument(
        "--processes",
        type=_positive,
        default=1,
        metavar="N",
        help="serve from N processes that share the port (default 1; about one core each)",
    )
    p.set_defaults(func=main_serve_dimse)


def dimse_config(args, ssl_context=None):
    """The ``ServeConfig`` that ``serve dimse`` runs with, from its parsed arguments."""
    from .adapters.dimse import ServeConfig

    return ServeConfig.from_options(
        args.ae,
        args.port,
        args.host,
        move_destinations=dict(args.move_dest),
        commitment_peers=dict(getattr(args, "commitment_peer", None) or []),
        allowed_calling_aets=args.allow,
        max_pdu=args.max_pdu,
        acse_timeout=args.acse_timeout,
        dimse_timeout=args.dimse_timeout,
        network_timeout=args.network_timeout,
        ssl_context=ssl_context,
        block=True,
        max_results=args.max_results,
        invalid_keys=args.invalid_keys,
        log_phi=args.log_phi,
        tcp_nodelay=not args.no_nodelay,
        fastpath=not getattr(args, "no_fastpath", False),
        direct=not getattr(args, "no_direct", False),
        find_options=dict(getattr(args, "option", None) or []),
    )


def main_serve_dimse(args) -> int:
    """Run ``serve dimse`` from parsed arguments; returns the process exit code."""
    import pacscore

    from .adapters.dimse import serve, tls_context

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
    config = dimse_config(args, ssl_context)
    if args.processes > 1:
        return _serve_dimse_processes(args, config)
    _stop_on_sigterm()
    with pacscore.open(args.archive, blobs=getattr(args, "blobs", None), create=False) as arc:
        try:
            serve(arc, config)
        except KeyboardInterrupt:
            pass
        except OSError as exc:
            print(f"serve dimse: cannot listen on {args.host}:{args.port}: {exc}")
            return 1
    return 0


def _positive(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a whole number of at least 1, got {text!r}")
    return value


def _serve_dimse_processes(args, config) -> int:
    """``serve dimse --processes N``: one listening socket, N forked SCPs accepting on it."""
    import dataclasses

    import pacscore

    from . import serve_processes
    from .adapters.dimse import serve

    if not serve_processes.supported():
        print("serve dimse: --processes needs fork() and sigtimedwait() (Linux)", file=sys.stderr)
        return 2
    try:
        pacscore.open(args.archive, blobs=getattr(args, "blobs", None), create=False).close()
        serve_processes.prepare_readers(args.archive, args.processes, config.max_associations)
        sock = serve_processes.listen(args.host, args.port)
    except pacscore.PacsError as exc:
        print(f"serve dimse: {exc}", file=sys.stderr)
        return 2
    except OSError as exc:
        print(f"serve dimse: cannot listen on {args.host}:{args.port}: {exc}")
        return 1
    host, port = sock.getsockname()[:2]
    print(f"pacscore DIMSE {args.ae} on {host}:{port} ({args.processes} processes)", flush=True)

    def child(listening) -> int:
        _stop_on_sigterm()
        with pacscore.open(args.archive, blobs=getattr(args, "blobs", None), create=False) as arc:
            try:
                serve(arc, dataclasses.replace(config, listen_socket=listening, port=port))
            except KeyboardInterrupt:
                pass
        return 0

    with sock:
        return serve_processes.run(args.processes, child, sock)


def _stop_on_sigterm() -> None:
    """Turn SIGTERM into KeyboardInterrupt so that `serve dimse` shuts down and closes the archive."""
    import signal

    def stop(signum, frame):
        raise KeyboardInterrupt

    try:
        signal.signal(signal.SIGTERM, stop)
    except ValueError:  # not the main thread
        pass


# -- serve web --------------------------------------------------------------------------------
def _size(text: str) -> int:
    """ "512M", "2G", "1048576" -> bytes."""
    units = {"K": 1024, "M": 1024**2, "G": 1024**3, "T": 1024**4}
    t = text.strip().upper().removesuffix("B")
    factor = units.get(t[-1:], 1)
    number = t[:-1] if t[-1:] in units else t
    try:
        value = int(float(number) * factor)
    except ValueError:
        raise ValueError(f"not a size: {text!r} (use e.g. 512M or 2G)") from None
    if value < 1:
        raise ValueError("a size must be positive")
    return value


def add_web_cli(subparsers) -> None:
    """Register ``web`` (the `serve web` command) on an argparse subparsers object."""
    from .adapters.web_core import DEFAULT_LIMIT, DEFAULT_MAX_BODY, DEFAULT_MAX_PART, DEFAULT_MAX_RESULTS

    p = subparsers.add_parser(
        "web",
        help="serve the archive over HTTP as DICOMweb (QIDO-RS, WADO-RS, STOW-RS)",
        description="Run a DICOMweb origin server for an archive (Starlette on uvicorn). "
        "QIDO-RS studies are at http://HOST:PORT/dicomweb/studies.",
    )
    p.add_argument("--archive", required=True, metavar="DIR", help="archive folder")
    p.add_argument("--port", type=int, default=8042, help="TCP port (default 8042)")
    p.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1)")
    p.add_argument(
        "--token",
        default=os.environ.get("PACSCORE_WEB_TOKEN") or None,
        help="require 'Authorization: Bearer TOKEN' (default: $PACSCORE_WEB_TOKEN; none: no auth)",
    )
    p.add_argument("--prefix", default="/dicomweb", help="URL path of the DICOMweb root (default /dicomweb)")
    p.add_argument(
        "--base-url",
        default=None,
        help="the root URL clients see (behind a proxy), used in Retrieve URLs and BulkDataURIs",
    )
    p.add_argument("--max-body", type=_size, default=DEFAULT_MAX_BODY, help="STOW-RS request limit (default 2G)")
    p.add_argument("--max-part", type=_size, default=DEFAULT_MAX_PART, help="STOW-RS per-instance limit (default 1G)")
    p.add_argument(
        "--max-results",
        type=int,
        default=DEFAULT_MAX_RESULTS,
        help=f"most results in one QIDO-RS response (default {DEFAULT_MAX_RESULTS})",
    )
    p.add_argument(
        "--default-limit",
        type=int,
        default=DEFAULT_LIMIT,
        help=f"QIDO-RS page size without a limit parameter (default {DEFAULT_LIMIT})",
    )
    p.add_argument(
        "--option", "-o", action="append", default=[], type=option_argument, metavar="NAME=VALUE", help=OPTION_HELP
    )
    p.add_argument(
        "--allow-delete",
        action="store_true",
        help="answer DELETE of studies, series and instances (off: 405; behind --token when given)",
    )
    p.add_argument(
        "--viewer",
        action="store_true",
        help="also serve the OHIF viewer at / (fetch it first: pacscore viewer install; docs/viewer.md)",
    )
    p.add_argument(
        "--viewer-dir", default=None, metavar="DIR", help="the viewer's folder (default: pacscore viewer path)"
    )
    p.add_argument(
        "--cors",
        default=None,
        metavar="ORIGIN",
        help="allow a viewer hosted on ORIGIN (https://host[:port], or *) to call DICOMweb from a browser",
    )
    p.add_argument("--log-level", default="info", choices=("critical", "error", "warning", "info", "debug"))
    p.add_argument(
        "--workers",
        type=_positive,
        default=1,
        metavar="N",
        help="serve from N processes that share the port (default 1; about one core each)",
    )
    p.set_defaults(func=main_serve_web)


def _loopback(host: str) -> bool:
    if host in ("localhost",):
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _wrap_web_app(app, args, prefix: str):
    """The DICOMweb app with the viewer (``--viewer``) and CORS (``--cors``) around it, or
    ValueError / ViewerMissing saying which option cannot be served and why."""
    viewer = getattr(args, "viewer", False)
    cors = getattr(args, "cors", None)
    if getattr(args, "viewer_dir", None) and not viewer:
        raise ValueError("--viewer-dir needs --viewer")
    if viewer and args.token:
        raise ValueError(
            "--viewer cannot be combined with --token: the viewer served here has no way to send the "
            "token (putting it into its configuration would hand it to anyone who opens the page); "
            "serve the viewer without --token on a trusted address, or host it elsewhere with "
            "--cors and an OIDC set-up (docs/viewer.md)"
        )
    if viewer:
        from .adapters.web_viewer import with_viewer
        from .viewer import find_viewer

        folder = find_viewer(args.viewer_dir)
        app = with_viewer(app, folder, prefix=prefix or "/", base_url=args.base_url)
    if cors:
        from .adapters.web_viewer import with_cors

        app = with_cors(app, cors, prefix=prefix)
    return app


def _url_host(host: str) -> str:
    if host in ("0.0.0.0", "::", ""):
        return "127.0.0.1"
    return f"[{host}]" if ":" in host else host


def main_serve_web(args) -> int:
    """Run ``serve web`` from parsed arguments (uvicorn, access log on); returns the exit code."""
    try:
        import starlette  # noqa: F401
        import uvicorn
    except ImportError:
        print("serve web: needs starlette and uvicorn (pip install 'pacscore[web]')")
        return 2
    import pacscore

    from .adapters.dicomweb import bearer_token_auth, create_app

    try:  # the command serves an archive, it never creates one (a typo would serve an empty one)
        pacscore.open(args.archive, create=False).close()
    except pacscore.PacsError as exc:
        print(f"serve web: {exc}", file=sys.stderr)
        return 2
    auth = bearer_token_auth(args.token) if args.token else None
    if auth is None and not _loopback(args.host):
        logging.getLogger("pacscore.dicomweb").warning(
            "serving %s without authentication on %s: anyone who reaches it can read and store%s",
            args.archive,
            args.host,
            " and delete" if getattr(args, "allow_delete", False) else "",
        )
    try:
        app = create_app(
            args.archive,
            prefix=args.prefix,
            auth=auth,
            max_body=args.max_body,
            max_part=args.max_part,
            max_results=args.max_results,
            default_limit=args.default_limit,
            base_url=args.base_url,
            find_options=dict(getattr(args, "option", None) or []),
            allow_delete=bool(getattr(args, "allow_delete", False)),
        )
    except ValueError as exc:
        print(f"serve web: {exc}")
        return 2
    prefix = "/" + args.prefix.strip("/") if args.prefix.strip("/") else ""
    try:
        app = _wrap_web_app(app, args, prefix)
    except (ValueError, OSError) as exc:  # ViewerMissing is a FileNotFoundError
        print(f"serve web: {exc}", file=sys.stderr)
        return 2
    from . import serve_processes

    if args.workers > 1 and not serve_processes.supported():
        print("serve web: --workers needs fork() and sigtimedwait() (Linux)", file=sys.stderr)
        return 2
    try:
        if args.workers > 1:
            serve_processes.prepare_readers(args.archive, args.workers, WEB_THREADS)
        # bound here, not by uvicorn, so that the line below names the real port (also for --port 0)
        sock = serve_processes.listen(args.host, args.port)
    except OSError as exc:
        print(f"serve web: cannot listen on {args.host}:{args.port}: {exc}", file=sys.stderr)
        return 1
    port = sock.getsockname()[1]
    print(
        f"pacscore DICOMweb on http://{args.host}:{port}{prefix} (archive {args.archive}"
        f"{f', {args.workers} processes' if args.workers > 1 else ''}{', bearer token required' if auth else ''})",
        flush=True,
    )
    if getattr(args, "viewer", False):
        print(f"OHIF viewer on http://{_url_host(args.host)}:{port}/", flush=True)

    def serve(listening) -> int:
        config = uvicorn.Config(app, access_log=True, log_level=args.log_level)
        uvicorn.Server(config).run(sockets=[listening])
        return 0

    with sock:
        if args.workers > 1:
            return serve_processes.run(args.workers, serve, sock)
        try:
            serve(sock)
        except KeyboardInterrupt:
            pass
    return 0


#: threads a web process may read the index from: Starlette runs sync handlers in AnyIO's pool
#: of 40 threads, plus the event loop's own
WEB_THREADS = 41
