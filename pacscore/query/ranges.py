"""The walk of one secondary index range, for the planner (query/plan.py).

``walk_range`` adds the values (entity keys) of a cursor's entries to a set while their keys
stay in the range, and gives up past ``cap`` of them. ``pacscore._ext._ranges.walk_range`` is
its compiled twin (tests/test_impl_parity.py gives both the same walks); ``walk`` is whichever
is in use (the pure one under ``PACSCORE_PURE=1``).
"""
from __future__ import annotations

import os
from typing import Iterable


def walk_range_pure(it: Iterable, head: bytes, lo: bytes, hi: bytes | None, prefix: bool, found: set[bytes],
                    cap: int) -> bool:
    """Add the values of ``it``'s (key, value) pairs to ``found`` while the key starts with
    ``lo`` (``prefix``) or starts with ``head`` and is at most ``hi``; False once ``found``
    holds more than ``cap`` values, else True."""
    for k, v in it:
        k = bytes(k)
        if prefix and not k.startswith(lo):
            return True
        if not prefix and (not k.startswith(head) or k > hi):
            return True
        found.add(bytes(v))
        if len(found) > cap:
            return False
    return True


try:
    if os.environ.get("PACSCORE_PURE") == "1":
        raise ImportError("PACSCORE_PURE=1")
    from .._ext._ranges import walk_range as walk
except ImportError:  # pure install or forced pure
    walk = walk_range_pure

__all__ = ["walk", "walk_range_pure"]
