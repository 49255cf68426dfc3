"""Store random batches, delete some, and check find/count at every level against a brute-force
scan of what is stored, judged by the reference matcher (pacscore.match)."""

from __future__ import annotations

import re
import tempfile
import unicodedata

from hypothesis import given, settings
from hypothesis import strategies as st

import pacscore

from .expected_warnings import BAD_DATES, BAD_TIMES
from .factories import make_instance

#: the generated archives hold dates and times that are not DA or TM (DATES, TIMES), on purpose
pytestmark = [BAD_DATES, BAD_TIMES]

# with values the secondary index cannot file by their text (an ideographic name alone, a
# retired date form, a blank value, an empty piece of a multi-valued value)
NAMES = [
    "Smith^John",
    "smith^JOHN",
    "Smíth^Anna",
    "Müller^Jürgen",
    "Jones",
    "",
    None,
    "山田^太郎",
    "O'Brien^P",
    "=山田^太郎",
    "  ",
]
DATES = ["20150304", "20150305", "20191231", "20200101", "", None, "2015.03.04", "2015"]
#: with partial, retired, leap-second, invalid and multi-valued times (schema 6 files them by instant)
TIMES = ["0715", "08", "080059.999999", "1200", "12:00", "235960", "2500", "0700\\1300", "", None]
MODALITIES = ["CT", "MR", "US", "PT"]
DESCRIPTIONS = [
    "CT CHEST",
    "MR BRAIN",
    "CT*ABD",
    "",
    None,
    "ct chest",
    "  CT CHEST  ",
    "Thorax\\CT CHEST",
    "Cafe\u0301 CHEST",
    "Café CHEST",
    "   ",
]


@st.composite
def archives(draw):
    """A list of instances (dicts of attributes), consistent within each study and series."""
    n_studies = draw(st.integers(1, 6))
    instances = []
    for s in range(n_studies):
        patient = draw(st.sampled_from(["P1", "P2", "P3"]))
        study = {
            "study": f"1.2.{s + 1}",
            "patient_id": patient,
            "patient_name": draw(st.sampled_from(NAMES)),
            "study_date": draw(st.sampled_from(DATES)),
            "study_time": draw(st.sampled_from(TIMES)),
            "StudyDescription": draw(st.sampled_from(DESCRIPTIONS)),
            "AccessionNumber": draw(st.sampled_from(["A1", "A2", "", None, " ", "A1\\"])),
        }
        for e in range(draw(st.integers(1, 3))):
            series = {
                "series": f"1.2.{s + 1}.{e + 1}",
                "modality": draw(st.sampled_from(MODALITIES)),
                "SeriesDescription": draw(st.sampled_from(DESCRIPTIONS)),
            }
            for i in range(draw(st.integers(1, 3))):
                instances.append(
                    {
                        **study,
                        **series,
                        "sop": f"1.2.{s + 1}.{e + 1}.{i + 1}",
                        "instance_number": str(i + 1),
                        "ImageType": draw(st.sampled_from(["ORIGINAL\\PRIMARY", "DERIVED", None])),
                    }
                )
    return instances


KEYS = {
    "STUDY": [
        ("PatientName", "PN", "patient_name"),
        ("StudyDate", "DA", "study_date"),
        ("StudyTime", "TM", "study_time"),
        ("StudyDescription", "LO", "StudyDescription"),
        ("AccessionNumber", "SH", "AccessionNumber"),
        ("PatientID", "LO", "patient_id"),
        ("ModalitiesInStudy", "CS", None),
        ("StudyInstanceUID", "UI", "study"),
    ],
    "SERIES": [
        ("Modality", "CS", "modality"),
        ("SeriesDescription", "LO", "SeriesDescription"),
        ("SeriesInstanceUID", "UI", "series"),
    ],
    "IMAGE": [
        ("InstanceNumber", "IS", "instance_number"),
        ("ImageType", "CS", "ImageType"),
        ("SOPInstanceUID", "UI", "sop"),
    ],
}

