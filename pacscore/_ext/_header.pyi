"""Type stubs of the compiled header reader (the twin of pacscore/ingest.py's pydicom path)."""

from collections.abc import Callable
from typing import Any

class Declined(Exception): ...

def read_data_set(
    data: bytes,
    pos: int,
    implicit: bool,
    charset: Any,
    level_of: dict[int, int],
    skip: frozenset[int],
    vr_of: Callable[[int], str],
    keyword_of: Callable[[int], str],
    bulk_threshold: int,
) -> tuple | None: ...
def read_file(
    data: bytes,
    charset: Any,
    level_of: dict[int, int],
    skip: frozenset[int],
    vr_of: Callable[[int], str],
    keyword_of: Callable[[int], str],
    bulk_threshold: int,
) -> tuple | None: ...
