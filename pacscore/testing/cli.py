"""``pacscore bench`` and ``pacscore conformance`` (wired by pacscore/cli.py).

Two functions, because the commands need different packages: bench runs on pacscore's core
dependencies, conformance needs Hypothesis.
"""

from __future__ import annotations

__all__ = ["add_bench_cli", "add_conformance_cli"]


def _conformance(args) -> int:
    from .conformance import main

    return main(args)


def _bench(args) -> int:
    from .bench import main

    return main(args)


def add_conformance_cli(sub) -> None:
    """Register ``conformance`` on the ``pacscore`` subparsers (imports Hypothesis)."""
    from . import conformance

    p = sub.add_parser(
        "conformance",
        help="differential test of a PACS's C-FIND/QIDO-RS matching rules",
        description=(conformance.__doc__ or "").split("\n\n")[0],
    )
    conformance.add_arguments(p)
    p.set_defaults(func=_conformance)


def add_bench_cli(sub) -> None:
    """Register ``bench`` on the ``pacscore`` subparsers."""
    from . import bench

    p = sub.add_parser(
        "bench",
        help="query throughput and latency of a PACS (the pacscore.testing.suite queries)",
        description=(bench.__doc__ or "").split("\n\n")[0],
    )
    bench.add_arguments(p)
    p.set_defaults(func=_bench)
