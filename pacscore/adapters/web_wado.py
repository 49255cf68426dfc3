"""WADO-RS (PS3.18 10.4): instances, metadata, bulk data and frames of the stored instances.

Instances go out as ``multipart/related; type="application/dicom"``, one part per instance,
read from the blob store only when the client pulls that part. The transfer syntax is decided
for every instance before the first byte is sent (from the index, no blob reads), so a request
that cannot be met answers 406 instead of a truncated stream.

Transfer syntaxes: the stored bytes are sent unchanged when the Accept allows the stored
syntax (``transfer-syntax=*``, or the stored UID). Explicit VR Little Endian, the default of
PS3.18 8.7.3.4, is produced losslessly from Implicit VR Little Endian and Deflated Explicit VR
Little Endian (header re-encoding, pixel data untouched). Compressed pixel data is never
decoded: without a transfer-syntax parameter a compressed instance is sent as stored (the
PS3.18 allowance for lossy pixel data, extended to lossless compression; see
docs/conformance-dicomweb.md); with an explicit syntax it cannot meet it answers 406.

Frames (and the pixel data bulk data of an encapsulated instance) are another matter: their
form is chosen by ``web_transcode``, which sends them as stored when the Accept allows it
(``transfer-syntax=*``, even inside ``type="application/octet-stream"``, as OHIF asks) and
otherwise decodes them, and re-encodes them where an encoder exists.
"""

from __future__ import annotations

import io
import json
import logging

import pydicom
from pydicom.uid import UID

from . import web_transcode
from .web_http import DICOM_JSON, HttpError, WebRequest, WebResponse, uid_segment
from .web_multipart import media_matches, new_boundary, parse_accept, write_parts
from .web_transcode import (
    DEFLATED_LE,
    EXPLICIT_BE,
    EXPLICIT_LE,
    FRAME_MEDIA,
    IMPLICIT_LE,
    OCTET,
    is_encapsulated,
)

LOG = logging.getLogger("pacscore.dicomweb")

#: stored syntaxes we turn into Explicit VR Little Endian without touching pixel data
TO_EXPLICIT_LE = frozenset({IMPLICIT_LE, DEFLATED_LE})
PIXEL_TAGS = (0x7FE00010, 0x7FE00008, 0x7FE00009)


def _accept(request: WebRequest) -> str | None:
    for name, value in request.query:
        if name.lower() == "accept":
            return value
    return request.header("accept")


# -- which instances ------------------------------------------------------------------------
def _refs(service, study: str, series: str | None = None, instance: str | None = None) -> list:
    archive = service.archive
    if instance is not None:
        refs = [
            r
            for r in archive.instances(instance=instance)
            if r.study_instance_uid == study and r.series_instance_uid == series
        ]
        if not refs:
            raise HttpError(404, f"no instance {instance} in series {series} of study {study}")
    elif series is not None:
        refs = [r for r in archive.instances(series=series) if r.study_instance_uid == study]
        if not refs:
            raise HttpError(404, f"no series {series} in study {study}")
    else:
        refs = archive.instances(study=study)
        if not refs:
            raise HttpError(404, f"no study {study}")
    return refs


#: the instances a study, series or instance path names (404 when the UIDs do not agree); shared
#: with WADO-URI and the ZIP download
instance_refs = _refs


def instance_url(base_url: str, ref) -> str:
    """The instance's WADO-RS URL, each UID one percent-encoded path segment."""
    return (
        f"{base_url}/studies/{uid_segment(ref.study_instance_uid)}/series/{uid_segment(ref.series_instance_uid)}"
        f"/instances/{uid_segment(ref.sop_instance_uid)}"
    )


# -- instances ------------------------------------------------------------------------------
def dicom_choices(accept: str | None) -> list[str | None]:
    """The acceptable transfer syntaxes for application/dicom parts, best first.

    Each entry is None (no transfer-syntax parameter: the default), "*" or a UID. An empty
    list means the Accept does not allow application/dicom at all.
    """
    out: list[str | None] = []
    for rng in parse_accept(accept):
        media = rng.media_type
        if media == "multipart/related":
            inner = rng.params.get("type", "application/dicom").lower()
        elif media in ("application/dicom", "*/*", "multipart/*", "application/*", "*"):
            inner = "application/dicom"
        else:
            continue
        if not media_matches(inner, "application/dicom"):
            continue
        ts = rng.params.get("transfer-syntax")
        out.append(ts.strip() if ts else None)
    return out


def select_syntax(stored: str, choices: list[str | None]) -> str | None:
    """The syntax to send an instance stored in ``stored`` in, or None if no choice allows it."""
    for ts in choices:
        if ts is None:
            return EXPLICIT_LE if stored in TO_EXPLICIT_LE else stored
        if ts == "*" or ts == stored:
            return stored
        if ts == EXPLICIT_LE and stored in TO_EXPLICIT_LE:
            return EXPLICIT_LE
    return None


