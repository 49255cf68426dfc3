"""Builds response identifiers (PS3.4 C.4.1.1.3.2) from matched records, in three formats.

``dataset`` builds pydicom Datasets (what DIMSE needs); ``json`` builds DICOM JSON dicts straight
from the records without pydicom (what QIDO-RS needs, and much cheaper); ``dict`` gives
keyword -> value. Only the page that is returned is ever built.
"""

from __future__ import annotations

import gc
import math
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

from pydicom.dataelem import DataElement, empty_value_for_VR
from pydicom.dataset import Dataset

from .. import model
from ..index import codec as records
from ..index.layout import T_PARENT, T_STUDY
from ..values import TEXT_VRS
from . import json_rows
from .conditions import compile_condition
from .execute import Match
from .keys import Key, Query

#: the compiled row plan when the extension is in use, else the pure twin
_RowPlan = getattr(records.impl, "RowPlan", None) or json_rows.RowPlan

FORMATS = ("dataset", "json", "dict")
CHARSET = "ISO_IR 192"
#: (query level, ancestor level) -> the field of the query level's own record that holds the
#: ancestor's unique key (the writer keeps them equal): a row needs no ancestor read for it
_POINTERS = {("SERIES", "STUDY"): T_PARENT, ("IMAGE", "SERIES"): T_PARENT, ("IMAGE", "STUDY"): T_STUDY}
#: results built per pause of the cyclic GC (see ``gc_paused``)
RESULT_BATCH = 256


