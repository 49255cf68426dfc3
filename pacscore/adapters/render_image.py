"""Pixels to a picture: one frame of an image instance as an 8-bit JPEG or PNG.

The grayscale path follows the standard's pipeline (PS3.3 C.11, PS3.4 N.2.1): stored values,
then the Modality LUT (Rescale Slope/Intercept, or a Modality LUT Sequence), then the VOI LUT
(a window asked for in the request, else the stored Window Center/Width with its VOI LUT
Function, else a stored VOI LUT Sequence, else the frame's minimum to maximum), then the
polarity (MONOCHROME1 is inverted so that the lowest value is white). Attributes of an enhanced
multi-frame instance are read from the frame's Per-Frame Functional Groups, then the Shared
ones, then the top level. Colour images are shown as stored (RGB; YBR converted to RGB by the
decoder; PALETTE COLOR through its lookup tables) scaled to 8 bits; a window does not apply to
them. The result is cropped and scaled to a viewport (PS3.18 8.3.5.1.3) and encoded by Pillow.

Nothing here knows about HTTP; bad requests and unrenderable data raise ``RenderError`` with
a status (400, 406, 422) the HTTP layer passes on.
"""

from __future__ import annotations

import io
import math
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # numpy comes with the web extra; importing this module must not need it
    import numpy as np

JPEG = "image/jpeg"
PNG = "image/png"
IMAGE_MEDIA = (JPEG, PNG)
#: the window functions of the ``window`` parameter (PS3.18 8.3.5.1.4) and of VOI LUT Function
WINDOW_FUNCTIONS = {"linear": "LINEAR", "linear-exact": "LINEAR_EXACT", "sigmoid": "SIGMOID"}
DEFAULT_QUALITY = 90
GRAYSCALE = ("MONOCHROME1", "MONOCHROME2")


class RenderError(Exception):
    """Why an image cannot be rendered, with the HTTP status that says so."""

    def __init__(self, status: int, reason: str) -> None:
        self.status = status
        self.reason = reason
        super().__init__(f"{status}: {reason}")


@dataclass(frozen=True)
class Window:
    """A VOI window: center, width and function (LINEAR, LINEAR_EXACT or SIGMOID)."""

    center: float
    width: float
    function: str = "LINEAR"


@dataclass(frozen=True)
class Viewport:
    """The rendered size ``width`` x ``height`` (the image is scaled to fit, keeping its aspect
    ratio) and optionally the source region: top-left ``sx, sy`` and size ``sw, sh`` in source
    pixels, a negative size flipping the region along that axis."""

    width: int
    height: int
    region: tuple[int, int, int, int] | None = None


@dataclass(frozen=True)
class RenderOptions:
    media: str = JPEG
    quality: int = DEFAULT_QUALITY
    viewport: Viewport | None = None
    window: Window | None = None


# -- parameters -----------------------------------------------------------------------------
def _ints(text: str, name: str) -> list[int]:
    try:
        return [int(v.strip()) for v in text.split(",")]
    except ValueError:
        raise RenderError(400, f"{name}={text!r}: expected comma-separated integers") from None


def parse_quality(text: str) -> int:
    """The ``quality`` parameter: an integer from 1 to 100 (PS3.18 8.3.5.1.2)."""
    try:
        value = int(text.strip())
    except ValueError:
        value = 0
    if not 1 <= value <= 100:
        raise RenderError(400, f"quality={text!r}: expected an integer from 1 to 100")
    return value


def parse_viewport(text: str) -> Viewport:
    """``vw,vh`` or ``vw,vh,sx,sy,sw,sh`` (PS3.18 8.3.5.1.3)."""
    values = _ints(text, "viewport")
    if len(values) not in (2, 6):
        raise RenderError(400, f"viewport={text!r}: expected vw,vh or vw,vh,sx,sy,sw,sh")
    vw, vh = values[:2]
    if vw < 1 or vh < 1 or vw > 8192 or vh > 8192:
        raise RenderError(400, f"viewport={text!r}: vw and vh must be from 1 to 8192")
    if len(values) == 2:
        return Viewport(vw, vh)
    sx, sy, sw, sh = values[2:]
    if sx < 0 or sy < 0 or sw == 0 or sh == 0:
        raise RenderError(400, f"viewport={text!r}: sx and sy must be >= 0 and sw, sh not 0")
    return Viewport(vw, vh, (sx, sy, sw, sh))


def parse_window(text: str) -> Window:
    """``center,width[,function]`` with function linear (default), linear-exact or sigmoid."""
    parts = [p.strip() for p in text.split(",")]
    if len(parts) not in (2, 3):
        raise RenderError(400, f"window={text!r}: expected center,width,function")
    try:
        center, width = float(parts[0]), float(parts[1])
    except ValueError:
        raise RenderError(400, f"window={text!r}: center and width must be numbers") from None
    if not (math.isfinite(center) and math.isfinite(width)):
        raise RenderError(400, f"window={text!r}: center and width must be finite")
    function = WINDOW_FUNCTIONS.get(parts[2].lower()) if len(parts) == 3 else "LINEAR"
    if function is None:
        raise RenderError(400, f"window={text!r}: the function must be one of {', '.join(WINDOW_FUNCTIONS)}")
    if function == "LINEAR" and width < 1:
        raise RenderError(400, f"window={text!r}: a linear window needs a width of at least 1")
    if width <= 0:
        raise RenderError(400, f"window={text!r}: the width must be greater than 0")
    return Window(center, width, function)


