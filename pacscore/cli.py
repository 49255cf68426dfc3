"""The ``pacscore`` command: init, ingest, find, get, delete, stats, config, reindex, verify, backup,
restore, serve, bench, conformance, worklist (cli_worklist.py), workflow (cli_workflow.py),
viewer (viewer.py).

    pacscore init --archive DIR                      # an empty archive (e.g. to serve)
    pacscore ingest --archive DIR PATH...
    pacscore ingest --archive DIR --dask tcp://scheduler:8786 s3://bucket/scans/   # Dask workers
    pacscore find --archive DIR --level STUDY PatientName='SMI*' StudyDate=20150101- ModalitiesInStudy=
    pacscore get --archive DIR SOP_INSTANCE_UID -o out.dcm
"""

from __future__ import annotations

import argparse
import contextlib
import json
import logging
import os
import sys
from pathlib import Path

from .errors import PacsError
from .query.keys import parse_tag
from .settings import parse_assignments


def open_for(args, *, create: bool = False, readonly: bool = False):
    """The archive a command names. Only ``ingest`` (and ``restore``) create one: any other
    command on a folder without an archive fails naming it and leaves nothing behind; read-only
    commands open the index read-only (no upgrade, no write). ``--blobs`` applies to this run."""
    from .archive import open as open_archive

    return open_archive(args.archive, blobs=getattr(args, "blobs", None), create=create, readonly=readonly)


def _safe_output(path: str) -> Path:
    out = Path(path)
    if out.exists() and out.is_dir():
        raise PacsError(f"{path} is a folder; give a file name")
    return out


def cmd_ingest(args) -> int:
    """Exit status 0 when every file was stored (or already was), 1 when some were rejected
    (each listed with its reason), 2 on an error: scripts must see a lost file, and tell it from
    a failed run (an OSError would otherwise end in a traceback and status 1)."""
    try:
        with open_for(args, create=True) as arc, _dask_client(args.dask) as client:
            report = arc.store_many(args.paths, workers=args.workers, progress=not args.quiet, executor=client)
    except OSError as exc:
        print(f"pacscore ingest: error: {exc}", file=sys.stderr)
        return 2
    print(report)
    for move in report.moved:
        print(f"  {move}")
    for src, reason in report.rejected:
        print(f"  rejected {src}: {reason}")
    return 1 if report.rejected else 0


@contextlib.contextmanager
def _dask_client(address: str | None):
    """A dask.distributed Client of the scheduler at ``address`` for ``ingest --dask`` (None: none)."""
    if address is None:
        yield None
        return
    try:
        from dask.distributed import Client
    except ImportError:
        raise PacsError("ingest --dask needs dask.distributed: pip install 'pacscore[dask]'") from None
    with Client(address, timeout=60) as client:
        yield client


def parse_keys(pairs: list[str]) -> dict:
    """``Keyword=value`` arguments to an identifier dict (``Keyword`` or ``Keyword=`` asks for it back)."""
    identifier = {}
    for pair in pairs:
        name, _, value = pair.partition("=")
        if not name:
            raise PacsError(f"bad key {pair!r}: use Keyword=value")
        identifier[name] = value
    return identifier


def cmd_find(args) -> int:
    identifier = parse_keys(args.keys)
    options = parse_assignments(args.option or [])
    with open_for(args, readonly=True) as arc:
        if args.explain:
            print(json.dumps(arc.explain(identifier, level=args.level, model=args.model, **options), indent=2))
            return 0
        results = list(
            arc.find(
                identifier,
                level=args.level,
                model=args.model,
                limit=args.limit,
                offset=args.offset,
                format="json" if args.json else "dict",
                **options,
            )
        )
    if args.json:
        json.dump(results, sys.stdout, indent=1, ensure_ascii=False)
        print()
    else:
        print(format_table(results, wide=args.wide))
        print(f"({len(results)} match{'es' if len(results) != 1 else ''})")
    return 0


