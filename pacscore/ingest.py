"""Read one instance once and split it into what the index keeps (pure functions).

Everything here runs in worker processes for ``store_many``: it takes bytes and returns a
picklable ``ParsedInstance``; it never touches the archive. Text is decoded by
SpecificCharacterSet here (pydicom knows ISO 2022 and GB18030), so the index holds UTF-8 and
queries never decode.
"""

from __future__ import annotations

import functools
import hashlib
import io
import json
import os
import re
import struct
import zlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pydicom
from pydicom import charset
from pydicom.datadict import keyword_for_tag
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.errors import InvalidDicomError
from pydicom.uid import UID, DeflatedExplicitVRLittleEndian, ExplicitVRLittleEndian

from . import _impl, model
from .errors import IngestError
from .index.layout import T_BULK
from .values import TEXT_VRS

#: elements longer than this are bulk data: kept in the blob, left out of the indexed header
BULK_THRESHOLD = 64 * 1024
#: a deflated data set that inflates beyond this is refused (a deflate bomb, not an image)
MAX_INFLATED = 256 << 20
_UID = re.compile(r"[0-9]+(\.[0-9]+)*")
#: sequences whose JSON form (as the record codec stores it) is larger than this are not kept in
#: level records: they stay in the stored header and the blob, so nothing is lost, but one long
#: sequence would otherwise bloat every read of its record
MAX_SEQUENCE_BYTES = 16 * 1024
#: the longest UID (UTF-8 bytes) the index keeps: UIDs are LMDB keys and duplicate values, which
#: LMDB limits to 511 bytes, and lookups (archive._uid_key) refuse longer ones
MAX_UID_BYTES = 256
#: the longest PatientID + NUL + IssuerOfPatientID (UTF-8 bytes) the index keeps: a patient key
#: is an LMDB key behind a level byte (511 bytes at most); LO values are 64 characters (PS3.5 6.2)
MAX_PATIENT_KEY_BYTES = 500
#: how ingest treats a UID that is not digits and dots of at most 64 characters (PS3.5 9.1):
#: "lenient" keeps it (real devices send such UIDs), "strict" rejects the instance
UID_POLICIES = ("lenient", "strict")
_UID_KEYWORDS = ("SOPInstanceUID", "StudyInstanceUID", "SeriesInstanceUID")

#: VRs whose values are decoded with the Specific Character Set (the others are ASCII)
_CHARSET_VRS = frozenset({"PN", "LO", "SH", "LT", "ST", "UT", "UC"})
_ASCII_VRS = frozenset({"AE", "AS", "CS", "DA", "DS", "DT", "IS", "TM", "UI", "UR"})
_NUMERIC_VRS = frozenset({"US", "UL", "SS", "SL", "FL", "FD", "SV", "UV"})
_BINARY_VRS = frozenset({"OB", "OW", "OF", "OD", "OL", "OV", "UN"})


def checksum(data: bytes) -> str:
    """The blob checksum kept in the index (fast, and strong enough to detect corruption)."""
    return hashlib.blake2b(data, digest_size=16).hexdigest()


@dataclass
class ParsedInstance:
    """One instance, ready for a write transaction."""

    sop_instance_uid: str
    sop_class_uid: str
    study_instance_uid: str
    series_instance_uid: str
    patient_id: str
    issuer_of_patient_id: str
    transfer_syntax_uid: str
    data: bytes
    header: bytes  # the Part-10 header (no pixel data, no bulk data); the index compresses it
    checksum: str
    levels: dict[str, dict[int, tuple[str, object]]] = field(default_factory=dict)
    #: keywords of the identifying UIDs that are not digits and dots of at most 64 characters
    nonconformant_uids: tuple[str, ...] = ()
    #: where the instance came from (a path, "<bytes>", ...), for error messages
    source: str = ""
    #: the Part-10 size in bytes; -1 means ``len(data)``. Distributed ingest (pacscore/distributed.py)
    #: leaves ``data`` empty once a worker has put the blob, so the size travels on its own
    size: int = -1

    def __post_init__(self) -> None:
        if self.size < 0:
            self.size = len(self.data)

    @property
    def patient_key(self) -> str:
        return patient_key(self.patient_id, self.issuer_of_patient_id)


