"""The archive core: store, find, count, get, instances, metadata, delete, store_many, errors."""

from __future__ import annotations

import io
import os
import shutil

import pydicom
import pytest

import pacscore
from pacscore import IngestError, NotFound, QueryError

from .expected_warnings import VR_MISMATCH
from .factories import MR_IMAGE, make_instance, pydicom_test_files, to_bytes


def three_studies(arc):
    arc.store(
        make_instance(
            sop="1.2.3.1.1",
            study="1.2.3",
            series="1.2.3.1",
            patient_id="P1",
            patient_name="Smith^John",
            modality="CT",
            study_date="20150304",
        )
    )
    arc.store(
        make_instance(
            sop="1.2.3.1.2",
            study="1.2.3",
            series="1.2.3.1",
            patient_id="P1",
            patient_name="Smith^John",
            modality="CT",
            study_date="20150304",
            instance_number="2",
        )
    )
    arc.store(
        make_instance(
            sop="1.2.3.2.1",
            study="1.2.3",
            series="1.2.3.2",
            patient_id="P1",
            patient_name="Smith^John",
            modality="MR",
            sop_class=MR_IMAGE,
            study_date="20150304",
        )
    )
    arc.store(
        make_instance(
            sop="1.2.4.1.1",
            study="1.2.4",
            series="1.2.4.1",
            patient_id="P1",
            patient_name="Smith^John",
            modality="MR",
            sop_class=MR_IMAGE,
            study_date="20180101",
        )
    )
    arc.store(
        make_instance(
            sop="1.2.5.1.1",
            study="1.2.5",
            series="1.2.5.1",
            patient_id="P2",
            patient_name="Jones^Ann",
            modality="US",
            study_date="20200220",
        )
    )


def uids(results, key="StudyInstanceUID"):
    return [getattr(r, key) if not isinstance(r, dict) else r[key] for r in results]


def test_store_accepts_path_bytes_file_object_and_dataset(arc, tmp_path):
    ds = make_instance(sop="1.9.1")
    path = tmp_path / "a.dcm"
    path.write_bytes(to_bytes(make_instance(sop="1.9.2")))
    assert arc.store(ds).status == "stored"
    assert arc.store(path).status == "stored"
    assert arc.store(to_bytes(make_instance(sop="1.9.3"))).status == "stored"
    assert arc.store(io.BytesIO(to_bytes(make_instance(sop="1.9.4")))).sop_instance_uid == "1.9.4"
    assert arc.count({"StudyInstanceUID": "1.2.3", "SeriesInstanceUID": "1.2.3.1"}, level="IMAGE") == 4


def test_storing_same_bytes_again_is_a_no_op_and_new_bytes_replace(arc):
    data = to_bytes(make_instance(sop="1.9.1", patient_name="Old^Name"))
    assert arc.store(data).status == "stored"
    assert arc.store(data).status == "duplicate"
    newer = to_bytes(make_instance(sop="1.9.1", patient_name="New^Name"))
    assert arc.store(newer).status == "replaced"
    assert arc.get("1.9.1") == newer
    assert [str(d.PatientName) for d in arc.find({"PatientName": ""}, level="STUDY")] == ["New^Name"]
    assert arc.count({}, level="STUDY") == 1
    blobs = list(arc.blobs.keys())
    assert len(blobs) == 1, "the replaced blob is removed"


def test_conflict_policy_keep_and_error(tmp_path):
    first = to_bytes(make_instance(sop="1.9.1", patient_name="A"))
    second = to_bytes(make_instance(sop="1.9.1", patient_name="B"))
    with pacscore.open(tmp_path / "keep", on_conflict="keep") as arc:
        arc.store(first)
        arc.store(second)
        assert arc.get("1.9.1") == first
    with pacscore.open(tmp_path / "err", on_conflict="error") as arc:
        arc.store(first)
        with pytest.raises(IngestError, match="different content"):
            arc.store(second)
        assert arc.get("1.9.1") == first


