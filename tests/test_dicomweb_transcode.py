"""WADO-RS frames in the transfer syntax a client asks for (PS3.18 8.7.3.5): as stored
(``transfer-syntax=*``, OHIF's request), decoded to Explicit VR Little Endian, re-encoded as
RLE Lossless or JPEG 2000 lossless, and 406 for what cannot be produced.

The server runs under uvicorn on a port it binds itself; requests go out with httpx (to see
each part's headers) and dicomweb-client. Expected bytes come from the files on disk, read
with pydicom, never from the server's own code.
"""

from __future__ import annotations

import io

import numpy as np
import pydicom
import pytest
from pydicom.encaps import encapsulate, generate_frames
from pydicom.pixels import get_decoder

import pacscore
from pacscore.adapters import web_transcode
from pacscore.adapters.dicomweb import create_app
from pacscore.adapters.web_core import DicomWebService, WebRequest

from .render_corpus import store_all
from .web_helpers import parts_of, serving

dicomweb_client = pytest.importorskip("dicomweb_client")
pytest.importorskip("pylibjpeg")
from dicomweb_client.api import DICOMwebClient  # noqa: E402

EXPLICIT_LE = "1.2.840.10008.1.2.1"
RLE = "1.2.840.10008.1.2.5"
J2K_LOSSLESS = "1.2.840.10008.1.2.4.90"
OHIF = "multipart/related; type=application/octet-stream; transfer-syntax=*"

#: name -> what it is; every syntax OHIF meets in the demo archive, single- and multi-frame
FILES = {
    "CT_small.dcm": "native, explicit VR",
    "rtdose.dcm": "native, implicit VR, 15 frames of 32 bits",
    "MR_small_bigendian.dcm": "native, big endian",
    "MR_small_jp2klossless.dcm": "JPEG 2000 lossless",
    "JPEG2000.dcm": "JPEG 2000",
    "SC_rgb_jpeg_gdcm.dcm": "JPEG lossless, RGB",
    "SC_rgb_jpeg_dcmtk.dcm": "JPEG baseline, YBR_FULL",
    "examples_ybr_color.dcm": "JPEG baseline, 30 frames, YBR_FULL_422",
    "MR_small_RLE.dcm": "RLE, 16 bits",
    "SC_rgb_rle_2frame.dcm": "RLE, RGB, 2 frames",
    "MR_small_jpeg_ls_lossless.dcm": "JPEG-LS lossless",
}


@pytest.fixture(scope="module")
def site(tmp_path_factory):
    arc = pacscore.open(tmp_path_factory.mktemp("transcode-archive"))
    stored = store_all(arc, list(FILES))
    with serving(create_app(arc)) as port:
        yield f"http://127.0.0.1:{port}/dicomweb", stored, arc
    arc.close()


@pytest.fixture(scope="module")
def http():
    import httpx

    with httpx.Client(timeout=60) as client:
        yield client


def frame_count(ds) -> int:
    return int(ds.get("NumberOfFrames", 1) or 1)


def stored_frames(ds) -> list[bytes]:
    """The frames as the file holds them: fragments, or native slices in Little Endian."""
    ts = ds.file_meta.TransferSyntaxUID
    if ts.is_compressed:
        return list(generate_frames(ds.PixelData, number_of_frames=frame_count(ds)))
    arr = ds.pixel_array.reshape(frame_count(ds), -1)
    return [row.astype(row.dtype.newbyteorder("<")).tobytes() for row in arr]


def decoded(ds, index: int) -> np.ndarray:
    """Frame ``index`` of the original, decoded in its stored colour space."""
    arr, _ = get_decoder(ds.file_meta.TransferSyntaxUID).as_array(ds, index=index, raw=True)
    return arr


def frames_url(base: str, item, numbers) -> str:
    return f"{item.path(base)}/frames/{','.join(str(n) for n in numbers)}"


# -- as stored ------------------------------------------------------------------------------
@pytest.mark.parametrize("name", list(FILES))
def test_any_syntax_as_octet_stream_sends_the_stored_frames_labelled_with_their_syntax(site, http, name):
    base, stored, _ = site
    item = stored[name]
    n = frame_count(item.ds)
    numbers = [n, 1] if n > 1 else [1]
    r = http.get(frames_url(base, item, numbers), headers={"Accept": OHIF})
    assert r.status_code == 200, r.text
    parts = parts_of(r)
    expected = stored_frames(item.ds)
    label = item.syntax if item.ds.file_meta.TransferSyntaxUID.is_compressed else EXPLICIT_LE
    assert [h["content-type"] for h, _ in parts] == [f"application/octet-stream; transfer-syntax={label}"] * len(
        numbers
    )
    assert [data for _, data in parts] == [expected[k - 1] for k in numbers]