def patient_key(patient_id: str, issuer: str = "") -> str:
    """PatientID and IssuerOfPatientID together identify a patient."""
    return f"{patient_id}\x00{issuer}"


def read_source(source: object) -> tuple[bytes, str]:
    """The bytes of a path, bytes or binary file object, and a name for error messages."""
    if isinstance(source, (bytes, bytearray, memoryview)):
        return bytes(source), "<bytes>"
    if isinstance(source, (str, os.PathLike)):
        path = Path(source)
        try:
            return path.read_bytes(), str(path)
        except OSError as exc:
            raise IngestError(str(path), f"cannot read: {exc.strerror or exc}") from None
    if hasattr(source, "read"):
        data = source.read()
        if not isinstance(data, (bytes, bytearray)):
            raise IngestError(getattr(source, "name", "<file>"), "file object must be opened in binary mode")
        return bytes(data), str(getattr(source, "name", "<file>"))
    raise IngestError(repr(type(source).__name__), "expected a path, bytes, a binary file object or a pydicom Dataset")


def dataset_to_part10(ds: Dataset) -> bytes:
    """Encode a Dataset as a Part-10 file, adding the file meta information it lacks."""
    ds = ds.copy()
    meta = FileMetaDataset(getattr(ds, "file_meta", None) or FileMetaDataset())
    if "TransferSyntaxUID" not in meta:
        meta.TransferSyntaxUID = ExplicitVRLittleEndian
    if "SOPInstanceUID" in ds:
        meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
    if "SOPClassUID" in ds:
        meta.MediaStorageSOPClassUID = ds.SOPClassUID
    ds.file_meta = meta
    buf = io.BytesIO()
    try:
        pydicom.dcmwrite(buf, ds, enforce_file_format=True)
    except Exception as exc:  # pydicom raises many kinds for unencodable datasets
        raise IngestError("<Dataset>", f"cannot encode the dataset: {exc}") from None
    return buf.getvalue()


def parse(source: object, name: str | None = None, uid_policy: str = "lenient") -> ParsedInstance:
    """Parse a path, bytes, file object or Dataset into a ParsedInstance, or raise IngestError."""
    if isinstance(source, Dataset):
        data, src = dataset_to_part10(source), name or "<Dataset>"
    else:
        data, src = read_source(source)
        src = name or src
    return parse_bytes(data, src, uid_policy)


def parse_bytes(data: bytes, src: str = "<bytes>", uid_policy: str = "lenient") -> ParsedInstance:
    """Parse Part-10 bytes (or a bare data set); ``uid_policy`` says what to do with a UID
    that is not digits and dots (see UID_POLICIES)."""
    if uid_policy not in UID_POLICIES:
        raise ValueError(f"uid_policy must be one of {UID_POLICIES}, not {uid_policy!r}")
    parsed = _parse_bytes(data, src)
    parsed.source = src
    parsed.nonconformant_uids = tuple(
        kw
        for kw, uid in zip(
            _UID_KEYWORDS, (parsed.sop_instance_uid, parsed.study_instance_uid, parsed.series_instance_uid)
        )
        if not is_conformant_uid(uid)
    )
    key_size = len(parsed.patient_key.encode("utf-8", "surrogatepass"))
    if key_size > MAX_PATIENT_KEY_BYTES:  # else LMDB refuses the key at commit: a StorageError
        raise IngestError(
            src,
            f"PatientID and IssuerOfPatientID are {key_size} bytes together, longer than the "
            f"{MAX_PATIENT_KEY_BYTES} bytes the index keeps for a patient",
        )
    check_uid_policy(parsed, uid_policy)
    for level in parsed.levels.values():
        _drop_large_sequences(level)
    return parsed


def is_conformant_uid(uid: str) -> bool:
    """Whether ``uid`` has the form of PS3.5 9.1: digits and dots, at most 64 characters."""
    return len(uid) <= 64 and _UID.fullmatch(uid) is not None