@VR_MISMATCH
def test_get_returns_the_stored_bytes_exactly(arc):
    for path in sorted(pydicom_test_files().glob("*.dcm"))[:40]:
        try:
            result = arc.store(path)
        except IngestError:
            continue
        data = path.read_bytes()
        if data[128:132] == b"DICM" and result.status == "stored":
            assert arc.get(result.sop_instance_uid) == data


def test_get_unknown_raises_not_found(arc):
    with pytest.raises(NotFound, match=r"1.2.999"):
        arc.get("1.2.999")
    with pytest.raises(KeyError):
        arc.get("1.2.999")


def test_find_study_level_returns_requested_and_unique_keys(arc):
    three_studies(arc)
    results = list(
        arc.find(
            {
                "PatientName": "SMI*",
                "StudyDate": "",
                "ModalitiesInStudy": "",
                "NumberOfStudyRelatedInstances": "",
                "StudyDescription": "",
            },
            level="STUDY",
        )
    )
    assert uids(results) == ["1.2.3", "1.2.4"]
    first = results[0]
    assert first.ModalitiesInStudy == ["CT", "MR"]
    assert first.NumberOfStudyRelatedInstances == 3
    assert first.StudyDate == "20150304"
    assert "StudyDescription" in first and first.StudyDescription == ""
    assert first.QueryRetrieveLevel == "STUDY"
    assert first.SpecificCharacterSet == "ISO_IR 192"


def test_find_date_range_and_modalities(arc):
    three_studies(arc)
    assert uids(arc.find({"StudyDate": "20160101-"}, level="STUDY")) == ["1.2.4", "1.2.5"]
    assert uids(arc.find({"StudyDate": "-20160101"}, level="STUDY")) == ["1.2.3"]
    assert uids(arc.find({"ModalitiesInStudy": "MR"}, level="STUDY")) == ["1.2.3", "1.2.4"]
    assert uids(arc.find({"ModalitiesInStudy": "CT\\US"}, level="STUDY")) == ["1.2.3", "1.2.5"]


def test_find_series_and_image_levels_are_hierarchical(arc):
    three_studies(arc)
    series = list(
        arc.find({"StudyInstanceUID": "1.2.3", "Modality": "", "NumberOfSeriesRelatedInstances": ""}, level="SERIES")
    )
    assert uids(series, "SeriesInstanceUID") == ["1.2.3.1", "1.2.3.2"]
    assert series[0].StudyInstanceUID == "1.2.3"
    assert series[0].NumberOfSeriesRelatedInstances == 2
    images = list(
        arc.find({"StudyInstanceUID": "1.2.3", "SeriesInstanceUID": "1.2.3.1", "InstanceNumber": "2"}, level="IMAGE")
    )
    assert uids(images, "SOPInstanceUID") == ["1.2.3.1.2"]
    with pytest.raises(QueryError, match="StudyInstanceUID"):
        list(arc.find({"Modality": "CT"}, level="SERIES"))
    assert uids(arc.find({"Modality": "MR"}, level="SERIES", relational=True), "SeriesInstanceUID") == [
        "1.2.3.2",
        "1.2.4.1",
    ]


def test_patient_root_model(arc):
    three_studies(arc)
    patients = list(
        arc.find(
            {"PatientID": "", "PatientName": "", "NumberOfPatientRelatedStudies": ""}, level="PATIENT", model="PATIENT"
        )
    )
    assert [(p.PatientID, p.NumberOfPatientRelatedStudies) for p in patients] == [("P1", 2), ("P2", 1)]
    studies = list(arc.find({"PatientID": "P1", "StudyInstanceUID": ""}, level="STUDY", model="PATIENT"))
    assert uids(studies) == ["1.2.3", "1.2.4"]
    assert all(s.PatientID == "P1" for s in studies)
    with pytest.raises(QueryError, match="level"):
        list(arc.find({}, level="PATIENT", model="STUDY"))


