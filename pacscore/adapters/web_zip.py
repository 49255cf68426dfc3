"""A study or series as a ZIP of Part-10 files with a DICOMDIR (``Accept: application/zip``).

PS3.18 8.7.x lets a study or series be retrieved as ``application/zip``; a DICOMDIR (PS3.10
7.2, records as PS3.3 Annex F) makes the download a File-set that viewers and CD tools open.
The DICOMDIR is built with pydicom's ``FileSet`` from the instances' stored headers (no pixel
data: its records need only header attributes), written to a small temporary folder and read
back; the instances themselves are then streamed from the archive one at a time into a ZIP
written on the fly, under the File IDs FileSet chose (``PT000000/ST000000/SE000000/IM000000``,
at most 8 characters per component). A study is never held in memory, on disk or twice.
"""

from __future__ import annotations

import tempfile
import time
import zipfile
from collections.abc import Iterator
from pathlib import Path

from pydicom.dataset import FileMetaDataset
from pydicom.fileset import FileSet
from pydicom.uid import UID

from . import web_wado
from .web_http import HttpError, WebRequest, WebResponse
from .web_multipart import MediaRange, parse_accept
from .web_wado import dicom_choices, instance_refs, select_syntax, transcode

ZIP = "application/zip"
CHUNK = 1024 * 1024
#: Type 1 keys of the DICOMDIR's PATIENT, STUDY, SERIES and IMAGE records (PS3.3 F.5) and what
#: the record says when an instance lacks them (as DICOMDIR tools do: dcmmkdir +I); the files
#: in the ZIP are never changed
INVENTED = {
    "PatientID": "UNKNOWN",
    "StudyDate": "19000101",
    "StudyTime": "000000",
    "StudyID": "UNKNOWN",
    "Modality": "OT",
}


def zip_range(request: WebRequest) -> MediaRange | None:
    """The Accept entry asking for a ZIP, when the client prefers it to multipart/related (the
    first entry, by quality, that either answer can meet decides; ``*/*`` means WADO-RS)."""
    for rng in parse_accept(_accept(request)):
        if rng.media_type == ZIP:
            return rng
        if dicom_choices(_as_header(rng)):
            return None
    return None


def _as_header(rng: MediaRange) -> str:
    return "; ".join([rng.media_type, *(f'{k}="{v}"' for k, v in rng.params.items())])


def _record_header(archive, ref, target: str, series_number: int, instance_number: int):
    """The instance's stored header, as the DICOMDIR records see it (type 1 keys filled in)."""
    ds = archive.header(ref.sop_instance_uid)
    meta = ds.file_meta if isinstance(getattr(ds, "file_meta", None), FileMetaDataset) else FileMetaDataset()
    meta.MediaStorageSOPClassUID = UID(ref.sop_class_uid or ds.get("SOPClassUID", ""))
    meta.MediaStorageSOPInstanceUID = UID(ref.sop_instance_uid)
    meta.TransferSyntaxUID = UID(target)
    ds.file_meta = meta
    ds.SOPInstanceUID = ref.sop_instance_uid
    for keyword, value in INVENTED.items():
        if not str(ds.get(keyword, "") or "").strip():
            setattr(ds, keyword, value)
    if not str(ds.get("SeriesNumber", "") or "").strip():
        ds.SeriesNumber = str(series_number)
    if not str(ds.get("InstanceNumber", "") or "").strip():
        ds.InstanceNumber = str(instance_number)
    return ds


def build_dicomdir(archive, plan: list) -> tuple[bytes, list[str]]:
    """The DICOMDIR bytes and each instance's path in the ZIP (in ``plan`` order)."""
    fs = FileSet()
    series_numbers: dict[str, int] = {}
    positions: dict[str, int] = {}
    for ref, target in plan:
        series = ref.series_instance_uid
        series_numbers.setdefault(series, len(series_numbers) + 1)
        positions[series] = positions.get(series, 0) + 1
        ds = _record_header(archive, ref, target, series_numbers[series], positions[series])
        try:
            fs.add(ds)
        except ValueError as exc:
            raise HttpError(
                406,
                f"no DICOMDIR can be made for instance {ref.sop_instance_uid}: {exc}; "
                'retrieve it as multipart/related; type="application/dicom" instead',
            ) from None
    with tempfile.TemporaryDirectory(prefix="pacscore-dicomdir-") as folder:
        fs.write(folder)
        dicomdir = (Path(folder) / "DICOMDIR").read_bytes()
        paths = {inst.SOPInstanceUID: Path(inst.FileID).as_posix() for inst in fs}
    return dicomdir, [paths[ref.sop_instance_uid] for ref, _ in plan]


