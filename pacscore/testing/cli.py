"""``pacscore bench`` and ``pacscore conformance`` (wired by pacscore/cli.py).

Two functions, because the commands need different packages: bench runs on pacscore's core
dependencies, conformance needs Hypothesis.
"""

from __future__ import annotations

import importlib
from types import ModuleType

__all__ = ["add_bench_cli", "add_conformance_cli"]


def _add(sub, name: str, module: ModuleType, summary: str) -> None:
    """Register the command ``name`` whose arguments and ``main(args)`` live in ``module``."""
    p = sub.add_parser(name, help=summary, description=(module.__doc__ or "").split("\n\n")[0])
    module.add_arguments(p)
    p.set_defaults(func=module.main)


def add_conformance_cli(sub) -> None:
    """Register ``conformance`` on the ``pacscore`` subparsers (imports Hypothesis)."""
    module = importlib.import_module("pacscore.testing.conformance")
    _add(sub, "conformance", module, "differential test of a PACS's C-FIND/QIDO-RS matching rules")


def add_bench_cli(sub) -> None:
    """Register ``bench`` on the ``pacscore`` subparsers."""
    module = importlib.import_module("pacscore.testing.bench")
    _add(sub, "bench", module, "query throughput and latency of a PACS (the pacscore.testing.suite queries)")
