"""``pacscore conformance`` and ``pacscore bench`` (wired by pacscore/cli.py through add_cli)."""
from __future__ import annotations

__all__ = ["add_cli"]


def _conformance(args) -> int:
    from .conformance import main
    return main(args)


def _bench(args) -> int:
    from .bench import main
    return main(args)


def add_cli(sub, archive_arg=None) -> None:
    """Register ``conformance`` and ``bench`` on the ``pacscore`` subparsers."""
    from . import bench, conformance

    p = sub.add_parser("conformance", help="differential test of a PACS's C-FIND/QIDO-RS matching rules",
                       description=(conformance.__doc__ or "").split("\n\n")[0])
    conformance.add_arguments(p)
    p.set_defaults(func=_conformance)

    p = sub.add_parser("bench", help="query throughput and latency of a PACS (the benchmarks/run.py suite)",
                       description=(bench.__doc__ or "").split("\n\n")[0])
    bench.add_arguments(p)
    p.set_defaults(func=_bench)
