"""Builds response identifiers (PS3.4 C.4.1.1.3.2) from matched records, in three formats.

``dataset`` builds pydicom Datasets (what DIMSE needs); ``json`` builds DICOM JSON dicts straight
from the records without pydicom (what QIDO-RS needs, and much cheaper); ``dict`` gives
keyword -> value. Only the page that is returned is ever built.
"""
from __future__ import annotations

import math
from typing import Callable

from pydicom.dataelem import DataElement, empty_value_for_VR
from pydicom.dataset import Dataset

from .. import model
from ..index import codec as records
from .conditions import compile_condition
from .execute import Match
from .keys import Key, Query

FORMATS = ("dataset", "json", "dict")
CHARSET = "ISO_IR 192"


def _item_vr(keyword: str) -> str:
    from pydicom.datadict import tag_for_keyword
    tag = tag_for_keyword(keyword)
    if tag is None:
        try:
            tag = int(keyword, 16)
        except ValueError:
            return "UN"
    return model.vr_of(tag)


class ResultBuilder:
    """Turns matches of one query into response identifiers of one format."""

    def __init__(self, query: Query, fmt: str) -> None:
        self.query = query
        self.fmt = fmt
        self.render: Callable = {"dataset": self._dataset, "json": self._json, "dict": self._dict}[fmt]
        self._seq_filters = {}
        for key in query.keys:
            if key.vr == "SQ" and isinstance(key.value, list) and key.value and key.value[0]:
                cond = compile_condition(key.keyword, key.tag, "SQ", [key.value[0]], query.options)
                item_keys = list(key.value[0])
                self._seq_filters[key.tag] = (cond, item_keys)
        requested = {(k.tag) for k in query.keys}
        self._uniques = [(lvl, model.UNIQUE_KEY[lvl]) for lvl in query.levels
                         if model.UNIQUE_KEY[lvl] not in requested]

    def fields(self, match: Match) -> list[tuple[int, str, object]]:
        """(tag, vr, value) of the response; value "" when unknown."""
        out = [(model.T_CHARSET, "CS", CHARSET), (model.T_QR_LEVEL, "CS", self.query.level)]
        for lvl, tag in self._uniques:
            rec = match.records.get(lvl)
            value = records.get_value(rec, tag) if rec is not None else None
            out.append((tag, "LO" if lvl == "PATIENT" else "UI", value or ""))
        for key in self.query.keys:
            rec = match.records.get(key.level)
            field = records.get(rec, key.tag) if rec is not None else None
            if key.tag == model.T_TZ:
                if field is None or not field[1]:
                    rec = match.records.get(self.query.level)
                    field = records.get(rec, key.tag) if rec is not None else None
                if field is None or not field[1]:
                    continue  # never sent with zero length
            if field is None:
                out.append((key.tag, key.vr, [] if key.vr == "SQ" else ""))
                continue
            vr, value = field
            if vr == "SQ" and key.tag in self._seq_filters:
                cond, item_keys = self._seq_filters[key.tag]
                value = [{k: item.get(k, "") for k in item_keys} for item in value
                         if cond is None or cond.test([item])]
            out.append((key.tag, vr if key.vr in ("UN",) or vr == "SQ" or key.vr == vr else key.vr, value))
        out.sort(key=lambda f: f[0])
        return out

    def __call__(self, match: Match):
        return self.render(self.fields(match))

    # -- formats ----------------------------------------------------------------------------
    def _dict(self, fields) -> dict:
        return {model.keyword_of(tag): value for tag, vr, value in fields}

    def _json(self, fields) -> dict:
        return {f"{tag:08X}": json_attribute(vr, value) for tag, vr, value in fields}

    def _dataset(self, fields) -> Dataset:
        ds = Dataset()
        for tag, vr, value in fields:
            ds.add(_element(tag, vr, value))
        return ds


def _element(tag: int, vr: str, value: object) -> DataElement:
    if vr == "SQ":
        items = []
        for item in value or []:
            ids = Dataset()
            for kw, v in item.items():
                from pydicom.datadict import tag_for_keyword
                t = tag_for_keyword(kw)
                if t is None:
                    try:
                        t = int(kw, 16)
                    except ValueError:
                        continue
                ids.add(_element(t, model.vr_of(t) if model.vr_of(t) != "UN" else "LO", v))
            items.append(ids)
        return DataElement(tag, "SQ", items)
    if vr == "IN" or vr == "UN":
        vr = "LO"
    if value == "" or value is None:
        return DataElement(tag, vr, empty_value_for_VR(vr))
    if vr in ("US", "UL", "SS", "SL", "SV", "UV"):
        vals = [int(v) for v in str(value).split("\\") if v != ""]
        return DataElement(tag, vr, vals if len(vals) != 1 else vals[0])
    if vr in ("FL", "FD"):
        vals = [float(v) for v in str(value).split("\\") if v != ""]
        return DataElement(tag, vr, vals if len(vals) != 1 else vals[0])
    if vr == "AT":
        vals = [int(v, 16) for v in str(value).split("\\") if v]
        return DataElement(tag, vr, vals if len(vals) != 1 else vals[0])
    return DataElement(tag, vr, value)


def json_attribute(vr: str, value: object) -> dict:
    """One attribute in the DICOM JSON model (PS3.18 F.2)."""
    if vr == "IN":
        vr = "LO"
    if vr == "SQ":
        items = [{f"{_item_tag(k):08X}": json_attribute(_item_vr(k), v) for k, v in item.items()}
                 for item in (value or [])]
        return {"vr": "SQ", "Value": items} if items else {"vr": "SQ"}
    if value is None or value == "":
        return {"vr": vr}
    parts = [value] if vr in ("LT", "ST", "UT", "UR") else str(value).split("\\")
    if vr == "PN":
        vals = []
        for p in parts:
            if not p:
                vals.append(None)
                continue
            groups = p.split("=")
            obj = {}
            for name, g in zip(("Alphabetic", "Ideographic", "Phonetic"), groups):
                if g:
                    obj[name] = g
            vals.append(obj)
        return {"vr": vr, "Value": vals}
    if vr in ("IS", "SS", "SL", "US", "UL", "SV", "UV"):
        return {"vr": vr, "Value": [_number(p, int) for p in parts]}
    if vr in ("DS", "FL", "FD"):
        return {"vr": vr, "Value": [_number(p, float) for p in parts]}
    return {"vr": vr, "Value": [p if p != "" else None for p in parts]}


def _number(text: str, kind):
    text = text.strip()
    if not text:
        return None
    try:
        if kind is int:
            return int(text)
        f = float(text)
        if math.isfinite(f):
            return int(f) if f.is_integer() and "." not in text and "e" not in text.lower() else f
    except ValueError:
        pass
    return text


def _item_tag(keyword: str) -> int:
    from pydicom.datadict import tag_for_keyword
    tag = tag_for_keyword(keyword)
    return tag if tag is not None else int(keyword, 16)


__all__ = ["ResultBuilder", "FORMATS", "json_attribute", "Key"]