def test_dicomweb_client_gets_the_stored_fragments_with_any_syntax(site):
    base, stored, _ = site
    client = DICOMwebClient(url=base)
    item = stored["examples_ybr_color.dcm"]
    got = client.retrieve_instance_frames(
        item.study, item.series, item.instance, frame_numbers=[3, 30], media_types=(("image/jpeg", "*"),)
    )
    expected = list(generate_frames(item.ds.PixelData, number_of_frames=30))
    assert got == [expected[2], expected[29]]


# -- decoded to Explicit VR Little Endian ---------------------------------------------------
@pytest.mark.parametrize(
    "name",
    [
        "MR_small_jp2klossless.dcm",
        "JPEG2000.dcm",
        "SC_rgb_jpeg_gdcm.dcm",
        "SC_rgb_jpeg_dcmtk.dcm",
        "examples_ybr_color.dcm",
        "MR_small_RLE.dcm",
        "SC_rgb_rle_2frame.dcm",
        "MR_small_jpeg_ls_lossless.dcm",
    ],
)
def test_explicit_little_endian_frames_are_the_decoded_pixels(site, name):
    base, stored, _ = site
    item = stored[name]
    n = frame_count(item.ds)
    numbers = sorted({1, n})
    client = DICOMwebClient(url=base)
    got = client.retrieve_instance_frames(
        item.study,
        item.series,
        item.instance,
        frame_numbers=numbers,
        media_types=(("application/octet-stream", EXPLICIT_LE),),
    )
    for number, data in zip(numbers, got, strict=True):
        want = decoded(item.ds, number - 1)
        assert np.array_equal(np.frombuffer(data, dtype=want.dtype.newbyteorder("<")).reshape(want.shape), want)


def test_default_octet_stream_of_a_compressed_frame_is_explicit_little_endian(site, http):
    base, stored, _ = site
    item = stored["MR_small_RLE.dcm"]
    r = http.get(frames_url(base, item, [1]), headers={"Accept": 'multipart/related; type="application/octet-stream"'})
    ((headers, data),) = parts_of(r)
    assert headers["content-type"] == f"application/octet-stream; transfer-syntax={EXPLICIT_LE}"
    want = decoded(item.ds, 0)
    assert data == want.astype(want.dtype.newbyteorder("<")).tobytes()


# -- re-encoded -----------------------------------------------------------------------------
def decode_encoded(original, frame: bytes, syntax: str, photometric: str) -> np.ndarray:
    """A frame the server encoded, decoded by pydicom as a one-frame instance."""
    ds = pydicom.dcmread(io.BytesIO(_part10(original)))
    ds.file_meta.TransferSyntaxUID = syntax
    ds.PixelData = encapsulate([frame])
    ds["PixelData"].VR = "OB"
    ds.NumberOfFrames = 1
    ds.PhotometricInterpretation = photometric
    ds.PlanarConfiguration = 0
    arr, _ = get_decoder(syntax).as_array(ds, raw=True)
    return arr


def _part10(ds) -> bytes:
    buf = io.BytesIO()
    ds.save_as(buf, enforce_file_format=False)
    return buf.getvalue()


@pytest.mark.parametrize(
    "name, syntax, media",
    [
        ("CT_small.dcm", RLE, "image/dicom-rle"),
        ("CT_small.dcm", J2K_LOSSLESS, "image/jp2"),
        ("MR_small_bigendian.dcm", RLE, "image/dicom-rle"),
        ("MR_small_jp2klossless.dcm", RLE, "image/dicom-rle"),
        ("SC_rgb_rle_2frame.dcm", J2K_LOSSLESS, "image/jp2"),
        ("SC_rgb_jpeg_gdcm.dcm", RLE, "image/dicom-rle"),
    ],
)
def test_frames_reencoded_losslessly_decode_to_the_original_pixels(site, http, name, syntax, media):
    base, stored, _ = site
    item = stored[name]
    n = frame_count(item.ds)
    numbers = sorted({1, n})
    accept = f'multipart/related; type="{media}"; transfer-syntax={syntax}'
    r = http.get(frames_url(base, item, numbers), headers={"Accept": accept})
    assert r.status_code == 200, r.text
    parts = parts_of(r)
    assert [h["content-type"] for h, _ in parts] == [f"{media}; transfer-syntax={syntax}"] * len(numbers)
    photometric = str(item.ds.PhotometricInterpretation)
    for number, (_, data) in zip(numbers, parts, strict=True):
        want = decoded(item.ds, number - 1)
        assert np.array_equal(decode_encoded(item.ds, data, syntax, photometric), want)


