"""The settings an archive keeps in its index, and the rule that only an explicit call changes them.

An archive carries its configuration (like python-diskcache): where its blobs live, what a
conflicting store does, which non-default matching options its queries use. They are read at
every open. Arguments given to ``pacscore.open()`` or on a command line apply to that handle
only and are never written back: opening an archive once with ``empty_record_matches=False``
or ``--blobs X`` must not change what every later open sees. ``Archive.configure()`` and
``pacscore config`` are the only writers (docs/api.md, "Settings").

The extra indexed attributes are not kept here: they belong to the index itself
(index/extra_tags.py), because every writer and planner must agree on them.

A blob store URL is stored without secrets (``public_url``): credentials come from the
environment (for ``s3:``, boto3's usual chain) and never reach the index or a backup of it.
"""

from __future__ import annotations

import dataclasses
import urllib.parse
from dataclasses import dataclass, field
from typing import Any

from .errors import ConfigError
from .ingest import UID_POLICIES
from .query.options import MatchOptions

CONFLICT_POLICIES = ("replace", "keep", "error")

#: query parameters of a blob store URL that carry secrets (never persisted)
SECRET_PARAMS = frozenset(
    {
        "aws_access_key_id",
        "aws_secret_access_key",
        "aws_session_token",
        "password",
        "secret",
        "token",
        "access_key",
        "secret_key",
        "key",
    }
)


@dataclass(frozen=True)
class Settings:
    """One archive's settings; ``Archive.settings`` holds the ones a handle runs with."""

    #: blob store URL (None: file blobs inside the archive folder)
    blobs: str | None = None
    #: a store of a SOP Instance UID already stored with other bytes: replace, keep or error
    on_conflict: str = "replace"
    #: "lenient" stores any non-empty UID; "strict" rejects UIDs that are not digits and dots
    uid_policy: str = "lenient"
    #: matching options that differ from the defaults (docs/matching.md)
    options: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.on_conflict not in CONFLICT_POLICIES:
            raise ConfigError("on_conflict", f"must be one of {', '.join(CONFLICT_POLICIES)}, not {self.on_conflict!r}")
        if self.uid_policy not in UID_POLICIES:
            raise ConfigError("uid_policy", f"must be one of {', '.join(UID_POLICIES)}, not {self.uid_policy!r}")
        if self.blobs is not None and not isinstance(self.blobs, str):
            raise ConfigError("blobs", f"a blob store URL is a str, not {type(self.blobs).__name__}")
        match_options(self.options)  # names and values checked now, not at the first query

    def to_json(self) -> dict:
        """What the index keeps: non-default values only, the blob URL without secrets."""
        out: dict[str, Any] = {}
        if self.blobs is not None:
            out["blobs"] = public_url(self.blobs)
        for name in ("on_conflict", "uid_policy"):
            if getattr(self, name) != getattr(DEFAULT, name):
                out[name] = getattr(self, name)
        options = non_default_options(self.options)
        if options:
            out["options"] = options
        return out

    @classmethod
    def from_json(cls, data: dict) -> Settings:
        known = {f.name for f in dataclasses.fields(cls)}
        return cls(**{k: v for k, v in data.items() if k in known})

    def replace(self, **changes: Any) -> Settings:
        return dataclasses.replace(self, **changes)


def match_options(options: dict[str, Any]) -> MatchOptions:
    """``options`` as MatchOptions; a ConfigError names an unknown option or a value of the wrong type."""
    defaults = MatchOptions()
    for name, value in options.items():
        if name not in MatchOptions.names():
            raise ConfigError(name, f"unknown matching option (known: {', '.join(MatchOptions.names())})")
        expected = type(getattr(defaults, name))
        if not isinstance(value, expected):
            wanted = "true or false" if expected is bool else f"a {expected.__name__}"
            raise ConfigError(name, f"must be {wanted}, not {value!r}")
    try:
        return defaults.replace(**options)
    except ValueError as exc:
        raise ConfigError(None, str(exc)) from None


DEFAULT = Settings()


def non_default_options(options: dict[str, Any]) -> dict[str, Any]:
    defaults = MatchOptions()
    return {k: v for k, v in sorted(options.items()) if v != getattr(defaults, k)}


def parse_value(name: str, text: str) -> Any:
    """A setting or matching option given as text (``pacscore config``, ``--option``), typed by
    the option's default: ``true``/``false`` for flags, the text itself otherwise."""
    if name in MatchOptions.names() and isinstance(getattr(MatchOptions(), name), bool):
        lowered = text.strip().lower()
        if lowered in ("true", "1", "yes", "on"):
            return True
        if lowered in ("false", "0", "no", "off"):
            return False
        raise ConfigError(name, f"must be true or false, not {text!r}")
    return text


def parse_assignments(pairs: list[str]) -> dict[str, Any]:
    """``NAME=VALUE`` texts to a dict of typed values; a ConfigError names a malformed one."""
    out: dict[str, Any] = {}
    for pair in pairs:
        name, sep, value = pair.partition("=")
        name = name.strip()
        if not sep or not name:
            raise ConfigError(pair, "write NAME=VALUE")
        out[name] = parse_value(name, value)
    return out


def public_url(url: str) -> str:
    """A blob store URL without credentials: no user or password in its authority and none of
    the secret query parameters (each side of a ``mirror:`` URL likewise)."""
    scheme, sep, rest = url.partition(":")
    if scheme.lower() == "mirror" and sep:
        return "mirror:" + "|".join(public_url(part) for part in rest.split("|"))
    parts = urllib.parse.urlsplit(url)
    netloc = parts.netloc.rpartition("@")[2] if "@" in parts.netloc else parts.netloc
    query = urllib.parse.urlencode(
        [
            (k, v)
            for k, v in urllib.parse.parse_qsl(parts.query, keep_blank_values=True)
            if k.lower() not in SECRET_PARAMS
        ]
    )
    if netloc == parts.netloc and query == parts.query:
        return url  # nothing secret: keep the URL exactly as written
    return urllib.parse.urlunsplit((parts.scheme, netloc, parts.path, query, parts.fragment))


def has_secrets(url: str) -> bool:
    return public_url(url) != url
