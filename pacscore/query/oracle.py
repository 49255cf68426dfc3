"""``pacscore.match``: the reference matcher on one key and one stored value, for anyone who
implements the matching rules elsewhere (docs/matching.md).

It compiles the key as the archive does (query/conditions.py, on the rules of
query/reference.py) and tests the value with the reference alone: no index, no compiled kernel.
"""

from __future__ import annotations

from collections.abc import Mapping

from pydicom.datadict import dictionary_VR, keyword_for_tag, tag_for_keyword

from ..errors import QueryError
from ..model import NEVER_MATCHED
from .conditions import compile_condition, compile_conditions
from .options import DEFAULT_OPTIONS

DICOM_VRS = frozenset(
    "AE AS AT CS DA DS DT FD FL IS LO LT OB OD OF OL OV OW PN SH SL SQ SS ST SV TM UC UI UL UN UR US UT UV".split()
)
_SKIPPED = frozenset(keyword_for_tag(tag) for tag in NEVER_MATCHED)


def match(vr: str, key: object, value: object, item_vrs: Mapping[str, str] | None = None, **options: object) -> bool:
    """Does a stored ``value`` match ``key`` under PS3.4 C.2.2 (and pacscore's §9 choices)?

    ``value`` is a DICOM string, ``""`` (zero length), None (absent) or, for SQ, a list of item
    dicts. ``vr="combined"`` takes dicts keyword -> string for key and value (Specific Character
    Set and Timezone Offset From UTC are never matched). ``options`` are MatchOptions names;
    unknown names raise QueryError.

    >>> match("PN", "doe*", "Doe^John")
    True
    >>> match("DA", "20200101-20200131", "20200115")
    True
    """
    opts = DEFAULT_OPTIONS.replace(**options) if options else DEFAULT_OPTIONS
    if vr == "hierarchical":
        raise QueryError(None, "hierarchical cases need an archive: use Archive.find")
    if vr != "combined" and vr not in DICOM_VRS:
        raise QueryError(None, f"unknown VR {vr!r}")
    if vr != "combined":
        condition = compile_condition(f"({vr} key)", 0, vr, key, opts, item_vrs=dict(item_vrs or {}))
        return True if condition is None else condition.test(value)

    if not isinstance(key, Mapping) or not isinstance(value, Mapping):
        raise QueryError(None, "a combined key and value are dicts keyword -> value")
    keys = []
    for keyword, key_value in key.items():
        if keyword in _SKIPPED:
            continue
        tag = tag_for_keyword(keyword)
        if tag is None:
            raise QueryError(keyword, "unknown keyword")
        keys.append((keyword, tag, (item_vrs or {}).get(keyword) or dictionary_VR(tag), key_value))
    conditions = compile_conditions(keys, opts, timezone_offset=key.get("TimezoneOffsetFromUTC"))
    return all(c.test(*(value.get(keyword_for_tag(t)) for t in c.tags)) for c in conditions)


__all__ = ["match", "DICOM_VRS"]