def check_uid_policy(parsed: ParsedInstance, uid_policy: str) -> None:
    """Raise IngestError when ``uid_policy`` is "strict" and the instance has a UID that is
    not digits and dots (the archive also calls this for instances parsed elsewhere)."""
    if uid_policy == "strict" and parsed.nonconformant_uids:
        kw = parsed.nonconformant_uids[0]
        uid = {
            "SOPInstanceUID": parsed.sop_instance_uid,
            "StudyInstanceUID": parsed.study_instance_uid,
            "SeriesInstanceUID": parsed.series_instance_uid,
        }[kw]
        raise IngestError(
            parsed.source or "<bytes>",
            f"invalid {kw} {uid[:80]!r}: a UID is digits and dots, at most 64 characters (uid_policy='strict')",
        )


def _drop_large_sequences(level: dict[int, tuple[str, object]]) -> None:
    """Leave out of a level record each sequence whose JSON form exceeds MAX_SEQUENCE_BYTES
    (it stays in the stored header and blob). Applied after either reader, so both agree."""
    for tag in [tag for tag, value in level.items() if value[0] == "SQ"]:
        if _json_size(level[tag][1]) > MAX_SEQUENCE_BYTES:
            del level[tag]


def _json_size(value: object) -> int:
    """Bytes of ``value`` as the record codec stores a sequence (compact JSON, UTF-8)."""
    return len(json.dumps(value, ensure_ascii=False, separators=(",", ":")).encode("utf-8", "surrogatepass"))


def _parse_bytes(data: bytes, src: str) -> ParsedInstance:
    if len(data) < 8:
        raise IngestError(src, f"not DICOM: only {len(data)} bytes")
    part10 = len(data) >= 132 and data[128:132] == b"DICM"
    if part10 and _read_file is not None:
        fast = _fast_parse(data, src)
        if fast is not None:
            return fast
    meta_end, meta_syntax = _file_meta_end(data)  # read once: the checks below both need it
    if part10:
        _check_inflated_size(data, meta_end, meta_syntax, src)
    try:
        fp = io.BytesIO(data)
        ds = pydicom.dcmread(fp, stop_before_pixels=True, force=not part10)
        header_end = fp.tell()
    except InvalidDicomError as exc:
        raise IngestError(src, f"not DICOM: {exc}") from None
    except Exception as exc:
        raise IngestError(src, f"unreadable or truncated DICOM header: {type(exc).__name__}: {exc}") from None
    if not part10:
        # a bare dataset (as sent over the network): keep it as a proper Part-10 file
        if not _looks_like_dataset(ds):
            raise IngestError(src, "not DICOM: no DICM prefix and no recognisable data set")
        if not getattr(ds, "file_meta", None) or "TransferSyntaxUID" not in ds.file_meta:
            ds.file_meta = FileMetaDataset()
            ds.file_meta.TransferSyntaxUID = _guess_syntax(ds)
        try:
            full = pydicom.dcmread(io.BytesIO(data), force=True)
            full.file_meta = ds.file_meta
            data = dataset_to_part10(full)
            meta_end = _file_meta_end(data)[0]
            fp = io.BytesIO(data)
            ds = pydicom.dcmread(fp, stop_before_pixels=True)
            header_end = fp.tell()
        except IngestError:
            raise
        except Exception as exc:
            raise IngestError(src, f"unreadable data set: {type(exc).__name__}: {exc}") from None
    meta = getattr(ds, "file_meta", None) or FileMetaDataset()
    syntax = str(meta.get("TransferSyntaxUID", "") or "") or _guess_syntax(ds)
    if syntax != DeflatedExplicitVRLittleEndian:
        _check_complete(data, meta_end, syntax, src)
    try:
        return _split(ds, data, header_end, syntax, src)
    except IngestError:
        raise
    except Exception as exc:
        raise IngestError(src, f"cannot read attributes: {type(exc).__name__}: {exc}") from None


