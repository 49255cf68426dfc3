"""The walks of secondary index entries, for the planner (query/plan.py).

``walk_range`` adds the values (entity keys) of a cursor's entries to a set while their keys
stay in the range, and gives up past ``cap`` of them; ``values_of`` copies a walk's values (one
key's duplicates) to bytes. ``pacscore._ext._ranges`` holds their compiled twins
(tests/test_impl_parity.py gives both the same walks); ``walk`` and ``values_of`` are whichever
is in use (the pure ones under ``PACSCORE_PURE=1``).
"""

from __future__ import annotations

from collections.abc import Iterable

from .. import _impl


def walk_range_pure(
    it: Iterable, head: bytes, lo: bytes, hi: bytes | None, prefix: bool, found: set[bytes], cap: int
) -> bool:
    """Add the values of ``it``'s (key, value) pairs to ``found`` while the key starts with
    ``lo`` (``prefix``) or starts with ``head`` and is at most ``hi``; False once ``found``
    holds more than ``cap`` values, else True."""
    for k, v in it:
        k = bytes(k)
        if prefix and not k.startswith(lo):
            return True
        if not prefix and (not k.startswith(head) or k > hi):  # type: ignore[operator]  # hi is set unless prefix
            return True
        found.add(bytes(v))
        if len(found) > cap:
            return False
    return True


def values_of_pure(it: Iterable) -> list[bytes]:
    """The values of a cursor walk (buffers) as bytes, in order."""
    return list(map(bytes, it))


_compiled = _impl.compiled("_ranges")
walk = _compiled.walk_range if _compiled is not None else walk_range_pure
values_of = _compiled.values_of if _compiled is not None else values_of_pure

__all__ = ["values_of", "values_of_pure", "walk", "walk_range_pure"]
