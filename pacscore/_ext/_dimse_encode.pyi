"""Type stubs of the compiled C-FIND identifier encoder (the twin of pacscore/adapters/dimse_encode.py's
encode_fields_pure, encode_row_pure and EncodePlanPure)."""

from collections.abc import Iterable
from typing import Any

def encode_fields(fields: Iterable[tuple[int, str, Any]], explicit: bool) -> bytes: ...
def encode_row(
    fields: Iterable[tuple[int, str, Any]],
    explicit: bool,
    defaults: tuple[tuple[int, str, str], ...] = (),
    overrides: tuple[tuple[int, str, str], ...] = (),
) -> bytes: ...

class EncodePlan:
    def __init__(
        self,
        specs: tuple,
        explicit: bool,
        defaults: tuple[tuple[int, str, str], ...] = (),
        overrides: tuple[tuple[int, str, str], ...] = (),
    ) -> None: ...
    def row(self, recs: tuple) -> bytes: ...
