"""Modality Worklist queries on a 2,000-item worklist (pytest-benchmark).

    pytest benchmarks/bench_worklist.py --benchmark-enable    # measure
    pytest benchmarks/bench_worklist.py                        # run once each, as plain tests

What a modality asks (its station and today's date: index entries), a week of steps (a date
range on the index), and a patient name pattern (no index entry: every item is tested). Each
benchmark asserts its answer.
"""

from __future__ import annotations

import pytest
from pydicom.dataset import Dataset

import pacscore

ITEMS = 2000
MODALITIES = ("CT", "MR", "US", "DX")


def _item(i: int) -> Dataset:
    ds = Dataset()
    ds.PatientName = f"Doe^Jane{i}" if i % 10 else f"Smith^John{i}"
    ds.PatientID = f"P{i:05d}"
    ds.AccessionNumber = f"A{i:05d}"
    ds.StudyInstanceUID = f"1.2.826.0.1.3680043.9.5.{i}"
    step = Dataset()
    step.Modality = MODALITIES[i % 4]
    step.ScheduledStationAETitle = f"ST{i % 20:02d}"
    step.ScheduledProcedureStepStartDate = f"202603{1 + i % 28:02d}"
    step.ScheduledProcedureStepStartTime = f"{8 + i % 10:02d}00"
    step.ScheduledProcedureStepID = f"S{i}"
    ds.ScheduledProcedureStepSequence = [step]
    return ds


@pytest.fixture(scope="module")
def worklist(tmp_path_factory):
    with pacscore.open(tmp_path_factory.mktemp("wl")) as arc:
        arc.worklist.add_many(_item(i) for i in range(ITEMS))
        yield arc.worklist


def _step(**keys: str) -> dict:
    return {"PatientName": "", "PatientID": "", "ScheduledProcedureStepSequence": [{"Modality": "", **keys}]}


def test_a_stations_steps_of_the_day(benchmark, worklist):
    found = benchmark(worklist.find, _step(ScheduledStationAETitle="ST07", ScheduledProcedureStepStartDate="20260308"))
    assert len(found) == sum(1 for i in range(ITEMS) if i % 20 == 7 and i % 28 == 7)  # 15


def test_a_week_of_steps(benchmark, worklist):
    found = benchmark(worklist.find, _step(ScheduledProcedureStepStartDate="20260301-20260307"), format="json")
    assert len(found) == sum(1 for i in range(ITEMS) if i % 28 < 7)  # 504


def test_a_name_pattern_tests_every_item(benchmark, worklist):
    found = benchmark(worklist.find, {"PatientName": "smith*", "PatientID": ""}, format="json")
    assert len(found) == ITEMS // 10
