"""Secondary index keys: which attribute values of which level are looked up directly.

An entry is ``level byte + tag (4 bytes, big endian) + normalised value``. Values are normalised
so that the index can only over-propose (case-folded person names, trimmed values, 8-digit dates);
the matcher always decides. Entities with an empty or absent value get an entry with an empty
value (the bare prefix), because such entities match every key by default (PS3.4 C.2.2.1.2).
Since schema 4, a value the index cannot file under its text (a sequence, a date that is not
YYYYMMDD, a name without an alphabetic group, an empty or blank piece of a multi-valued value)
gets the prefix + ``UNINDEXABLE`` instead: every plan visits those, and visits the empty ones
only when an empty value can match the key (``empty_record_matches``). Since schema 6, TM and
DT values are filed by their first instant in a sortable form (index/timekeys.py), so that
time ranges are key ranges.
"""

from __future__ import annotations

import struct

from .. import model, values
from .layout import LEVEL_BYTE
from .timekeys import stored_form

#: VRs whose values are filed by their first instant (schema 6, index/timekeys.py)
TIME_VRS = frozenset({"TM", "DT"})
MAX_VALUE_BYTES = 400  # LMDB keys are at most 511 bytes
#: after a prefix: a value the index cannot file by its text (0xFF never occurs in UTF-8)
UNINDEXABLE = b"\xff"

#: level -> tags indexed by default
DEFAULT_INDEXED: dict[str, tuple[int, ...]] = {
    "PATIENT": (model.T_PATIENT_ID, model.T_PATIENT_NAME, 0x00100030),
    "STUDY": (
        model.T_PATIENT_ID,
        model.T_PATIENT_NAME,
        0x00080020,
        0x00080030,  # StudyTime, schema 6: time ranges (index/timekeys.py)
        0x00080050,
        model.T_MODALITIES_IN_STUDY,
        0x00200010,
        0x00100030,
    ),
    "SERIES": (model.T_MODALITY, model.T_SERIES_UID),
    "IMAGE": (model.T_SOP_CLASS,),
}


#: level -> LO attributes whose values are also indexed by their trigrams, so that a wild card
#: with a literal run of three or more characters (``*ESOPHAGUS*``) need not scan the level
GRAM_INDEXED: dict[str, tuple[int, ...]] = {
    "STUDY": (0x00081030,),  # StudyDescription
    "SERIES": (0x0008103E,),  # SeriesDescription
}
GRAM = 3


def prefix(level: str, tag: int) -> bytes:
    return LEVEL_BYTE[level] + struct.pack(">I", tag)


def normalise_pn(value: str) -> str:
    """The case-folded Alphabetic group, normalised as the matcher normalises it."""
    groups = values.pn_groups(value)
    return values.fold_case(values.nfc(groups[0] if groups else ""))


def normalise(vr: str, value: str) -> list[str]:
    """The index forms of one stored attribute value (one per value of a multi-valued one)."""
    if vr in values.TEXT_VRS:
        forms = [value.rstrip(" ")]
    else:
        forms = [v.strip(" \x00") for v in value.split("\\")]
    if vr == "PN":
        forms = [normalise_pn(v) for v in forms]
    elif vr == "DA":
        # 8-digit dates sort chronologically; anything else goes with the empty entries, which
        # every plan visits, so the matcher still decides on it
        forms = [v.replace(".", "") if len(v) == 10 and v[4] == v[7] == "." else v for v in forms]
        forms = [v if len(v) == 8 and v.isdigit() else "" for v in forms]
    elif vr in TIME_VRS:
        # schema 6: the sortable form of each value's first instant; an invalid one goes with
        # the values the index cannot file by text, which every plan visits
        forms = [stored_form(vr, v) if v else "" for v in forms]
    return forms


def _encode(text: str) -> bytes:
    raw = text.encode("utf-8", "surrogatepass")
    return raw[:MAX_VALUE_BYTES]


def gram_prefix(level: str, tag: int) -> bytes:
    """The key space of a tag's trigram entries: group FFFE, which no indexed attribute has."""
    return LEVEL_BYTE[level] + b"\xff\xfe" + struct.pack(">I", tag)


def grams(text: str) -> set[str]:
    """The trigrams (of code points) of one NFC value."""
    return {text[i : i + GRAM] for i in range(len(text) - GRAM + 1)}


def _is_text(field: tuple) -> bool:
    """A stored text value (not a sequence): what the index can file by its text."""
    return field[0] != "SQ" and isinstance(field[1], str)


def is_empty_gram_field(field: tuple | None) -> bool:
    """Absent, or one text value that is empty once stripped of its padding (what the wild
    card matcher takes for an empty value): what files under a bare trigram prefix."""
    return field is None or (_is_text(field) and "\\" not in field[1] and not values.strip_padding("LO", field[1]))


def gram_entries(level: str, rec: dict) -> set[bytes]:
    """Trigram entries of a record: for each value of a GRAM_INDEXED attribute, stripped of
    padding and in NFC as the wild card matcher sees it, its trigrams; an empty or absent value
    gets the bare prefix (visited when empty values can match), a non-text value the prefix +
    UNINDEXABLE (always visited; schema 4)."""
    out = set()
    for tag in GRAM_INDEXED.get(level, ()):
        head = gram_prefix(level, tag)
        field = rec.get(tag)
        if field is None or is_empty_gram_field(field):
            out.add(head)  # matches any key when empty values match (C.2.2.1.2)
            continue
        if not _is_text(field):
            out.add(head + UNINDEXABLE)
            continue
        for piece in field[1].split("\\"):
            for gram in grams(values.nfc(values.strip_padding("LO", piece))):
                out.add(head + _encode(gram))
    return out


def is_empty_field(field: tuple | None) -> bool:
    """Absent, or a text value of zero length: what files under the bare prefix."""
    return field is None or (field[0] != "SQ" and field[1] == "")


def index_entries(level: str, rec: dict, extra: tuple[int, ...] | list[int] = ()) -> set[bytes]:
    out = gram_entries(level, rec) if level in GRAM_INDEXED else set()
    for tag in (*DEFAULT_INDEXED.get(level, ()), *extra):
        out |= tag_entries(level, tag, rec.get(tag))
    return out


def tag_entries(level: str, tag: int, field: tuple | None) -> set[bytes]:
    """The entries of one indexed attribute of one record (its stored ``(vr, value)`` or None)."""
    head = prefix(level, tag)
    if field is None or is_empty_field(field):
        return {head}
    if not _is_text(field):
        return {head + UNINDEXABLE}
    vr, wanted = field[0], model.vr_of(tag)
    if vr != wanted and (vr in TIME_VRS or wanted in TIME_VRS):
        # keys are matched by the dictionary VR: a value sent under another VR (explicit VR)
        # is filed where the plan of the dictionary VR finds it, or apart; never by instant
        if wanted in TIME_VRS:
            return {head + UNINDEXABLE}
        vr = "UN"  # filed by its text, as the exact-value plans read it
    return {head + _encode(v) if v else head + UNINDEXABLE for v in normalise(vr, field[1])}
