"""Real image files for the frame, rendering and delete tests, each stored under UIDs of its own.

pydicom ships several files that share a SOP Instance UID (MR_small in six transfer syntaxes),
so every file is stored with a fresh study, series and instance UID derived from its position
in the list; its pixel data and everything else stay as they are. Files are read from pydicom's
data folder directly (never ``get_testdata_files``, which may reach the network).
"""

from __future__ import annotations

import io
from dataclasses import dataclass
from pathlib import Path

import pydicom

TEST_FILES = Path(pydicom.__file__).parent / "data" / "test_files"
ROOT = "1.2.826.0.1.3680043.10.1024"


@dataclass(frozen=True)
class Stored:
    """One stored file: its name, the dataset as read from disk (with the new UIDs) and its UIDs."""

    name: str
    ds: pydicom.Dataset
    study: str
    series: str
    instance: str

    def path(self, base: str) -> str:
        return f"{base}/studies/{self.study}/series/{self.series}/instances/{self.instance}"

    @property
    def syntax(self) -> str:
        return str(self.ds.file_meta.TransferSyntaxUID)


def read(name: str, number: int) -> Stored:
    """``name`` from pydicom's test files, re-identified as study ``ROOT.number``."""
    ds = pydicom.dcmread(TEST_FILES / name)
    study = f"{ROOT}.{number}"
    ds.StudyInstanceUID, ds.SeriesInstanceUID = study, f"{study}.1"
    ds.SOPInstanceUID = ds.file_meta.MediaStorageSOPInstanceUID = f"{study}.1.1"
    buf = io.BytesIO()
    ds.save_as(buf, enforce_file_format=False)
    ds = pydicom.dcmread(io.BytesIO(buf.getvalue()))
    return Stored(name, ds, study, f"{study}.1", f"{study}.1.1")


def store_all(arc, names: list[str]) -> dict[str, Stored]:
    """Store every file of ``names`` (numbered from 1 in order) and return them by name."""
    out = {}
    for number, name in enumerate(names, 1):
        item = read(name, number)
        arc.store(item.ds)
        out[name] = item
    return out