def transcode(data: bytes, target: str) -> bytes:
    """Re-encode a native instance in ``target`` (Explicit/Implicit VR Little Endian)."""
    ds = pydicom.dcmread(io.BytesIO(data))
    ds.file_meta.TransferSyntaxUID = UID(target)
    buf = io.BytesIO()
    pydicom.dcmwrite(buf, ds, enforce_file_format=True)
    return buf.getvalue()


def retrieve(
    service, request: WebRequest, study: str, series: str | None = None, instance: str | None = None
) -> WebResponse:
    choices = dicom_choices(_accept(request))
    if not choices:
        raise HttpError(406, 'this resource is available as multipart/related; type="application/dicom" only')
    refs = _refs(service, study, series, instance)
    plan = []
    for ref in refs:
        target = select_syntax(ref.transfer_syntax_uid, choices)
        if target is None:
            raise HttpError(
                406,
                f"instance {ref.sop_instance_uid} is stored in transfer syntax "
                f"{ref.transfer_syntax_uid}, which cannot be converted to any accepted "
                f"transfer syntax without decoding its pixel data (accepted: "
                f"{', '.join(c or 'default' for c in choices)})",
            )
        plan.append((ref, target))
    archive = service.archive
    base_url = request.base_url
    boundary = new_boundary()

    def parts():
        for ref, target in plan:
            data = archive.get(ref.sop_instance_uid)
            sent = ref.transfer_syntax_uid
            if target != sent:
                try:
                    data, sent = transcode(data, target), target
                except Exception as exc:  # never seen with native syntaxes; send what we have
                    LOG.warning(
                        "could not transcode %s to %s (%s); sending it as stored", ref.sop_instance_uid, target, exc
                    )
            yield (
                [
                    ("Content-Type", f"application/dicom; transfer-syntax={sent}"),
                    ("Content-Length", str(len(data))),
                    ("Content-Location", instance_url(base_url, ref)),
                ],
                data,
            )

    content_type = f'multipart/related; type="application/dicom"; boundary={boundary}'
    return WebResponse(200, [("Content-Type", content_type)], write_parts(boundary, parts()))


# -- metadata -------------------------------------------------------------------------------
def _json_accepted(request: WebRequest) -> str:
    for rng in parse_accept(_accept(request)):
        if rng.media_type == "application/json":
            return "application/json"
        if rng.media_type != "multipart/related" and media_matches(rng.media_type, DICOM_JSON):
            return DICOM_JSON
    raise HttpError(406, "metadata is available as application/dicom+json only")


def add_pixel_data_uri(meta: dict, ref, url: str) -> None:
    """The archive's header leaves pixel data out: point at it when the instance is an image."""
    if any(f"{t:08X}" in meta for t in PIXEL_TAGS) or "00280010" not in meta:
        return
    bits = (meta.get("00280100") or {}).get("Value") or [16]
    vr = "OB" if is_encapsulated(ref.transfer_syntax_uid) or (bits[0] or 16) <= 8 else "OW"
    meta["7FE00010"] = {"vr": vr, "BulkDataURI": f"{url}/bulkdata/7FE00010"}


def metadata(
    service, request: WebRequest, study: str, series: str | None = None, instance: str | None = None
) -> WebResponse:
    content_type = _json_accepted(request)
    refs = _refs(service, study, series, instance)
    archive = service.archive
    base_url = request.base_url

    def body():
        yield b"["
        for i, ref in enumerate(refs):
            url = instance_url(base_url, ref)
            meta = archive.metadata(ref.sop_instance_uid, bulkdata_uri=lambda tag, url=url: f"{url}/bulkdata/{tag}")
            add_pixel_data_uri(meta, ref, url)
            meta = dict(sorted(meta.items()))
            yield (b"," if i else b"") + json.dumps(meta, ensure_ascii=False, separators=(",", ":")).encode("utf-8")
        yield b"]"

    return WebResponse(200, [("Content-Type", content_type)], body())


# -- frames and bulk data -------------------------------------------------------------------
def _load(service, ref):
    return pydicom.dcmread(io.BytesIO(service.archive.get(ref.sop_instance_uid)), force=True)


def _pixel_element(ds):
    for tag in PIXEL_TAGS:
        if tag in ds:
            return ds.get_item(tag)
    return None


def parse_frame_list(text: str) -> list[int]:
    """The frame numbers of a ``{frame_list}`` path segment (400 unless integers from 1)."""
    numbers = []
    for item in text.split(","):
        item = item.strip()
        if not item.isdigit() or int(item) < 1:
            raise HttpError(400, f"frame list {text!r}: frame numbers are integers from 1")
        numbers.append(int(item))
    if not numbers:
        raise HttpError(400, "an empty frame list")
    return numbers