def format_table(rows: list[dict], max_width: int = 40, wide: bool = False) -> str:
    """A readable text table of dict results (keyword -> value). Long values are cut to
    ``max_width`` unless ``wide``; UIDs never are: a cut UID cannot be copied into the next
    command."""
    if not rows:
        return "(no matches)"
    skip = {"SpecificCharacterSet", "QueryRetrieveLevel"}
    columns = [c for c in rows[0] if c not in skip]
    for row in rows[1:]:
        columns += [c for c in row if c not in columns and c not in skip]

    uncut = {c for c in columns if wide or _is_uid(c)}

    def cell(column: str, v) -> str:
        text = f"[{len(v)} items]" if isinstance(v, list) else str(v)
        return text if column in uncut or len(text) <= max_width else text[: max_width - 1] + "…"

    widths = {c: max(len(c), *(len(cell(c, r.get(c, ""))) for r in rows)) for c in columns}
    lines = ["  ".join(c.ljust(widths[c]) for c in columns), "  ".join("-" * widths[c] for c in columns)]
    for r in rows:
        lines.append("  ".join(cell(c, r.get(c, "")).ljust(widths[c]) for c in columns))
    return "\n".join(lines)


def _is_uid(keyword: str) -> bool:
    from . import model

    try:
        return model.vr_of(parse_tag(keyword)) == "UI"
    except ValueError:
        return False


def cmd_get(args) -> int:
    with open_for(args, readonly=True) as arc:
        data = arc.get(args.uid)
    if args.output in (None, "-"):
        sys.stdout.buffer.write(data)
    else:
        _safe_output(args.output).write_bytes(data)
        print(f"wrote {len(data)} bytes to {args.output}", file=sys.stderr)
    return 0


def cmd_delete(args) -> int:
    chosen = {k: getattr(args, k) for k in ("patient", "study", "series", "instance") if getattr(args, k)}
    if len(chosen) != 1:
        raise PacsError("delete needs exactly one of --patient, --study, --series, --instance")
    with open_for(args) as arc:
        n = arc.delete(**chosen)
    print(f"deleted {n} instance{'s' if n != 1 else ''}")
    return 0


def cmd_stats(args) -> int:
    with open_for(args, readonly=True) as arc:
        stats = arc.stats()
    if args.json:
        print(json.dumps(stats, indent=1))
    else:
        for k, v in stats.items():
            print(f"{k:24} {v}")
    return 0


def cmd_init(args) -> int:
    """Create an empty archive (the commands that serve or read one never create it)."""
    from pathlib import Path

    if (Path(args.archive) / "index" / "data.mdb").exists():
        raise PacsError(f"{args.archive} already holds an archive (change its settings with `pacscore config`)")
    with open_for(args, create=True) as arc:
        if args.extra_tag:
            arc.configure(extra_tags=args.extra_tag)
        settings = arc.stored_settings()
    print(f"created an empty archive in {args.archive}: {json.dumps(settings, sort_keys=True)}")
    return 0


def cmd_config(args) -> int:
    """Show the settings the archive keeps, or change them (the only command that does)."""
    changes = parse_assignments(args.settings)
    for name in args.reset or []:
        changes[name] = None
    if "extra_tags" in changes:
        text = changes["extra_tags"] or ""
        changes["extra_tags"] = [t.strip() for t in text.split(",") if t.strip()]
    with open_for(args, readonly=not changes) as arc:
        if changes:
            if changes.get("blobs", "") is None:
                changes["blobs"] = None  # --reset blobs: back to file blobs inside the archive
            settings = arc.configure(progress=not args.quiet, **changes)
        else:
            settings = arc.stored_settings()
    print(json.dumps(settings, indent=1, sort_keys=True))
    return 0


def cmd_reindex(args) -> int:
    """Add or remove extra indexed attributes (added ones are backfilled from the index's
    records); with --compact, then rewrite the index compacted (Archive.compact)."""
    if not (args.add or args.remove or args.compact):
        raise PacsError("reindex needs --add TAG, --remove TAG or --compact")
    with open_for(args) as arc:
        if args.add or args.remove:
            current = [t for t in arc.extra_tags]
            removed = {parse_tag(t) for t in args.remove or []}
            wanted = [t for t in current if t not in removed] + [parse_tag(t) for t in args.add or []]
            settings = arc.configure(extra_tags=wanted, progress=not args.quiet)
            print("indexed extra attributes: " + (", ".join(settings["extra_tags"]) or "(none)"))
        if args.compact:
            report = arc.compact()
            print(
                f"index compacted: {report.bytes_before} -> {report.bytes_after} bytes"
                + (f" (dictionaries trained: {', '.join(report.trained)})" if report.trained else "")
            )
    return 0