class _Sink:
    """A write-only stream that hands out what was written since the last ``take``; zipfile
    sees no ``seek`` and writes data descriptors, so the ZIP can go out as it is made."""

    def __init__(self) -> None:
        self._chunks: list[bytes] = []
        self._position = 0

    def write(self, data: bytes) -> int:
        self._chunks.append(bytes(data))
        self._position += len(data)
        return len(data)

    def tell(self) -> int:
        return self._position

    def flush(self) -> None:
        pass

    def close(self) -> None:
        pass

    def take(self) -> bytes:
        out, self._chunks = b"".join(self._chunks), []
        return out


def zip_stream(archive, plan: list, dicomdir: bytes, paths: list[str]) -> Iterator[bytes]:
    """The ZIP, chunk by chunk: DICOMDIR first, then each instance read when it is reached."""
    sink = _Sink()
    stamp = time.localtime()[:6]
    with zipfile.ZipFile(sink, "w", zipfile.ZIP_STORED) as zf:
        zf.writestr(zipfile.ZipInfo("DICOMDIR", stamp), dicomdir)
        yield sink.take()
        for (ref, target), path in zip(plan, paths):
            data = archive.get(ref.sop_instance_uid)
            if target != ref.transfer_syntax_uid:
                data = transcode(data, target)
            info = zipfile.ZipInfo(path, stamp)
            with zf.open(info, "w", force_zip64=len(data) >= zipfile.ZIP64_LIMIT) as out:
                view = memoryview(data)
                for start in range(0, len(view), CHUNK):
                    out.write(view[start : start + CHUNK])
                    yield sink.take()
            yield sink.take()
    yield sink.take()


def retrieve_study_or_series(service, request: WebRequest, study: str, series: str | None = None) -> WebResponse:
    """WADO-RS of a study or series, as a ZIP when the Accept prefers it, else multipart/related."""
    if zip_range(request) is not None:
        return retrieve(service, request, study, series)
    if not dicom_choices(_accept(request)):
        raise HttpError(406, f'this resource is available as multipart/related; type="application/dicom" or {ZIP}')
    uids = {"study": study} if series is None else {"study": study, "series": series}
    return web_wado.retrieve(service, request, **uids)


def _accept(request: WebRequest) -> str | None:
    """The accept query parameter, else the Accept header (PS3.18 8.3.3.1)."""
    return next((v for n, v in request.query if n.lower() == "accept"), None) or request.header("accept")


def retrieve(service, request: WebRequest, study: str, series: str | None = None) -> WebResponse:
    """A study or series as ``application/zip``; its instances as stored unless the Accept's
    transfer-syntax parameter names another that WADO-RS can produce (else 406)."""
    rng = zip_range(request)
    if rng is None:
        raise HttpError(406, 'this resource is available as multipart/related; type="application/dicom" or ' + ZIP)
    wanted = rng.params.get("transfer-syntax", "*").strip() or "*"
    plan = []
    for ref in instance_refs(service, study, series):
        target = select_syntax(ref.transfer_syntax_uid, [wanted])
        if target is None:
            raise HttpError(
                406,
                f"instance {ref.sop_instance_uid} is stored in transfer syntax {ref.transfer_syntax_uid}, "
                f"which cannot be converted to {wanted} without decoding its pixel data",
            )
        plan.append((ref, target))
    archive = service.archive
    dicomdir, paths = build_dicomdir(archive, plan)
    name = "series" if series is not None else "study"
    headers = [("Content-Type", ZIP), ("Content-Disposition", f'attachment; filename="{name}.zip"')]
    return WebResponse(200, headers, zip_stream(archive, plan, dicomdir, paths))


__all__ = ["retrieve", "retrieve_study_or_series", "zip_range", "build_dicomdir", "zip_stream", "ZIP"]
