"""The viewer's sample studies (benchmarks/viewer_data.py): one study of each kind, each with
UIDs of its own, pixel data untouched, and in the demo archive."""

from __future__ import annotations

import pydicom
import pytest
from pydicom.uid import JPEG2000Lossless, JPEGLosslessSV1, RLELossless

import pacscore
from benchmarks import viewer_data
from benchmarks.sample_data import gather
from benchmarks.viewer_data import VIEWER_KINDS, write_viewer_studies


def test_every_kind_is_written_as_a_study_of_its_own(tmp_path):
    studies = {s.kind: s for s in write_viewer_studies(tmp_path)}
    assert set(studies) == set(VIEWER_KINDS)
    for uid_kind in ("study_uid", "series_uid", "sop_uid"):
        assert len({getattr(s, uid_kind) for s in studies.values()}) == len(studies)
    syntaxes = {kind: s.transfer_syntax for kind, s in studies.items()}
    assert syntaxes["JPEG2000"] == JPEG2000Lossless
    assert syntaxes["JPEGLossless"] == JPEGLosslessSV1
    assert syntaxes["RLE"] == RLELossless
    assert studies["MultiFrame"].frames > 1
    assert pydicom.dcmread(studies["CT"].path).Modality == "CT"
    assert pydicom.dcmread(studies["MR"].path).Modality == "MR"


def test_pixel_data_is_copied_untouched_and_the_uids_are_stable(tmp_path):
    first = write_viewer_studies(tmp_path / "a")
    second = write_viewer_studies(tmp_path / "b")
    assert [s.study_uid for s in first] == [s.study_uid for s in second]
    for study in first:
        written, source = pydicom.dcmread(study.path), pydicom.dcmread(study.source)
        assert written.PixelData == source.PixelData
        assert written.file_meta.TransferSyntaxUID == source.file_meta.TransferSyntaxUID
        assert written.file_meta.MediaStorageSOPInstanceUID == written.SOPInstanceUID == study.sop_uid
        assert written.SOPInstanceUID != source.SOPInstanceUID


def test_without_pydicom_data_the_multiframe_study_comes_from_pydicom(tmp_path, monkeypatch):
    folders = [f for f in viewer_data.data_folders() if f[0] == "pydicom"]
    monkeypatch.setattr(viewer_data, "data_folders", lambda: folders)
    studies = {s.kind: s for s in write_viewer_studies(tmp_path)}
    assert set(studies) == set(VIEWER_KINDS)
    assert studies["MultiFrame"].source.name == "SC_rgb_rle_2frame.dcm" and studies["MultiFrame"].frames == 2


def test_the_demo_data_holds_the_viewer_studies(tmp_path):
    counts = gather(tmp_path / "data", generated_patients=1, seed=3)
    assert counts["viewer"] == len(VIEWER_KINDS)
    with pacscore.open(tmp_path / "arc") as arc:
        arc.store_many(tmp_path / "data" / "viewer")
        found = arc.find({"PatientName": "Viewer^*", "StudyDescription": ""}, level="STUDY", format="dict")
        assert sorted(r["StudyDescription"] for r in found) == sorted(f"viewer sample {k}" for k in VIEWER_KINDS)


@pytest.mark.parametrize("kind", sorted(VIEWER_KINDS))
def test_each_kind_has_a_candidate_in_pydicom_itself(kind):
    """pydicom is always installed: every kind must be possible without pydicom-data."""
    assert any(source == "pydicom" for source, _ in VIEWER_KINDS[kind])