def _add_maintenance(sub, archive_arg) -> None:
    p = sub.add_parser(
        "verify",
        help="check every entry against its blob; list orphan blobs",
        description="Exit status: 0 clean; 1 damaged (an instance cannot be read back "
        "intact); 2 error (no archive, bad arguments); 3 orphans only (nothing "
        "lost; --repair removes them); 4 degraded (every instance readable, but a "
        "mirror side lacks copies or cannot be reached).",
    )
    archive_arg(p)
    p.add_argument("--repair", action="store_true", help="remove orphan blobs")
    p.add_argument("--no-checksums", action="store_true", help="check sizes only")
    p.set_defaults(func=_cmd_verify)
    p = sub.add_parser("backup", help="hot backup into a folder (incremental)")
    archive_arg(p)
    p.add_argument("dest")
    p.add_argument("--quiet", "-q", action="store_true")
    p.set_defaults(func=_cmd_backup)
    p = sub.add_parser("restore", help="restore a backup into a new archive folder, then verify")
    p.add_argument("src")
    p.add_argument("folder")
    p.add_argument("--blobs", default=None)
    p.add_argument("--quiet", "-q", action="store_true")
    p.set_defaults(func=_cmd_restore)


def _cmd_verify(args) -> int:
    from .maintenance import verify

    with open_for(args, readonly=not args.repair) as arc:
        report = verify(arc, repair=args.repair, checksums=not args.no_checksums)
    print(report.summary())
    return report.exit_status


def _cmd_backup(args) -> int:
    from .maintenance import backup

    with open_for(args, readonly=True) as arc:
        print(backup(arc, args.dest, progress=not args.quiet))
    return 0


def _cmd_restore(args) -> int:
    from .recovery import restore

    archive, report = restore(args.src, args.folder, blobs=args.blobs, progress=not args.quiet)
    archive.close()
    print(report.summary())
    return report.exit_status


