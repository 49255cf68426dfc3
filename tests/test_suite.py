"""The bench query suite (pacscore.testing.suite) fills its keys from any archive: names in any
script, archives without accession numbers, and says so when an archive holds no study."""

from __future__ import annotations

import itertools

import pytest
from pydicom.data import get_charset_files

import pacscore
from pacscore.cli import main
from pacscore.testing.generate import GeneratorConfig, generate_bytes
from pacscore.testing.suite import QUERY_SUITE, resolve_suite

NAME_QUERIES = ("PatientName prefix", "PatientName infix", "PatientName ? wildcard")


def studies(arc, ident: dict, level: str, opts: dict) -> set[str]:
    return {r["StudyInstanceUID"] for r in arc.find(ident, level=level, format="dict", **opts)}


def assert_name_keys_find_the_picked_patient(arc) -> dict:
    """Every query resolves, and each name query finds a study of the patient the suite picked
    (the exact PatientID query), so the keys were built from a real stored name."""
    suite = {name: (ident, level, opts) for name, ident, level, opts in resolve_suite(arc)}
    assert list(suite) == [name for name, *_ in QUERY_SUITE]
    for ident, level, opts in suite.values():
        list(arc.find(ident, level=level, **opts))  # a valid key for every query
    patient_studies = studies(arc, *suite["exact PatientID"])
    assert patient_studies
    for name in NAME_QUERIES:
        assert studies(arc, *suite[name]) & patient_studies, (name, suite[name][0])
    return suite


def stored_names(arc) -> list[str]:
    return [r.get("PatientName", "") for r in arc.find({"PatientName": ""}, level="STUDY", format="dict")]


def test_an_archive_whose_names_are_all_non_ascii(tmp_path):
    # the IndexError of issue 20: the suite took its name from an ASCII-named study only
    config = GeneratorConfig(patients=12, seed=2, non_ascii_fraction=1.0)
    with pacscore.open(tmp_path / "arc") as arc:
        arc.store_many([data for _, data in generate_bytes(config)], workers=1)
        names = stored_names(arc)
        assert names and not any(n.isascii() for n in names)
        assert_name_keys_find_the_picked_patient(arc)


def test_real_files_in_many_character_sets(tmp_path):
    """pydicom's charset files: Japanese, Korean, Chinese, Greek, Hebrew, Arabic, Russian names,
    some with only a non-Alphabetic group, most without an accession number."""
    with pacscore.open(tmp_path / "arc") as arc:
        report = arc.store_many(get_charset_files("chr*.dcm"), workers=1)
        assert len(report.stored) >= 10
        assert not any(n.isascii() for n in stored_names(arc) if n)
        assert_name_keys_find_the_picked_patient(arc)


def test_a_name_in_a_later_component_group_gets_a_key_on_that_group(tmp_path):
    from pydicom.dataset import Dataset, FileMetaDataset
    from pydicom.uid import ExplicitVRLittleEndian, SecondaryCaptureImageStorage, generate_uid

    def instance(name: str) -> Dataset:
        ds = Dataset()
        ds.file_meta = FileMetaDataset()
        ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
        ds.file_meta.MediaStorageSOPClassUID = ds.SOPClassUID = SecondaryCaptureImageStorage
        ds.file_meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID = generate_uid()
        ds.SpecificCharacterSet = "ISO_IR 192"
        ds.PatientName, ds.PatientID = name, generate_uid()[-10:]
        ds.StudyInstanceUID, ds.SeriesInstanceUID = generate_uid(), generate_uid()
        ds.StudyDate, ds.Modality = "20200102", "OT"
        return ds

    with pacscore.open(tmp_path / "arc") as arc:
        for name in ("=山田^太郎", "=中村^一郎=なかむら^いちろう", "==たなか^はなこ"):
            arc.store(instance(name))
        suite = assert_name_keys_find_the_picked_patient(arc)
        assert suite["PatientName prefix"][0]["PatientName"].startswith("=")


def test_an_empty_archive_is_refused_with_a_reason(tmp_path):
    with pacscore.open(tmp_path / "arc") as arc, pytest.raises(ValueError, match="holds no study"):
        resolve_suite(arc)


def test_pacscore_bench_on_a_non_ascii_archive(tmp_path, capsys):
    folder = tmp_path / "arc"
    config = GeneratorConfig(patients=8, seed=4, non_ascii_fraction=1.0)
    with pacscore.open(folder) as arc:
        arc.store_many([data for _, data in itertools.islice(generate_bytes(config), 150)], workers=1)
    assert main(["bench", str(folder), "--repeat", "1"]) == 0
    out = capsys.readouterr().out
    assert "errors 0" in out and "PatientName ? wildcard" in out


def test_pacscore_bench_on_an_empty_archive_says_why(tmp_path, capsys):
    pacscore.open(tmp_path / "arc").close()
    assert main(["bench", str(tmp_path / "arc"), "--repeat", "1"]) == 2
    assert "holds no study" in capsys.readouterr().err
