"""STOW-RS (PS3.18 10.5): ``POST /studies[/{study}]`` with multipart/related; type="application/dicom".

The body is parsed as it arrives, one part at a time (a part above the spool size waits in a
temporary file), and every part goes to ``Archive.store`` before the next is read. The answer
is a Store Instances Response Module (PS3.18 Annex I) in DICOM JSON: 200 when every instance
was stored, 202 when some failed, 409 when none was stored.

Failure Reason (0008,1197) values used (PS3.18 Table I.2-2 and the Cxxx range it opens):
  0xC000  the part is not a DICOM instance pacscore can read (IngestError), or has a media type
          other than application/dicom
  0xC409  the instance's Study Instance UID differs from the study in the request URL
          (pacscore-specific code in the "Error: Cannot understand" Cxxx range, the value
          dcm4chee-arc uses for the same condition)
  0x0110  processing failure (the archive could not write: StorageError or an unexpected error)
  0xA700  refused, out of resources (the host ran out of memory or disk space)
Each failed item also carries Error Comment (0000,0902) with the reason in words.
"""

from __future__ import annotations

import errno
import io
import logging

import pydicom

from ..errors import IngestError, StorageError
from ..events import STOW
from .web_http import HttpError, WebRequest, WebResponse, json_response, uid_segment
from .web_multipart import MultipartError, PartTooLarge, parse_media_type, read_parts

LOG = logging.getLogger("pacscore.dicomweb")

FAIL_PROCESSING = 0x0110
FAIL_OUT_OF_RESOURCES = 0xA700
FAIL_CANNOT_UNDERSTAND = 0xC000
FAIL_STUDY_MISMATCH = 0xC409
ACCEPTED_PART_TYPES = ("application/dicom", "application/octet-stream")


class BodyTooLarge(Exception):
    pass


def _limited(chunks, limit: int):
    total = 0
    for chunk in chunks:
        total += len(chunk)
        if total > limit:
            raise BodyTooLarge(limit)
        yield chunk


def _peek(data: bytes) -> tuple[str, str, str, str]:
    """(SOP Class UID, SOP Instance UID, Study Instance UID, Series Instance UID), "" when unknown."""
    try:
        ds = pydicom.dcmread(
            io.BytesIO(data),
            stop_before_pixels=True,
            force=True,
            specific_tags=["SOPClassUID", "SOPInstanceUID", "StudyInstanceUID", "SeriesInstanceUID"],
        )
    except Exception:
        return "", "", "", ""

    def text(keyword: str) -> str:
        try:
            value = ds.get(keyword, "")
        except Exception:
            return ""
        return str(value or "").strip(" \x00")

    return text("SOPClassUID"), text("SOPInstanceUID"), text("StudyInstanceUID"), text("SeriesInstanceUID")


def _ui(value: str) -> dict:
    return {"vr": "UI", "Value": [value]} if value else {"vr": "UI"}


def _failed(sop_class: str, sop_uid: str, reason_code: int, reason: str) -> dict:
    return {
        "00000902": {"vr": "LO", "Value": [reason[:64]]} if reason else {"vr": "LO"},
        "00081150": _ui(sop_class),
        "00081155": _ui(sop_uid),
        "00081197": {"vr": "US", "Value": [reason_code]},
    }


def _stored(sop_class: str, sop_uid: str, url: str | None) -> dict:
    item = {"00081150": _ui(sop_class), "00081155": _ui(sop_uid)}
    item["00081190"] = {"vr": "UR", "Value": [url]} if url else {"vr": "UR"}
    return item