def _fast_parse(data: bytes, src: str) -> ParsedInstance | None:
    """The instance read by the compiled reader (``_ext/_header.pyx``), or None when that
    reader declines it (the reference path then reads it with pydicom)."""
    if _read_file is None:  # not built, or PACSCORE_PURE=1 (the caller checks this first)
        return None
    got = _read_file(data, _charset_of, _LEVEL_INDEX, model.ALL_COMPUTED, model.vr_of, model.keyword_of, BULK_THRESHOLD)
    if got is None:
        return None
    _meta_end, syntax, found, header_end, texts = got
    sop_uid = uid_value(texts.get(model.T_SOP_UID, ""))
    if not sop_uid:
        return None  # the reference path falls back to the file meta's SOP Instance UID
    study_uid = uid_value(texts.get(model.T_STUDY_UID, ""))
    series_uid = uid_value(texts.get(model.T_SERIES_UID, ""))
    # in the reference path's order (same errors); the reader has checked that every element
    # before header_end fits, so the walk starts there
    _check_complete(data, header_end, syntax, src)
    _check_uids(src, sop_uid, study_uid, series_uid)
    levels = dict(zip(model.LEVELS, found))
    return _instance(
        levels,
        [],
        data,
        data[:header_end],
        header_end,
        syntax,
        sop_uid,
        texts.get(model.T_SOP_CLASS, "").strip(" \x00"),
        study_uid,
        series_uid,
        texts.get(model.T_PATIENT_ID, "").strip(" \x00"),
        texts.get(model.T_ISSUER, "").strip(" \x00"),
    )


#: tag -> index of its level in model.LEVELS, for the tags not kept at IMAGE
_LEVEL_INDEX = {
    tag: model.LEVELS.index(model.storage_level(tag))
    for tag in (model.PATIENT_TAGS | model.STUDY_TAGS | model.SERIES_TAGS | model.ALL_COMPUTED)
    if model.storage_level(tag) != "IMAGE"
}
_CHARSETS: dict[bytes | None, Charset] = {}


def _charset_of(raw: bytes | None) -> Charset:
    """The Charset of a raw SpecificCharacterSet value (None: absent), made once per value."""
    cs = _CHARSETS.get(raw)
    if cs is None:
        if len(_CHARSETS) > 256:
            _CHARSETS.clear()
        cs = _CHARSETS[raw] = Charset(_charset_terms(raw) if raw is not None else None)
    return cs


def _looks_like_dataset(ds: Dataset) -> bool:
    try:
        return any(t in ds for t in (model.T_SOP_UID, model.T_STUDY_UID, model.T_SERIES_UID))
    except Exception:
        return False


def _guess_syntax(ds: Dataset) -> UID:
    from pydicom.uid import ExplicitVRBigEndian, ImplicitVRLittleEndian

    implicit, little = getattr(ds, "original_encoding", (None, None))
    if implicit:
        return ImplicitVRLittleEndian
    if little is False:
        return ExplicitVRBigEndian
    return ExplicitVRLittleEndian


def _file_meta_end(data: bytes) -> tuple[int, str]:
    """Where the data set starts after the Part-10 file meta group, and its transfer syntax."""
    if data[128:132] != b"DICM":
        return 0, ""
    pos, syntax = 132, ""
    while pos + 12 <= len(data) and struct.unpack_from("<H", data, pos)[0] == 0x0002:
        elem = struct.unpack_from("<H", data, pos + 2)[0]
        if data[pos + 4 : pos + 6] in (b"OB", b"OW", b"UN", b"SQ", b"UT", b"UC", b"UR"):
            start, length = pos + 12, struct.unpack_from("<I", data, pos + 8)[0]
        else:
            start, length = pos + 8, struct.unpack_from("<H", data, pos + 6)[0]
        if elem == 0x0010:
            syntax = data[start : start + length].decode("latin-1").strip(" \x00")
        pos = start + length
    return pos, syntax


