"""One DICOM JSON response row straight from raw records (pure-Python twin).

A QIDO-RS answer or ``find(format="json")`` may hold thousands of rows, and building them was
most of a broad query's time. ``ResultBuilder`` compiles, once per query, a *row plan*: one
spec per attribute of the response, in output (tag) order, saying where its value comes from.
``json_row(specs, recs, match)`` then reads each field from the raw record bytes and builds
its JSON attribute; ``RowPlan`` holds a query's specs for its rows. ``pacscore._ext._records``
has the compiled twins; both give the same rows (tests/test_impl_parity.py).

Specs (tuples, the first item says the kind):

- ``(CONSTANT, hexkey, vr, text)``: a fixed value (SpecificCharacterSet, QueryRetrieveLevel);
- ``(UNIQUE, hexkey, rec_index, tag, vr)``: a unique key the identifier did not ask for, always
  sent with ``vr``; empty when the record or the field is missing;
- ``(KEY, hexkey, rec_index, tag, vr)``: a key of the identifier; the stored VR wins when the
  key's is UN, when it is SQ, or when they agree (see ``out_vr``);
- ``(CALL, hexkey, fn)``: ``fn(match)`` gives the attribute, or None to leave it out (time zone
  offsets, filtered sequences).
"""

from __future__ import annotations

from ..index import records as pure_records
from .kinds import SpecKind

CONSTANT, UNIQUE, KEY, CALL = SpecKind.CONSTANT, SpecKind.UNIQUE, SpecKind.KEY, SpecKind.CALL


def out_vr(key_vr: str, stored_vr: str) -> str:
    """The VR a returned key is sent with (the rule of ``ResultBuilder.fields``)."""
    return stored_vr if key_vr == "UN" or stored_vr == "SQ" or key_vr == stored_vr else key_vr


def json_row(specs: tuple, recs: tuple, match, attribute, get=pure_records.get) -> dict:
    """The response row for one match; ``recs[i]`` is the raw record of level i or None;
    ``attribute(vr, value)`` builds one attribute (``results.json_attribute``)."""
    out = {}
    for spec in specs:
        kind = spec[0]
        if kind == CONSTANT:
            out[spec[1]] = attribute(spec[2], spec[3])
        elif kind == CALL:
            attr = spec[2](match)
            if attr is not None:
                out[spec[1]] = attr
        else:
            _, hexkey, index, tag, vr = spec
            rec = recs[index]
            field = get(rec, tag) if rec is not None else None
            if kind == UNIQUE:
                out[hexkey] = attribute(vr, (field[1] if field is not None else None) or "")
            elif field is None:
                out[hexkey] = attribute(vr, [] if vr == "SQ" else "")
            else:
                out[hexkey] = attribute(out_vr(vr, field[0]), field[1])
    return out


def json_rows(specs: tuple, records: list, attribute, get=pure_records.get) -> list[dict]:
    """The rows of matches whose every attribute comes from their own record (specs without
    CALL, any record index): one row per raw record of ``records``."""
    width = 1 + max((spec[2] for spec in specs if spec[0] in (UNIQUE, KEY)), default=0)
    return [json_row(specs, (rec,) * width, None, attribute, get) for rec in records]


class RowPlan:
    """The rows of one query's specs: ``row(recs, match)`` is ``json_row``, ``rows(records)``
    is ``json_rows``. ``pacscore._ext._records.RowPlan`` is the compiled twin, which reads the
    specs once when it is made instead of once per row."""

    def __init__(self, specs: tuple, attribute) -> None:
        self.specs, self.attribute = specs, attribute

    def row(self, recs: tuple, match) -> dict:
        return json_row(self.specs, recs, match, self.attribute)

    def rows(self, records: list) -> list[dict]:
        return json_rows(self.specs, records, self.attribute)
