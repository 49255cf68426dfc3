"""Frames in the media type and transfer syntax a client accepts (PS3.18 8.7.3.5, 8.7.4).

A frame request names what it accepts as ranges such as
``multipart/related; type="application/octet-stream"; transfer-syntax=*`` (what OHIF sends:
any syntax, sent as stored) or ``type="image/jp2"; transfer-syntax=1.2.840.10008.1.2.4.90``.
This module chooses, once per request and before any pixel is decoded, the form every frame
goes out in (``choose``), then produces the frames in that form (``produce``):

- as stored: the stored fragments of an encapsulated frame, or the Little Endian bytes of a
  native frame, copied and never decoded (the cheap path, and the only one that is exact for
  lossy data);
- decoded: Explicit VR Little Endian pixel values (application/octet-stream), where pydicom has
  a decoder for the stored syntax (pylibjpeg and its openjpeg, libjpeg and rle plugins, or
  Pillow);
- re-encoded: RLE Lossless (image/dicom-rle) or JPEG 2000 lossless (image/jp2), where pydicom
  also has an encoder for it.

Anything else is a 406 naming the transfer syntax that cannot be produced and why. Decoded
frames keep the stored colour space (``raw`` decoding: no YBR to RGB conversion), with YBR_FULL_422
upsampled to YBR_FULL by the decoder; their samples are interleaved (Planar Configuration 0).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from .web_http import HttpError
from .web_multipart import media_matches, parse_accept

EXPLICIT_LE = "1.2.840.10008.1.2.1"
IMPLICIT_LE = "1.2.840.10008.1.2"
DEFLATED_LE = "1.2.840.10008.1.2.1.99"
EXPLICIT_BE = "1.2.840.10008.1.2.2"
NATIVE_SYNTAXES = frozenset({EXPLICIT_LE, IMPLICIT_LE, DEFLATED_LE, EXPLICIT_BE})
RLE_LOSSLESS = "1.2.840.10008.1.2.5"
JPEG2000_LOSSLESS = "1.2.840.10008.1.2.4.90"
OCTET = "application/octet-stream"

#: the media type of a compressed frame per transfer syntax (PS3.18 Table 8.7.3-5)
FRAME_MEDIA = {
    RLE_LOSSLESS: "image/dicom-rle",
    "1.2.840.10008.1.2.4.50": "image/jpeg",
    "1.2.840.10008.1.2.4.51": "image/jpeg",
    "1.2.840.10008.1.2.4.57": "image/jpeg",
    "1.2.840.10008.1.2.4.70": "image/jpeg",
    "1.2.840.10008.1.2.4.80": "image/jls",
    "1.2.840.10008.1.2.4.81": "image/jls",
    JPEG2000_LOSSLESS: "image/jp2",
    "1.2.840.10008.1.2.4.91": "image/jp2",
    "1.2.840.10008.1.2.4.92": "image/jpx",
    "1.2.840.10008.1.2.4.93": "image/jpx",
    "1.2.840.10008.1.2.4.201": "image/jphc",
    "1.2.840.10008.1.2.4.202": "image/jphc",
    "1.2.840.10008.1.2.4.203": "image/jphc",
    "1.2.840.10008.1.2.4.100": "video/mpeg2",
    "1.2.840.10008.1.2.4.101": "video/mpeg2",
    "1.2.840.10008.1.2.4.102": "video/mp4",
    "1.2.840.10008.1.2.4.103": "video/mp4",
    "1.2.840.10008.1.2.4.104": "video/mp4",
    "1.2.840.10008.1.2.4.105": "video/mp4",
    "1.2.840.10008.1.2.4.106": "video/mp4",
    "1.2.840.10008.1.2.4.107": "video/H265",
    "1.2.840.10008.1.2.4.108": "video/H265",
}
#: the transfer syntax a media type means when the Accept names no transfer-syntax
#: (the defaults of PS3.18 Table 8.7.3-5; application/octet-stream: Table 8.7.3-4)
DEFAULT_SYNTAX = {
    OCTET: EXPLICIT_LE,
    "image/jpeg": "1.2.840.10008.1.2.4.70",
    "image/jls": "1.2.840.10008.1.2.4.80",
    "image/jp2": JPEG2000_LOSSLESS,
    "image/jpx": "1.2.840.10008.1.2.4.92",
    "image/dicom-rle": RLE_LOSSLESS,
    "image/jphc": "1.2.840.10008.1.2.4.201",
}
#: the smallest side openjpeg encodes (its default of six DWT resolution levels halves it five times)
J2K_MIN_SIZE = 32
#: the syntaxes this server can encode frames in (lossless ones only: a transcode never loses data)
ENCODABLE = (RLE_LOSSLESS, JPEG2000_LOSSLESS)


def is_encapsulated(ts: str) -> bool:
    return bool(ts) and ts not in NATIVE_SYNTAXES


def media_of(ts: str) -> str:
    """The media type of a frame in transfer syntax ``ts`` (native frames: octet-stream)."""
    return FRAME_MEDIA.get(ts, OCTET) if is_encapsulated(ts) else OCTET


@dataclass(frozen=True)
class FrameForm:
    """How the frames of one response go out: the part's media type and transfer syntax, and
    whether the bytes are the stored ones (no decoding) or produced by a transcode."""

    media: str
    syntax: str
    as_stored: bool


# -- what can be produced -------------------------------------------------------------------
def _decoder(ts: str) -> Any:
    from pydicom.pixels import get_decoder

    try:
        decoder = get_decoder(ts)
    except (NotImplementedError, ValueError):
        return None
    return decoder if decoder.is_available else None


def _encoder(ts: str) -> Any:
    from pydicom.pixels import get_encoder

    try:
        encoder = get_encoder(ts)
    except (NotImplementedError, ValueError):
        return None
    return encoder if encoder.is_available else None


def cannot_produce(stored: str, target: str) -> str | None:
    """Why frames stored in ``stored`` cannot be sent in ``target``, or None when they can."""
    if target == stored or (target == EXPLICIT_LE and not is_encapsulated(stored)):
        return None
    if is_encapsulated(stored) and _decoder(stored) is None:
        return (
            f"no decoder for the stored transfer syntax {stored} is installed "
            "(pip install 'pacscore[web]' brings pylibjpeg and its plugins)"
        )
    if target == EXPLICIT_LE:
        return None
    if target not in ENCODABLE:
        return f"this server does not encode frames in {target} (it encodes {', '.join(ENCODABLE)})"
    if _encoder(target) is None:
        return f"no encoder for {target} is installed"
    return None


# -- choosing the form ----------------------------------------------------------------------
def choose(accept: str | None, stored: str, what: str) -> FrameForm:
    """The form the frames of an instance stored in ``stored`` are sent in, or a 406.

    ``what`` names the instance in the error. The Accept ranges are tried best first; within a
    range the stored form wins when it is acceptable (no decoding), then a transcode.
    """
    stored_label = stored if is_encapsulated(stored) else EXPLICIT_LE
    stored_media = media_of(stored)
    reasons: list[str] = []
    for rng in parse_accept(accept):
        if rng.media_type == "multipart/related":
            inner = rng.params.get("type", "*/*").lower()
        else:
            inner = rng.media_type
        wanted = rng.params.get("transfer-syntax")
        wanted = wanted.strip() if wanted else None
        if wanted in (None, "*", stored_label) and media_matches(inner, stored_media):
            return FrameForm(stored_media, stored_label, True)
        if wanted in ("*", stored_label) and media_matches(inner, OCTET):
            # OHIF's "type=application/octet-stream; transfer-syntax=*": the stored bytes, labelled
            return FrameForm(OCTET, stored_label, True)
        if wanted in (None, "*"):
            target = DEFAULT_SYNTAX.get(inner)
            if target is None:
                if "*" not in inner:
                    reasons.append(f"{inner}: not a frame media type")
                continue
        else:
            target = wanted
        media = media_of(target)
        if not media_matches(inner, media):
            reasons.append(f"{inner}: transfer syntax {target} is sent as {media}")
            continue
        why = cannot_produce(stored, target)
        if why is None:
            return FrameForm(media, target, target == stored_label)
        reasons.append(f"{target}: {why}")
    detail = "; ".join(dict.fromkeys(reasons)) or "no frame media type accepted"
    raise HttpError(
        406,
        f"the frames of {what} are stored in transfer syntax {stored} ({stored_media}) and cannot "
        f"be sent in any accepted form: {detail}",
    )


# -- producing the frames -------------------------------------------------------------------
def native_frames(ds: Any, raw: bytes, stored: str) -> list[bytes] | None:
    """All frames of native pixel data as Little Endian bytes (None for an odd layout)."""
    rows, cols = int(ds.get("Rows", 0) or 0), int(ds.get("Columns", 0) or 0)
    samples = int(ds.get("SamplesPerPixel", 1) or 1)
    bits = int(ds.get("BitsAllocated", 0) or 0)
    count = int(ds.get("NumberOfFrames", 1) or 1)
    if not (rows and cols and bits):
        return None
    frame_bits = rows * cols * samples * bits
    frames = []
    for i in range(count):
        start, end = i * frame_bits, (i + 1) * frame_bits
        if start % 8 == 0 and end % 8 == 0:
            chunk = raw[start // 8 : end // 8]
        else:  # 1-bit data whose frames do not start on a byte: re-pack the bits
            import numpy as np

            bits_all = np.unpackbits(np.frombuffer(raw, dtype=np.uint8), bitorder="little")
            chunk = np.packbits(bits_all[start:end], bitorder="little").tobytes()
        if stored == EXPLICIT_BE and bits in (16, 32, 64):
            import numpy as np

            chunk = np.frombuffer(chunk, dtype=f">u{bits // 8}").astype(f"<u{bits // 8}").tobytes()
        frames.append(chunk)
    return frames


def stored_frames(ds: Any, raw: bytes, stored: str, count: int) -> list[bytes] | None:
    """Every frame as stored: the fragments of each encapsulated frame, or native LE bytes."""
    if is_encapsulated(stored):
        from pydicom.encaps import generate_frames

        return list(generate_frames(raw, number_of_frames=count))
    return native_frames(ds, raw, stored)


def decode_frame(ds: Any, stored: str, index: int) -> tuple[Any, dict]:
    """Frame ``index`` (from 0) as a numpy array in the stored colour space, and pydicom's
    description of it (photometric interpretation after decoding, bits, planar configuration)."""
    decoder = _decoder(stored)
    if decoder is None:
        raise HttpError(422, f"no decoder for transfer syntax {stored} is installed")
    try:
        return decoder.as_array(ds, index=index, raw=True)
    except HttpError:
        raise
    except Exception as exc:
        raise HttpError(422, f"frame {index + 1} could not be decoded from {stored}: {exc}") from None


def _native_bytes(arr: Any) -> bytes:
    """A decoded frame as Explicit VR Little Endian pixel data (samples interleaved)."""
    if arr.dtype.itemsize > 1 and arr.dtype.byteorder == ">":
        arr = arr.astype(arr.dtype.newbyteorder("<"))
    return bytes(arr.tobytes())


def encode_frame(arr: Any, meta: dict, ds: Any, target: str) -> bytes:
    """A decoded frame encoded in ``target`` (RLE Lossless or JPEG 2000 lossless)."""
    encoder = _encoder(target)
    if encoder is None:
        raise HttpError(406, f"no encoder for transfer syntax {target} is installed")
    if target == JPEG2000_LOSSLESS and min(arr.shape[:2]) < J2K_MIN_SIZE:
        raise HttpError(
            406,
            f"a {arr.shape[1]} x {arr.shape[0]} frame cannot be encoded in {target}: openjpeg's six "
            f"resolution levels need at least {J2K_MIN_SIZE} x {J2K_MIN_SIZE} pixels",
        )
    photometric = str(meta.get("photometric_interpretation") or ds.get("PhotometricInterpretation", "MONOCHROME2"))
    kwargs = {
        "rows": arr.shape[0],
        "columns": arr.shape[1],
        "samples_per_pixel": arr.shape[2] if arr.ndim == 3 else 1,
        "number_of_frames": 1,
        "bits_allocated": int(meta.get("bits_allocated") or ds.BitsAllocated),
        "bits_stored": int(meta.get("bits_stored") or ds.get("BitsStored") or ds.BitsAllocated),
        "pixel_representation": int(ds.get("PixelRepresentation", 0) or 0),
        "photometric_interpretation": photometric,
        "planar_configuration": 0,
    }
    try:
        return bytes(encoder.encode(arr, **kwargs))
    except Exception as exc:
        raise HttpError(406, f"this frame cannot be encoded in {target}: {exc}") from None


def produce(ds: Any, raw: bytes, stored: str, form: FrameForm, numbers: list[int]) -> list[bytes]:
    """The frames ``numbers`` (from 1) of an instance in ``form`` (chosen by ``choose``)."""
    count = int(ds.get("NumberOfFrames", 1) or 1)
    if form.as_stored:
        frames = stored_frames(ds, raw, stored, count)
        if frames is None:
            raise HttpError(404, "the instance has no frame geometry (Rows, Columns, BitsAllocated)")
        return [frames[n - 1] for n in numbers]
    out = []
    for n in numbers:
        arr, meta = decode_frame(ds, stored, n - 1)
        out.append(_native_bytes(arr) if form.syntax == EXPLICIT_LE else encode_frame(arr, meta, ds, form.syntax))
    return out


__all__ = [
    "FrameForm",
    "choose",
    "produce",
    "cannot_produce",
    "decode_frame",
    "native_frames",
    "stored_frames",
    "media_of",
    "is_encapsulated",
    "FRAME_MEDIA",
    "DEFAULT_SYNTAX",
    "ENCODABLE",
]
