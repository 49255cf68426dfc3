"""Identifier (dict or pydicom Dataset) -> Query: level, conditions per level, return keys.

This is where a malformed identifier is refused with a QueryError naming the attribute and the
reason; everything after it can trust the Query.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from pydicom.datadict import tag_for_keyword
from pydicom.dataset import Dataset

from .. import model
from ..errors import QueryError
from .conditions import Condition, compile_conditions
from .identifier_raw import fast_path_open, string_of
from .options import MatchOptions

_TAG_RE = re.compile(r"^\(?([0-9A-Fa-f]{4}),?([0-9A-Fa-f]{4})\)?$")
_NUMERIC_OK_VRS = frozenset({"IS", "DS", "US", "UL", "SS", "SL", "FL", "FD", "SV", "UV"})

#: keys the response sets itself (docs/matching.md §9), dropped from the identifier; the other
#: keys that are never matched (model.NEVER_MATCHED) are still returned
_META_KEYS = frozenset({model.T_QR_LEVEL, model.T_CHARSET})


@dataclass
class Key:
    tag: int
    keyword: str
    vr: str
    value: object  # str ("" = universal) or list of item dicts (SQ)
    level: str


@dataclass
class Query:
    level: str
    model: str
    options: MatchOptions
    levels: tuple[str, ...]  # the model's levels down to the target level
    keys: list[Key]  # every accepted key, in identifier order
    conditions: dict[str, list[Condition]] = field(default_factory=dict)
    timezone_offset: str | None = None
    ignored: list[str] = field(default_factory=list)  # keys below the level (not matched, not returned)

    @property
    def ancestors(self) -> tuple[str, ...]:
        return self.levels[:-1]

    def keys_at(self, level: str) -> list[Key]:
        return [k for k in self.keys if k.level == level]


def parse_tag(name: object) -> int:
    """A keyword, an 8-hex-digit tag, "(gggg,eeee)" or an int -> the tag number."""
    if isinstance(name, int) and not isinstance(name, bool):
        if 0 <= name <= 0xFFFFFFFF:
            return name
        raise QueryError(str(name), "not a DICOM tag")
    if hasattr(name, "group") and hasattr(name, "element"):
        return int(name)  # type: ignore[call-overload]  # duck-typed: a pydicom Tag or any tag-like object
    if not isinstance(name, str):
        raise QueryError(repr(name), "an attribute is named by its keyword or its tag")
    text = name.strip()
    tag = tag_for_keyword(text)
    if tag is not None:
        return tag
    m = _TAG_RE.match(text)
    if m:
        return int(m.group(1) + m.group(2), 16)
    raise QueryError(name, "unknown attribute keyword (not in the DICOM data dictionary)")


def _value_of(tag: int, vr: str, value: object, keyword: str) -> object:
    if value is None:
        return ""
    if isinstance(value, str):
        return value
    if vr == "SQ":
        if isinstance(value, Dataset):
            value = [value]
        if isinstance(value, dict):
            value = [value]
        if isinstance(value, (list, tuple)) and all(isinstance(i, (dict, Dataset)) for i in value):
            return [_item(i, keyword) for i in value]
        raise QueryError(keyword, "a sequence key is a list of item dicts (keyword -> value)")
    if isinstance(value, (int, float)) and not isinstance(value, bool) and vr in _NUMERIC_OK_VRS:
        return str(value)
    if isinstance(value, (list, tuple)) and all(isinstance(v, str) for v in value):
        return "\\".join(value)
    raise QueryError(keyword, f"a {vr} key value must be a string, not {type(value).__name__}")


def _item(item: dict | Dataset, parent: str) -> dict:
    if isinstance(item, Dataset):
        return dataset_items(item)
    out = {}
    for name, value in item.items():
        tag = parse_tag(name)
        kw = model.keyword_of(tag)
        out[kw] = _value_of(tag, model.vr_of(tag), value, f"{parent}>{kw}")
    return out


def dataset_items(ds: Dataset) -> dict:
    """A pydicom Dataset as keyword -> DICOM string (or list of items for SQ)."""
    out = {}
    for elem in ds:
        kw = elem.keyword or f"{int(elem.tag):08X}"
        out[kw] = element_string(elem)
    return out


def element_string(elem) -> object:
    if elem.VR == "SQ":
        return [dataset_items(item) for item in elem.value]
    value = elem.value
    if value is None:
        return ""
    if isinstance(value, bytes):
        return value.decode("latin-1")
    if isinstance(value, str):
        return value
    if type(value).__name__ == "MultiValue" or isinstance(value, (list, tuple)):
        return "\\".join("" if v is None else str(v) for v in value)
    return str(value)


def identifier_items(identifier: object) -> tuple[list[tuple[int, object]], str | None]:
    """(tag, raw value) pairs and the QueryRetrieveLevel found in the identifier."""
    if isinstance(identifier, Dataset):
        pairs: list[tuple[int, object]] = []
        fast = fast_path_open(identifier)
        for element_tag in list(identifier.keys()):
            if fast:  # the value straight from the raw bytes when that gives pydicom's answer
                text = string_of(identifier.get_item(element_tag, keep_deferred=True))
                if text is not None:
                    pairs.append((int(element_tag), text))
                    continue
            try:
                elem = identifier[element_tag]
                pairs.append((int(elem.tag), element_string(elem)))
            except Exception as exc:  # pydicom cannot decode the value: a malformed identifier
                raise QueryError(
                    model.keyword_of(int(element_tag)), f"cannot decode the value: {type(exc).__name__}: {exc}"
                ) from None
    elif isinstance(identifier, dict):
        pairs = [(parse_tag(k), v) for k, v in identifier.items()]
    else:
        raise QueryError(None, f"an identifier is a dict or a pydicom Dataset, not {type(identifier).__name__}")
    level = None
    seen = set()
    for tag, value in pairs:
        if tag in seen:
            raise QueryError(model.keyword_of(tag), "attribute given twice")
        seen.add(tag)
        if tag == model.T_QR_LEVEL:
            if not isinstance(value, str):
                raise QueryError("QueryRetrieveLevel", "must be a string")
            level = value.strip() or None
    return pairs, level


def build_query(identifier: object, level: str | None, model_name: str, options: MatchOptions) -> Query:
    mdl = model.normalise_model(model_name)
    pairs, id_level = identifier_items(identifier)
    if level is None:
        if id_level is None:
            raise QueryError(
                "QueryRetrieveLevel", "no query level: pass level= or put QueryRetrieveLevel in the identifier"
            )
        level = id_level
    target = model.normalise_level(level, mdl)
    levels = model.MODELS[mdl][: model.MODELS[mdl].index(target) + 1]
    query = Query(level=target, model=mdl, options=options, levels=levels, keys=[])
    for tag, raw in pairs:
        if tag >> 16 in (0x0000, 0x0002) or tag in _META_KEYS:
            continue
        keyword = model.keyword_of(tag)
        vr = model.vr_of(tag)
        value = _value_of(tag, vr, raw, keyword)
        if tag == model.T_TZ:
            if isinstance(value, str) and value.strip():
                query.timezone_offset = value.strip()
            query.keys.append(Key(tag, keyword, vr, value, target))  # returned, never matched
            continue
        klevel = model.query_level(tag, mdl)
        if klevel not in levels:
            if model.LEVELS.index(klevel) > model.LEVELS.index(target) or mdl == "PATIENT_STUDY_ONLY":
                query.ignored.append(keyword)
                continue
            klevel = levels[0]  # e.g. a computed patient count asked in Study Root: no such level
            query.ignored.append(keyword)
            continue
        if tag == model.UNIQUE_KEY[klevel] and isinstance(value, str) and value.strip() in ("*", "?*", "*?"):
            value = ""  # '*' on a unique key means "all" (docs/matching.md §9; vector HIE-018)
        query.keys.append(Key(tag, keyword, vr, value, klevel))
    _check_hierarchy(query)
    for lvl in levels:
        specs = [(k.keyword, k.tag, k.vr, k.value) for k in query.keys_at(lvl) if k.tag != model.T_TZ]
        query.conditions[lvl] = compile_conditions(specs, options, timezone_offset=query.timezone_offset)
    return query


def _check_hierarchy(query: Query) -> None:
    """Baseline (hierarchical) queries need a key of every level above the query level.

    PS3.4 C.4.1.2.1 wants a single unique key value per upper level. pacscore accepts an upper
    level that carries any key (its keys then filter the ancestors, as a relational query would,
    vector HIE-017) and refuses an upper level with no key at all unless relational queries were
    asked for (vector HIE-005).
    """
    if query.options.relational:
        return
    for lvl in query.ancestors:
        if not query.keys_at(lvl):
            unique = model.keyword_of(model.UNIQUE_KEY[lvl])
            raise QueryError(
                unique,
                f"a hierarchical {query.level} query needs the {unique} of the {lvl} level (or relational queries)",
            )
