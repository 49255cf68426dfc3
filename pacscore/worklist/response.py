"""Response identifiers of a worklist query (PS3.4 K.4.1.1.3, C.4.1.1.3.2): the requested keys
of each matching item, zero length when the item lacks them.

A sequence key with items asks for those item attributes: the Scheduled Procedure Step
Sequence then holds the matched steps, others every stored item, each with the requested
attributes only. A sequence key without items (or with an empty one) asks for the whole
stored sequence.
"""

from __future__ import annotations

from pydicom.datadict import tag_for_keyword

from .. import model
from . import items
from .match import WorklistQuery

CHARSET = {"vr": "CS", "Value": ["ISO_IR 192"]}  # the values are Unicode (kept as UTF-8)


def _tag(name: str) -> int:
    tag = tag_for_keyword(name)
    return tag if tag is not None else int(name, 16)


def _requested_items(key_value: object) -> list[int] | None:
    """The item attributes a sequence key asks for; None for the whole sequence."""
    if not isinstance(key_value, list) or not key_value or not key_value[0]:
        return None
    return [_tag(name) for name in key_value[0]]


def _restrict(stored_items: list, requested: list[int] | None) -> list:
    if requested is None:
        return list(stored_items)
    out = []
    for item in stored_items:
        out.append({f"{t:08X}": item.get(f"{t:08X}") or {"vr": model.vr_of(t)} for t in sorted(requested)})
    return out


def build(query: WorklistQuery, data: dict, steps: list[int]) -> dict:
    """The response identifier, as DICOM JSON, of the stored item ``data`` whose scheduled
    steps ``steps`` matched."""
    out: dict[str, dict] = {f"{items.T_CHARSET:08X}": CHARSET}
    for key in query.keys:
        name = f"{key.tag:08X}"
        stored = data.get(name)
        if key.vr == "SQ":
            stored_items = (stored or {}).get("Value") or []
            if key.tag == items.SPS:
                stored_items = [stored_items[i] for i in steps]
            chosen = _restrict(stored_items, _requested_items(key.value))
            out[name] = {"vr": "SQ", "Value": chosen} if chosen else {"vr": "SQ"}
        elif stored is not None:
            out[name] = stored
        elif key.tag != model.T_TZ:  # never sent with zero length (docs/matching.md §9)
            out[name] = {"vr": key.vr if key.vr != "UN" else "LO"}
    return dict(sorted(out.items()))