# -- the grayscale pipeline -----------------------------------------------------------------
def apply_window(values: np.ndarray, window: Window) -> np.ndarray:
    """VOI windowing to 0..255 (float) as PS3.3 C.11.2.1.2 and C.11.2.1.3 define it."""
    import numpy as np

    x = values.astype(np.float64)
    c, w = window.center, window.width
    if window.function == "SIGMOID":
        # the exponent is clipped where exp() would overflow: the result is 0 there either way
        return 255.0 / (1.0 + np.exp(np.clip(-4.0 * (x - c) / w, -700.0, 700.0)))
    if window.function == "LINEAR_EXACT":
        low, high = c - w / 2, c + w / 2
        y = ((x - c) / w + 0.5) * 255.0
    else:  # LINEAR: the centre is at c - 0.5 and the width is w - 1
        low, high = c - 0.5 - (w - 1) / 2, c - 0.5 + (w - 1) / 2
        y = ((x - (c - 0.5)) / max(w - 1, 1e-12) + 0.5) * 255.0
    return np.where(x <= low, 0.0, np.where(x > high, 255.0, y))


def _functional(ds: Any, index: int, sequence: str, keyword: str) -> Any:
    """``keyword`` for frame ``index``: per-frame group, shared group, then the top level."""
    for groups, item in (("PerFrameFunctionalGroupsSequence", index), ("SharedFunctionalGroupsSequence", 0)):
        seq = ds.get(groups)
        if seq is not None and len(seq) > item:
            inner = seq[item].get(sequence)
            if inner is not None and len(inner) and keyword in inner[0]:
                return inner[0].get(keyword)
    return ds.get(keyword)


def _first(value: Any) -> Any:
    if value is None:
        return None
    if isinstance(value, (list, tuple)) or type(value).__name__ == "MultiValue":
        return value[0] if len(value) else None
    return value


def modality_values(ds: Any, arr: np.ndarray, index: int) -> np.ndarray:
    """Stored values to modality values (PS3.3 C.11.1): rescale, or a Modality LUT Sequence."""
    import numpy as np

    if "ModalityLUTSequence" in ds:
        from pydicom.pixels import apply_modality_lut

        return np.asarray(apply_modality_lut(arr, ds))
    slope = _first(_functional(ds, index, "PixelValueTransformationSequence", "RescaleSlope"))
    intercept = _first(_functional(ds, index, "PixelValueTransformationSequence", "RescaleIntercept"))
    if slope is None and intercept is None:
        return arr
    return arr.astype(np.float64) * float(slope if slope is not None else 1) + float(intercept or 0)


def stored_window(ds: Any, index: int) -> Window | None:
    """The first Window Center/Width of the frame, with its VOI LUT Function (LINEAR default)."""
    center = _first(_functional(ds, index, "FrameVOILUTSequence", "WindowCenter"))
    width = _first(_functional(ds, index, "FrameVOILUTSequence", "WindowWidth"))
    if center is None or width is None:
        return None
    function = str(_functional(ds, index, "FrameVOILUTSequence", "VOILUTFunction") or "LINEAR").upper()
    if function not in WINDOW_FUNCTIONS.values():
        function = "LINEAR"
    width = float(width)
    if width <= 0 or (function == "LINEAR" and width < 1):
        return None  # an unusable stored window: fall back to the next source
    return Window(float(center), width, function)


def min_max_window(values: np.ndarray) -> np.ndarray:
    """The frame's minimum to maximum mapped linearly onto 0..255 (a constant frame is black)."""
    import numpy as np

    low, high = float(np.min(values)), float(np.max(values))
    if high <= low:
        return np.zeros(values.shape, dtype=np.float64)
    return (values.astype(np.float64) - low) * (255.0 / (high - low))


def grayscale_display(ds: Any, arr: np.ndarray, index: int, window: Window | None) -> np.ndarray:
    """A decoded grayscale frame through the Modality LUT, the VOI LUT and the polarity, as uint8."""
    import numpy as np

    values = modality_values(ds, arr, index)
    chosen = window or stored_window(ds, index)
    if chosen is not None:
        shown = apply_window(values, chosen)
    elif "VOILUTSequence" in ds:
        from pydicom.pixels import apply_voi

        item = ds.VOILUTSequence[0]
        bits = int(item.LUTDescriptor[2]) or 16
        shown = np.asarray(apply_voi(values, ds), dtype=np.float64) * (255.0 / (2**bits - 1))
    else:
        shown = min_max_window(values)
    shown = np.clip(np.floor(shown + 0.5), 0, 255).astype(np.uint8)
    if str(ds.get("PhotometricInterpretation", "")).strip() == "MONOCHROME1":
        shown = 255 - shown
    return shown


