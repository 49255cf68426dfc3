"""Transfer syntaxes for the DIMSE adapter: what we accept, what we propose, how we convert.

Stored instances are sent in their stored transfer syntax whenever the peer accepted it. When it
did not, ``prepare_for_peer`` converts, in this order of preference:

1. uncompressed <-> uncompressed of the same byte order (implicit / explicit VR little endian,
   deflated): left to pynetdicom, which re-encodes on the fly;
2. little <-> big endian: values of the OW/OF/OL/OD/OV elements are byte-swapped here (pydicom
   refuses to change byte order by itself), everything else is re-encoded by pydicom;
3. compressed -> uncompressed: ``Dataset.decompress()`` with whatever pixel data handlers pydicom
   finds installed (numpy for RLE, Pillow for JPEG baseline and JPEG 2000, pylibjpeg/gdcm if
   present); when none can decode, the sub-operation fails and the reason is logged. Pixel Data
   nested in sequence items (an Icon Image Sequence of a JPEG 2000 image, ...) is encapsulated
   too: pydicom decodes only the top level, so each nested one is decoded here, and a sequence
   whose nested pixel data cannot be decoded is removed (an encapsulated value left in a native
   transfer syntax makes the whole data set unreadable to the peer).

Every converted data set is then checked: no value of undefined length but sequences in a
native transfer syntax, and it encodes and parses back in the transfer syntax it is sent in.
No lossy or lossless *re*-compression is ever attempted.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from io import BytesIO
from typing import BinaryIO, cast

from pydicom import dcmread
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.filebase import DicomBytesIO
from pydicom.filereader import read_dataset
from pydicom.filewriter import correct_ambiguous_vr, write_dataset
from pydicom.uid import (
    UID,
    DeflatedExplicitVRLittleEndian,
    ExplicitVRBigEndian,
    ExplicitVRLittleEndian,
    ImplicitVRLittleEndian,
)
from pynetdicom import ALL_TRANSFER_SYNTAXES, AllStoragePresentationContexts, build_context
from pynetdicom.presentation import NonPatientObjectPresentationContexts, PresentationContext

#: the uncompressed transfer syntaxes, in the order we prefer them as a fallback
UNCOMPRESSED = (ExplicitVRLittleEndian, ImplicitVRLittleEndian, DeflatedExplicitVRLittleEndian, ExplicitVRBigEndian)

#: transfer syntaxes accepted for C-STORE, in order of preference: pynetdicom's acceptor takes the
#: first of *our* list that the requestor proposed in a context, so the compressed syntaxes come
#: first (a requestor that offers [JPEG 2000, explicit VR LE] for a JPEG 2000 file then sends it
#: as it is, and the archive keeps those bytes), then explicit before implicit VR little endian
STORAGE_TRANSFER_SYNTAXES: tuple[str, ...] = tuple(
    [ts for ts in ALL_TRANSFER_SYNTAXES if UID(ts) not in UNCOMPRESSED] + [str(ts) for ts in UNCOMPRESSED]
)

#: pynetdicom limits a requestor to 128 presentation contexts (odd context IDs 1..255)
MAX_REQUESTED_CONTEXTS = 128

_SWAP_WIDTH = {"OW": 2, "OF": 4, "OL": 4, "OD": 8, "OV": 8}
PIXEL_DATA = 0x7FE00010


class ConversionError(Exception):
    """A stored instance cannot be sent in any transfer syntax the peer accepted."""


#: Non-Patient Object Storage SOP classes (PS3.4 Annex GG: hanging protocols, colour palettes,
#: implant templates, defined procedure protocols, inventories): no Study or Series Instance
#: UID, so the archive cannot file them; not advertised, so a peer learns it at association
#: (context rejected: abstract syntax not supported) instead of from a C000 per instance
NON_PATIENT_SOP_CLASSES: frozenset[str] = frozenset(
    str(cx.abstract_syntax) for cx in NonPatientObjectPresentationContexts
)


def storage_sop_classes() -> list[str]:
    """Every storage SOP class pynetdicom dispatches to EVT_C_STORE (image, SR, RT, waveforms, ...)
    whose instances are patient data, i.e. can be filed under a study and a series."""
    seen: dict[str, None] = {}
    for cx in AllStoragePresentationContexts:
        uid = str(cx.abstract_syntax)
        if uid not in NON_PATIENT_SOP_CLASSES:
            seen.setdefault(uid, None)
    return list(seen)


def move_contexts(pairs: Iterable[tuple[str, str]]) -> list[PresentationContext]:
    """Presentation contexts to request from a C-MOVE destination for ``(sop_class, ts)`` pairs.

    Per SOP class one context of the uncompressed syntaxes (the fallback every Storage SCP must
    accept), then one context per stored compressed syntax, so that the peer can accept the
    stored syntax and we send the bytes as they are. Past 128 contexts the compressed ones are
    dropped (those instances are then decompressed) and then SOP classes (those fail).
    """
    by_class: dict[str, list[str]] = {}
    for sop_class, ts in pairs:
        by_class.setdefault(str(sop_class), [])
        if ts and ts not in by_class[str(sop_class)]:
            by_class[str(sop_class)].append(str(ts))
    base: list[PresentationContext] = []
    extra: list[PresentationContext] = []
    for sop_class, syntaxes in by_class.items():
        uncompressed: list[str | UID] = [ExplicitVRLittleEndian, ImplicitVRLittleEndian]
        if ExplicitVRBigEndian in syntaxes:
            uncompressed.append(ExplicitVRBigEndian)
        if DeflatedExplicitVRLittleEndian in syntaxes:
            uncompressed.append(DeflatedExplicitVRLittleEndian)
        base.append(build_context(sop_class, uncompressed))
        for ts in syntaxes:
            if UID(ts) not in UNCOMPRESSED:
                extra.append(build_context(sop_class, [ts]))
    contexts = base[:MAX_REQUESTED_CONTEXTS]
    contexts += extra[: MAX_REQUESTED_CONTEXTS - len(contexts)]
    return contexts


def choose_syntax(stored: str, accepted: Sequence[str]) -> tuple[UID, str]:
    """The transfer syntax to send a ``stored`` instance in, and how to get there.

    Returns ``(ts, how)`` with ``how`` one of ``"as-is"`` (the peer accepted the stored syntax),
    ``"reencode"`` (pynetdicom converts between implicit/explicit/deflated of the same byte
    order), ``"byteswap"`` and ``"decompress"``; raises ConversionError when nothing fits.
    """
    stored_uid = UID(stored)
    accepted_uids = [UID(ts) for ts in accepted]
    if stored_uid in accepted_uids:
        return stored_uid, "as-is"
    plain = [ts for ts in UNCOMPRESSED if ts in accepted_uids]
    if not plain:
        if not accepted_uids:
            raise ConversionError("the peer accepted no presentation context for this SOP class (as SCP)")
        raise ConversionError(
            f"the peer accepted only {', '.join(ts.name for ts in accepted_uids)} "
            f"for this SOP class; stored as {stored_uid.name}"
        )
    if stored_uid.is_compressed:
        return plain[0], "decompress"
    same_order = [ts for ts in plain if ts.is_little_endian == stored_uid.is_little_endian]
    if same_order:
        return same_order[0], "reencode"
    return plain[0], "byteswap"


def _swap_values(ds: Dataset) -> None:
    """Byte-swap the OW/OF/OL/OD/OV values of ``ds`` and its sequence items, in place."""
    import numpy as np

    for elem in ds:  # iterating converts raw elements with the dataset's original encoding
        if elem.VR == "SQ":
            for item in elem.value:
                _swap_values(item)
            continue
        width = _SWAP_WIDTH.get(elem.VR)
        if width and elem.value and not elem.is_undefined_length:
            raw = bytes(elem.value)
            if len(raw) % width:
                raise ConversionError(f"{elem.keyword or elem.tag}: {len(raw)} bytes is not a multiple of {width}")
            elem.value = np.frombuffer(raw, dtype=f"<u{width}").byteswap().tobytes()


def _change_byte_order(ds: Dataset, target: UID) -> None:
    implicit, little = ds.original_encoding
    if implicit is None:
        syntax = ds.file_meta.TransferSyntaxUID
        implicit, little = syntax.is_implicit_VR, syntax.is_little_endian
    correct_ambiguous_vr(ds, bool(little))  # resolve "OB or OW" / "US or SS" in the source order
    if bool(little) != target.is_little_endian:
        _swap_values(ds)
    ds.set_original_encoding(target.is_implicit_VR, target.is_little_endian, ds.original_character_set)
    ds.file_meta.TransferSyntaxUID = target


def read_stored(data: bytes) -> Dataset:
    """Decode stored Part-10 bytes into the Dataset pynetdicom's send_c_store wants.

    A data set that does not parse (pydicom gives a truncated file back empty) raises
    ConversionError: pynetdicom skips an empty Dataset silently, so the sub-operation would
    be counted neither completed nor failed."""
    try:
        ds = dcmread(BytesIO(data), force=True)
    except Exception as exc:
        raise ConversionError(f"the stored data set does not parse: {type(exc).__name__}") from exc
    if "SOPInstanceUID" not in ds or "SOPClassUID" not in ds:
        raise ConversionError("the stored data set does not parse (truncated?): no SOP Class/Instance UID")
    return ds


def _encapsulated(ds: Dataset) -> bool:
    return PIXEL_DATA in ds and ds[PIXEL_DATA].is_undefined_length


def _decode_nested(ds: Dataset, stored: UID, path: str = "") -> list[str]:
    """Decode the encapsulated Pixel Data inside the sequence items of ``ds`` (at any depth),
    in place; a sequence with one that cannot be decoded is removed. Returns what was removed."""
    removed = []
    for elem in list(ds):
        if elem.VR != "SQ" or not elem.value:
            continue
        where = f"{path}{elem.keyword or elem.tag}"
        for item in elem.value:
            removed += _decode_nested(item, stored, f"{where}.")
            if not _encapsulated(item):
                continue
            item.file_meta = FileMetaDataset()  # pydicom finds the transfer syntax there
            item.file_meta.TransferSyntaxUID = stored
            try:
                item.decompress(generate_instance_uid=False)
            except Exception:  # no decoder for it: drop the sequence, keep the instance
                del ds[elem.tag]
                removed.append(where)
                break
            finally:
                del item.file_meta
    return removed


def _undefined_lengths(ds: Dataset, path: str = "") -> list[str]:
    """The non-sequence elements of undefined length (encapsulated values), at any depth."""
    found = []
    for elem in ds:
        where = f"{path}{elem.keyword or elem.tag}"
        if elem.VR == "SQ":
            for item in elem.value or ():
                found += _undefined_lengths(item, f"{where}.")
        elif elem.is_undefined_length:
            found.append(where)
    return found


def check_encoding(ds: Dataset, target: UID) -> None:
    """Raise ConversionError unless ``ds`` can be sent in ``target`` and read back by the peer."""
    if not target.is_encapsulated:
        bad = _undefined_lengths(ds)
        if bad:
            raise ConversionError(f"{', '.join(bad)}: encapsulated value in {target.name}")
    try:
        fp = DicomBytesIO()
        fp.is_little_endian, fp.is_implicit_VR = target.is_little_endian, target.is_implicit_VR
        write_dataset(fp, ds)
        back = cast(BinaryIO, DicomBytesIO(fp.getvalue()))  # a DicomBytesIO is a binary file at run time
        parsed = read_dataset(back, target.is_implicit_VR, target.is_little_endian)
        _undefined_lengths(parsed)  # iterating converts (and so checks) every raw element
    except Exception as exc:
        raise ConversionError(f"does not encode in {target.name}: {type(exc).__name__}: {exc}") from exc


def prepare_for_peer(data: bytes, stored_ts: str, accepted: Sequence[str]) -> tuple[Dataset, str]:
    """The Dataset to hand to ``send_c_store`` for stored bytes, converted if the peer needs it.

    ``accepted``: the transfer syntaxes the peer accepted for the instance's SOP class (in our
    SCU role). Returns ``(dataset, how)``; ``how`` names the conversion, and ends with
    ``" without <sequence>"`` for each sequence removed because its nested pixel data could not be
    decoded. Raises ConversionError with a readable reason.
    """
    target, how = choose_syntax(stored_ts, accepted)
    ds = read_stored(data)
    if how == "as-is":
        return ds, how
    if how == "decompress":
        stored = UID(stored_ts)
        removed = _decode_nested(ds, stored)
        try:
            if _encapsulated(ds):
                ds.decompress(generate_instance_uid=False)
            else:  # no pixel data at the top level: nothing to decode there
                ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
                ds.set_original_encoding(False, True, ds.original_character_set)
        except Exception as exc:  # missing plugin, unsupported bit depth, corrupt fragments
            first = str(exc).strip().splitlines()
            raise ConversionError(
                f"cannot decompress {stored.name}: {first[-1] if first else type(exc).__name__}"
            ) from exc
        how += "".join(f" without {where}" for where in removed)
    if (how.startswith("decompress") and target.is_little_endian) or how == "reencode":
        # pynetdicom re-encodes between the little endian syntaxes itself; check the one it uses
        check_encoding(ds, target)
        return ds, how
    _change_byte_order(ds, target if not target.is_compressed else ExplicitVRLittleEndian)
    check_encoding(ds, target)
    return ds, how


def accepted_syntaxes(contexts: Iterable[PresentationContext], sop_class: str, role: str = "scu") -> list[str]:
    """The transfer syntaxes accepted for ``sop_class`` in our ``role`` on an association."""
    out = []
    for cx in contexts:
        if cx.abstract_syntax != sop_class:
            continue
        if role == "scu" and cx.as_scu is False:
            continue
        if role == "scp" and cx.as_scp is False:
            continue
        out.append(str(cx.transfer_syntax[0]))
    return out