KEY_VALUES = {
    "PN": ["", "SMITH*", "smith^john", "*^J*", "Sm?th*", "Müller^Jürgen", "*", "山田*", "Jones"],
    "DA": ["", "20150304", "20150101-20151231", "-20191231", "20200101-", "2015030"],
    "TM": ["", "-0800", "0800-1200", "1200-", "08", "0700\\1300-", "1200-1000"],
    "LO": [
        "",
        "CT*",
        "CT CHEST",
        "*CHEST",
        "ct chest",
        "CT?ABD",
        "CT*ABD",
        "*É CH*",
        "*e\u0301 CH*",
        "*RAX",
        "*CHEST\\*BRAIN*",
        "*T C*",
        "*ZZZ*",
    ],
    "SH": ["", "A1", "A*", "A1\\A2"],
    "CS": ["", "CT", "MR\\US", "C*", "ORIGINAL", "DERIVED", "*"],
    "IS": ["", "1", "2", "01"],
    "UI": ["", "1.2.1", "1.2.1\\1.2.2", "1.2.1.1", "1.2.2.1.1\\1.2.1.1.1"],
}


@st.composite
def queries(draw):
    level = draw(st.sampled_from(["STUDY", "SERIES", "IMAGE"]))
    levels = ["STUDY", "SERIES", "IMAGE"][: ["STUDY", "SERIES", "IMAGE"].index(level) + 1]
    keys = {}
    for lvl in levels:
        for keyword, vr, _ in draw(st.lists(st.sampled_from(KEYS[lvl]), max_size=3, unique=True)):
            keys[keyword] = draw(st.sampled_from(KEY_VALUES[vr]))
    return level, keys


def entity_value(entity: dict, field: str | None, keyword: str, instances: list[dict]) -> object:
    if keyword == "ModalitiesInStudy":
        return "\\".join(sorted({i["modality"] for i in instances if i["study"] == entity["study"]}))
    return entity.get(field)


def brute_force(instances: list[dict], level: str, keys: dict, **options) -> list[str]:
    unique = {"STUDY": "study", "SERIES": "series", "IMAGE": "sop"}[level]
    entities = {}
    for inst in instances:
        entities.setdefault(inst[unique], inst)
    levels = ["STUDY", "SERIES", "IMAGE"][: ["STUDY", "SERIES", "IMAGE"].index(level) + 1]
    spec = {kw: (vr, field) for lvl in levels for kw, vr, field in KEYS[lvl]}
    out = []
    for uid, ent in entities.items():
        ok = True
        for keyword, key in keys.items():
            vr, field = spec[keyword]
            value = entity_value(ent, field, keyword, instances)
            if field == "patient_name" and value is not None and keyword == "PatientName":
                pass
            if not pacscore.match(vr, key, value, **options):
                ok = False
                break
        if ok:
            out.append(uid)
    return sorted(out, key=lambda u: u.encode())


def store_all(arc, instances: list[dict]) -> None:
    for inst in instances:
        extra = {k: v for k, v in inst.items() if k[0].isupper()}
        arc.store(
            make_instance(
                sop=inst["sop"],
                study=inst["study"],
                series=inst["series"],
                patient_id=inst["patient_id"],
                patient_name=inst["patient_name"],
                modality=inst["modality"],
                study_date=inst["study_date"],
                study_time=inst.get("study_time"),
                instance_number=inst["instance_number"],
                charset="ISO_IR 192",
                **extra,
            )
        )


