"""The error types of pacscore.

Every error a caller can act on derives from PacsError; each concrete error also subclasses the
builtin a caller would expect (a bad query is a ValueError, a missing instance a KeyError).
"""


class PacsError(Exception):
    """Base class of every pacscore error."""


class IngestError(ValueError, PacsError):
    """An instance could not be stored: names the source and the reason."""

    def __init__(self, source: object, reason: str) -> None:
        self.source = source
        self.reason = reason
        super().__init__(f"{source}: {reason}" if source is not None else reason)


class QueryError(ValueError, PacsError):
    """An identifier or key is malformed: names the attribute and the reason."""

    def __init__(self, attribute: str | None, reason: str) -> None:
        self.attribute = attribute
        self.reason = reason
        super().__init__(f"{attribute}: {reason}" if attribute else reason)


class NotFound(KeyError, PacsError):
    """No stored entity has the requested identifier."""

    def __str__(self) -> str:  # KeyError quotes its argument; keep the message readable
        return str(self.args[0]) if self.args else "not found"


class StorageError(OSError, PacsError):
    """The index or a blob store failed to read or write (disk full, corruption, ...)."""


class ConfigError(ValueError, PacsError):
    """A setting or option is unknown or has a bad value: names it and the reason."""

    def __init__(self, setting: str | None, reason: str) -> None:
        self.setting = setting
        self.reason = reason
        super().__init__(f"{setting}: {reason}" if setting else reason)


class ArchiveNotFound(NotFound):
    """The folder holds no archive (and the caller asked not to create one)."""