def _store_part(archive, data: bytes, part_type: str, study: str | None, base_url: str):
    """Store one part; returns ("ok", item, study_uid) or ("failed", item, None)."""
    sop_class, sop_uid, study_uid, series_uid = _peek(data)
    if part_type and part_type not in ACCEPTED_PART_TYPES:
        return (
            "failed",
            _failed(
                sop_class, sop_uid, FAIL_CANNOT_UNDERSTAND, f"part media type {part_type} is not application/dicom"
            ),
            None,
        )
    if study is not None and study_uid and study_uid != study:
        return (
            "failed",
            _failed(sop_class, sop_uid, FAIL_STUDY_MISMATCH, "Study Instance UID differs from the study in the URL"),
            None,
        )
    if study is not None and not study_uid:
        # the quick look found no study: let the archive's parser say why (or find it after all)
        from ..ingest import parse_bytes

        try:
            parsed = parse_bytes(data)
        except IngestError as exc:
            return "failed", _failed(sop_class, sop_uid, FAIL_CANNOT_UNDERSTAND, exc.reason), None
        if parsed.study_instance_uid != study:
            return (
                "failed",
                _failed(
                    parsed.sop_class_uid,
                    parsed.sop_instance_uid,
                    FAIL_STUDY_MISMATCH,
                    "Study Instance UID differs from the study in the URL",
                ),
                None,
            )
        study_uid, series_uid = parsed.study_instance_uid, parsed.series_instance_uid
    try:
        result = archive.store(data, origin=STOW)
    except IngestError as exc:
        return "failed", _failed(sop_class, sop_uid, FAIL_CANNOT_UNDERSTAND, exc.reason), None
    except MemoryError:
        return "failed", _failed(sop_class, sop_uid, FAIL_OUT_OF_RESOURCES, "out of memory"), None
    except StorageError as exc:
        LOG.error("STOW-RS: storing %s failed: %s", sop_uid or "an instance", exc)
        code = FAIL_OUT_OF_RESOURCES if getattr(exc, "errno", None) == errno.ENOSPC else FAIL_PROCESSING
        return "failed", _failed(sop_class, sop_uid, code, "the archive could not store it"), None
    except OSError as exc:
        LOG.error("STOW-RS: storing %s failed: %s", sop_uid or "an instance", exc)
        code = FAIL_OUT_OF_RESOURCES if exc.errno == errno.ENOSPC else FAIL_PROCESSING
        return "failed", _failed(sop_class, sop_uid, code, "the archive could not store it"), None
    except Exception as exc:  # one bad part never stops the others
        LOG.exception("STOW-RS: unexpected error storing %s", sop_uid or "an instance")
        return "failed", _failed(sop_class, sop_uid, FAIL_PROCESSING, f"{type(exc).__name__}"), None
    sop_uid = result.sop_instance_uid
    url = (
        f"{base_url}/studies/{uid_segment(study_uid)}/series/{uid_segment(series_uid)}/instances/{uid_segment(sop_uid)}"
        if study_uid and series_uid
        else None
    )
    return "ok", _stored(sop_class, sop_uid, url), study_uid


def store(service, request: WebRequest, study: str | None) -> WebResponse:
    media, params = parse_media_type(request.header("content-type") or "")
    if media != "multipart/related":
        raise HttpError(
            415, f'STOW-RS takes multipart/related; type="application/dicom" (got {media or "no Content-Type"})'
        )
    root = params.get("type", "application/dicom").strip().lower()
    if root not in ACCEPTED_PART_TYPES:
        raise HttpError(
            415,
            f'STOW-RS takes multipart/related; type="application/dicom" only (got type="{root}": '
            "metadata and bulk data requests are not supported)",
        )
    boundary = params.get("boundary")
    if not boundary:
        raise HttpError(400, "the multipart/related Content-Type has no boundary parameter")
    limits = service.limits
    length = request.header("content-length")
    if length is not None and length.strip().isdigit() and int(length) > limits.max_body:
        raise HttpError(413, f"the request body ({int(length)} bytes) exceeds the limit of {limits.max_body} bytes")
    archive = service.archive
    base_url = request.base_url
    stored: list[dict] = []
    failed: list[dict] = []
    studies: list[str] = []
    parts_seen = 0

    def too_large(reason: str) -> HttpError:
        done = f"; {len(stored)} instance(s) were stored before that" if stored else "; nothing was stored"
        return HttpError(413, reason + done)

    try:
        for part in read_parts(
            _limited(request.body, limits.max_body), boundary, max_part=limits.max_part, spool=limits.spool
        ):
            parts_seen += 1
            try:
                part_type = parse_media_type(part.content_type)[0] if part.content_type else ""
                outcome, item, study_uid = _store_part(archive, part.read(), part_type, study, base_url)
            finally:
                part.close()
            if outcome == "ok":
                stored.append(item)
                if study_uid not in studies:
                    studies.append(study_uid)
            else:
                failed.append(item)
    except BodyTooLarge:
        raise too_large(f"the request body exceeds the limit of {limits.max_body} bytes") from None
    except PartTooLarge:
        raise too_large(f"a part exceeds the per-instance limit of {limits.max_part} bytes") from None
    except MultipartError as exc:
        if not stored and not failed:
            raise HttpError(400, f"malformed multipart body: {exc}") from None
        failed.append(_failed("", "", FAIL_CANNOT_UNDERSTAND, f"malformed multipart body after part {parts_seen}"))
    if not stored and not failed:
        raise HttpError(400, "the request has no instances")
    answer: dict = {}
    target = study or (studies[0] if len(studies) == 1 else None)
    answer["00081190"] = (
        {"vr": "UR", "Value": [f"{base_url}/studies/{uid_segment(target)}"]} if target and stored else {"vr": "UR"}
    )
    if failed:
        answer["00081198"] = {"vr": "SQ", "Value": failed}
    if stored:
        answer["00081199"] = {"vr": "SQ", "Value": stored}
    status = 200 if not failed else (202 if stored else 409)
    return json_response(answer, status)


__all__ = ["store", "FAIL_PROCESSING", "FAIL_OUT_OF_RESOURCES", "FAIL_CANNOT_UNDERSTAND", "FAIL_STUDY_MISMATCH"]