@settings(max_examples=60)
@given(archives(), st.lists(queries(), min_size=1, max_size=6), st.data())
def test_find_and_count_equal_brute_force(instances, qs, data):
    with tempfile.TemporaryDirectory() as tmp, pacscore.open(tmp) as arc:
        store_all(arc, instances)
        # delete a few entities at random levels, and mirror that in the model
        for _ in range(data.draw(st.integers(0, 2))):
            if not instances:
                break
            victim = data.draw(st.sampled_from(instances))
            level = data.draw(st.sampled_from(["study", "series", "sop"]))
            arc.delete(
                **{
                    "study": {"study": victim["study"]},
                    "series": {"series": victim["series"]},
                    "sop": {"instance": victim["sop"]},
                }[level]
            )
            instances = [i for i in instances if i[level] != victim[level]]
        for level, keys in qs:
            # both answers to C.2.2.1.2: the index plans visit the empty values only when they can match
            empty = data.draw(st.booleans())
            expected = brute_force(instances, level, keys, empty_record_matches=empty)
            unique = {"STUDY": "StudyInstanceUID", "SERIES": "SeriesInstanceUID", "IMAGE": "SOPInstanceUID"}[level]
            got = [
                r[unique]
                for r in arc.find(keys, level=level, relational=True, format="dict", empty_record_matches=empty)
            ]
            assert got == expected, (level, keys, empty)
            assert arc.count(keys, level=level, relational=True, empty_record_matches=empty) == len(expected)


PATIENT_KEYS = [("PatientName", "PN", "patient_name"), ("PatientID", "LO", "patient_id")]
PATIENT_ROOT_STUDY_KEYS = [k for k in KEYS["STUDY"] if k[0] not in ("PatientName", "PatientID")]


def latest_patient_values(instances: list[dict]) -> dict[str, dict]:
    """The patient entity takes the values of the patient's latest stored instance."""
    out = {}
    for inst in instances:
        out[inst["patient_id"]] = inst
    return out


@st.composite
def patient_root_queries(draw):
    level = draw(st.sampled_from(["PATIENT", "STUDY"]))
    keys = {
        kw: draw(st.sampled_from(KEY_VALUES[vr]))
        for kw, vr, _ in draw(st.lists(st.sampled_from(PATIENT_KEYS), max_size=2, unique=True))
    }
    if level == "STUDY":
        for kw, vr, _ in draw(st.lists(st.sampled_from(PATIENT_ROOT_STUDY_KEYS), max_size=2, unique=True)):
            keys[kw] = draw(st.sampled_from(KEY_VALUES[vr]))
    return level, keys


def brute_force_patient_root(instances, level, keys):
    patients = latest_patient_values(instances)
    spec = {kw: (vr, field) for kw, vr, field in PATIENT_KEYS + KEYS["STUDY"]}
    patient_keywords = {kw for kw, _, _ in PATIENT_KEYS}
    entities = {}
    for inst in instances:
        entities.setdefault(inst["patient_id"] if level == "PATIENT" else inst["study"], inst)
    out = []
    for uid, ent in entities.items():
        ok = True
        for keyword, key in keys.items():
            vr, field = spec[keyword]
            source = patients[ent["patient_id"]] if keyword in patient_keywords else ent
            if not pacscore.match(vr, key, entity_value(source, field, keyword, instances)):
                ok = False
                break
        if ok:
            out.append(uid)
    return sorted(out, key=lambda u: u.encode())


@settings(max_examples=40)
@given(archives(), st.lists(patient_root_queries(), min_size=1, max_size=5), st.data())
def test_patient_root_find_equals_brute_force(instances, qs, data):
    with tempfile.TemporaryDirectory() as tmp, pacscore.open(tmp) as arc:
        store_all(arc, instances)
        if data.draw(st.booleans()) and instances:
            victim = data.draw(st.sampled_from(instances))
            arc.delete(study=victim["study"])
            instances = [i for i in instances if i["study"] != victim["study"]]
        for level, keys in qs:
            expected = brute_force_patient_root(instances, level, keys)
            unique = "PatientID" if level == "PATIENT" else "StudyInstanceUID"
            got = [r[unique] for r in arc.find(keys, level=level, model="PATIENT", relational=True, format="dict")]
            if level == "PATIENT":
                got = sorted(got, key=lambda u: u.encode())
            assert got == expected, (level, keys)


