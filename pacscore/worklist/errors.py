"""The worklist's error: a bad item or request, naming the attribute at fault."""

from __future__ import annotations

from ..errors import PacsError


class WorklistError(ValueError, PacsError):
    """A worklist item or request is refused: names the attribute (or key) and the reason."""

    def __init__(self, attribute: str | None, reason: str) -> None:
        self.attribute = attribute
        self.reason = reason
        super().__init__(f"{attribute}: {reason}" if attribute else reason)


class DuplicateItem(WorklistError):
    """An item with this key is already in the worklist (add with ``replace=True`` to replace it)."""