def test_find_formats_agree(arc):
    three_studies(arc)
    ident = {"PatientName": "", "StudyDate": "", "ModalitiesInStudy": ""}
    datasets = list(arc.find(ident, level="STUDY"))
    jsons = list(arc.find(ident, level="STUDY", format="json"))
    dicts = list(arc.find(ident, level="STUDY", format="dict"))
    for ds, js, dc in zip(datasets, jsons, dicts, strict=True):
        assert pydicom.Dataset.from_json(js) == ds
        assert dc["StudyInstanceUID"] == ds.StudyInstanceUID
    assert jsons[0]["00100010"] == {"vr": "PN", "Value": [{"Alphabetic": "Smith^John"}]}


def test_dataset_identifier_equals_dict_identifier(arc):
    three_studies(arc)
    ds = pydicom.Dataset()
    ds.QueryRetrieveLevel = "STUDY"
    ds.PatientName = "smi*"
    ds.StudyDate = "20100101-20190101"
    ds.StudyInstanceUID = ""
    assert (
        uids(arc.find(ds))
        == uids(arc.find({"PatientName": "smi*", "StudyDate": "20100101-20190101"}, level="STUDY"))
        == ["1.2.3", "1.2.4"]
    )


def test_limit_offset_page_deterministically(arc):
    for i in range(12):
        arc.store(make_instance(sop=f"1.3.{i}.1.1", study=f"1.3.{i}", series=f"1.3.{i}.1", patient_id=f"P{i}"))
    everything = uids(arc.find({}, level="STUDY"))
    assert everything == sorted(everything)
    pages = [uids(arc.find({}, level="STUDY", limit=5, offset=o)) for o in (0, 5, 10)]
    assert sum(pages, []) == everything
    assert uids(arc.find({}, level="STUDY", offset=50)) == []
    with pytest.raises(QueryError, match="limit"):
        list(arc.find({}, level="STUDY", limit=-1))


def test_pages_across_result_batches_and_the_gc_is_left_on(arc, monkeypatch):
    """Results are built in batches with the cyclic GC paused: pages that cross batch
    boundaries are still exact, and the GC is on whenever the caller has control."""
    import gc

    from pacscore.query import paging, results

    monkeypatch.setattr(results, "RESULT_BATCH", 4)
    monkeypatch.setattr(paging, "RESULT_BATCH", 4)
    arc.store_many([to_bytes(make_instance(sop=f"1.4.{i}", study="1.4", series="1.4.1")) for i in range(11)])
    everything = [
        r["SOPInstanceUID"]
        for r in arc.find(
            {"StudyInstanceUID": "1.4", "SeriesInstanceUID": "1.4.1", "SOPInstanceUID": ""},
            level="IMAGE",
            format="dict",
        )
    ]
    assert len(everything) == 11
    for offset, limit in [(0, 4), (0, 8), (3, 5), (9, 10), (0, None), (4, None), (11, 3), (2, 0)]:
        found = arc.find(
            {"StudyInstanceUID": "1.4", "SeriesInstanceUID": "1.4.1", "SOPInstanceUID": ""},
            level="IMAGE",
            format="dict",
            offset=offset,
            limit=limit,
        )
        got = []
        for row in found:
            assert gc.isenabled()
            got.append(row["SOPInstanceUID"])
        end = None if limit is None else offset + limit
        assert got == everything[offset:end], (offset, limit)
    gc.disable()  # a caller that turned the GC off keeps it off
    try:
        assert len(list(arc.find({}, level="STUDY"))) == 1 and not gc.isenabled()
    finally:
        gc.enable()


def test_count_never_builds_results_and_equals_find(arc):
    three_studies(arc)
    for ident, level in (
        ({}, "STUDY"),
        ({"StudyInstanceUID": "1.2.3"}, "SERIES"),
        ({"StudyInstanceUID": "1.2.3", "SeriesInstanceUID": "1.2.3.1"}, "IMAGE"),
    ):
        assert arc.count(ident, level=level) == len(list(arc.find(ident, level=level)))