@settings(max_examples=40)
@given(archives(), st.data())
def test_hierarchical_query_equals_filtered_relational_query(instances, data):
    """With the unique key of the level above given, hierarchical and relational agree."""
    with tempfile.TemporaryDirectory() as tmp, pacscore.open(tmp) as arc:
        store_all(arc, instances)
        study = data.draw(st.sampled_from(instances))["study"]
        keys = {
            kw: data.draw(st.sampled_from(KEY_VALUES[vr]))
            for kw, vr, _ in data.draw(st.lists(st.sampled_from(KEYS["SERIES"][:2]), max_size=2, unique=True))
        }
        hierarchical = list(arc.find({"StudyInstanceUID": study, **keys}, level="SERIES", format="dict"))
        relational = [
            r for r in arc.find(keys, level="SERIES", relational=True, format="dict") if r["StudyInstanceUID"] == study
        ]
        assert [r["SeriesInstanceUID"] for r in hierarchical] == [r["SeriesInstanceUID"] for r in relational]


@settings(max_examples=30)
@given(
    archives(), st.lists(queries(), min_size=1, max_size=4), st.integers(0, 5), st.one_of(st.none(), st.integers(0, 5))
)
def test_json_rows_from_own_records_equal_rows_from_matches(instances, qs, offset, limit):
    """find(format="json") builds rows straight from lists of matched records when nothing above
    the query level is needed; they equal the rows built from Match objects, in the same order,
    and a page of them (offset, limit) is the same slice of the whole answer."""
    from pacscore.query.execute import Executor
    from pacscore.query.results import ResultBuilder

    with tempfile.TemporaryDirectory() as tmp, pacscore.open(tmp) as arc:
        store_all(arc, instances)
        for level, keys in qs:
            for relational in (True, False):
                try:
                    query = arc._query(keys, level, "STUDY", {"relational": relational})
                except pacscore.QueryError:
                    continue
                builder = ResultBuilder(query, "json")
                with arc.index.read() as txn:
                    matches = list(Executor(arc.index, txn, query).matches())
                    slow = [builder.row(m) for m in matches]
                    # the reference: every attribute read from the record of its own level
                    reference = [builder._json(builder.fields(m)) for m in matches]
                got = list(arc.find(keys, level=level, relational=relational, format="json"))
                assert got == slow == reference, (level, keys)
                page = list(
                    arc.find(keys, level=level, relational=relational, format="json", offset=offset, limit=limit)
                )
                assert page == got[offset : None if limit is None else offset + limit], (level, keys, offset, limit)
                if level == "STUDY":  # at least these take the direct path
                    assert builder.own_record_rows is not None


COMBINED_DATES = [
    "20141230",
    "20141231",
    "20150101",
    "20150102",
    "20150630",
    "20151231",
    "20160101",
    "20160102",
    "2015.06.01",
    "",
    None,
]
COMBINED_TIMES = ["000000", "075959", "080000", "1200", "120000.5", "235959.999999", "23", "", None]
COMBINED_KEYS = ["20150101-20151231", "20150101-", "-20151231", "20151231-20160101", "20150101", "20141231-20150101"]
TIME_KEYS = ["080000-120000", "0800-", "-1200", "235959-000000", "120000"]


