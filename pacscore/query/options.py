"""Matching options: the choices PS3.4 leaves open or makes negotiable (docs/matching.md §6).

The names are those of the matching vectors (tests/vectors/matching.json); the same names are accepted by
``pacscore.match``, ``Archive.find`` / ``count`` and as archive defaults.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, fields
from typing import Any

from ..errors import QueryError

INVALID_KEY_POLICIES = ("nomatch", "error")


@dataclass(frozen=True)
class MatchOptions:
    """Settings of the matcher; the defaults are those of docs/matching.md §6."""

    #: PN single-value and wildcard matching ignore case (Unicode casefold).
    pn_case_insensitive: bool = True
    #: A key without '=' may match any component group, not only the Alphabetic one.
    pn_match_all_groups: bool = False
    #: Fuzzy semantic PN matching was requested; pacscore answers literally (QIDO warns).
    fuzzy_pn: bool = False
    #: DA and TM range keys of the same form are matched as one DT range (C.2.2.2.5.4).
    combined_datetime: bool = False
    #: Multi-valued keys need every key value to match (C.2.2.2.8); OR otherwise.
    multiple_value_matching: bool = False
    #: A key of "" (two QUOTATION MARKs) matches only empty or absent values (C.2.2.2.7).
    empty_value_matching: bool = False
    #: Empty or absent stored values match any non-universal key (C.2.2.1.2).
    empty_record_matches: bool = True
    #: Relational queries (C.4.1.2.2): keys at any level.
    relational: bool = False
    #: Timezone query adjustment: TimezoneOffsetFromUTC in the key moves key times to UTC.
    timezone_adjustment: bool = False
    #: The timezone of DT values without an offset ("+HHMM"/"-HHMM").
    local_timezone: str = "+0000"
    #: What a malformed key does: "nomatch" (match nothing, log a warning) or "error" (QueryError).
    invalid_keys: str = "nomatch"

    def __post_init__(self) -> None:
        if self.invalid_keys not in INVALID_KEY_POLICIES:
            raise QueryError("invalid_keys", f"must be one of {INVALID_KEY_POLICIES}, not {self.invalid_keys!r}")

    @classmethod
    def names(cls) -> tuple[str, ...]:
        return _NAMES

    def replace(self, **changes: Any) -> MatchOptions:
        """A copy with ``changes``; unknown names raise QueryError naming them.

        Every query with options makes one; the copies of the same options with the same
        changes are equal and immutable, so they are kept (a few dozen at most in practice)."""
        key: tuple | None
        try:
            key = (self, tuple(sorted(changes.items())))
            hit = _REPLACED.get(key)
        except TypeError:  # an unhashable value: no reuse
            key = hit = None
        if hit is not None:
            return hit
        unknown = sorted(set(changes) - set(_NAMES))
        if unknown:
            raise QueryError(unknown[0], f"unknown matching option (known: {', '.join(_NAMES)})")
        out = dataclasses.replace(self, **changes)
        if key is not None and len(_REPLACED) < 256:
            _REPLACED[key] = out
        return out

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)


_NAMES = tuple(f.name for f in fields(MatchOptions))
_REPLACED: dict[tuple, MatchOptions] = {}

DEFAULT_OPTIONS = MatchOptions()