def _check_inflated_size(data: bytes, start: int, syntax: str, src: str) -> None:
    """Refuse a deflated data set (from ``start``, after the file meta group) that would inflate
    beyond MAX_INFLATED, counting in 1 MiB steps and keeping nothing (pydicom would inflate it
    whole into memory)."""
    if syntax != DeflatedExplicitVRLittleEndian:
        return
    inflater, total, chunk = zlib.decompressobj(-zlib.MAX_WBITS), 0, data[start:]
    while True:
        try:
            out = inflater.decompress(chunk, 1 << 20)
        except zlib.error as exc:
            raise IngestError(src, f"corrupt deflated data set: {exc}") from None
        total += len(out)
        if total > MAX_INFLATED:
            raise IngestError(src, f"deflated data set inflates beyond {MAX_INFLATED} bytes")
        chunk = inflater.unconsumed_tail
        if inflater.eof or (not chunk and not out):
            return


_LONG_VRS = (b"OB", b"OW", b"OF", b"OD", b"OL", b"OV", b"SQ", b"UN", b"UC", b"UR", b"UT", b"SV", b"UV")


def _walk_problem(data: bytes, pos: int, implicit: bool, big: bool) -> tuple | None:
    """Walk the elements from ``pos``: None when each fits in ``data``, else ``("cut", offset)``
    (an element header cut off) or ``("short", group, element, length, remaining)``. The pure
    twin of ``_ext/_walk.pyx``."""
    endian = ">" if big else "<"
    n = len(data)
    while pos < n:
        if pos + 8 > n:
            return ("cut", pos)
        group, elem = struct.unpack_from(endian + "HH", data, pos)
        if group == 0xFFFE:  # item or delimiter in a sequence of undefined length
            length = struct.unpack_from(endian + "I", data, pos + 4)[0]
            pos += 8
            if elem == 0xE000 and length != 0xFFFFFFFF:
                pos += length
            continue
        vr = data[pos + 4 : pos + 6]
        if implicit or not (vr.isalpha() and vr.isupper()):
            # implicit VR (some writers encode pixel data so whatever the transfer syntax says)
            length = struct.unpack_from(endian + "I", data, pos + 4)[0]
            pos += 8
        elif vr in _LONG_VRS:
            if pos + 12 > n:
                return ("cut", pos)
            length = struct.unpack_from(endian + "I", data, pos + 8)[0]
            pos += 12
        else:
            length = struct.unpack_from(endian + "H", data, pos + 6)[0]
            pos += 8
        if length == 0xFFFFFFFF:
            continue  # undefined length: its items follow
        if pos + length > n:
            return ("short", group, elem, length, n - pos)
        pos += length
    return None


_walk = getattr(_impl.compiled("_walk"), "walk_problem", None) or _walk_problem
# None: a pure install or forced pure, pydicom reads every instance
_read_file = getattr(_impl.compiled("_header"), "read_file", None)


def _check_complete(data: bytes, pos: int, syntax: str, src: str) -> None:
    """Walk the elements of the data set (header, pixel data and beyond): a short file is
    truncated. pydicom accepts a value cut short at the end of the file, so the header is
    walked too, not only what follows it."""
    from pydicom.uid import ExplicitVRBigEndian, ImplicitVRLittleEndian

    problem = _walk(data, pos, syntax == ImplicitVRLittleEndian, syntax == ExplicitVRBigEndian)
    if problem is None:
        return
    if problem[0] == "cut":
        raise IngestError(src, f"truncated: an element header is cut off at byte {problem[1]}")
    _, group, elem, length, remain = problem
    raise IngestError(src, f"truncated: element ({group:04X},{elem:04X}) declares {length} bytes, {remain} remain")


def _text(ds: Dataset, tag: int) -> str:
    try:
        elem = ds.get_item(tag)
    except Exception:
        return ""
    if elem is None:
        return ""
    value = elem.value
    if isinstance(value, bytes):
        value = value.decode("latin-1")
    return str(value or "").strip(" \x00")


