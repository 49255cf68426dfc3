"""The Modality Worklist API (pacscore/worklist, PS3.4 Annex K): items added, found with the
worklist's matching rules, changed by set_step_status and removed; bad items refused with an
error naming the attribute, and nothing written for them."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st
from pydicom.dataset import Dataset

import pacscore
from pacscore.errors import NotFound, QueryError, StorageError
from pacscore.worklist import DuplicateItem, WorklistError, match
from pacscore.worklist.match import WorklistQuery

from .expected_warnings import BAD_DATES, BAD_UIDS
from .worklist_items import make_item, step_key

UID = "1.2.826.0.1.3680043.9.7"


def ids(results) -> list[str]:
    return sorted(ds.PatientID for ds in results)


@pytest.fixture
def wl(arc):
    """A worklist of three items: a CT and an MR on one day, a CT the next."""
    arc.worklist.add(make_item("P1", f"{UID}.1", "S1", "CT", "20260315", "093000", "CT01", "Doe^John"))
    arc.worklist.add(make_item("P2", f"{UID}.2", "S2", "MR", "20260315", "140000", "MR01", "Roe^Jane"))
    arc.worklist.add(make_item("P3", f"{UID}.3", "S3", "CT", "20260316", "080000", "CT02", "Doe^Anna"))
    return arc.worklist


# -- adding, reading, removing ------------------------------------------------------------------
def test_add_returns_the_study_and_step_key_and_get_gives_the_item_back(arc):
    key = arc.worklist.add(make_item())
    assert key == f"{UID}.1:SPS1"
    got = arc.worklist.get(key)
    assert got.PatientName == "Doe^John"
    assert got.ScheduledProcedureStepSequence[0].Modality == "CT"
    assert key in arc.worklist and len(arc.worklist) == 1 and arc.worklist.keys() == [key]


def test_a_step_without_status_is_stored_as_scheduled(arc):
    key = arc.worklist.add(make_item())
    assert arc.worklist.get(key).ScheduledProcedureStepSequence[0].ScheduledProcedureStepStatus == "SCHEDULED"


def test_add_takes_dicom_json_and_get_can_answer_json(arc):
    key = arc.worklist.add(make_item(patient_id="JSON1").to_json_dict())
    data = arc.worklist.get(key, format="json")
    assert data["00100020"] == {"vr": "LO", "Value": ["JSON1"]}
    assert "00080005" not in data  # values are kept as Unicode; the charset is the response's


def test_a_duplicate_key_is_refused_unless_replace(arc):
    key = arc.worklist.add(make_item(name="First^Name"))
    with pytest.raises(DuplicateItem, match="replace=True"):
        arc.worklist.add(make_item(name="Second^Name"))
    assert arc.worklist.get(key).PatientName == "First^Name"
    assert arc.worklist.add(make_item(name="Second^Name"), replace=True) == key
    assert arc.worklist.get(key).PatientName == "Second^Name"
    assert len(arc.worklist) == 1
    assert ids(arc.worklist.find(step_key(Modality="CT"))) == ["P1"]  # old index entries gone


def test_remove_deletes_the_item_and_its_index_entries(wl):
    wl.remove(f"{UID}.1:S1")
    assert ids(wl.find(step_key(Modality="CT"))) == ["P3"]
    assert ids(wl.find({"PatientID": "P1"})) == []
    with pytest.raises(NotFound, match="no worklist item"):
        wl.remove(f"{UID}.1:S1")
    with pytest.raises(NotFound):
        wl.get(f"{UID}.1:S1")


def test_an_archive_without_worklist_has_an_empty_one_and_keeps_its_layout(tmp_path):
    with pacscore.open(tmp_path / "arc") as arc:
        assert arc.worklist.find({"PatientID": ""}) == [] and len(arc.worklist) == 0
        assert arc.worklist.set_step_status(None, "S1", "COMPLETED") is False
        with pytest.raises(NotFound):
            arc.worklist.remove("1.2:S1")
        assert arc.index.optional_db("worklist") is None  # reading never creates the databases
    with pacscore.open(tmp_path / "arc") as arc:
        key = arc.worklist.add(make_item())
    with pacscore.open(tmp_path / "arc", readonly=True) as ro:
        assert ids(ro.worklist.find({"PatientID": "P1"})) == ["P1"]
        with pytest.raises(StorageError, match="read-only"):
            ro.worklist.remove(key)
        with pytest.raises(StorageError, match="read-only"):
            ro.worklist.add(make_item(step_id="OTHER"))


# -- set_step_status ------------------------------------------------------------------------------
def test_set_step_status_changes_what_a_status_query_finds(wl):
    assert wl.set_step_status(f"{UID}.1", "S1", "IN PROGRESS") is True
    assert ids(wl.find(step_key(ScheduledProcedureStepStatus="SCHEDULED"))) == ["P2", "P3"]
    assert ids(wl.find(step_key(ScheduledProcedureStepStatus="IN PROGRESS"))) == ["P1"]
    assert wl.set_step_status(None, "S2", "COMPLETED") is True  # by the step ID alone
    assert ids(wl.find(step_key(ScheduledProcedureStepStatus="COMPLETED"))) == ["P2"]


def test_set_step_status_of_an_unknown_step_is_false_and_changes_nothing(wl):
    assert wl.set_step_status(f"{UID}.1", "NO-SUCH-STEP", "COMPLETED") is False
    assert wl.set_step_status(f"{UID}.9", "S1", "COMPLETED") is False
    assert wl.set_step_status(None, "NO-SUCH-STEP", "COMPLETED") is False
    assert ids(wl.find(step_key(ScheduledProcedureStepStatus="SCHEDULED"))) == ["P1", "P2", "P3"]


def test_set_step_status_refuses_an_unknown_status(wl):
    with pytest.raises(WorklistError, match=r"ScheduledProcedureStepStatus.*not one of"):
        wl.set_step_status(f"{UID}.1", "S1", "DONE")


# -- matching -------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("identifier", "expected"),
    [
        (step_key(Modality="CT"), ["P1", "P3"]),
        (step_key(ScheduledStationAETitle="MR01"), ["P2"]),
        (step_key(ScheduledStationAETitle="CT*"), ["P1", "P3"]),
        (step_key(ScheduledProcedureStepStartDate="20260315"), ["P1", "P2"]),
        (step_key(ScheduledProcedureStepStartDate="20260316-"), ["P3"]),
        (step_key(ScheduledProcedureStepStartDate="-20260315"), ["P1", "P2"]),
        (step_key(ScheduledProcedureStepStartDate="20260315", ScheduledProcedureStepStartTime="1200-"), ["P2"]),
        (step_key(Modality="CT", ScheduledProcedureStepStartDate="20260315"), ["P1"]),
        (step_key(ScheduledPerformingPhysicianName="WELBY^*"), ["P1", "P2", "P3"]),
        (step_key(ScheduledProcedureStepID="S3"), ["P3"]),
        ({"PatientName": "doe*"}, ["P1", "P3"]),
        ({"PatientID": "P2"}, ["P2"]),
        ({"AccessionNumber": "ACC-P3"}, ["P3"]),
        ({"RequestedProcedureID": "RP-P1"}, ["P1"]),
        ({"StudyInstanceUID": f"{UID}.1\\{UID}.3"}, ["P1", "P3"]),
        ({"PatientID": "P1", "ScheduledProcedureStepSequence": [{"Modality": "MR"}]}, []),
        ({"PatientID": ""}, ["P1", "P2", "P3"]),
        ({"ScheduledProcedureStepSequence": []}, ["P1", "P2", "P3"]),
    ],
)
def test_find_matches_item_and_step_keys(wl, identifier, expected):
    identifier = {"PatientID": "", **identifier}
    assert ids(wl.find(identifier)) == expected


def test_combined_date_time_is_one_range_when_asked(wl):
    key = step_key(ScheduledProcedureStepStartDate="20260315-20260316", ScheduledProcedureStepStartTime="1200-0900")
    assert ids(wl.find(key, combined_datetime=True)) == ["P2", "P3"]  # 15th 12:00 to 16th 09:00


def test_a_zero_length_stored_value_never_matches_a_matching_key(arc):
    """K.2.2.1.1.1: unlike Q/R (C.2.2.1.2), an unknown value is no match for a key."""
    arc.worklist.add(make_item("KNOWN", physician="Welby^Marcus", accession="A1"))
    arc.worklist.add(make_item("UNKNOWN", f"{UID}.2", physician="", accession=""))
    assert ids(arc.worklist.find(step_key(ScheduledPerformingPhysicianName="Welby*"))) == ["KNOWN"]
    assert ids(arc.worklist.find({"PatientID": "", "AccessionNumber": "A1"})) == ["KNOWN"]
    assert ids(arc.worklist.find({"PatientID": "", "AccessionNumber": "*"})) == ["KNOWN", "UNKNOWN"]
    assert ids(arc.worklist.find({"PatientID": "", "AccessionNumber": ""})) == ["KNOWN", "UNKNOWN"]
    # an absent attribute is no match either
    assert ids(arc.worklist.find({"PatientID": "", "AdmissionID": "X"})) == []


def test_the_response_holds_the_requested_keys_and_the_requested_step_attributes(wl):
    [ds] = wl.find(
        {
            "PatientName": "",
            "PatientID": "P1",
            "IssuerOfPatientID": "",
            "ScheduledProcedureStepSequence": [{"Modality": "", "ScheduledProcedureStepLocation": ""}],
        }
    )
    assert ds.SpecificCharacterSet == "ISO_IR 192"
    assert ds.PatientName == "Doe^John" and ds.IssuerOfPatientID == ""  # unknown: zero length
    assert "AccessionNumber" not in ds  # not requested
    [step] = ds.ScheduledProcedureStepSequence
    assert step.Modality == "CT" and step.ScheduledProcedureStepLocation == ""
    assert "ScheduledStationAETitle" not in step


def test_a_sequence_key_without_item_keys_returns_the_whole_step(wl):
    [ds] = wl.find({"PatientID": "P2", "ScheduledProcedureStepSequence": ""})
    step = ds.ScheduledProcedureStepSequence[0]
    assert step.ScheduledStationAETitle == "MR01" and step.ScheduledProcedureStepID == "S2"


def test_find_takes_a_dataset_and_a_dicom_json_identifier(wl):
    ds = Dataset()
    ds.PatientID = ""
    item = Dataset()
    item.Modality = "MR"
    ds.ScheduledProcedureStepSequence = [item]
    assert ids(wl.find(ds)) == ["P2"]
    assert [r["00100020"]["Value"] for r in wl.find(ds.to_json_dict(), format="json")] == [["P2"]]


def test_find_limit_stops_early(wl):
    assert len(wl.find({"PatientID": ""}, limit=2)) == 2
    with pytest.raises(QueryError, match="limit"):
        wl.find({"PatientID": ""}, limit=-1)


def test_a_bad_date_key_is_a_query_error_naming_it(wl):
    with pytest.raises(QueryError, match="ScheduledProcedureStepStartDate"):
        wl.find(step_key(ScheduledProcedureStepStartDate="2026-13-45"))
    with pytest.raises(QueryError, match="ScheduledProcedureStepStartDate"):
        wl.find(step_key(ScheduledProcedureStepStartDate="20260320-20260310"))  # reversed
    assert wl.find(step_key(ScheduledProcedureStepStartDate="2026-13-45"), invalid_keys="nomatch") == []


def test_a_malformed_identifier_is_refused(wl):
    with pytest.raises(QueryError):
        wl.find(["PatientID"])
    with pytest.raises(QueryError, match="NoSuchKeyword"):
        wl.find({"NoSuchKeyword": "x"})
    with pytest.raises(QueryError, match="format"):
        wl.find({"PatientID": ""}, format="xml")


# -- bad items --------------------------------------------------------------------------------------
def _without(attribute: str, in_step: bool = False) -> Dataset:
    ds = make_item()
    delattr(ds.ScheduledProcedureStepSequence[0] if in_step else ds, attribute)
    return ds


def _with(attribute: str, value: object, in_step: bool = False) -> Dataset:
    ds = make_item()
    setattr(ds.ScheduledProcedureStepSequence[0] if in_step else ds, attribute, value)
    return ds


def _two_steps() -> Dataset:
    ds = make_item()
    ds.ScheduledProcedureStepSequence.append(make_item(step_id="SPS2").ScheduledProcedureStepSequence[0])
    return ds


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (lambda: _without("PatientID"), "PatientID: required"),
        (lambda: _without("StudyInstanceUID"), "StudyInstanceUID: required"),
        (lambda: _with("PatientID", ""), "PatientID: required"),
        (lambda: _without("ScheduledProcedureStepSequence"), "ScheduledProcedureStepSequence: required"),
        (lambda: _with("ScheduledProcedureStepSequence", []), "exactly one item"),
        (lambda: _two_steps(), "exactly one item.*not 2"),
        (lambda: _without("Modality", in_step=True), "ScheduledProcedureStepSequence>Modality: required"),
        (lambda: _without("ScheduledProcedureStepID", in_step=True), ">ScheduledProcedureStepID: required"),
        (
            lambda: _without("ScheduledProcedureStepStartDate", in_step=True),
            ">ScheduledProcedureStepStartDate: required",
        ),
        (lambda: _with("ScheduledProcedureStepStartDate", "20261301", in_step=True), "StartDate: '20261301': month 13"),
        (lambda: _with("ScheduledProcedureStepStartTime", "2561", in_step=True), "StartTime: '2561': hour 25"),
        (lambda: _with("PatientBirthDate", "yesterday"), "PatientBirthDate: 'yesterday' is not a date"),
        (lambda: _with("StudyInstanceUID", "1.2.abc"), "StudyInstanceUID: '1.2.abc' is not a UID"),
        (lambda: _with("ScheduledProcedureStepStatus", "DONE", in_step=True), "ScheduledProcedureStepStatus: 'DONE'"),
        (lambda: {"PatientID": "P1"}, "PatientID: not a DICOM JSON attribute"),
        (lambda: {"00100020": "P1"}, 'PatientID: a DICOM JSON attribute is an object with a "vr"'),
        (lambda: {"00100020": {"vr": "LO", "Value": "P1"}}, "malformed DICOM JSON"),
        (lambda: "P1", "not str"),
    ],
)
@BAD_DATES
@BAD_UIDS
@pytest.mark.filterwarnings("ignore:Invalid value for VR TM:UserWarning:pydicom\\.valuerep")
def test_a_bad_item_is_refused_naming_the_attribute_and_nothing_is_written(arc, make, message):
    item = make()  # built in the test, where the marks expect pydicom's warnings about it
    arc.worklist.add(make_item(study=f"{UID}.99"))
    with pytest.raises(WorklistError, match=message):
        arc.worklist.add(item)
    assert arc.worklist.keys() == [f"{UID}.99:SPS1"]


# -- the index proposes, the matcher decides ------------------------------------------------------
MODALITIES = st.sampled_from(["CT", "MR", "US", ""])
DATES = st.sampled_from(["20260101", "20260102", "20260103", "2026.01.02"])
STATUSES = st.sampled_from(["SCHEDULED", "IN PROGRESS", "COMPLETED"])
STATIONS = st.sampled_from(["CT01", "MR01", ""])
NAME_LIST = ["Doe^John", "doe^jane", "Smith^Ann=スミス^アン", "=山田^太郎", "Doe ^John^^", "Ødegaard", ""]
NAME_KEY_LIST = [
    "Doe*",
    "DOE^JOHN",
    "SMITH*",
    "s?ith*",
    "*john",
    "doe^john\\Smith^Ann",
    "=山田*",
    "ØDEG*",
    "Doe^J*",
    "?*",
]
NAME_KEYS = st.sampled_from(NAME_KEY_LIST)
NAMES = st.sampled_from(NAME_LIST)


@st.composite
def worklists(draw):
    count = draw(st.integers(1, 8))
    out = []
    for i in range(count):
        out.append(
            make_item(
                f"P{draw(st.integers(0, 3))}",
                f"{UID}.{i}",
                f"S{draw(st.integers(0, 2))}",
                draw(MODALITIES) or "OT",
                draw(DATES),
                draw(st.sampled_from(["083000", "093000", "1000", ""])),
                station=draw(STATIONS),
                name=draw(NAMES),
                physician=draw(NAMES),
                accession=draw(st.sampled_from(["A1", "A2", ""])),
                status=draw(STATUSES),
            )
        )
    return out


@st.composite
def identifiers(draw):
    step: dict[str, str] = {}
    for keyword, values in (
        ("Modality", st.sampled_from(["CT", "MR", "CT\\MR", "C*", ""])),
        ("ScheduledStationAETitle", st.sampled_from(["CT01", "MR01", "*", ""])),
        (
            "ScheduledProcedureStepStartDate",
            st.sampled_from(["20260102", "20260102-", "-20260101", "", "20260101-20260102"]),
        ),
        ("ScheduledProcedureStepStatus", st.sampled_from(["SCHEDULED", "COMPLETED", ""])),
        ("ScheduledProcedureStepID", st.sampled_from(["S0", "S1\\S2", ""])),
    ):
        if draw(st.booleans()):
            step[keyword] = draw(values)
    if draw(st.booleans()):
        step["ScheduledProcedureStepStartTime"] = draw(st.sampled_from(["0900-", "-1000", "0930-1000", "1000-0900"]))
    if draw(st.booleans()):
        step["ScheduledPerformingPhysicianName"] = draw(NAME_KEYS)
    top = {"PatientID": draw(st.sampled_from(["", "P1", "P2", "P*"]))}
    if draw(st.booleans()):
        top["PatientName"] = draw(NAME_KEYS)
    if draw(st.booleans()):
        top["AccessionNumber"] = draw(st.sampled_from(["A1", "A2", ""]))
    return {**top, "ScheduledProcedureStepSequence": [step]}


def _scanned(worklist, identifier, **options):
    original = WorklistQuery.candidates
    WorklistQuery.candidates = lambda self, txn, dbs: None  # type: ignore[method-assign]
    try:
        return worklist.find(identifier, format="json", **options)
    finally:
        WorklistQuery.candidates = original  # type: ignore[method-assign]


@pytest.mark.parametrize("key", NAME_KEY_LIST)
@pytest.mark.parametrize("where", ["PatientName", "ScheduledPerformingPhysicianName"])
def test_name_keys_find_through_the_index_what_a_scan_finds(arc, key, where):
    for i, name in enumerate(NAME_LIST):
        arc.worklist.add(make_item(f"P{i}", f"{UID}.{i}", name=name, physician=name))
    identifier = {where: key} if where == "PatientName" else step_key(**{where: key})
    identifier["PatientID"] = ""
    indexed = arc.worklist.find(identifier, format="json")
    assert indexed == _scanned(arc.worklist, identifier)
    query = match.build(identifier, arc.options)
    with arc.index.read() as txn:
        proposed = query.candidates(txn, arc.worklist._store.databases())
    if key not in ("*john", "?*", "=山田*", "Doe^J*"):  # a literal start without ^ = or space: indexed
        assert proposed is not None and len(proposed) < len(NAME_LIST)


@BAD_DATES  # the retired form YYYY.MM.DD, which the matcher reads
@given(items=worklists(), identifier=identifiers(), combined=st.booleans())
def test_the_indexed_find_equals_a_scan_of_every_item(tmp_path_factory, items, identifier, combined):
    with pacscore.open(tmp_path_factory.mktemp("wl")) as arc:
        for item in items:
            arc.worklist.add(item, replace=True)
        options = {"combined_datetime": combined, "invalid_keys": "nomatch"}
        indexed = arc.worklist.find(identifier, format="json", **options)
        original = WorklistQuery.candidates
        WorklistQuery.candidates = lambda self, txn, dbs: None  # type: ignore[method-assign]
        try:
            scanned = arc.worklist.find(identifier, format="json", **options)
        finally:
            WorklistQuery.candidates = original  # type: ignore[method-assign]
        assert indexed == scanned


# -- the worklist travels with the archive ----------------------------------------------------------
def test_backup_and_restore_keep_the_worklist(tmp_path):
    with pacscore.open(tmp_path / "arc") as arc:
        key = arc.worklist.add(make_item())
        arc.worklist.set_step_status(None, "SPS1", "ARRIVED")
        arc.backup(tmp_path / "backup")
    pacscore.restore(tmp_path / "backup", tmp_path / "restored")
    with pacscore.open(tmp_path / "restored") as restored:
        assert restored.worklist.keys() == [key]
        assert ids(restored.worklist.find(step_key(ScheduledProcedureStepStatus="ARRIVED"))) == ["P1"]


def test_a_second_handle_sees_items_another_handle_added(tmp_path):
    with pacscore.open(tmp_path / "arc") as first:
        assert first.worklist.find({"PatientID": ""}) == []  # no databases yet, in this handle
        with pacscore.open(tmp_path / "arc") as second:
            second.worklist.add(make_item())
        assert ids(first.worklist.find({"PatientID": ""})) == ["P1"]


def test_the_worklist_never_touches_the_instances(arc):
    from .factories import make_instance, to_bytes

    arc.store(to_bytes(make_instance(sop="1.2.3.4.5", study=f"{UID}.1", series=f"{UID}.1.1", patient_id="P1")))
    arc.worklist.add(make_item())
    arc.worklist.remove(f"{UID}.1:SPS1")
    assert arc.count({"StudyInstanceUID": ""}, level="STUDY") == 1
    assert arc.verify().ok


def test_a_worklist_write_changes_neither_schema_nor_settings(tmp_path):
    from pacscore.index.layout import SCHEMA_KEY

    def meta(arc):
        with arc.index.read() as txn:
            return bytes(txn.get(SCHEMA_KEY, db=arc.index.db("meta"))), arc.index.settings()

    with pacscore.open(tmp_path / "arc") as arc:
        before = meta(arc)
        arc.worklist.add(make_item())
        assert meta(arc) == before


def test_a_step_key_of_two_items_uses_the_first_and_warns(wl, caplog):
    identifier = {"PatientID": "", "ScheduledProcedureStepSequence": [{"Modality": "MR"}, {"Modality": "CT"}]}
    with caplog.at_level("WARNING", logger="pacscore.query"):
        assert ids(wl.find(identifier)) == ["P2"]
    assert "only the first is used" in caplog.text


def test_the_identifiers_timezone_places_step_times_with_timezone_adjustment(wl):
    identifier = {"TimezoneOffsetFromUTC": "+0100", **step_key(ScheduledProcedureStepStartTime="1000-1100")}
    assert ids(wl.find(identifier)) == []  # as written: 10:00 to 11:00
    assert ids(wl.find(identifier, timezone_adjustment=True)) == ["P1"]  # 09:00 to 10:00 UTC: 09:30


def test_add_many_adds_all_or_none(arc):
    first = make_item("A", f"{UID}.1", "S1")
    bad = make_item("B", f"{UID}.2", "S2")
    del bad.ScheduledProcedureStepSequence[0].Modality
    with pytest.raises(WorklistError, match=r"item 1: ScheduledProcedureStepSequence>Modality: required"):
        arc.worklist.add_many([first, bad, make_item("C", f"{UID}.3", "S3")])
    assert len(arc.worklist) == 0
    with pytest.raises(DuplicateItem, match="given twice"):
        arc.worklist.add_many([first, make_item("A2", f"{UID}.1", "S1")], replace=True)
    assert arc.worklist.add_many([first, make_item("C", f"{UID}.3", "S3")]) == [f"{UID}.1:S1", f"{UID}.3:S3"]
    with pytest.raises(DuplicateItem):
        arc.worklist.add_many([make_item("D", f"{UID}.4", "S4"), first])  # the second is there: neither
    assert arc.worklist.keys() == [f"{UID}.1:S1", f"{UID}.3:S3"]
    assert arc.worklist.add_many([]) == []
