"""The worklist against a plain model (the PyRoaringBitMap pattern): items are added,
replaced, removed and have their status changed at random, and after each step the worklist's
keys, and what its indexed queries find, equal what the model says."""

from __future__ import annotations

import shutil
import tempfile

from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, rule

import pacscore
from pacscore.worklist import DuplicateItem

from .worklist_items import make_item

UID = "1.2.826.0.1.3680043.9.6"
MODALITIES = ["CT", "MR", "US"]
DATES = ["20260101", "20260102", "20260103"]
STATUSES = ["SCHEDULED", "IN PROGRESS", "COMPLETED"]
STATIONS = ["AE1", "AE2"]


class WorklistMachine(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self.folder = tempfile.mkdtemp(prefix="pacscore-wl-")
        self.arc = pacscore.open(self.folder)
        self.model: dict[str, dict[str, str]] = {}

    def teardown(self) -> None:
        self.arc.close()
        shutil.rmtree(self.folder, ignore_errors=True)

    @rule(
        study=st.integers(0, 4),
        step=st.integers(0, 1),
        modality=st.sampled_from(MODALITIES),
        date=st.sampled_from(DATES),
        station=st.sampled_from(STATIONS),
        replace=st.booleans(),
    )
    def add(self, study, step, modality, date, station, replace):
        key = f"{UID}.{study}:S{step}"
        item = make_item(f"P{study}", f"{UID}.{study}", f"S{step}", modality, date, station=station)
        try:
            assert self.arc.worklist.add(item, replace=replace) == key
        except DuplicateItem:
            assert key in self.model and not replace
            return
        self.model[key] = {"modality": modality, "date": date, "station": station, "status": "SCHEDULED"}

    @rule(study=st.integers(0, 4), step=st.integers(0, 1))
    def remove(self, study, step):
        key = f"{UID}.{study}:S{step}"
        try:
            self.arc.worklist.remove(key)
        except KeyError:
            assert key not in self.model
            return
        del self.model[key]

    @rule(study=st.one_of(st.none(), st.integers(0, 4)), step=st.integers(0, 1), status=st.sampled_from(STATUSES))
    def set_status(self, study, step, status):
        uid = None if study is None else f"{UID}.{study}"
        changed = [k for k in self.model if k.endswith(f":S{step}") and (uid is None or k.startswith(uid + ":"))]
        assert self.arc.worklist.set_step_status(uid, f"S{step}", status) is bool(changed)
        for key in changed:
            self.model[key]["status"] = status

    @rule(
        modality=st.sampled_from([*MODALITIES, None]),
        status=st.sampled_from([*STATUSES, None]),
        station=st.sampled_from([*STATIONS, None]),
        since=st.sampled_from([*DATES, None]),
    )
    def query(self, modality, status, station, since):
        step = {"ScheduledProcedureStepID": ""}
        if modality:
            step["Modality"] = modality
        if status:
            step["ScheduledProcedureStepStatus"] = status
        if station:
            step["ScheduledStationAETitle"] = station
        if since:
            step["ScheduledProcedureStepStartDate"] = since + "-"
        found = self.arc.worklist.find({"StudyInstanceUID": "", "ScheduledProcedureStepSequence": [step]})
        keys = sorted(
            f"{ds.StudyInstanceUID}:{ds.ScheduledProcedureStepSequence[0].ScheduledProcedureStepID}" for ds in found
        )
        expected = sorted(
            key
            for key, v in self.model.items()
            if (not modality or v["modality"] == modality)
            and (not status or v["status"] == status)
            and (not station or v["station"] == station)
            and (not since or v["date"] >= since)
        )
        assert keys == expected

    @invariant()
    def keys_agree(self):
        assert self.arc.worklist.keys() == sorted(self.model)


TestWorklistMachine = WorklistMachine.TestCase
