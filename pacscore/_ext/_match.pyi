"""Type stubs of the compiled matcher kernels (pacscore/query/fast.py builds them)."""

from collections.abc import Callable, Iterable, Iterator
from typing import Any

MODES: dict[str, int]

def wildcard_match(pattern: str, text: str) -> bool: ...
def safe_code_points() -> list[int]: ...

class FieldTest:
    tag: int
    empty: bool
    fallback: Callable[[Any], bool]
    def __init__(
        self,
        tag: int,
        mode: int,
        keys: Iterable[Any],
        empty: bool,
        strip_lead: bool,
        split: bool,
        fold: bool,
        fallback: Callable[[Any], bool],
        carets: Any = None,
    ) -> None: ...
    def test_record(self, rec: bytes) -> bool: ...
    def __call__(self, stored: Any) -> bool: ...

class CombinedTest:
    dtag: int
    ttag: int
    fallback: Callable[[Any, Any], bool]
    def __init__(
        self,
        dtag: int,
        ttag: int,
        lo: int | None,
        hi: int | None,
        offset: int,
        empty: bool,
        fallback: Callable[[Any, Any], bool],
    ) -> None: ...
    def test_record(self, rec: bytes) -> bool: ...
    def __call__(self, stored_date: Any, stored_time: Any = None) -> bool: ...

class RecordTest:
    def __init__(self, checks: Iterable[Any]) -> None: ...
    def __call__(self, rec: bytes | memoryview) -> bool: ...
    def scan(self, it: Iterator[tuple[Any, Any]], limit: int = 1024, keys: bool = True) -> list: ...
    def fetch(self, get: Callable[..., Any], keys: list[bytes], db: Any, with_keys: bool = True) -> list: ...
    def scan_segment(self, segment: bytes | memoryview, keys: bool = True) -> list: ...

def tm_floor(value: bytes) -> int | None: ...
def dt_floor(value: bytes, default_offset: int = 0) -> int | None: ...