def _frames_response(accept, ds, elem, ref, numbers: list[int] | None) -> WebResponse:
    ts = ref.transfer_syntax_uid or str(ds.file_meta.get("TransferSyntaxUID", EXPLICIT_LE))
    count = int(ds.get("NumberOfFrames", 1) or 1)
    if numbers is None:
        numbers = list(range(1, count + 1))
    missing = [n for n in numbers if n > count]
    if missing:
        raise HttpError(404, f"frame {missing[0]} does not exist: instance {ref.sop_instance_uid} has {count} frame(s)")
    form = web_transcode.choose(accept, ts, f"instance {ref.sop_instance_uid}")
    raw: bytes = elem.value if isinstance(elem.value, bytes) else bytes(elem.value or b"")
    try:
        frames = web_transcode.produce(ds, raw, ts, form, numbers)
    except HttpError as exc:
        raise HttpError(exc.status, f"instance {ref.sop_instance_uid}: {exc.reason}", exc.headers) from None
    boundary = new_boundary()
    parts = [
        ([("Content-Type", f"{form.media}; transfer-syntax={form.syntax}"), ("Content-Length", str(len(data)))], data)
        for data in frames
    ]
    content_type = f'multipart/related; type="{form.media}"; boundary={boundary}'
    return WebResponse(200, [("Content-Type", content_type)], write_parts(boundary, parts))


def frames(service, request: WebRequest, study: str, series: str, instance: str, frame_list: str) -> WebResponse:
    numbers = parse_frame_list(frame_list)
    ref = _refs(service, study, series, instance)[0]
    ds = _load(service, ref)
    elem = _pixel_element(ds)
    if elem is None:
        raise HttpError(404, f"instance {ref.sop_instance_uid} has no pixel data, so it has no frames")
    return _frames_response(_accept(request), ds, elem, ref, numbers)


def _find_element(ds, tag: int):
    """The element ``tag`` at the top level, else its first occurrence inside a sequence."""
    if tag in ds:
        return ds.get_item(tag)
    for elem in ds:
        if elem.VR == "SQ":
            for item in elem.value or []:
                found = _find_element(item, tag)
                if found is not None:
                    return found
    return None


def _element_bytes(elem) -> bytes:
    value = elem.value
    if isinstance(value, (bytes, bytearray)):
        return bytes(value)
    if isinstance(value, str):
        return value.encode("utf-8")
    from pydicom.filebase import DicomBytesIO
    from pydicom.filewriter import write_data_element

    buf = DicomBytesIO()
    buf.is_little_endian, buf.is_implicit_VR = True, True
    write_data_element(buf, elem)
    return buf.getvalue()[8:]  # implicit VR LE element: tag (4) + length (4), then the value


def _octet_accepted(accept: str | None) -> bool:
    """Whether application/octet-stream (Explicit VR Little Endian, or any syntax) is accepted."""
    for rng in parse_accept(accept):
        inner = rng.params.get("type", "*/*").lower() if rng.media_type == "multipart/related" else rng.media_type
        if media_matches(inner, OCTET) and rng.params.get("transfer-syntax") in (None, "*", EXPLICIT_LE):
            return True
    return False


def bulkdata(service, request: WebRequest, study: str, series: str, instance: str, path: list[str]) -> WebResponse:
    if len(path) != 1 or len(path[0]) != 8:
        raise HttpError(404, "bulk data is addressed as .../bulkdata/{tag} (8 hexadecimal digits)")
    try:
        tag = int(path[0], 16)
    except ValueError:
        raise HttpError(404, f"bulk data tag {path[0]!r} is not 8 hexadecimal digits") from None
    ref = _refs(service, study, series, instance)[0]
    ds = _load(service, ref)
    elem = _find_element(ds, tag)
    if elem is None:
        raise HttpError(404, f"instance {ref.sop_instance_uid} has no element {tag:08X}")
    accept = _accept(request)
    if tag in PIXEL_TAGS and is_encapsulated(ref.transfer_syntax_uid):
        return _frames_response(accept, ds, elem, ref, None)
    if not _octet_accepted(accept):
        raise HttpError(406, "bulk data is available as application/octet-stream only")
    if tag in PIXEL_TAGS and ref.transfer_syntax_uid == EXPLICIT_BE:
        frames = web_transcode.native_frames(ds, bytes(elem.value), EXPLICIT_BE) or [bytes(elem.value)]
        data = b"".join(frames)
    else:
        data = _element_bytes(elem)
    boundary = new_boundary()
    parts = [([("Content-Type", f"{OCTET}; transfer-syntax={EXPLICIT_LE}"), ("Content-Length", str(len(data)))], data)]
    return WebResponse(
        200, [("Content-Type", f'multipart/related; type="{OCTET}"; boundary={boundary}')], write_parts(boundary, parts)
    )


__all__ = [
    "retrieve",
    "instance_refs",
    "metadata",
    "frames",
    "bulkdata",
    "select_syntax",
    "dicom_choices",
    "transcode",
    "parse_frame_list",
    "instance_url",
    "FRAME_MEDIA",
]
