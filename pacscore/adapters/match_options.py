"""Matching options for the adapters: ``--option NAME=VALUE`` and the ``find_options`` dicts.

The adapters pass these to every ``Archive.find`` / ``count`` they make, per query, so that a
server's choice (for example ``empty_record_matches=false``, docs/matching.md) does not depend
on what the archive folder was opened with. Names are those of ``MatchOptions``; a value of
``true`` / ``false`` is a bool, anything else stays a string (as ``pacscore find --option``).
"""

from __future__ import annotations

from ..settings import match_options, parse_assignments

#: what QIDO-RS decides per request, never a server-wide option: ``relational`` from the resource
#: searched (PS3.18 10.6.1), combined date-time matching always, and a key invalid for its VR
#: is a 400 (docs/conformance-dicomweb.md)
QIDO_FIXED = frozenset({"relational", "combined_datetime", "invalid_keys"})


def parse_option(text: str) -> tuple[str, object]:
    """``"empty_record_matches=false"`` -> ``("empty_record_matches", False)``; a ValueError
    (ConfigError) names what is wrong. Values are read as ``pacscore config`` reads them."""
    ((name, value),) = check_options(parse_assignments([str(text)])).items()
    return name, value


def check_options(options: dict | None, *, fixed: frozenset = frozenset()) -> dict:
    """A copy of ``options`` after checking every name and value against MatchOptions
    (a ValueError naming the option); names in ``fixed`` are the protocol's and refused."""
    options = dict(options or {})
    for name in options:
        if name in fixed:
            raise ValueError(f"matching option {name!r} is set per request by the protocol, not per server")
    match_options(options)
    return options


def option_argument(text: str) -> tuple[str, object]:
    """``parse_option`` as an argparse ``type`` (its message, not argparse's generic one)."""
    import argparse

    try:
        return parse_option(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


OPTION_HELP = (
    "a matching option for every query, e.g. empty_record_matches=false (repeatable; "
    "names as `pacscore find --option`, docs/matching.md)"
)

__all__ = ["parse_option", "check_options", "option_argument", "QIDO_FIXED", "OPTION_HELP"]