def _charset_value(ds: Dataset) -> list[str] | None:
    """SpecificCharacterSet as a list of terms (pydicom may already have converted it)."""
    try:
        elem = ds.get_item(model.T_CHARSET)
    except Exception:
        return None
    if elem is None:
        return None
    return _charset_terms(elem.value)


def _charset_terms(value: Any) -> list[str] | None:
    if isinstance(value, (bytes, bytearray)):
        value = value.decode("latin-1").split("\\")
    elif isinstance(value, str):
        value = value.split("\\")
    return [str(v).strip(" \x00") for v in (value or [])] or None


def _check_uids(src: str, sop_uid: str, study_uid: str, series_uid: str) -> None:
    missing = [
        kw
        for kw, v in (("SOPInstanceUID", sop_uid), ("StudyInstanceUID", study_uid), ("SeriesInstanceUID", series_uid))
        if not v
    ]
    if missing:
        raise IngestError(
            src, f"missing {', '.join(missing)}: an instance needs its Study, Series and SOP Instance UID"
        )
    # any other value is kept (uid_policy decides later); these two cannot identify one entity
    for kw, uid in zip(_UID_KEYWORDS, (sop_uid, study_uid, series_uid)):
        if "\\" in uid:
            raise IngestError(
                src, f"invalid {kw} {uid[:80]!r}: several values (a backslash) where one UID identifies the entity"
            )
        size = len(uid.encode("utf-8", "surrogatepass"))
        if size > MAX_UID_BYTES:
            raise IngestError(
                src,
                f"invalid {kw} {uid[:80]!r}...: {size} bytes, longer than the "
                f"{MAX_UID_BYTES} bytes the index keeps for a UID",
            )


def uid_value(raw: str) -> str:
    """A UID as the index keeps it: without the padding (NUL, spaces) or any other white space
    around it, as lookups (archive._uid_key) strip it, so a stored UID can be asked for."""
    while True:
        stripped = raw.strip().strip("\x00")
        if stripped == raw:
            return raw
        raw = stripped


def _split(ds: Dataset, data: bytes, header_end: int, syntax: str, src: str) -> ParsedInstance:
    sop_uid = uid_value(
        _text(ds, model.T_SOP_UID)
        or str(getattr(ds.get("file_meta", None) or {}, "MediaStorageSOPInstanceUID", "") or "")
    )
    study_uid = uid_value(_text(ds, model.T_STUDY_UID))
    series_uid = uid_value(_text(ds, model.T_SERIES_UID))
    _check_uids(src, sop_uid, study_uid, series_uid)
    levels: dict[str, dict[int, tuple[str, object]]] = {lvl: {} for lvl in model.LEVELS}
    has_bulk = False
    bulk: list[str] = []  # "TTTTTTTT:VR" of each element the indexed header leaves out
    cs = Charset(_charset_value(ds))
    elements = getattr(ds, "_dict", None)
    pairs = elements.items() if isinstance(elements, dict) else ((t, ds.get_item(t)) for t in ds.keys())
    for tag, elem in pairs:
        tag = int(tag)
        if tag >> 16 < 8 or tag in model.ALL_COMPUTED:
            continue  # computed attributes are the archive's to compute, never taken from an instance
        try:
            length = getattr(elem, "length", 0) or 0
            if length > BULK_THRESHOLD and length != 0xFFFFFFFF:
                has_bulk = True
                bulk.append(f"{tag:08X}:{elem.VR or model.vr_of(tag)}")
                continue
            converted = element_value(ds, tag, cs=cs, raw=elem)
        except Exception:
            continue  # an element pydicom cannot convert is kept in the header only
        if converted is None:
            continue
        levels[model.storage_level(tag)][tag] = converted
    header = data[:header_end]
    if has_bulk or syntax == DeflatedExplicitVRLittleEndian:
        header = _header_without_bulk(ds)
    return _instance(
        levels,
        bulk,
        data,
        header,
        header_end,
        syntax,
        sop_uid,
        _text(ds, model.T_SOP_CLASS),
        study_uid,
        series_uid,
        _text(ds, model.T_PATIENT_ID),
        _text(ds, model.T_ISSUER),
    )


