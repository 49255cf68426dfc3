"""The worklist matching vectors (tests/vectors/worklist.json), each through ``arc.worklist.find``.

A vector starts from the item of ``worklist_items.make_item`` (patient P1, a CT step on
2026-03-15 at 09:30 on station CT01), sets ``item`` and ``step`` attributes over it (null
removes one), and says whether ``key`` matches it."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

import pacscore

from .worklist_items import make_item

VECTORS = json.loads((Path(__file__).parent / "vectors" / "worklist.json").read_text(encoding="utf-8"))


def _set(ds, attributes: dict) -> None:
    for keyword, value in attributes.items():
        if value is None:
            delattr(ds, keyword)
        else:
            setattr(ds, keyword, value)


def test_the_vectors_have_unique_ids_and_cite_a_rule():
    assert len({v["id"] for v in VECTORS}) == len(VECTORS) >= 30
    assert all(v["rule"].startswith(("PS3.4", "docs/matching.md")) for v in VECTORS)
    zero_length = [v for v in VECTORS if "K.2.2.1.1.1" in v["rule"]]
    assert zero_length and not any(v["expected"] for v in zero_length)


@pytest.mark.parametrize("vector", VECTORS, ids=[v["id"] for v in VECTORS])
def test_worklist_vector(tmp_path, vector):
    item = make_item()
    _set(item, vector["item"])
    _set(item.ScheduledProcedureStepSequence[0], vector["step"])
    with pacscore.open(tmp_path / "arc") as arc:
        arc.worklist.add(item)
        found = arc.worklist.find({"PatientID": "", **vector["key"]}, **vector.get("options", {}))
    assert bool(found) is vector["expected"], vector["rule"]
