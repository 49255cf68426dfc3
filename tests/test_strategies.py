"""The public Hypothesis strategies (pacscore.testing.strategies): valid values, keys the
matcher accepts, identifiers the archive accepts, studies the archive stores."""

from __future__ import annotations

import re
import tempfile

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import pacscore
from pacscore.testing import strategies as ps
from pacscore.values import parse_da, parse_dt, parse_number, parse_pn, parse_tm, split_range

FAST = settings(max_examples=60, deadline=None, suppress_health_check=list(HealthCheck))
UID = re.compile(r"(0|[1-9][0-9]*)(\.(0|[1-9][0-9]*))*")
MAX_LEN = {"DA": 8, "TM": 13, "DT": 26, "UI": 64, "CS": 16, "LO": 64, "SH": 16, "AE": 16, "IS": 12, "DS": 16}


def check_value(vr: str, v: str) -> None:
    assert isinstance(v, str) and v, v
    if vr in MAX_LEN:
        assert len(v) <= MAX_LEN[vr], (vr, v)
    if vr != "DS":
        assert v == v.strip(" "), v
    if vr in ("CS", "LO", "SH", "AE", "PN"):
        assert not set(v) & set("\\*?\n\r\t"), v
    if vr == "DA":
        parse_da(v)
    elif vr == "TM":
        parse_tm(v)
    elif vr == "DT":
        parse_dt(v)
    elif vr == "PN":
        groups = parse_pn(v, strict=True)
        assert 1 <= len(groups) <= 3
        assert all(len("^".join(g)) <= 64 for g in groups)
    elif vr == "UI":
        assert UID.fullmatch(v), v
    elif vr in ("IS", "DS"):
        parse_number(vr, v)
        if vr == "IS":
            assert -(2**31) <= int(v) < 2**31
    elif vr == "CS":
        assert re.fullmatch(r"[A-Z0-9_ ]+", v)


@pytest.mark.parametrize("vr", ps.VALUE_VRS)
def test_values_are_valid(vr):
    @FAST
    @given(ps.values(vr))
    def run(v):
        check_value(vr, v)

    run()


@FAST
@given(ps.datetimes(offset=True))
def test_dt_with_offset_parses_and_moves_the_instant(v):
    assert v[-5] in "+-"
    assert parse_dt(v) == parse_dt(v, default_offset=123)  # the offset given wins


def test_every_precision_and_script_appears():
    tms = {len(ps.draw_seeded(ps.times(precision=p), 1).split(".")[0]) for p in (1, 2, 3, 4)}
    assert tms == {2, 4, 6}
    names = ps.draw_seeded(st.lists(ps.person_names(groups=3), min_size=20, max_size=20), 3)
    assert all(n.count("=") <= 2 for n in names)
    for script in ps.SCRIPTS:
        name = ps.draw_seeded(ps.person_names(scripts=(script,), groups=1), 5)
        assert set(name) - {"^"} <= set(ps.SCRIPTS[script])


KEY_CASES = [
    (vr, rule) for vr in ("DA", "TM", "DT", "PN", "UI", "CS", "LO", "SH", "AE", "IS", "DS") for rule in ps.rules_for(vr)
] + [("SQ", "sequence")]


@pytest.mark.parametrize("vr,rule", KEY_CASES, ids=[f"{v}-{r}" for v, r in KEY_CASES])
def test_keys_are_accepted_by_match(vr, rule):
    stored_values = st.lists(ps.values(vr), min_size=1, max_size=4) if vr != "SQ" else st.just([])

    @FAST
    @given(stored_values.flatmap(lambda pool: st.tuples(st.just(pool), ps.matching_keys(vr, rule, pool or None))))
    def run(case):
        pool, key = case
        item_vrs = ps.CODE_ITEM_VRS if vr == "SQ" else None
        stored = [{"CodeValue": "X1", "CodingSchemeDesignator": "DCM", "CodeMeaning": "m"}] if vr == "SQ" else pool[0]
        if rule == "range":
            split_range(vr, key)
        for value in (stored, "", None):
            assert pacscore.match(vr, key, value, item_vrs=item_vrs, invalid_keys="error") in (True, False)
        if rule == "universal":
            assert pacscore.match(vr, key, stored, item_vrs=item_vrs)
        if rule == "single" and vr not in ("PN", "DT"):  # DT keys lose negative offsets
            # a key drawn from the stored values matches its own value (temporal: its precision)
            assert any(pacscore.match(vr, key, v, invalid_keys="error") for v in pool)

    run()


def test_rules_for_refuses_a_rule_that_does_not_apply():
    with pytest.raises(ValueError):
        ps.matching_keys("UI", "wildcard")


@pytest.fixture(scope="module")
def archive(tmp_path_factory):
    with pacscore.open(tmp_path_factory.mktemp("strategies")) as arc:
        yield arc


@settings(max_examples=12, deadline=None, suppress_health_check=list(HealthCheck))
@given(ps.studies())
def test_generated_studies_store(instances):
    uids = {ds.SOPInstanceUID for ds in instances}
    assert len(uids) == len(instances)
    assert len({ds.StudyInstanceUID for ds in instances}) == 1
    with tempfile.TemporaryDirectory() as tmp, pacscore.open(tmp) as archive:
        for ds in instances:
            assert archive.store(ds).status == "stored"
        _check_study(archive, instances)


def _check_study(archive, instances):
    study = instances[0].StudyInstanceUID
    found = list(archive.find({"StudyInstanceUID": study, "ModalitiesInStudy": ""}, level="STUDY", format="dict"))
    assert len(found) == 1
    assert set(found[0]["ModalitiesInStudy"].split("\\")) == {ds.Modality for ds in instances}
    assert len(archive.instances(study=study)) == len(instances)


@settings(max_examples=40, deadline=None, suppress_health_check=list(HealthCheck))
@given(ps.identifiers())
def test_identifiers_are_accepted_by_the_archive(archive, ident):
    level = ident["QueryRetrieveLevel"]
    model = "PATIENT" if level == "PATIENT" or ("PatientID" in ident and level != "STUDY") else "STUDY"
    try:
        list(archive.find(ident, level=level, model=model, invalid_keys="error"))
    except pacscore.QueryError as exc:  # only the model may disagree, never a key
        assert "level" in str(exc).lower() or "model" in str(exc).lower(), exc


def test_data_sets_are_deterministic_per_seed():
    a = ps.draw_seeded(ps.data_sets(patients=2), 7)
    b = ps.draw_seeded(ps.data_sets(patients=2), 7)
    assert [d.SOPInstanceUID for d in a] == [d.SOPInstanceUID for d in b]
    assert len({d.PatientID for d in a}) == 2
