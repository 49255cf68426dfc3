"""Properties of the pixel work behind the rendered and frame resources, on generated data:

- a VOI window (PS3.3 C.11.2.1.2/3) maps any value into 0..255, never decreases as the value
  grows, and is black at and below its lower edge and white above its upper edge;
- a native frame encoded as RLE Lossless or JPEG 2000 lossless by ``web_transcode`` decodes
  (with pydicom's own decoders) to exactly the pixels it came from, for any size, 1 or 3
  samples, 8 or 16 bits, signed or not;
- a frame decoded to Explicit VR Little Endian is the native bytes of the stored frame.
"""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.encaps import encapsulate
from pydicom.pixels import get_decoder
from pydicom.uid import ExplicitVRLittleEndian

from pacscore.adapters import render_image, web_transcode
from pacscore.adapters.web_http import HttpError

pytest.importorskip("pylibjpeg")
#: random pixels do not compress: pydicom notes that an RLE frame is as long as the raw one
pytestmark = pytest.mark.filterwarnings("ignore:The number of bytes of compressed pixel data matches")

RLE = "1.2.840.10008.1.2.5"
J2K = "1.2.840.10008.1.2.4.90"

windows = st.builds(
    render_image.Window,
    center=st.floats(-5000, 5000, allow_nan=False),
    width=st.floats(1, 10000, allow_nan=False),
    function=st.sampled_from(["LINEAR", "LINEAR_EXACT", "SIGMOID"]),
)
values = hnp.arrays(np.float64, st.integers(1, 64), elements=st.floats(-10000, 10000, allow_nan=False))


@given(values, windows)
def test_a_window_maps_into_the_display_range_and_never_decreases(x, window):
    y = render_image.apply_window(x, window)
    assert np.all((y >= 0) & (y <= 255))
    order = np.argsort(x, kind="stable")
    assert np.all(np.diff(y[order]) >= -1e-9)


@given(values, windows.filter(lambda w: w.function != "SIGMOID"))
def test_a_linear_window_is_black_below_and_white_above_its_edges(x, window):
    c, w = window.center, window.width
    low, high = (
        (c - w / 2, c + w / 2) if window.function == "LINEAR_EXACT" else (c - 0.5 - (w - 1) / 2, c - 0.5 + (w - 1) / 2)
    )
    y = render_image.apply_window(x, window)
    assert np.all(y[x <= low] == 0) and np.all(y[x > high] == 255)


@st.composite
def native_frames(draw, min_size: int = 1, max_size: int = 12):
    """A one-frame native dataset and its pixel array."""
    samples = draw(st.sampled_from([1, 3]))
    bits = draw(st.sampled_from([8, 16]))
    signed = draw(st.booleans()) and samples == 1
    rows, cols = draw(st.integers(min_size, max_size)), draw(st.integers(min_size, max_size))
    dtype = np.dtype(f"{'i' if signed else 'u'}{bits // 8}").newbyteorder("<")
    shape = (rows, cols, samples) if samples == 3 else (rows, cols)
    arr = draw(hnp.arrays(dtype, shape))
    return native_dataset(arr), arr


def native_dataset(arr: np.ndarray) -> Dataset:
    """A one-frame native dataset holding ``arr`` (rows, columns[, 3]), 8 or 16 bits."""
    samples = arr.shape[2] if arr.ndim == 3 else 1
    bits = arr.dtype.itemsize * 8
    ds = Dataset()
    ds.file_meta = FileMetaDataset()
    ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds.Rows, ds.Columns, ds.SamplesPerPixel = arr.shape[0], arr.shape[1], samples
    ds.BitsAllocated = ds.BitsStored = bits
    ds.HighBit, ds.PixelRepresentation = bits - 1, int(arr.dtype.kind == "i")
    ds.PhotometricInterpretation = "RGB" if samples == 3 else "MONOCHROME2"
    if samples == 3:
        ds.PlanarConfiguration = 0
    ds.PixelData = arr.tobytes()
    return ds


def decode_one(ds: Dataset, frame: bytes, syntax: str) -> np.ndarray:
    out = Dataset()
    out.file_meta = FileMetaDataset()
    out.file_meta.TransferSyntaxUID = syntax
    for keyword in ("Rows", "Columns", "SamplesPerPixel", "BitsAllocated", "BitsStored", "HighBit"):
        setattr(out, keyword, ds.get(keyword))
    out.PixelRepresentation, out.PhotometricInterpretation = ds.PixelRepresentation, ds.PhotometricInterpretation
    if ds.SamplesPerPixel == 3:
        out.PlanarConfiguration = 0
    out.PixelData = encapsulate([frame])
    out["PixelData"].VR = "OB"
    arr, _ = get_decoder(syntax).as_array(out, raw=True)
    return arr


@pytest.mark.parametrize("syntax", [RLE, J2K])
@given(data=st.data())
def test_reencoded_frames_decode_to_the_original_pixels(syntax, data):
    # openjpeg needs 32 x 32 pixels at least (test_small_frames_are_not_encoded_as_jpeg_2000)
    ds, arr = data.draw(native_frames() if syntax == RLE else native_frames(32, 40))
    media = web_transcode.media_of(syntax)
    form = web_transcode.choose(
        f'multipart/related; type="{media}"; transfer-syntax={syntax}', ExplicitVRLittleEndian, "x"
    )
    assert form == web_transcode.FrameForm(media, syntax, False)
    (frame,) = web_transcode.produce(ds, ds.PixelData, ExplicitVRLittleEndian, form, [1])
    assert np.array_equal(decode_one(ds, frame, syntax), arr)


@given(case=native_frames())
def test_rle_frames_decode_back_to_the_native_bytes(case):
    """Stored as RLE, asked for as Explicit VR Little Endian: the native frame, byte for byte."""
    ds, arr = case
    rle = web_transcode.produce(
        ds, ds.PixelData, ExplicitVRLittleEndian, web_transcode.FrameForm("image/dicom-rle", RLE, False), [1]
    )
    stored = Dataset()
    stored.update(ds)
    stored.file_meta = FileMetaDataset()
    stored.file_meta.TransferSyntaxUID = RLE
    stored.PixelData = encapsulate(rle)
    stored["PixelData"].VR = "OB"
    form = web_transcode.choose("multipart/related; type=application/octet-stream", RLE, "x")
    assert form == web_transcode.FrameForm("application/octet-stream", ExplicitVRLittleEndian, False)
    (native,) = web_transcode.produce(stored, stored.PixelData, RLE, form, [1])
    assert native == arr.tobytes()


def test_small_frames_are_not_encoded_as_jpeg_2000():
    ds = native_dataset(np.zeros((8, 8), dtype=np.uint8))
    form = web_transcode.FrameForm("image/jp2", J2K, False)
    with pytest.raises(HttpError) as caught:
        web_transcode.produce(ds, ds.PixelData, ExplicitVRLittleEndian, form, [1])
    assert caught.value.status == 406 and "at least 32 x 32" in caught.value.reason