def _optional(
    sub,
    module: str,
    attr: str,
    extra: str,
    packages: tuple[str, ...],
    commands: tuple[str, ...],
    prog: str = "pacscore",
) -> None:
    """Add the ``commands`` that ``pacscore.<module>.<attr>(sub)`` registers, when the ``packages``
    (import names) of the ``extra`` are installed; otherwise add them anyway as commands that exit
    2 naming what to install, so that a missing extra is said, not a command silently gone.

    Only the named packages are looked up (without importing them), then the module is imported
    as any other: an ImportError raised by pacscore's own code is a bug and surfaces as one.
    """
    import importlib
    import importlib.util

    missing = [name for name in packages if importlib.util.find_spec(name) is None]
    if not missing:
        getattr(importlib.import_module(f"pacscore.{module}"), attr)(sub)
        return
    needs = " and ".join(missing)
    for command in commands:
        message = (
            f"{prog} {command}: needs {needs}, which {'is' if len(missing) == 1 else 'are'} not installed: "
            f'pip install "pacscore[{extra}]"'
        )
        # no argument starts with NUL, so every argument (--help, an option) lands in ``args``
        # and the command can say what to install instead of failing on a usage error
        p = sub.add_parser(
            command, help=f"(needs pacscore[{extra}])", description=message, prefix_chars="\0", add_help=False
        )
        p.add_argument("args", nargs="*")

        def refuse(args, message: str = message) -> int:
            print(message, file=sys.stderr)
            return 2

        p.set_defaults(func=refuse)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="pacscore", description="An embeddable PACS core.")
    parser.add_argument("-v", "--verbose", action="store_true", help="log what happens")
    sub = parser.add_subparsers(dest="command", required=True)

    def archive_arg(p):
        p.add_argument(
            "--archive",
            "-a",
            default=os.environ.get("PACSCORE_ARCHIVE", "archive"),
            help="archive folder (default: $PACSCORE_ARCHIVE or ./archive)",
        )
        p.add_argument("--blobs", default=None, help="blob store URL (default: file blobs in the archive)")

    p = sub.add_parser("ingest", help="store files and folders")
    archive_arg(p)
    p.add_argument("paths", nargs="+")
    p.add_argument("--workers", type=int, default=None)
    p.add_argument(
        "--dask",
        metavar="SCHEDULER",
        default=None,
        help="read, parse and put blobs on the workers of this Dask scheduler (tcp://host:8786); "
        "paths must be reachable from the workers, or s3:// URLs",
    )
    p.add_argument("--quiet", "-q", action="store_true")
    p.set_defaults(func=cmd_ingest)

    p = sub.add_parser("find", help="query: Keyword=value matches, Keyword= asks for it back")
    archive_arg(p)
    p.add_argument("--level", "-l", default="STUDY")
    p.add_argument("--model", "-m", default="STUDY", help="STUDY (Study Root), PATIENT (Patient Root)")
    p.add_argument("--limit", type=int, default=None)
    p.add_argument("--offset", type=int, default=0)
    p.add_argument("--json", action="store_true", help="DICOM JSON output")
    p.add_argument("--explain", action="store_true", help="show the plan instead of running the query")
    p.add_argument("--option", "-o", action="append", help="matching option, e.g. relational=true")
    p.add_argument("--wide", "-w", action="store_true", help="never cut long values (UIDs never are)")
    p.add_argument("keys", nargs="*", help="Keyword=value (matched) or Keyword= (returned); options may follow")
    p.set_defaults(func=cmd_find)

    p = sub.add_parser("get", help="write an instance's stored bytes")
    archive_arg(p)
    p.add_argument("uid")
    p.add_argument("--output", "-o", default=None)
    p.set_defaults(func=cmd_get)

    p = sub.add_parser("delete", help="delete a patient, study, series or instance")
    archive_arg(p)
    for level in ("patient", "study", "series", "instance"):
        p.add_argument(f"--{level}")
    p.set_defaults(func=cmd_delete)

    p = sub.add_parser("stats", help="counts and sizes")
    archive_arg(p)
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_stats)

    p = sub.add_parser("init", help="create an empty archive (to serve, or to configure before ingest)")
    archive_arg(p)
    p.add_argument("--extra-tag", action="append", metavar="TAG", help="an attribute to index beyond the defaults")
    p.set_defaults(func=cmd_init)

    p = sub.add_parser(
        "config",
        help="show or change the settings the archive keeps",
        description="Without NAME=VALUE: print the settings every open of the archive starts "
        "from. With them: change those settings (the only command that does). "
        "Names: blobs, on_conflict, uid_policy, extra_tags (comma-separated) and "
        "the matching options (docs/matching.md).",
    )
    archive_arg(p)
    p.add_argument("settings", nargs="*", metavar="NAME=VALUE")
    p.add_argument("--reset", action="append", metavar="NAME", help="set NAME back to its default")
    p.add_argument("--quiet", "-q", action="store_true")
    p.set_defaults(func=cmd_config)

    p = sub.add_parser("reindex", help="index more attributes (backfilled from the index's records) or fewer")
    archive_arg(p)
    p.add_argument("--add", action="append", metavar="TAG", help="keyword or tag to index, e.g. StationName")
    p.add_argument("--remove", action="append", metavar="TAG", help="keyword or tag to stop indexing")
    p.add_argument(
        "--compact",
        action="store_true",
        help="rewrite the index compacted: dictionaries retrained, values recompressed, pages full "
        "(the archive must not be open elsewhere)",
    )
    p.add_argument("--quiet", "-q", action="store_true")
    p.set_defaults(func=cmd_reindex)

    from .cli_workflow import add_workflow_cli
    from .cli_worklist import add_worklist_cli
    from .testing.cli import add_bench_cli
    from .viewer import add_viewer_cli

    _add_maintenance(sub, archive_arg)
    add_worklist_cli(sub, archive_arg)
    add_workflow_cli(sub, archive_arg)
    add_bench_cli(sub)
    add_viewer_cli(sub)
    _optional(sub, "testing.cli", "add_conformance_cli", "conformance", ("hypothesis",), ("conformance",))

    serve = sub.add_parser("serve", help="serve the archive over DICOM or HTTP")
    serve_sub = serve.add_subparsers(dest="protocol", required=True)
    _optional(serve_sub, "cli_serve", "add_dimse_cli", "dimse", ("pynetdicom",), ("dimse",), "pacscore serve")
    _optional(serve_sub, "cli_serve", "add_web_cli", "web", ("starlette", "uvicorn"), ("web",), "pacscore serve")
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args, rest = parser.parse_known_args(argv)
    # keys may come after options (`find --level STUDY PatientID=1 --limit 5 Modality=`):
    # argparse leaves positionals that follow an option unparsed, so they join the keys here
    if rest and isinstance(getattr(args, "keys", None), list) and not any(r.startswith("-") for r in rest):
        args.keys += rest
    elif rest:
        parser.error(f"unrecognized arguments: {' '.join(rest)}")
    logging.basicConfig(
        level=logging.INFO if args.verbose else logging.WARNING, format="%(asctime)s %(name)s %(levelname)s %(message)s"
    )
    try:
        return int(args.func(args) or 0)
    except (PacsError, ValueError, KeyError) as exc:
        print(f"pacscore {args.command}: error: {exc}", file=sys.stderr)
        return 2
    except BrokenPipeError:
        return 0


if __name__ == "__main__":
    sys.exit(main())