def _instance(
    levels: dict,
    bulk: list[str],
    data: bytes,
    header: bytes,
    header_end: int,
    syntax: str,
    sop_uid: str,
    sop_class: str,
    study_uid: str,
    series_uid: str,
    patient_id: str,
    issuer: str,
) -> ParsedInstance:
    """The ParsedInstance of a data set read by either path."""
    levels["IMAGE"][model.T_CHARSET] = ("CS", "ISO_IR 192")
    pixel = _pixel_element(data, header_end, syntax)
    if pixel:
        bulk.append(pixel)
    if bulk:
        levels["IMAGE"][T_BULK] = ("IN", "\\".join(bulk))
    return ParsedInstance(
        sop_instance_uid=sop_uid,
        sop_class_uid=sop_class,
        study_instance_uid=study_uid,
        series_instance_uid=series_uid,
        patient_id=patient_id,
        issuer_of_patient_id=issuer,
        transfer_syntax_uid=syntax,
        data=data,
        header=header,
        checksum=checksum(data),
        levels=levels,
    )


_PIXEL_TAGS = {0x7FE00010: "OW", 0x7FE00008: "OF", 0x7FE00009: "OD"}


def _pixel_element(data: bytes, pos: int, syntax: str) -> str | None:
    """ "TTTTTTTT:VR" of the pixel data element where the header stops, if there is one."""
    from pydicom.uid import ExplicitVRBigEndian

    if pos + 8 > len(data):
        return None
    endian = ">" if syntax == ExplicitVRBigEndian else "<"
    group, elem = struct.unpack_from(endian + "HH", data, pos)
    tag = group << 16 | elem
    if tag not in _PIXEL_TAGS:
        return None
    code = data[pos + 4 : pos + 6]
    vr = code.decode("ascii") if code.isalpha() and code.isupper() else _PIXEL_TAGS[tag]
    return f"{tag:08X}:{vr}"


def _header_without_bulk(ds: Dataset) -> bytes:
    slim = Dataset()
    for tag in ds.keys():
        elem = ds.get_item(tag)
        length = getattr(elem, "length", 0) or 0
        if length > BULK_THRESHOLD and length != 0xFFFFFFFF:
            continue
        slim.add(ds[tag])
    meta = FileMetaDataset(ds.file_meta)
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    slim.file_meta = meta
    buf = io.BytesIO()
    pydicom.dcmwrite(buf, slim, enforce_file_format=True)
    return buf.getvalue()


_NUMERIC_FORMATS = {"US": "H", "UL": "I", "SS": "h", "SL": "i", "FL": "f", "FD": "d", "SV": "q", "UV": "Q"}
_PN_DELIMS = {0x5E, 0x3D, 0x5C}  # ^ = \ : where ISO 2022 switches back to the default set
_TEXT_DELIMS = {0x5C, 0x0D, 0x0A, 0x09, 0x0C}


_ASCII = bytes(range(128))


@functools.cache
def _ascii_compatible(encoding: str) -> bool:
    try:
        return _ASCII.decode(encoding, "replace") == _ASCII.decode("ascii")
    except LookupError:
        return False


class Charset:
    """The decoder of one data set's SpecificCharacterSet, built once per instance."""

    def __init__(self, value: Any) -> None:
        try:
            self.encodings = charset.convert_encodings(value or None)
        except Exception:
            self.encodings = ["iso8859"]
        one = self.encodings[0] if len(self.encodings) == 1 else None
        self.simple = one if one and "2022" not in one else None
        #: for the compiled reader: 1 when ASCII bytes decode as ASCII, 2 when they do unless
        #: they hold an ESC (ISO 2022), 0 when they may not
        self.ascii_fast = 2 if self.simple is None else int(_ascii_compatible(self.simple))

    def decode(self, raw: bytes, vr: str) -> str:
        if self.simple is not None:
            return raw.decode(self.simple, "replace")
        if raw.isascii() and b"\x1b" not in raw:  # ISO 2022 escapes are 7-bit too
            return raw.decode("ascii")
        return charset.decode_bytes(raw, self.encodings, _PN_DELIMS if vr == "PN" else _TEXT_DELIMS)