def test_instances_lists_what_a_retrieve_sends(arc):
    three_studies(arc)
    refs = arc.instances(study="1.2.3")
    assert [r.sop_instance_uid for r in refs] == ["1.2.3.1.1", "1.2.3.1.2", "1.2.3.2.1"]
    assert refs[0].transfer_syntax_uid == "1.2.840.10008.1.2.1"
    assert [r.sop_instance_uid for r in arc.instances(patient="P2")] == ["1.2.5.1.1"]
    assert [r.sop_instance_uid for r in arc.instances(series=["1.2.4.1", "1.2.5.1"])] == ["1.2.4.1.1", "1.2.5.1.1"]
    assert arc.instances(study="9.9.9") == []


def test_delete_keeps_computed_attributes_right(arc):
    three_studies(arc)
    assert arc.delete(series="1.2.3.2") == 1
    study = next(
        arc.find(
            {
                "StudyInstanceUID": "1.2.3",
                "ModalitiesInStudy": "",
                "NumberOfStudyRelatedSeries": "",
                "NumberOfStudyRelatedInstances": "",
            },
            level="STUDY",
        )
    )
    assert study.ModalitiesInStudy == "CT"
    assert (study.NumberOfStudyRelatedSeries, study.NumberOfStudyRelatedInstances) == (1, 2)
    assert arc.delete(instance="1.2.3.1.1") == 1
    assert arc.delete(study="1.2.4") == 1
    patient = next(
        arc.find(
            {"PatientID": "P1", "NumberOfPatientRelatedStudies": "", "NumberOfPatientRelatedInstances": ""},
            level="PATIENT",
            model="PATIENT",
        )
    )
    assert (patient.NumberOfPatientRelatedStudies, patient.NumberOfPatientRelatedInstances) == (1, 1)
    assert arc.delete(patient="P1") == 1
    assert uids(arc.find({}, level="STUDY")) == ["1.2.5"]
    assert arc.count({"PatientID": ""}, level="PATIENT", model="PATIENT") == 1
    assert len(list(arc.blobs.keys())) == 1
    with pytest.raises(NotFound):
        arc.get("1.2.3.1.2")
    with pytest.raises(ValueError):
        arc.delete()


def test_metadata_comes_from_the_index_without_the_blob(arc):
    path = pydicom_test_files() / "CT_small.dcm"
    uid = arc.store(path).sop_instance_uid
    for key in list(arc.blobs.keys()):
        arc.blobs.delete(key)
    meta = arc.metadata(uid, bulkdata_uri=lambda tag: f"bulk/{tag}")
    assert meta["00080018"]["Value"] == [uid]
    assert meta["00100010"]["Value"] == [{"Alphabetic": "CompressedSamples^CT1"}]
    assert meta["7FE00010"] == {"vr": "OW", "BulkDataURI": "bulk/7FE00010"}, "pixel data is bulk data"
    with pytest.raises(pacscore.StorageError, match="missing"):
        arc.get(uid)


def test_store_many_walks_folders_and_reports(arc, tmp_path):
    src = tmp_path / "src"
    (src / "sub").mkdir(parents=True)
    for i in range(5):
        (src / "sub" / f"{i}.dcm").write_bytes(to_bytes(make_instance(sop=f"1.4.{i}", study="1.4", series="1.4.1")))
    (src / "notes.txt").write_text("not an image")
    shutil.copy(src / "sub" / "0.dcm", src / "copy.dcm")
    report = arc.store_many(src, workers=2)
    assert sorted(report.stored) == [f"1.4.{i}" for i in range(5)]
    assert report.duplicates == ["1.4.0"]
    assert [(os.path.basename(p), "not DICOM" in r) for p, r in report.rejected] == [("notes.txt", True)]