def colour_display(ds: Any, arr: np.ndarray, photometric: str) -> np.ndarray:
    """A decoded colour frame (RGB after the decoder's YBR conversion, or palette indices) as
    8-bit RGB."""
    import numpy as np

    if photometric == "PALETTE COLOR":
        from pydicom.pixels import apply_color_lut

        rgb = np.asarray(apply_color_lut(arr, ds))
        bits = int(ds.RedPaletteColorLookupTableDescriptor[2])
    else:
        rgb = arr
        bits = int(ds.get("BitsStored") or ds.get("BitsAllocated") or 8)
    if bits <= 8:
        return rgb.astype(np.uint8)
    return np.clip(np.floor(rgb.astype(np.float64) * (255.0 / (2**bits - 1)) + 0.5), 0, 255).astype(np.uint8)


# -- decoding -------------------------------------------------------------------------------
def frame_count(ds: Any) -> int:
    try:
        return max(1, int(ds.get("NumberOfFrames", 1) or 1))
    except (TypeError, ValueError):
        return 1


def decode(ds: Any, index: int) -> tuple[np.ndarray, str]:
    """Frame ``index`` (from 0) decoded, with the photometric interpretation it is now in."""
    from pydicom.pixels import get_decoder

    ts = str(ds.file_meta.get("TransferSyntaxUID", "1.2.840.10008.1.2.1"))
    try:
        decoder = get_decoder(ts)
    except NotImplementedError:
        decoder = None
    if decoder is None or not decoder.is_available:
        raise RenderError(422, f"pixel data in transfer syntax {ts} cannot be decoded: no decoder is installed")
    try:
        arr, meta = decoder.as_array(ds, index=index)
    except Exception as exc:
        raise RenderError(422, f"frame {index + 1} could not be decoded from transfer syntax {ts}: {exc}") from None
    photometric = str(meta.get("photometric_interpretation") or ds.get("PhotometricInterpretation", "")).strip()
    return arr, photometric


def display(ds: Any, index: int, window: Window | None = None) -> np.ndarray:
    """Frame ``index`` as 8-bit pixels ready to show: (rows, columns) or (rows, columns, 3)."""
    arr, photometric = decode(ds, index)
    if photometric in GRAYSCALE and arr.ndim == 2:
        return grayscale_display(ds, arr, index, window)
    if photometric in ("RGB", "PALETTE COLOR") or photometric.startswith("YBR"):
        return colour_display(ds, arr, photometric)
    raise RenderError(422, f"photometric interpretation {photometric!r} cannot be rendered")


# -- viewport and encoding ------------------------------------------------------------------
def fit(pixels: np.ndarray, viewport: Viewport | None) -> Any:
    """The pixels as a Pillow image, cropped to the viewport's region and scaled to fit it."""
    import numpy as np
    from PIL import Image

    if viewport is not None and viewport.region is not None:
        sx, sy, sw, sh = viewport.region
        rows, cols = pixels.shape[:2]
        if sx >= cols or sy >= rows:
            raise RenderError(400, f"viewport region starts at ({sx},{sy}), outside the {cols}x{rows} image")
        pixels = pixels[sy : sy + abs(sh), sx : sx + abs(sw)]
        if sw < 0:
            pixels = pixels[:, ::-1]
        if sh < 0:
            pixels = pixels[::-1]
    image = Image.fromarray(np.ascontiguousarray(pixels), mode=None)
    if viewport is not None:
        scale = min(viewport.width / image.width, viewport.height / image.height)
        size = (max(1, round(image.width * scale)), max(1, round(image.height * scale)))
        if size != image.size:
            image = image.resize(size, Image.Resampling.BILINEAR)
    return image


def encode(image: Any, media: str, quality: int = DEFAULT_QUALITY) -> bytes:
    """A Pillow image as JPEG (baseline, ``quality``) or PNG (lossless) bytes."""
    buf = io.BytesIO()
    if media == PNG:
        image.save(buf, format="PNG")
    elif media == JPEG:
        image.save(buf, format="JPEG", quality=quality)
    else:
        raise RenderError(406, f"{media} is not produced (image/jpeg or image/png)")
    return buf.getvalue()


def render_frame(ds: Any, index: int, options: RenderOptions) -> bytes:
    """Frame ``index`` (from 0) of ``ds`` rendered as ``options`` say."""
    count = frame_count(ds)
    if not 0 <= index < count:
        raise RenderError(404, f"frame {index + 1} does not exist: the instance has {count} frame(s)")
    return encode(fit(display(ds, index, options.window), options.viewport), options.media, options.quality)


def has_pixels(ds: Any) -> bool:
    return any(k in ds for k in ("PixelData", "FloatPixelData", "DoubleFloatPixelData"))


__all__ = [
    "RenderError",
    "RenderOptions",
    "Window",
    "Viewport",
    "parse_quality",
    "parse_viewport",
    "parse_window",
    "apply_window",
    "stored_window",
    "modality_values",
    "grayscale_display",
    "colour_display",
    "display",
    "fit",
    "encode",
    "render_frame",
    "frame_count",
    "has_pixels",
    "JPEG",
    "PNG",
    "IMAGE_MEDIA",
]
