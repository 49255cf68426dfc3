"""The gatherer of real DICOM files shipped by pydicom and pydicom-data."""

from __future__ import annotations

import socket

import pydicom
import pytest
from pydicom.errors import InvalidDicomError

from benchmarks import sample_data
from benchmarks.sample_data import gather, invalid_dicom_files, real_dicom_files
from pacscore.testing.generate import GeneratorConfig, count_instances

CATEGORIES = {
    "not-dicom",
    "no-file-meta",
    "bad-file-meta",
    "no-uids",
    "bad-uid",
    "truncated",
    "malformed",
    "bad-vr",
    "unreadable",
}


def test_real_files_are_many_and_have_the_hierarchy_uids():
    files = real_dicom_files()
    assert len(files) > 100
    assert len(set(files)) == len(files)
    syntaxes = set()
    for path in files:
        ds = pydicom.dcmread(path, stop_before_pixels=True, force=False)
        assert ds.SOPInstanceUID and ds.StudyInstanceUID and ds.SeriesInstanceUID
        syntaxes.add(ds.file_meta.TransferSyntaxUID)
    assert len(syntaxes) >= 6  # little/big endian, implicit, deflate, JPEG family, RLE ...


def test_both_sources_are_used():
    sources = {name for name, _ in sample_data.data_folders()}
    assert "pydicom" in sources
    if "pydicom-data" in sources:
        folder = dict(sample_data.data_folders())["pydicom-data"]
        assert any(folder in path.parents for path in real_dicom_files())


def test_invalid_files_have_reasons_and_are_disjoint_from_valid():
    invalid = invalid_dicom_files()
    assert len(invalid) >= 10
    for path, reason in invalid:
        assert path.is_file()
        assert reason.split(":")[0] in CATEGORIES and len(reason) > len(reason.split(":")[0]) + 3
    found = {reason.split(":")[0] for _, reason in invalid}
    assert {"not-dicom", "no-file-meta", "no-uids", "truncated"} <= found
    valid = real_dicom_files()
    assert not set(valid) & {path for path, _ in invalid}
    assert set(real_dicom_files(include_invalid=True)) == set(valid) | {path for path, _ in invalid}


def test_known_oddities_are_classified():
    reasons = {path.name: reason for path, reason in invalid_dicom_files()}
    expected = {
        "MR_truncated.dcm": "truncated",
        "no_meta.dcm": "no-file-meta",
        "badVR.dcm": "bad-vr",
        "README.txt": "not-dicom",
        "DICOMDIR": "no-uids",
    }
    for name, category in expected.items():
        if name in reasons:
            assert reasons[name].startswith(category + ":"), (name, reasons[name])


def test_files_without_part10_header_are_rejected_by_strict_reading():
    for path, reason in invalid_dicom_files():
        if reason.startswith(("not-dicom:", "no-file-meta:")):
            with pytest.raises(InvalidDicomError):
                pydicom.dcmread(path, force=False)


def test_survey_does_not_touch_the_network(monkeypatch):
    def refuse(*args, **kwargs):
        raise AssertionError("network access attempted")

    monkeypatch.setattr(socket, "socket", refuse)
    monkeypatch.setattr(socket, "create_connection", refuse)
    sample_data._survey.cache_clear()
    assert len(real_dicom_files()) > 100


def test_gather(tmp_path):
    counts = gather(tmp_path, generated_patients=3, seed=2)
    assert counts["real"] == len(real_dicom_files()) and counts["invalid"] == 0
    assert 0 < counts["real_unique"] <= counts["real"]
    assert counts["generated"] == count_instances(GeneratorConfig(patients=3, seed=2))
    copied = sorted(p for p in (tmp_path / "real").rglob("*") if p.is_file())
    assert len(copied) == counts["real"]
    originals = {p.name: p for p in real_dicom_files()}
    sample = copied[0]
    assert sample.read_bytes() == originals[sample.name].read_bytes()
    assert len(list((tmp_path / "generated").rglob("*.dcm"))) == counts["generated"]


def test_gather_with_invalid_files(tmp_path):
    counts = gather(tmp_path, generated_patients=1, include_invalid=True, symlink=True)
    assert counts["invalid"] == len(invalid_dicom_files())
    linked = [p for p in (tmp_path / "real").rglob("*") if p.is_symlink()]
    assert len(linked) == counts["real"] + counts["invalid"]