def test_store_many_streams_a_generator_through_one_pool(arc, monkeypatch):
    """A generator is read as ingest goes (not listed first), in order, with Datasets and
    bytes mixed; the first batch is committed long before the input is used up."""
    taken = []
    seen_at_first_commit = []

    def sources():
        for i in range(1500):
            taken.append(i)
            ds = make_instance(sop=f"1.6.{i}", study=f"1.6.{i % 7}", series=f"1.6.{i % 7}.1")
            yield ds if i % 500 == 7 else to_bytes(ds)
        yield b"not DICOM at all"

    real = arc._store_parsed

    def store(batch, *rest):
        if not seen_at_first_commit:
            seen_at_first_commit.append(len(taken))
        return real(batch, *rest)

    monkeypatch.setattr(arc, "_store_parsed", store)
    report = arc.store_many(sources(), workers=2, batch_size=100)
    assert report.stored == [f"1.6.{i}" for i in range(1500)]
    assert [reason for _, reason in report.rejected] == ["not DICOM: no DICM prefix and no recognisable data set"]
    assert seen_at_first_commit[0] < 1000
    assert arc.count({}, level="IMAGE", relational=True) == 1500


def test_store_many_real_files_with_workers(arc):
    report = arc.store_many(pydicom_test_files(), workers=2)
    assert len(report.stored) > 80
    reasons = dict(report.rejected)
    assert any("truncated" in r for r in reasons.values())
    assert arc.count({}, level="IMAGE", relational=True) == len(report.stored)


@pytest.mark.parametrize(
    "name, reason",
    [
        ("MR_truncated.dcm", "truncated"),
        ("README.txt", "not DICOM"),
        ("JPEGLSNearLossless_08.dcm", "missing StudyInstanceUID"),
        ("empty_charset_LEI.dcm", "missing SOPInstanceUID"),
    ],
)
def test_bad_files_get_clear_errors_and_write_nothing(arc, name, reason):
    arc.store(make_instance(sop="1.5.1"))
    path = pydicom_test_files() / name
    with pytest.raises(IngestError, match=reason) as err:
        arc.store(path)
    assert name in str(err.value)
    assert arc.count({}, level="IMAGE", relational=True) == 1
    assert len(list(arc.blobs.keys())) == 1


@pytest.mark.parametrize(
    "data, reason",
    [
        (b"", "not DICOM"),
        (b"\x00" * 128 + b"DICM" + b"\x02\x00", "missing|truncated|unreadable"),
        (b"hello world, this is text", "not DICOM"),
    ],
)
def test_bad_bytes_get_clear_errors(arc, data, reason):
    with pytest.raises(IngestError, match=reason):
        arc.store(data)
    assert arc.count({}, level="STUDY") == 0


def test_truncated_at_many_offsets_never_half_writes(arc):
    data = to_bytes(make_instance(sop="1.6.1", PixelData=b"\x00" * 512, Rows=16, Columns=16, BitsAllocated=16))
    for cut in range(140, len(data), 37):
        try:
            arc.store(data[:cut])
        except IngestError:
            pass
    assert arc.count({}, level="IMAGE", relational=True) <= 1
    report = arc.store(data)
    assert report.sop_instance_uid == "1.6.1"
    assert arc.get("1.6.1") == data


@pytest.mark.parametrize(
    "identifier, level, attribute",
    [
        ({}, "FOO", "QueryRetrieveLevel"),
        ({"NoSuchKeyword": "x"}, "STUDY", "NoSuchKeyword"),
        ({"PatientName": 42}, "STUDY", "PatientName"),
        ({"StudyDate": {"a": 1}}, "STUDY", "StudyDate"),
        ({}, None, "QueryRetrieveLevel"),
    ],
)
def test_malformed_identifiers_raise_query_error(arc, identifier, level, attribute):
    with pytest.raises(QueryError) as err:
        list(arc.find(identifier, level=level))
    if attribute:
        assert err.value.attribute == attribute


