"""Real DICOM files that installed packages ship, sorted into usable and odd ones.

Why: generated data only exercises what its author thought of. pydicom's bundled test files
and the pydicom-data package hold a few hundred real instances from many vendors -- big and
little endian, implicit VR, deflated, JPEG/JPEG 2000/RLE, RT objects, SR, character sets --
plus deliberately broken files. The archive must ingest the first kind and reject the second
with a useful reason, so this module finds both, locally and quickly.

Nothing here touches the network: pydicom's ``get_testdata_files()`` may try to download, so
the folders are listed directly (pydicom's ``data`` folder, and the folder pydicom-data
registers through the ``pydicom.data.external_sources`` entry point). Results are cached in
memory only.

Reasons for odd files start with a category and a colon, so tests can choose what to expect:

``not-dicom``     not DICOM at all (text, JSON, ICC profile, gzip, ...)
``no-file-meta``  a DICOM data set without the Part 10 preamble/"DICM"/file meta
``bad-file-meta`` file meta without a Transfer Syntax UID
``no-uids``       readable, but no SOP/Study/Series Instance UID (DICOMDIR, palettes, fragments)
``bad-uid``       a hierarchy UID that is not a valid UID
``truncated``     an element (often Pixel Data) ends before its length says
``malformed``     pydicom had to guess (e.g. explicit VR declared, implicit VR found)
``bad-vr``        a top-level value that does not conform to its VR (e.g. IS "1A")
``unreadable``    pydicom raised while reading
"""

from __future__ import annotations

import functools
import importlib.metadata
import importlib.util
import re
import shutil
import warnings
from pathlib import Path

import pydicom
from pydicom.dataelem import RawDataElement
from pydicom.errors import InvalidDicomError
from pydicom.uid import MediaStorageDirectoryStorage

__all__ = ["data_folders", "real_dicom_files", "invalid_dicom_files", "gather"]

_HIERARCHY = ("StudyInstanceUID", "SeriesInstanceUID", "SOPInstanceUID")
_UID = re.compile(r"(0|[1-9][0-9]*)(\.(0|[1-9][0-9]*))*")
_SKIP_SUFFIXES = frozenset({".py", ".pyc"})
# Reads with force=True that contain one of these look like a DICOM data set without file meta.
_DATASET_HINTS = ("SOPClassUID", "SOPInstanceUID", "StudyInstanceUID", "Modality", "PatientID")
_UNDEFINED = 0xFFFFFFFF
# Explicit VR elements of group 0008 near the start: a data set that lost its file meta.
_GROUP_8 = re.compile(rb"\x08\x00..(?:AE|AS|CS|DA|DS|IS|LO|PN|SH|TM|UI)", re.DOTALL)


def data_folders() -> list[tuple[str, Path]]:
    """(source name, folder) of every installed collection of DICOM test data found."""
    folders = [("pydicom", Path(pydicom.__file__).resolve().parent / "data")]
    for ep in importlib.metadata.entry_points(group="pydicom.data.external_sources"):
        folder = _external_folder(ep)
        if folder is not None and folder.is_dir():
            folders.append((ep.name, folder))
    return folders


def _external_folder(ep: importlib.metadata.EntryPoint) -> Path | None:
    """The data folder of an external source, without asking it to download anything."""
    try:
        source = ep.load()()
        folder = getattr(source, "data_path", None)
        if folder is not None:
            return Path(folder)
    except Exception:  # a broken plugin must not break the listing
        pass
    spec = importlib.util.find_spec(ep.value.split(":")[0].split(".")[0])
    if spec is None or spec.origin is None:
        return None
    return Path(spec.origin).parent / "data"


def _candidates() -> list[tuple[str, Path, Path]]:
    """(source, folder, file) for every file in the data folders, in a stable order."""
    found = []
    for source, folder in data_folders():
        for path in sorted(folder.rglob("*")):
            if path.is_file() and "__pycache__" not in path.parts and path.suffix not in _SKIP_SUFFIXES:
                found.append((source, folder, path))
    return found


