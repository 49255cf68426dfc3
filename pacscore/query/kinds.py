"""Small closed sets of names the query layer passes around, as enums instead of bare strings
and ints: a typo is an AttributeError at import, not a branch that silently never matches.

They are ``StrEnum`` / ``IntEnum``, so they compare equal to the strings and ints that logs,
``Archive.explain`` and the compiled row builder (``_ext/_records.pyx``, C ints) see.
"""

from __future__ import annotations

from enum import IntEnum, StrEnum


class ConditionKind(StrEnum):
    """How a compiled condition matches (docs/matching.md §2, the matching types of PS3.4 C.2.2.2)."""

    SINGLE = "single"
    UID_LIST = "uid_list"
    WILDCARD = "wildcard"
    RANGE = "range"
    SEQUENCE = "sequence"
    MULTI_VALUE = "multi_value"
    EMPTY_VALUE = "empty_value"
    COMBINED = "combined"  # a DA and a TM key matched as one DT range (C.2.2.2.5.4)
    NEVER = "never"  # an invalid key under invalid_keys="nomatch": matches nothing


class PlanKind(StrEnum):
    """The access path the planner chose (query/plan.py)."""

    UNIQUE = "unique"  # the level's unique key: direct lookups
    NAVIGATE = "navigate"  # down the children lists from an ancestor's unique key
    INDEX = "index"  # candidates from the secondary index
    SCAN = "scan"  # every record of the level (scan segments)


class SpecKind(IntEnum):
    """What one attribute of a response row comes from (query/json_rows.py)."""

    CONSTANT = 0  # a fixed value: SpecificCharacterSet, QueryRetrieveLevel
    UNIQUE = 1  # a unique key the identifier did not ask for
    KEY = 2  # a key of the identifier, read from a record
    CALL = 3  # built by a Python callable (sequences, computed values)


__all__ = ["ConditionKind", "PlanKind", "SpecKind"]