def test_malformed_date_matches_nothing_by_default_and_raises_on_request(arc):
    three_studies(arc)
    assert list(arc.find({"StudyDate": "2020-13-45"}, level="STUDY")) == []
    with pytest.raises(QueryError, match="StudyDate"):
        list(arc.find({"StudyDate": "20201345"}, level="STUDY", invalid_keys="error"))
    with pytest.raises(QueryError, match="StudyDate"):
        list(arc.find({"StudyDate": "20200101-20190101"}, level="STUDY", invalid_keys="error"))
    assert arc.count({}, level="STUDY") == 3


def test_unknown_option_is_refused(arc):
    with pytest.raises(QueryError, match="no_such_option"):
        arc.count({}, level="STUDY", no_such_option=True)


def test_non_ascii_names_in_several_character_sets(arc):
    arc.store(
        make_instance(
            sop="1.7.1",
            study="1.7",
            series="1.7.1",
            patient_id="J1",
            patient_name="Yamada^Tarou=山田^太郎=やまだ^たろう",
            charset=["ISO 2022 IR 6", "ISO 2022 IR 87"],
        )
    )
    arc.store(
        make_instance(
            sop="1.8.1",
            study="1.8",
            series="1.8.1",
            patient_id="C1",
            patient_name="Wang^XiaoDong=王^小东",
            charset="GB18030",
        )
    )
    arc.store(
        make_instance(
            sop="1.9.1",
            study="1.9",
            series="1.9.1",
            patient_id="G1",
            patient_name="Müller^Jürgen",
            charset="ISO_IR 100",
        )
    )
    got = {d.PatientID: str(d.PatientName) for d in arc.find({"PatientName": "", "PatientID": ""}, level="STUDY")}
    assert got == {"J1": "Yamada^Tarou=山田^太郎=やまだ^たろう", "C1": "Wang^XiaoDong=王^小东", "G1": "Müller^Jürgen"}
    assert uids(arc.find({"PatientName": "MÜLLER*"}, level="STUDY")) == ["1.9"]
    assert uids(arc.find({"PatientName": "*=山田*"}, level="STUDY")) == ["1.7"]


def test_patient_disagreement_each_study_keeps_its_own(arc):
    arc.store(
        make_instance(
            sop="1.10.1",
            study="1.10",
            series="1.10.1",
            patient_id="P9",
            patient_name="Old^Name",
            PatientBirthDate="19700101",
        )
    )
    arc.store(
        make_instance(
            sop="1.11.1",
            study="1.11",
            series="1.11.1",
            patient_id="P9",
            patient_name="New^Name",
            PatientBirthDate="19700102",
        )
    )
    studies = {s.StudyInstanceUID: str(s.PatientName) for s in arc.find({"PatientName": ""}, level="STUDY")}
    assert studies == {"1.10": "Old^Name", "1.11": "New^Name"}
    patient = next(arc.find({"PatientID": "P9", "PatientName": ""}, level="PATIENT", model="PATIENT"))
    assert str(patient.PatientName) == "New^Name"
    assert arc.stats()["patient_disagreements"] == 1


def test_reopen_keeps_data_and_indexed_tags_but_not_handle_options(tmp_path):
    with pacscore.open(tmp_path / "a", extra_tags=["BodyPartExamined"], pn_case_insensitive=False) as arc:
        arc.store(make_instance(sop="1.12.1", patient_name="Smith^John"))
        assert arc.count({"PatientName": "smith*"}, level="STUDY") == 0
    with pacscore.open(tmp_path / "a") as arc:
        assert arc.extra_tags == [0x00180015]
        assert arc.options.pn_case_insensitive is True  # handle options are not kept (tests/test_settings.py)
        assert arc.count({"PatientName": "smith*"}, level="STUDY") == 1


