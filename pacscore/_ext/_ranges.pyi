"""Type stubs of the compiled index range walks (the twins in pacscore/query/ranges.py)."""

from collections.abc import Iterator
from typing import Any

def walk_range(
    it: Iterator[tuple[Any, Any]], head: bytes, lo: bytes, hi: bytes | None, prefix: bool, found: set[bytes], cap: int
) -> bool: ...
def values_of(it: Iterator[Any]) -> list[bytes]: ...