def _classify(path: Path) -> str | None:
    """None for a usable instance, else ``"category: why"``."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            ds = pydicom.dcmread(path, force=False)
        except InvalidDicomError:
            return _why_not_part10(path)
        except Exception as exc:  # pydicom's errors on broken files are not one type
            return f"unreadable: {type(exc).__name__}: {exc}"
        if "TransferSyntaxUID" not in ds.file_meta:
            return "bad-file-meta: file meta has no Transfer Syntax UID"
        for message in map(str, (w.message for w in caught)):  # before the UID check: a
            if "End of file" in message:  # truncated sequence can leave pydicom with nothing
                return f"truncated: {message.split(' in file ')[0]}"
            return f"malformed: {message}"
        missing = [k for k in _HIERARCHY if k not in ds]
        if missing:
            if ds.file_meta.get("MediaStorageSOPClassUID") == MediaStorageDirectoryStorage:
                return "no-uids: a DICOMDIR (media directory), not an instance"
            return f"no-uids: no {', '.join(missing)}"
        for raw in ds.elements():
            if (
                isinstance(raw, RawDataElement)
                and raw.length != _UNDEFINED
                and raw.value is not None
                and len(raw.value) < raw.length
            ):
                return f"truncated: {raw.tag} has {len(raw.value)} of its {raw.length} bytes"
        for keyword in _HIERARCHY:
            value = str(ds[keyword].value)
            if len(value) > 64 or not _UID.fullmatch(value):
                return f"bad-uid: {keyword} {value[:70]!r} is not a valid UID"
        for tag in list(ds.keys()):
            if tag.group == 0x7FE0:
                continue
            seen = len(caught)
            ds[tag]  # converts the raw value; pydicom warns on a value its VR does not allow
            if len(caught) > seen:
                return f"bad-vr: {tag} {caught[seen].message}"
    return None


def _why_not_part10(path: Path) -> str:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            ds = pydicom.dcmread(path, force=True, stop_before_pixels=True)
            if any(k in ds for k in _DATASET_HINTS):
                return "no-file-meta: a DICOM data set without preamble, 'DICM' and file meta"
        except Exception:
            pass
    with path.open("rb") as f:
        if _GROUP_8.search(f.read(512)):
            return "no-file-meta: starts like a DICOM data set, but has no preamble, 'DICM' or file meta"
    return f"not-dicom: a {path.suffix or 'suffix-less'} file that is not DICOM"


@functools.cache
def _survey() -> tuple[tuple[str, Path, Path, str | None], ...]:
    return tuple((source, folder, path, _classify(path)) for source, folder, path in _candidates())


def real_dicom_files(include_invalid: bool = False) -> list[Path]:
    """Real instances pydicom reads strictly (Part 10) with Study, Series and SOP Instance UIDs.

    Some share a SOP Instance UID (the same image in several transfer syntaxes), which an
    archive sees as duplicates. With ``include_invalid`` the odd files follow (see
    :func:`invalid_dicom_files`).
    """
    survey = _survey()
    good = [path for _, _, path, why in survey if why is None]
    if include_invalid:
        good += [path for _, _, path, why in survey if why is not None]
    return good


def invalid_dicom_files() -> list[tuple[Path, str]]:
    """(path, reason) of every odd file; reasons start with a category (module docstring)."""
    return [(path, why) for _, _, path, why in _survey() if why is not None]


def gather(
    dest: Path, generated_patients: int = 50, seed: int = 0, include_invalid: bool = False, symlink: bool = False
) -> dict[str, int]:
    """Copy the real files into ``dest/real/<source>/...``, generate into ``dest/generated`` and
    write one study per kind of pixel data a viewer must show into ``dest/viewer``
    (benchmarks/viewer_data.py).

    Copies (not links) by default, so an archive or a user touching the gathered files can
    never change an installed package. Returns counts: ``real`` (usable files), ``real_unique``
    (distinct SOP Instance UIDs among them), ``invalid`` (odd files gathered, 0 unless
    ``include_invalid``), ``generated`` and ``viewer`` (the viewer's sample studies).
    """
    from pacscore.testing.generate import GeneratorConfig, write_files  # the generator is only needed here

    dest = Path(dest)
    real = invalid = 0
    for source, folder, path, why in _survey():
        if why is not None and not include_invalid:
            continue
        target = dest / "real" / source / path.relative_to(folder)
        target.parent.mkdir(parents=True, exist_ok=True)
        if target.exists() or target.is_symlink():
            target.unlink()
        if symlink:
            target.symlink_to(path)
        else:
            shutil.copyfile(path, target)
        real += why is None
        invalid += why is not None
    generated = write_files(GeneratorConfig(patients=generated_patients, seed=seed), dest / "generated")
    from .viewer_data import write_viewer_studies  # imports this module

    viewer = len(write_viewer_studies(dest / "viewer"))
    return {
        "real": real,
        "real_unique": _unique_instances(),
        "invalid": invalid,
        "generated": generated,
        "viewer": viewer,
    }


def _unique_instances() -> int:
    uids = set()
    for path in real_dicom_files():
        uids.add(str(pydicom.dcmread(path, stop_before_pixels=True, specific_tags=["SOPInstanceUID"]).SOPInstanceUID))
    return len(uids)