def test_archive_reopens_after_fork(arc):
    three_studies(arc)
    before = arc.count({}, level="STUDY")
    pid = os.fork()
    if pid == 0:  # child: the environment must be reopened, not reused
        try:
            ok = arc.count({}, level="STUDY") == before
            arc.store(make_instance(sop="1.2.99.1", study="1.2.99", series="1.2.99.1"))
            os._exit(0 if ok else 1)
        except BaseException:
            os._exit(2)
    _, status = os.waitpid(pid, 0)
    assert os.WEXITSTATUS(status) == 0
    assert arc.count({}, level="STUDY") == before + 1


def test_explain_shows_the_plan(arc):
    three_studies(arc)
    assert arc.explain({"StudyInstanceUID": "1.2.3\\1.2.4"}, level="STUDY")["plan"] == "unique"
    assert arc.explain({"StudyInstanceUID": "1.2.3"}, level="SERIES")["plan"] == "navigate"
    assert arc.explain({"PatientID": "P1"}, level="STUDY")["plan"] == "index"
    assert arc.explain({"StudyDescription": "X*"}, level="STUDY")["plan"] == "scan"


def test_one_folder_opened_twice_in_one_process_shares_the_index(tmp_path):
    first = pacscore.open(tmp_path / "a")
    second = pacscore.open(tmp_path / "a")
    first.store(make_instance(sop="1.13.1"))
    assert second.count({}, level="STUDY") == 1
    first.close()
    assert second.count({}, level="STUDY") == 1, "closing one leaves the other working"
    second.store(make_instance(sop="1.13.2", study="1.13", series="1.13.1"))
    second.close()
    with pacscore.open(tmp_path / "a") as third:
        assert third.count({}, level="STUDY") == 2


def test_queries_free_their_read_transactions_without_the_cyclic_gc(arc):
    """Each query's read transaction (an LMDB reader slot) is freed when the query ends, by
    reference counting alone: with the GC off, 1 200 queries would otherwise fill the reader
    table (256 slots) and the next read fail with MDB_READERS_FULL."""
    import gc

    for i in range(6):
        arc.store(make_instance(sop=f"1.7.{i}", study=f"1.7.{i % 3}", series=f"1.7.{i % 3}.1", patient_name=f"Doe^{i}"))
    queries = [
        ({"PatientName": "*o*", "StudyDate": "", "PatientID": ""}, "STUDY", {}),
        ({"StudyDate": "20200101-", "StudyTime": "0000-", "PatientName": ""}, "STUDY", {"combined_datetime": True}),
        ({"Modality": "CT", "SeriesDescription": ""}, "SERIES", {"relational": True}),
        ({"StudyInstanceUID": "1.7.1", "SeriesInstanceUID": "1.7.1.1", "SOPInstanceUID": ""}, "IMAGE", {}),
    ]
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        for _ in range(100):
            for ident, level, opts in queries:
                for fmt in ("json", "dict", "dataset"):
                    assert list(arc.find(ident, level=level, format=fmt, **opts))
                next(iter(arc.find(ident, level=level, format="json", **opts)))  # left unfinished
                assert arc.count(ident, level=level, **opts) > 0
                arc.explain(ident, level=level, **opts)
        assert arc.index.env.readers().count("\n") <= 3
    finally:
        if was_enabled:
            gc.enable()


def test_a_description_key_with_a_lone_surrogate_is_answered(arc):
    """A Python caller can pass text no encoder accepts; the trigram plan encodes it the way the
    entries are written and the matcher decides (nothing matches here)."""
    arc.store(make_instance(sop="1.8.1.1", study="1.8", series="1.8.1", SeriesDescription="ABC"))
    key = {"SeriesDescription": "*AB\ud800*", "SeriesInstanceUID": ""}
    assert list(arc.find(key, level="SERIES", relational=True, format="dict")) == []
    assert arc.explain(key, level="SERIES", relational=True)["steps"] == ["SeriesDescription: 0 candidates (trigrams)"]