def test_a_media_type_without_transfer_syntax_means_its_default(site, http):
    base, stored, _ = site
    item = stored["CT_small.dcm"]
    r = http.get(frames_url(base, item, [1]), headers={"Accept": 'multipart/related; type="image/dicom-rle"'})
    ((headers, _),) = parts_of(r)
    assert headers["content-type"] == f"image/dicom-rle; transfer-syntax={RLE}"


def test_accept_order_and_quality_choose_between_decoded_and_stored_frames(site, http):
    base, stored, _ = site
    item = stored["MR_small_RLE.dcm"]
    accept = "multipart/related; type=application/octet-stream, multipart/related; type=image/dicom-rle"
    r = http.get(frames_url(base, item, [1]), headers={"Accept": accept})
    ((headers, data),) = parts_of(r)
    # the first range is preferred (same q, earlier): decoded; with q the RLE form is chosen
    assert headers["content-type"].startswith("application/octet-stream")
    r = http.get(frames_url(base, item, [1]), headers={"Accept": accept.replace("octet-stream", "octet-stream;q=0.5")})
    ((headers, data),) = parts_of(r)
    assert headers["content-type"] == f"image/dicom-rle; transfer-syntax={RLE}"
    assert data == stored_frames(item.ds)[0]


# -- what cannot be produced ----------------------------------------------------------------
@pytest.mark.parametrize(
    "name, accept, named",
    [
        ("CT_small.dcm", "multipart/related; type=image/jpeg; transfer-syntax=1.2.840.10008.1.2.4.50", "4.50"),
        ("CT_small.dcm", "multipart/related; type=image/jpeg", "1.2.840.10008.1.2.4.70"),
        ("MR_small_RLE.dcm", "multipart/related; type=image/jls", "1.2.840.10008.1.2.4.80"),
        ("MR_small_RLE.dcm", "multipart/related; type=image/jp2; transfer-syntax=1.2.840.10008.1.2.5", "image/jp2"),
        ("MR_small_RLE.dcm", "text/html", "text/html"),
        # pydicom's RLE encoder takes at most 16 bits a sample: the 32-bit dose is refused
        ("rtdose.dcm", "multipart/related; type=image/dicom-rle", "1.2.840.10008.1.2.5"),
    ],
)
def test_an_unproducible_syntax_is_406_naming_it(site, http, name, accept, named):
    base, stored, _ = site
    r = http.get(frames_url(base, stored[name], [1]), headers={"Accept": accept})
    assert r.status_code == 406
    assert named in r.text and stored[name].instance in r.text


def test_without_a_decoder_a_compressed_frame_is_only_sent_as_stored(site, monkeypatch):
    _base, stored, arc = site
    item = stored["MR_small_jp2klossless.dcm"]
    monkeypatch.setattr(web_transcode, "_decoder", lambda ts: None)
    service = DicomWebService(arc)
    path = f"/studies/{item.study}/series/{item.series}/instances/{item.instance}/frames/1"
    refused = service.handle(
        WebRequest("GET", path, headers={"accept": "multipart/related; type=application/octet-stream"})
    )
    assert refused.status == 406 and b"no decoder" in refused.body and item.syntax.encode() in refused.body
    allowed = service.handle(WebRequest("GET", path, headers={"accept": OHIF}))
    assert allowed.status == 200


def test_frame_numbers_are_checked(site, http):
    base, stored, _ = site
    item = stored["SC_rgb_rle_2frame.dcm"]
    assert http.get(frames_url(base, item, [3]), headers={"Accept": OHIF}).status_code == 404
    assert http.get(f"{item.path(base)}/frames/0", headers={"Accept": OHIF}).status_code == 400


def test_a_corrupt_frame_is_422_and_the_stored_bytes_stay(tmp_path):
    """A frame that cannot be decoded: the transcode says so; the stored form still goes out."""
    arc = pacscore.open(tmp_path / "a")
    item = store_all(arc, ["MR_small_jp2klossless.dcm"])["MR_small_jp2klossless.dcm"]
    ds = item.ds
    ds.SOPInstanceUID = ds.file_meta.MediaStorageSOPInstanceUID = item.instance + ".9"
    ds.PixelData = encapsulate([b"\xff\x4f\xff\x51" + b"\x00" * 64])
    arc.store(ds)
    service = DicomWebService(arc)
    path = f"/studies/{item.study}/series/{item.series}/instances/{item.instance}.9/frames/1"
    bad = service.handle(
        WebRequest("GET", path, headers={"accept": "multipart/related; type=application/octet-stream"})
    )
    assert bad.status == 422 and b"could not be decoded" in bad.body
    good = service.handle(WebRequest("GET", path, headers={"accept": OHIF}))
    assert good.status == 200
    arc.close()
