"""Studies that exercise a DICOMweb viewer: one study per kind of pixel data a viewer must show.

Why: pydicom's test files hold a CT, an MR and the same MR in several transfer syntaxes, but
those variants share their Study, Series and SOP Instance UIDs, so an archive keeps only the
first one it sees (the others are duplicates) and a viewer never gets to decode the JPEG 2000
or RLE copy. Here each chosen file is rewritten with UIDs of its own (derived from the file
name, so a rerun gives the same UIDs), as a study of its own, with a patient name and a study
description that say what it holds. The pixel data is copied untouched (still compressed).

Files come from pydicom's own ``data`` folder, listed directly (``get_testdata_files`` may go to
the network), and from the ``pydicom-data`` package when it is installed.

    from benchmarks.viewer_data import write_viewer_studies
    studies = write_viewer_studies(Path("demo-data/viewer"))   # [ViewerStudy(kind="CT", ...), ...]
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pydicom
from pydicom.uid import generate_uid

from .sample_data import data_folders

__all__ = ["VIEWER_KINDS", "ViewerStudy", "viewer_sources", "write_viewer_studies"]

#: kind -> candidate (source, file inside that source's data folder), best first; the first one
#: installed is used. pydicom's own files are always there; pydicom-data's are better examples.
VIEWER_KINDS: dict[str, tuple[tuple[str, str], ...]] = {
    "CT": (("pydicom", "test_files/CT_small.dcm"),),
    "MR": (("pydicom", "test_files/MR_small.dcm"),),
    "JPEG2000": (("pydicom", "test_files/MR_small_jp2klossless.dcm"),),
    "JPEGLossless": (("pydicom", "test_files/SC_rgb_jpeg_gdcm.dcm"),),
    "RLE": (("pydicom", "test_files/MR_small_RLE.dcm"),),
    "MultiFrame": (("pydicom-data", "emri_small.dcm"), ("pydicom", "test_files/SC_rgb_rle_2frame.dcm")),
}

#: the root of the UIDs made here (pydicom's, as generate_uid uses by default)
_UID_PREFIX = "1.2.826.0.1.3680043.8.498."


@dataclass(frozen=True)
class ViewerStudy:
    """One written study: what it shows and how to find it."""

    kind: str  # a key of VIEWER_KINDS
    path: Path  # the file written
    source: Path  # the file it was made from
    study_uid: str
    series_uid: str
    sop_uid: str
    patient_name: str
    transfer_syntax: str
    frames: int


def viewer_sources() -> dict[str, Path]:
    """kind -> the installed file used for it; a kind without any installed candidate is left out."""
    folders = dict(data_folders())
    found: dict[str, Path] = {}
    for kind, candidates in VIEWER_KINDS.items():
        for source, relative in candidates:
            folder = folders.get(source)
            if folder is not None and (folder / relative).is_file():
                found[kind] = folder / relative
                break
    return found


def _uid(kind: str, what: str) -> str:
    return generate_uid(_UID_PREFIX, entropy_srcs=["pacscore viewer sample", kind, what])


def write_viewer_studies(dest: Path) -> list[ViewerStudy]:
    """Write one study per kind into ``dest`` (created); returns them in VIEWER_KINDS order."""
    dest = Path(dest)
    dest.mkdir(parents=True, exist_ok=True)
    written = []
    for kind, source in viewer_sources().items():
        ds = pydicom.dcmread(source)
        study, series, sop = _uid(kind, "study"), _uid(kind, "series"), _uid(kind, "instance")
        ds.StudyInstanceUID, ds.SeriesInstanceUID, ds.SOPInstanceUID = study, series, sop
        ds.file_meta.MediaStorageSOPInstanceUID = sop
        name = f"Viewer^{kind}"
        ds.PatientName, ds.PatientID = name, f"VIEWER-{kind.upper()}"
        syntax = ds.file_meta.TransferSyntaxUID
        ds.StudyDescription = f"viewer sample {kind}"  # LO: at most 64 characters
        ds.SeriesDescription = source.name[:64]
        ds.StudyID, ds.AccessionNumber = kind[:16], f"VIEW{len(written) + 1:02d}"
        if not ds.get("Modality"):
            ds.Modality = "OT"
        if not ds.get("SeriesNumber"):
            ds.SeriesNumber = 1
        if not ds.get("InstanceNumber"):
            ds.InstanceNumber = 1
        path = dest / f"{kind}.dcm"
        ds.save_as(path, enforce_file_format=True)
        frames = int(ds.get("NumberOfFrames") or 1)
        written.append(ViewerStudy(kind, path, source, study, series, sop, name, str(syntax), frames))
    return written