def element_value(
    ds: Dataset, tag: int, depth: int = 0, cs: Charset | None = None, raw: Any = None
) -> tuple[str, object] | None:
    """``(vr, value)`` of one element as the index keeps it, or None for bulk/binary data.

    Raw elements are converted here, straight from their bytes (pydicom's own conversion costs
    several times more and ingest does it for every attribute of every instance)."""
    raw = raw if raw is not None else ds.get_item(tag)
    vr = raw.VR or model.vr_of(tag)
    if vr == "UN" and model.vr_of(tag) != "UN":
        vr = model.vr_of(tag)  # a known attribute sent as UN: its value is still the known VR's
    value = raw.value
    if isinstance(value, (bytes, bytearray)) and getattr(raw, "is_raw", False):
        if vr in _ASCII_VRS:
            # these VRs are ASCII by definition: no character set decoding needed
            return vr, value.decode("latin-1").rstrip(" \x00")
        if vr in _CHARSET_VRS and cs is not None:
            text = cs.decode(bytes(value), vr)
            return vr, text.rstrip(" ") if vr in TEXT_VRS else text.rstrip(" \x00")
        if vr in _NUMERIC_FORMATS:
            fmt = _NUMERIC_FORMATS[vr]
            size = struct.calcsize(fmt)
            if len(value) % size:
                return None
            unpacked = struct.unpack(("<" if raw.is_little_endian else ">") + fmt * (len(value) // size), value)
            return vr, "\\".join(_num(v) for v in unpacked)
    if vr in _BINARY_VRS:
        return None
    elem = ds[tag]
    vr = elem.VR if elem.VR and " or " not in elem.VR and elem.VR != "UN" else vr
    if vr in _BINARY_VRS:
        return None
    value = elem.value
    if vr == "SQ":
        if depth > 4:
            return None
        items = [_item_dict(item, depth + 1, cs) for item in (value or [])]
        return "SQ", items
    if value is None:
        return vr, ""
    if vr == "AT":
        iterable = isinstance(value, (list, tuple)) or (hasattr(value, "__iter__") and not isinstance(value, int))
        vals = value if iterable else [value]
        return vr, "\\".join(f"{int(v):08X}" for v in vals)
    if vr in _NUMERIC_VRS:
        if isinstance(value, (bytes, bytearray)):
            return None
        vals = value if isinstance(value, (list, tuple)) or type(value).__name__ == "MultiValue" else [value]
        return vr, "\\".join(_num(v) for v in vals)
    if isinstance(value, (bytes, bytearray)):
        return vr, value.decode("latin-1").rstrip(" \x00")
    if isinstance(value, str):
        return vr, value.rstrip(" \x00") if vr not in TEXT_VRS else value.rstrip(" ")
    # MultiValue, PersonName, DSfloat, IS, ...
    if type(value).__name__ == "MultiValue" or isinstance(value, (list, tuple)):
        return vr, "\\".join(_scalar(v) for v in value)
    return vr, _scalar(value)


def _num(v: object) -> str:
    if isinstance(v, float) and v.is_integer():
        return repr(v)
    return str(v)


def _scalar(v: object) -> str:
    original = getattr(v, "original_string", None)
    if isinstance(original, str):
        return original.strip()
    return "" if v is None else str(v)


def _item_dict(item: Dataset, depth: int, cs: Charset | None = None) -> dict:
    """A sequence item as keyword -> value; its text is decoded like the data set's own (by
    the item's SpecificCharacterSet when it has one)."""
    own = _charset_value(item)
    if own is not None or cs is None:
        cs = Charset(own)
    out: dict[str, object] = {}
    for key in item.keys():
        tag = int(key)
        try:
            converted = element_value(item, tag, depth, cs=cs)
        except Exception:
            continue
        if converted is None:
            continue
        out[keyword_for_tag(tag) or f"{tag:08X}"] = converted[1]
    return out