@settings(max_examples=40)
@given(
    st.lists(st.tuples(st.sampled_from(COMBINED_DATES), st.sampled_from(COMBINED_TIMES)), min_size=1, max_size=12),
    st.sampled_from(COMBINED_KEYS),
    st.sampled_from(TIME_KEYS),
    st.sampled_from([None, "+0000", "+1400", "-1200", "+0530"]),
)
def test_combined_date_time_queries_equal_the_reference_whatever_the_plan(stored, date_key, time_key, offset):
    """A combined date-time range can use the date index (its date bounds widened by a day):
    the answer is what the reference matcher says of every study, index or scan."""
    with tempfile.TemporaryDirectory() as tmp, pacscore.open(tmp) as arc:
        for i, (date, time) in enumerate(stored):
            arc.store(
                make_instance(
                    sop=f"1.9.{i}.1.1", study=f"1.9.{i}", series=f"1.9.{i}.1", study_date=date, study_time=time
                )
            )
        keys = {"StudyDate": date_key, "StudyTime": time_key, "StudyInstanceUID": ""}
        if offset is not None:
            keys["TimezoneOffsetFromUTC"] = offset
        try:
            got = [r["StudyInstanceUID"] for r in arc.find(keys, level="STUDY", combined_datetime=True, format="dict")]
        except pacscore.QueryError:
            return  # a key the reference refuses too (a reversed combined range)
        expected = []
        for i, (date, time) in enumerate(stored):
            value = {"StudyDate": date, "StudyTime": time}
            key = {"StudyDate": date_key, "StudyTime": time_key}
            if offset is not None:
                key["TimezoneOffsetFromUTC"] = offset
            if pacscore.match("combined", key, value, combined_datetime=True):
                expected.append(f"1.9.{i}")
        assert got == sorted(expected, key=str.encode)
        assert arc.explain(keys, level="STUDY", combined_datetime=True)["plan"] == "index"


DESCRIPTION_TEXT = st.lists(
    st.sampled_from(["A", "B", "C", "a", "b", " ", "\\", "\u00e9", "e\u0301", "\u0301", "\u03a9"]), max_size=12
).map("".join)


@settings(max_examples=60)
@given(st.lists(st.one_of(st.none(), DESCRIPTION_TEXT), min_size=1, max_size=10), st.data())
def test_trigram_plans_equal_the_reference(descriptions, data):
    """SeriesDescription keys with a literal run of three or more characters use the trigram
    entries; the answer is what the reference matcher says of every series."""
    with tempfile.TemporaryDirectory() as tmp, pacscore.open(tmp) as arc:
        for i, text in enumerate(descriptions):
            arc.store(
                make_instance(
                    sop=f"1.8.1.{i}.1", study="1.8.1", series=f"1.8.1.{i}", SeriesDescription=text, charset="ISO_IR 192"
                )
            )
        stored = [
            list(
                arc.find(
                    {"SeriesInstanceUID": f"1.8.1.{i}", "SeriesDescription": ""},
                    level="SERIES",
                    relational=True,
                    format="dict",
                )
            )
            for i in range(len(descriptions))
        ]
        values = [rows[0]["SeriesDescription"] if rows else None for rows in stored]
        source = data.draw(st.sampled_from([v for v in values if v] or ["ABC"]))
        start = data.draw(st.integers(0, len(source)))
        piece = source[start : start + data.draw(st.integers(3, 8))]
        key = data.draw(st.sampled_from(["*{}*", "{}*", "*{}", "*{}?*", "{}"])).format(piece)
        if data.draw(st.booleans()):
            key = key.replace(piece[1:2], "?", 1) if len(piece) > 4 else key
        try:
            got = [
                r["SeriesInstanceUID"]
                for r in arc.find(
                    {"SeriesDescription": key, "SeriesInstanceUID": ""}, level="SERIES", relational=True, format="dict"
                )
            ]
        except pacscore.QueryError:
            return
        expected = sorted((f"1.8.1.{i}" for i, v in enumerate(values) if pacscore.match("LO", key, v)), key=str.encode)
        assert got == expected, (key, values)
        runs = re.split(r"[*?]", unicodedata.normalize("NFC", key.strip(" ")))
        if "\\" not in key and any(len(run) >= 3 for run in runs):
            steps = arc.explain({"SeriesDescription": key}, level="SERIES", relational=True)["steps"]
            assert any("trigrams" in step for step in steps), (key, steps)