@contextmanager
def gc_paused() -> Iterator[None]:
    """No cyclic garbage collection inside the block (when it was on before).

    A broad query makes tens of thousands of small containers (rows, their value lists), none
    of them garbage, and each 700 of them start a collection that walks the young ones again:
    measured at half the time of 4,036 JSON rows. Pausing for one bounded batch of results
    removes that; reference counting still frees everything as usual."""
    if not gc.isenabled():
        yield
        return
    gc.disable()
    try:
        yield
    finally:
        gc.enable()


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
        self._uniques = [(lvl, model.UNIQUE_KEY[lvl]) for lvl in query.levels if model.UNIQUE_KEY[lvl] not in requested]
        if fmt == "json":
            self._specs, self._rec_levels = self._row_plan()
            self._rec_levels_read = tuple(lvl or query.level for lvl in self._rec_levels)
            self._rows = _RowPlan(self._specs, json_attribute)

    def fields(self, match: Match) -> list[tuple[int, str, object]]:
        """(tag, vr, value) of the response; value "" when unknown."""
        out: list[tuple[int, str, object]] = [
            (model.T_CHARSET, "CS", CHARSET),
            (model.T_QR_LEVEL, "CS", self.query.level),
        ]
        for lvl, tag in self._uniques:
            rec = match.record(lvl)
            value = records.get_value(rec, tag) if rec is not None else None
            out.append((tag, "LO" if lvl == "PATIENT" else "UI", value or ""))
        for key in self.query.keys:
            field = self._key_field(match, key)
            if field is not None:
                out.append(field)
        out.sort(key=lambda f: f[0])
        return out

    def _key_field(self, match: Match, key: Key) -> tuple[int, str, object] | None:
        """(tag, vr, value) of one key of the identifier; None when it is left out."""
        rec = match.record(key.level)
        field = records.get(rec, key.tag) if rec is not None else None
        if key.tag == model.T_TZ:
            if field is None or not field[1]:
                rec = match.record(self.query.level)
                field = records.get(rec, key.tag) if rec is not None else None
            if field is None or not field[1]:
                return None  # never sent with zero length
        if field is None:
            return (key.tag, key.vr, [] if key.vr == "SQ" else "")
        vr, value = field
        if vr == "SQ" and key.tag in self._seq_filters:
            cond, item_keys = self._seq_filters[key.tag]
            value = [{k: item.get(k, "") for k in item_keys} for item in value if cond is None or cond.test([item])]
        return (key.tag, json_rows.out_vr(key.vr, vr), value)

    # -- the JSON fast path ---------------------------------------------------------------
    def _row_plan(self) -> tuple[tuple, tuple[str | None, ...]]:
        """The specs of json_rows for this query, and the levels whose records they read."""
        levels = list(self.query.levels)
        own = levels.index(self.query.level)
        specs: list[tuple[int, tuple]] = [
            (model.T_CHARSET, (json_rows.CONSTANT, f"{model.T_CHARSET:08X}", "CS", CHARSET)),
            (model.T_QR_LEVEL, (json_rows.CONSTANT, f"{model.T_QR_LEVEL:08X}", "CS", self.query.level)),
        ]
        for lvl, tag in self._uniques:
            pointer = _POINTERS.get((self.query.level, lvl))
            if pointer is not None:
                specs.append((tag, (json_rows.UNIQUE, f"{tag:08X}", own, pointer, "UI")))
            else:
                specs.append(
                    (tag, (json_rows.UNIQUE, f"{tag:08X}", levels.index(lvl), tag, "LO" if lvl == "PATIENT" else "UI"))
                )
        for key in self.query.keys:
            pointer = _POINTERS.get((self.query.level, key.level))
            if key.tag == model.T_TZ or key.tag in self._seq_filters or key.level not in levels:
                specs.append((key.tag, (json_rows.CALL, f"{key.tag:08X}", self._key_json(key))))
            elif pointer is not None and key.tag == model.UNIQUE_KEY[key.level] and key.vr == "UI":
                # sent as UI whatever the pointer's internal VR (json_rows.out_vr keeps the key's)
                specs.append((key.tag, (json_rows.KEY, f"{key.tag:08X}", own, pointer, "UI")))
            else:
                specs.append((key.tag, (json_rows.KEY, f"{key.tag:08X}", levels.index(key.level), key.tag, key.vr)))
        specs.sort(key=lambda s: s[0])  # stable, like fields()
        used = {spec[2] for _, spec in specs if spec[0] in (json_rows.UNIQUE, json_rows.KEY)}
        return tuple(spec for _, spec in specs), tuple(lvl if i in used else None for i, lvl in enumerate(levels))

    def _key_json(self, key: Key) -> Callable:
        def attribute(match: Match):
            field = self._key_field(match, key)
            return None if field is None else json_attribute(field[1], field[2])

        return attribute

    def _json_match(self, match: Match) -> dict:
        # a slot no spec reads gets the query level's record (already read): any value does
        return self._rows.row(tuple(map(match.record, self._rec_levels_read)), match)

    def __call__(self, match: Match):
        if self.fmt == "json":
            return self._json_match(match)
        return self.render(self.fields(match))

    @property
    def own_record_rows(self) -> Callable[[list[bytes]], list[dict]] | None:
        """JSON rows from a list of the matches' own records, when every attribute of a row
        comes from the query level's own record (no ancestor, no sequence filter, no timezone
        rule); else None. The compiled twin builds a whole list in one loop."""
        if self.fmt != "json" or any(spec[0] == json_rows.CALL for spec in self._specs):
            return None
        if any(lvl not in (None, self.query.level) for lvl in self._rec_levels):
            return None
        return self._rows.rows

    @property
    def row(self) -> Callable[[Match], object]:
        """``self`` as a plain function of one match (what a result loop calls per match)."""
        return self._json_match if self.fmt == "json" else self

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


def _element(tag: int, vr: str, value: Any) -> DataElement:
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
        ints = [int(v) for v in str(value).split("\\") if v != ""]
        return DataElement(tag, vr, ints if len(ints) != 1 else ints[0])
    if vr in ("FL", "FD"):
        floats = [float(v) for v in str(value).split("\\") if v != ""]
        return DataElement(tag, vr, floats if len(floats) != 1 else floats[0])
    if vr == "AT":
        tags = [int(v, 16) for v in str(value).split("\\") if v]
        return DataElement(tag, vr, tags if len(tags) != 1 else tags[0])
    return DataElement(tag, vr, value)


def json_attribute(vr: str, value: Any) -> dict:
    """One attribute in the DICOM JSON model (PS3.18 F.2)."""
    if vr == "IN":
        vr = "LO"
    if vr == "SQ":
        items = [
            {f"{_item_tag(k):08X}": json_attribute(_item_vr(k), v) for k, v in item.items()} for item in (value or [])
        ]
        return {"vr": "SQ", "Value": items} if items else {"vr": "SQ"}
    if value is None or value == "":
        return {"vr": vr}
    parts = [value] if vr in TEXT_VRS else str(value).split("\\")
    if vr == "PN":
        vals: list[dict[str, str] | None] = []
        for p in parts:
            if not p:
                vals.append(None)
                continue
            groups = p.split("=")
            obj: dict[str, str] = {}
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
