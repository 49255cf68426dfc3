"""Secondary index keys: which attribute values of which level are looked up directly.

An entry is ``level byte + tag (4 bytes, big endian) + normalised value``. Values are normalised
so that the index can only over-propose (case-folded person names, trimmed values, 8-digit dates);
the matcher always decides. Entities with an empty or absent value get an entry with an empty
value, because such entities match every key by default (PS3.4 C.2.2.1.2).
"""
from __future__ import annotations

import struct

from .. import model, values
from .lmdb_index import LEVEL_BYTE

MAX_VALUE_BYTES = 400  # LMDB keys are at most 511 bytes

#: level -> tags indexed by default
DEFAULT_INDEXED: dict[str, tuple[int, ...]] = {
    "PATIENT": (model.T_PATIENT_ID, model.T_PATIENT_NAME, 0x00100030),
    "STUDY": (model.T_PATIENT_ID, model.T_PATIENT_NAME, 0x00080020, 0x00080050, model.T_MODALITIES_IN_STUDY,
              0x00200010, 0x00100030),
    "SERIES": (model.T_MODALITY, model.T_SERIES_UID),
    "IMAGE": (model.T_SOP_CLASS,),
}

TEXT_PADDED = ("LT", "ST", "UT", "UR")


def prefix(level: str, tag: int) -> bytes:
    return LEVEL_BYTE[level] + struct.pack(">I", tag)


def normalise_pn(value: str) -> str:
    """The case-folded Alphabetic group, normalised as the matcher normalises it."""
    groups = values.pn_groups(value)
    return values.fold_case(values.nfc(groups[0] if groups else ""))


def normalise(vr: str, value: str) -> list[str]:
    """The index forms of one stored attribute value (one per value of a multi-valued one)."""
    if vr in TEXT_PADDED:
        values = [value.rstrip(" ")]
    else:
        values = [v.strip(" \x00") for v in value.split("\\")]
    if vr == "PN":
        values = [normalise_pn(v) for v in values]
    elif vr == "DA":
        # 8-digit dates sort chronologically; anything else goes with the empty entries, which
        # every plan visits, so the matcher still decides on it
        values = [v.replace(".", "") if len(v) == 10 and v[4] == v[7] == "." else v for v in values]
        values = [v if len(v) == 8 and v.isdigit() else "" for v in values]
    return values


def _encode(text: str) -> bytes:
    raw = text.encode("utf-8", "surrogatepass")
    return raw[:MAX_VALUE_BYTES]


def index_entries(level: str, rec: dict, extra: tuple[int, ...] | list[int] = ()) -> set[bytes]:
    out = set()
    for tag in (*DEFAULT_INDEXED.get(level, ()), *extra):
        field = rec.get(tag)
        head = prefix(level, tag)
        if field is None or field[0] == "SQ" or not field[1]:
            out.add(head)
            continue
        for v in normalise(field[0], field[1]):
            out.add(head + _encode(v))
    return out
