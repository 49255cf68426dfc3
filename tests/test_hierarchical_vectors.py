"""The "hierarchical" vectors of tests/vectors/matching.json, run through a real archive."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

import pacscore
from pacscore import QueryError

from .factories import make_instance

VECTORS = Path(__file__).resolve().parents[2] / "shared" / "vectors" / "matching.json"
if not VECTORS.exists():  # a checkout that carries its own copy
    VECTORS = Path(__file__).resolve().parent / "vectors" / "matching.json"
ALL = json.loads(VECTORS.read_text())
HIERARCHICAL = [v for v in ALL if v["type"] == "hierarchical"]


def expected(vector) -> bool:
    return vector["recommended"] if vector["expected"] == "impl" else vector["expected"]


@pytest.mark.parametrize("vector", HIERARCHICAL, ids=[v["id"] for v in HIERARCHICAL])
def test_hierarchical_vector(vector, tmp_path):
    value = vector["value"]
    attrs = {**value["patient"], **value["study"], **value["series"], **value["instance"]}
    ds = make_instance(
        sop=attrs.pop("SOPInstanceUID"),
        study=attrs.pop("StudyInstanceUID"),
        series=attrs.pop("SeriesInstanceUID"),
        patient_id=attrs.pop("PatientID"),
        patient_name=attrs.pop("PatientName", None),
        modality=attrs.pop("Modality", None),
        study_date=attrs.pop("StudyDate", None),
        study_time=None,
        instance_number=None,
        sop_class=attrs.pop("SOPClassUID", "1.2.840.10008.5.1.4.1.1.2"),
        **attrs,
    )
    key = dict(vector["key"])
    level = key.pop("QueryRetrieveLevel")
    model = {"PATIENT_ROOT": "PATIENT", "STUDY_ROOT": "STUDY"}[vector.get("model", "STUDY_ROOT")]
    with pacscore.open(tmp_path / "arc") as arc:
        arc.store(ds)
        try:
            found = arc.count(key, level=level, model=model, **(vector.get("options") or {}))
        except QueryError:
            found = 0  # refused (C-FIND A900/Cxxx): no match
    assert (found == 1) is expected(vector), vector["rule"]
