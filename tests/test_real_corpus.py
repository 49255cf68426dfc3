"""Every real file the pydicom wheel and the pydicom-data package ship is stored and reads back
byte-identical (a bare data set, without the Part-10 header, comes back wrapped in one), except
the files below that are not DICOM instances an archive can place: each is listed with why, and
must be rejected with that reason (so the list cannot hide a regression). The folders are listed
directly: pydicom's get_testdata_files() with a pattern may reach for the network."""

from __future__ import annotations

import importlib.util
import io
from pathlib import Path

import pydicom
import pydicom.data
import pytest

import pacscore

from .expected_warnings import VR_MISMATCH

PYDICOM_DATA = Path(pydicom.data.__file__).parent


def _folders() -> list[Path]:
    folders = [PYDICOM_DATA / "test_files", PYDICOM_DATA / "charset_files", PYDICOM_DATA / "palettes"]
    spec = importlib.util.find_spec("data_store")  # pydicom-data
    if spec is not None and spec.submodule_search_locations:
        folders.append(Path(next(iter(spec.submodule_search_locations))) / "data")
    return folders


NOT_DICOM = "not DICOM"
NO_PLACE = "missing"  # no Study/Series Instance UID: no place in the Q/R hierarchy (PS3.4 C.6.1.1)
TRUNCATED = "truncated"

#: relative path -> the start of the rejection reason, with why the file is not an instance to keep
NOT_INSTANCES = {
    # not DICOM at all: documentation, JSON, dumps, an ICC profile, a gzip file
    "test_files/README.txt": NOT_DICOM,
    "test_files/dicomdirtests/README.txt": NOT_DICOM,
    "test_files/dicomdirtests/TINY_ALPHA/README": NOT_DICOM,
    "charset_files/FileInfo.txt": NOT_DICOM,
    "palettes/README.md": NOT_DICOM,
    "test_files/test1.json": NOT_DICOM,
    "test_files/test_PN.json": NOT_DICOM,
    "test_files/rtplan.dump": NOT_DICOM,
    "test_files/rtstruct.dump": NOT_DICOM,
    "test_files/crayons.icc": NOT_DICOM,
    "test_files/zipMR.gz": NOT_DICOM,
    # a data set of one element with an invalid VR, no Part-10 prefix, no UID
    "test_files/no_meta.dcm": NOT_DICOM,
    # media directories (PS3.10 7.2, Media Storage Directory), not composite instances
    "test_files/dicomdirtests/DICOMDIR": NO_PLACE,
    "test_files/dicomdirtests/DICOMDIR-bigEnd": NO_PLACE,
    "test_files/dicomdirtests/DICOMDIR-empty.dcm": NO_PLACE,
    "test_files/dicomdirtests/DICOMDIR-implicit": NO_PLACE,
    "test_files/dicomdirtests/DICOMDIR-nooffset": NO_PLACE,
    "test_files/dicomdirtests/DICOMDIR-nopatient": NO_PLACE,
    "test_files/dicomdirtests/DICOMDIR-reordered": NO_PLACE,
    "test_files/dicomdirtests/TINY_ALPHA/DICOMDIR": NO_PLACE,
    # Color Palette IOD instances (PS3.3 A.58): no patient, study or series modules
    **{
        f"palettes/{name}.dcm": NO_PLACE
        for name in ("fall", "hotiron", "hotmetalblue", "pet", "pet20step", "spring", "summer", "winter")
    },
    # fragments made to test a reader (a few elements, no Study and Series Instance UID)
    "charset_files/chrSQEncoding.dcm": NO_PLACE,
    "charset_files/chrSQEncoding1.dcm": NO_PLACE,
    "test_files/JPEGLSNearLossless_08.dcm": NO_PLACE,
    "test_files/JPEGLSNearLossless_16.dcm": NO_PLACE,
    "test_files/SC_rgb_jls_lossy_line.dcm": NO_PLACE,
    "test_files/SC_rgb_jls_lossy_sample.dcm": NO_PLACE,
    "test_files/UN_sequence.dcm": NO_PLACE,
    "test_files/empty_charset_LEI.dcm": NO_PLACE,
    "test_files/meta_missing_tsyntax.dcm": NO_PLACE,
    "test_files/nested_priv_SQ.dcm": NO_PLACE,
    "test_files/no_meta_group_length.dcm": NO_PLACE,
    "test_files/priv_SQ.dcm": NO_PLACE,
    # copies cut short on purpose: storing them would keep a broken image
    "test_files/MR_truncated.dcm": TRUNCATED,
    "test_files/rtplan_truncated.dcm": TRUNCATED,
}


def _data_set(data: bytes) -> pydicom.Dataset:
    """The data set of ``data`` without group lengths (retired, PS3.5 7.2; the Part-10 writer
    drops them) and without file meta."""
    ds = pydicom.dcmread(io.BytesIO(data), force=True)
    ds.file_meta = pydicom.dataset.FileMetaDataset()
    for tag in [t for t in ds.keys() if t.element == 0]:
        del ds[tag]
    return ds


def _files() -> list[tuple[str, Path]]:
    out = []
    for folder in _folders():
        for path in sorted(folder.rglob("*")):
            if path.is_file() and "__pycache__" not in path.parts and path.suffix not in (".py", ".pyc"):
                out.append((f"{folder.name}/{path.relative_to(folder).as_posix()}", path))
    return out


def test_the_corpus_is_listed():
    names = {name for name, _ in _files()}
    assert len(names) > 200 and "test_files/CT_small.dcm" in names
    assert set(NOT_INSTANCES) <= names, "an excluded file is gone: update the list"


@VR_MISMATCH
def test_every_real_instance_is_stored_and_reads_back_byte_identical(tmp_path):
    """One file at a time, read back at once: several files share a SOP Instance UID (one image
    in several transfer syntaxes), so each replaces the one before it."""
    if not any(folder.name == "data" for folder in _folders()):
        pytest.skip("pydicom-data is not installed")
    stored, rejected = 0, {}
    with pacscore.open(tmp_path / "a") as arc:
        for name, path in _files():
            data = path.read_bytes()
            try:
                result = arc.store(path)
            except pacscore.IngestError as exc:
                rejected[name] = exc.reason
                continue
            assert result.status in ("stored", "replaced", "duplicate"), name
            got = arc.get(result.sop_instance_uid)
            if data[128:132] == b"DICM":
                assert got == data, name
            else:  # a bare data set is kept as a Part-10 file around the same data set
                assert got[128:132] == b"DICM" and _data_set(got) == _data_set(data), name
            stored += 1
        assert arc.verify().ok
    unexpected = {n: r for n, r in rejected.items() if n not in NOT_INSTANCES}
    assert unexpected == {}
    wrong_reason = {n: r for n, r in rejected.items() if not r.startswith(NOT_INSTANCES[n])}
    assert wrong_reason == {}
    assert set(rejected) == set(NOT_INSTANCES), "an excluded file is stored now: take it off the list"
    assert stored > 180
