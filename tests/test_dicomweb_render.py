"""Rendered and thumbnail resources (PS3.18 10.4.1.1.3/4) at every level: JPEG and PNG, the
grayscale pipeline checked numerically against values computed by hand from PS3.3 C.11,
MONOCHROME1, colour, palette, multi-frame, viewports, encapsulated PDF, SR, and the errors.

Numeric checks use PNG (lossless); JPEG answers are checked to be JPEGs of the right size whose
pixels stay close to the PNG's. The server runs under uvicorn on a port it binds itself.
"""

from __future__ import annotations

import io
import math

import httpx
import numpy as np
import pydicom
import pytest
from PIL import Image
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.encaps import encapsulate, generate_frames
from pydicom.pixels import apply_color_lut
from pydicom.uid import ExplicitVRLittleEndian, generate_uid

import pacscore
from pacscore.adapters import render_docs, render_image
from pacscore.adapters.dicomweb import create_app

from .factories import make_instance
from .render_corpus import ROOT, store_all
from .web_helpers import parts_of, serving

dicomweb_client = pytest.importorskip("dicomweb_client")
from dicomweb_client.api import DICOMwebClient  # noqa: E402

PNG = {"Accept": "image/png"}
FILES = [
    "CT_small.dcm",
    "rtdose.dcm",
    "examples_rgb_color.dcm",
    "examples_palette.dcm",
    "examples_ybr_color.dcm",
    "MR_small_jp2klossless.dcm",
    "test-SR.dcm",
    "waveform_ecg.dcm",
]
SYNTH = f"{ROOT}.900"  # the synthetic studies below live under this root
#: stored values of the 1 x 8 test image; Rescale Slope 2, Intercept -100 make them
#: -100, 0, 100, 200, 300, 400, 500, 600
STORED = [0, 50, 100, 150, 200, 250, 300, 350]
PDF_BYTES = b"%PDF-1.4\n1 0 obj<<>>endobj\ntrailer<<>>\n%%EOF\n!"  # odd length: DICOM pads it
SR_HOSTILE = "<script>alert('x')</script> & more"


def gray_row(sop: str, study: str, series: str, photometric: str = "MONOCHROME2", **kw) -> Dataset:
    """A 1 x 8 16-bit image holding STORED, with a rescale and a stored window."""
    ds = make_instance(sop=sop, study=study, series=series, **kw)
    ds.Rows, ds.Columns, ds.SamplesPerPixel = 1, 8, 1
    ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 16, 16, 15, 0
    ds.PhotometricInterpretation = photometric
    ds.RescaleSlope, ds.RescaleIntercept = 2, -100
    ds.WindowCenter, ds.WindowWidth = 250, 501
    ds.PixelData = np.array(STORED, dtype="<u2").tobytes()
    return ds


def constant(sop: str, study: str, series: str, value: int, number: int, series_number: int) -> Dataset:
    """A 2 x 2 image of one value, windowed by C=100, W=201: 50 -> 64, 100 -> 128, 150 -> 192."""
    ds = make_instance(
        sop=sop, study=study, series=series, instance_number=str(number), SeriesNumber=str(series_number)
    )
    ds.Rows, ds.Columns, ds.SamplesPerPixel = 2, 2, 1
    ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 16, 16, 15, 0
    ds.PhotometricInterpretation = "MONOCHROME2"
    ds.WindowCenter, ds.WindowWidth = 100, 201
    ds.PixelData = np.full(4, value, dtype="<u2").tobytes()
    return ds


def pdf_instance(sop: str, study: str) -> Dataset:
    ds = make_instance(sop=sop, study=study, series=f"{study}.1", sop_class="1.2.840.10008.5.1.4.1.1.104.1")
    ds.Modality = "DOC"
    ds.MIMETypeOfEncapsulatedDocument = "application/pdf"
    ds.EncapsulatedDocument = PDF_BYTES + b"\x00"
    ds.EncapsulatedDocumentLength = len(PDF_BYTES)
    ds.file_meta.MediaStorageSOPClassUID = ds.SOPClassUID
    return ds


def hostile_sr(sop: str, study: str) -> Dataset:
    ds = make_instance(sop=sop, study=study, series=f"{study}.1", sop_class="1.2.840.10008.5.1.4.1.1.88.11")
    ds.Modality, ds.ValueType = "SR", "CONTAINER"
    title = Dataset()
    title.CodeValue, title.CodingSchemeDesignator, title.CodeMeaning = "1", "99T", "Report <b>"
    ds.ConceptNameCodeSequence = [title]
    item = Dataset()
    item.RelationshipType, item.ValueType, item.TextValue = "CONTAINS", "TEXT", SR_HOSTILE
    name = Dataset()
    name.CodeValue, name.CodingSchemeDesignator, name.CodeMeaning = "2", "99T", "Finding"
    item.ConceptNameCodeSequence = [name]
    ds.ContentSequence = [item]
    ds.file_meta.MediaStorageSOPClassUID = ds.SOPClassUID
    return ds


def undecodable(sop: str, study: str) -> Dataset:
    """An image whose pixel data claims MPEG-2 video: no installed decoder reads it."""
    ds = constant(sop, study, f"{study}.1", 100, 1, 1)
    ds.file_meta.TransferSyntaxUID = "1.2.840.10008.1.2.4.100"
    ds.PixelData = encapsulate([b"\x00\x00\x01\xb3" + b"\x00" * 60])
    ds["PixelData"].VR = "OB"
    return ds


@pytest.fixture(scope="module")
def site(tmp_path_factory):
    arc = pacscore.open(tmp_path_factory.mktemp("render-archive"))
    stored = store_all(arc, FILES)
    s = SYNTH
    arc.store(gray_row(f"{s}.1.1.1", f"{s}.1", f"{s}.1.1"))
    arc.store(gray_row(f"{s}.2.1.1", f"{s}.2", f"{s}.2.1", photometric="MONOCHROME1"))
    no_window = gray_row(f"{s}.3.1.1", f"{s}.3", f"{s}.3.1")
    del no_window.WindowCenter, no_window.WindowWidth
    arc.store(no_window)
    # study .4: series .4.1 (Series Number 2, one instance) and .4.2 (Series Number 1, three)
    arc.store(constant(f"{s}.4.1.1", f"{s}.4", f"{s}.4.1", 150, 1, 2))
    for number, value in ((3, 150), (1, 50), (2, 100)):
        arc.store(constant(f"{s}.4.2.{number}", f"{s}.4", f"{s}.4.2", value, number, 1))
    arc.store(pdf_instance(f"{s}.5.1.1", f"{s}.5"))
    arc.store(hostile_sr(f"{s}.6.1.1", f"{s}.6"))
    arc.store(undecodable(f"{s}.7.1.1", f"{s}.7"))
    truncated = constant(f"{s}.8.1.1", f"{s}.8", f"{s}.8.1", 100, 1, 1)
    truncated.PixelData = bytes(3)  # 2 x 2 x 16 bits need 8
    arc.store(truncated)
    hsv = constant(f"{s}.9.1.1", f"{s}.9", f"{s}.9.1", 100, 1, 1)
    hsv.PhotometricInterpretation = "HSV"  # retired (PS3.3 C.7.6.3.1.2)
    arc.store(hsv)
    # study .10: one series whose middle instance (number 2) is a report, between two images
    arc.store(constant(f"{s}.10.1.1", f"{s}.10", f"{s}.10.1", 50, 1, 1))
    report = hostile_sr(f"{s}.10.1.2", f"{s}.10")
    report.SeriesInstanceUID, report.InstanceNumber = f"{s}.10.1", "2"
    arc.store(report)
    arc.store(constant(f"{s}.10.1.3", f"{s}.10", f"{s}.10.1", 150, 3, 1))
    # study .11: an RLE instance of two frames whose second frame is damaged
    damaged = pydicom.dcmread(render_corpus_file("SC_rgb_rle_2frame.dcm"))
    first = next(iter(generate_frames(damaged.PixelData, number_of_frames=2)))
    damaged.PixelData = encapsulate([first, b"not an RLE frame"])
    damaged.StudyInstanceUID, damaged.SeriesInstanceUID = f"{s}.11", f"{s}.11.1"
    damaged.SOPInstanceUID = damaged.file_meta.MediaStorageSOPInstanceUID = f"{s}.11.1.1"
    arc.store(damaged)
    with serving(create_app(arc)) as port:
        yield f"http://127.0.0.1:{port}/dicomweb", stored, arc
    arc.close()


@pytest.fixture(scope="module")
def http():
    with httpx.Client(timeout=60) as client:
        yield client


def synth(n: int) -> str:
    return f"/studies/{SYNTH}.{n}/series/{SYNTH}.{n}.1/instances/{SYNTH}.{n}.1.1"


def pixels(data: bytes) -> np.ndarray:
    return np.asarray(Image.open(io.BytesIO(data)))


def get_png(http, url: str, **params) -> np.ndarray:
    r = http.get(url, headers=PNG, params=params)
    assert r.status_code == 200, r.text
    assert r.headers["content-type"] == "image/png"
    return pixels(r.content)


# -- the grayscale pipeline, by hand ---------------------------------------------------------
def test_stored_window_after_rescale_matches_the_hand_computed_values(site, http):
    base, _, _ = site
    # modality values -100..600; LINEAR window C=250, W=501 (PS3.3 C.11.2.1.2.1):
    # x <= -0.5 -> 0; x > 499.5 -> 255; else ((x - 249.5) / 500 + 0.5) * 255, rounded
    # 0 -> 0.255 -> 0; 100 -> 51.255 -> 51; 200 -> 102.255 -> 102; 300 -> 153.255 -> 153; 400 -> 204.255 -> 204
    expected = [0, 0, 51, 102, 153, 204, 255, 255]
    assert get_png(http, base + synth(1) + "/rendered").tolist() == [expected]


def test_monochrome1_is_inverted_after_the_window(site, http):
    base, _, _ = site
    assert get_png(http, base + synth(2) + "/rendered").tolist() == [[255, 255, 204, 153, 102, 51, 0, 0]]


def test_window_parameter_linear_exact_overrides_the_stored_one(site, http):
    base, _, _ = site
    # LINEAR_EXACT C=100, W=201 (C.11.2.1.3.2): x <= -0.5 -> 0; x > 200.5 -> 255;
    # else ((x - 100) / 201 + 0.5) * 255: 0 -> 0.634 -> 1; 100 -> 127.5 -> 128; 200 -> 254.37 -> 254
    got = get_png(http, base + synth(1) + "/rendered", window="100,201,linear-exact")
    assert got.tolist() == [[0, 1, 128, 254, 255, 255, 255, 255]]


def test_window_parameter_sigmoid(site, http):
    base, _, _ = site
    got = get_png(http, base + synth(1) + "/rendered", window="200,400,SIGMOID")
    # C.11.2.1.3.1: 255 / (1 + exp(-4 (x - 200) / 400))
    expected = [math.floor(255 / (1 + math.exp(-4 * (x - 200) / 400)) + 0.5) for x in range(-100, 700, 100)]
    assert got.tolist() == [expected]
    assert expected[3] == 128  # x = 200 is the midpoint


def test_without_a_window_the_frame_minimum_to_maximum_is_shown(site, http):
    base, _, _ = site
    # (x + 100) * 255 / 700: 36.43, 72.86, 109.29, 145.71, 182.14, 218.57
    got = get_png(http, base + synth(3) + "/rendered")
    assert got.tolist() == [[0, 36, 73, 109, 146, 182, 219, 255]]


def test_apply_window_linear_width_one_is_a_threshold():
    got = render_image.apply_window(np.array([9.0, 9.5, 10.0]), render_image.Window(10, 1))
    assert got.tolist() == [0.0, 0.0, 255.0]


# -- real files, every level ----------------------------------------------------------------
def test_jpeg_is_the_default_and_close_to_the_lossless_png(site, http):
    base, stored, _ = site
    url = stored["CT_small.dcm"].path(base) + "/rendered"
    jpeg = http.get(url)
    assert jpeg.status_code == 200 and jpeg.headers["content-type"] == "image/jpeg"
    image = Image.open(io.BytesIO(jpeg.content))
    assert image.format == "JPEG" and image.size == (128, 128) and image.mode == "L"
    png = get_png(http, url)
    assert np.abs(np.asarray(image, dtype=int) - png.astype(int)).mean() < 3


def test_quality_changes_the_jpeg(site, http):
    base, stored, _ = site
    url = stored["CT_small.dcm"].path(base) + "/rendered"
    low, high = (http.get(url, params={"quality": q}).content for q in (5, 100))
    assert len(low) < len(high)


def test_ct_without_a_stored_window_shows_its_rescaled_minimum_to_maximum(site, http):
    base, stored, _ = site
    item = stored["CT_small.dcm"]
    ds = item.ds
    assert "WindowCenter" not in ds and "RescaleSlope" in ds
    x = ds.pixel_array.astype(float) * float(ds.RescaleSlope) + float(ds.RescaleIntercept)
    want = np.floor((x - x.min()) * 255 / (x.max() - x.min()) + 0.5).astype(np.uint8)
    assert np.array_equal(get_png(http, item.path(base) + "/rendered"), want)
    # the same image with a window asked for: LINEAR C=40, W=400 (a soft-tissue window)
    c, w = 40.0, 400.0
    y = np.where(
        x <= c - 0.5 - (w - 1) / 2, 0, np.where(x > c - 0.5 + (w - 1) / 2, 255, ((x - (c - 0.5)) / (w - 1) + 0.5) * 255)
    )
    got = get_png(http, item.path(base) + "/rendered", window="40,400,linear")
    assert np.array_equal(got, np.floor(y + 0.5).astype(np.uint8))


def test_multiframe_instance_is_one_part_per_frame_and_frames_render_alone(site, http):
    base, stored, _ = site
    item = stored["rtdose.dcm"]
    r = http.get(item.path(base) + "/rendered", headers=PNG)
    parts = parts_of(r)
    assert len(parts) == 15 and {h["content-type"] for h, _ in parts} == {"image/png"}
    assert parts[4][0]["content-location"].endswith(f"{item.instance}/frames/5/rendered")
    frames = item.ds.pixel_array.astype(float)
    for number in (1, 5, 15):  # no window, no rescale: the frame's minimum to maximum
        f = frames[number - 1]
        want = np.floor((f - f.min()) * 255 / (f.max() - f.min()) + 0.5).astype(np.uint8)
        assert np.array_equal(pixels(parts[number - 1][1]), want)
        alone = get_png(http, f"{item.path(base)}/frames/{number}/rendered")
        assert np.array_equal(alone, want)
    two = parts_of(http.get(f"{item.path(base)}/frames/15,2/rendered", headers=PNG))
    assert [pixels(d).tolist() for _, d in two] == [pixels(parts[14][1]).tolist(), pixels(parts[1][1]).tolist()]


def test_colour_images_rgb_ybr_and_palette(site, http):
    base, stored, _ = site
    rgb = stored["examples_rgb_color.dcm"]
    assert np.array_equal(get_png(http, rgb.path(base) + "/rendered"), rgb.ds.pixel_array)
    ybr = stored["examples_ybr_color.dcm"]  # JPEG baseline YBR_FULL_422, 30 frames; pydicom gives RGB
    assert np.array_equal(get_png(http, ybr.path(base) + "/frames/7/rendered"), ybr.ds.pixel_array[6])
    palette = stored["examples_palette.dcm"]
    lut = apply_color_lut(palette.ds.pixel_array, palette.ds).astype(float)  # 16-bit entries
    want = np.floor(lut * 255 / 65535 + 0.5).astype(np.uint8)
    assert np.array_equal(get_png(http, palette.path(base) + "/rendered"), want)


def test_jpeg2000_instance_renders(site, http):
    base, stored, _ = site
    item = stored["MR_small_jp2klossless.dcm"]
    got = get_png(http, item.path(base) + "/rendered")
    assert got.shape == (64, 64) and got.min() < got.max()


def test_series_and_study_render_every_frame_of_their_images(site, http):
    base, _, _ = site
    study = f"{base}/studies/{SYNTH}.4"
    series = parts_of(http.get(f"{study}/series/{SYNTH}.4.2/rendered", headers=PNG))
    # instance order: Instance Number 1, 2, 3 -> values 50, 100, 150 -> 64, 128, 192
    assert [pixels(d)[0, 0] for _, d in series] == [64, 128, 192]
    whole = parts_of(http.get(f"{study}/rendered", headers=PNG))
    assert len(whole) == 4
    assert whole[0][0]["content-location"] == f"{study}/series/{SYNTH}.4.1/instances/{SYNTH}.4.1.1/frames/1/rendered"


def test_viewport_scales_to_fit_and_crops_with_flips(site, http):
    base, stored, _ = site
    got = get_png(http, stored["CT_small.dcm"].path(base) + "/rendered", viewport="64,32")
    assert got.shape == (32, 32)
    # region: columns 2..5 of row 0, flipped horizontally (sw < 0), shown 4 x 1 (no scaling)
    got = get_png(http, base + synth(1) + "/rendered", viewport="4,1,2,0,-4,1")
    assert got.tolist() == [[204, 153, 102, 51]]


def test_dicomweb_client_rendered_calls(site):
    base, stored, _ = site
    client = DICOMwebClient(url=base)
    item = stored["CT_small.dcm"]
    png = client.retrieve_instance_rendered(item.study, item.series, item.instance, media_types=("image/png",))
    assert pixels(png).shape == (128, 128)
    frame = client.retrieve_instance_frames_rendered(
        item.study, item.series, item.instance, frame_numbers=[1], media_types=("image/jpeg",), params={"quality": 50}
    )
    assert Image.open(io.BytesIO(frame)).format == "JPEG"
    one = client.retrieve_series_rendered(SYNTH + ".1", SYNTH + ".1.1", media_types=("image/png",))
    assert b"\x89PNG" in one


# -- thumbnails -----------------------------------------------------------------------------
def test_thumbnails_pick_a_representative_instance_and_frame(site, http):
    base, stored, _ = site
    study = f"{base}/studies/{SYNTH}.4"
    # the study's first series by Series Number is .4.2; its middle instance (number 2) is 100 -> 128
    thumb = get_png(http, f"{study}/thumbnail")
    assert thumb.shape == (128, 128) and set(np.unique(thumb)) == {128}
    assert set(np.unique(get_png(http, f"{study}/series/{SYNTH}.4.1/thumbnail"))) == {192}
    assert set(np.unique(get_png(http, f"{study}/series/{SYNTH}.4.2/instances/{SYNTH}.4.2.1/thumbnail"))) == {64}
    small = get_png(http, f"{study}/thumbnail", viewport="16,16")
    assert small.shape == (16, 16)
    dose = stored["rtdose.dcm"]
    middle = get_png(http, dose.path(base) + "/thumbnail", viewport="10,10")
    assert np.array_equal(middle, get_png(http, dose.path(base) + "/frames/8/rendered"))  # 15 frames: the 8th
    frame = get_png(http, dose.path(base) + "/frames/3/thumbnail", viewport="10,10")
    assert np.array_equal(frame, get_png(http, dose.path(base) + "/frames/3/rendered"))
    jpeg = http.get(f"{study}/thumbnail")
    assert jpeg.headers["content-type"] == "image/jpeg"


def test_a_series_thumbnail_skips_a_report_in_the_middle(site, http):
    base, _, _ = site
    # instances 1 (50 -> 64), 2 (a report), 3 (150 -> 192): the images nearest the middle are
    # 1 and 3, equally near; the earlier one is shown
    thumb = get_png(http, f"{base}/studies/{SYNTH}.10/series/{SYNTH}.10.1/thumbnail")
    assert set(np.unique(thumb)) == {64}
    # the study's series renders its two images only
    parts = parts_of(http.get(f"{base}/studies/{SYNTH}.10/series/{SYNTH}.10.1/rendered", headers=PNG))
    assert [pixels(d)[0, 0] for _, d in parts] == [64, 192]


def test_a_study_without_images_has_no_thumbnail(site, http):
    base, _, _ = site
    r = http.get(f"{base}/studies/{SYNTH}.5/thumbnail")
    assert r.status_code == 422 and "no image" in r.text


# -- documents ------------------------------------------------------------------------------
def test_encapsulated_pdf_is_rendered_as_the_pdf(site, http):
    base, _, _ = site
    r = http.get(base + synth(5) + "/rendered")
    assert r.status_code == 200 and r.headers["content-type"] == "application/pdf"
    assert r.content == PDF_BYTES
    assert http.get(base + synth(5) + "/rendered", headers={"Accept": "image/jpeg"}).status_code == 406
    assert http.get(base + synth(5) + "/frames/1/rendered").status_code == 422


def test_sr_is_rendered_as_html_and_text(site, http):
    base, stored, _ = site
    item = stored["test-SR.dcm"]
    page = http.get(item.path(base) + "/rendered")
    assert page.status_code == 200 and page.headers["content-type"] == "text/html; charset=utf-8"
    assert "<h1>Diagnosis</h1>" in page.text and "A mass of" in page.text
    text = http.get(item.path(base) + "/rendered", params={"accept": "text/plain"})
    assert text.headers["content-type"] == "text/plain; charset=utf-8"
    lines = text.text.splitlines()
    assert lines[0] == "Diagnosis" and "Completion: COMPLETE" in lines
    assert "  Text Code: A mass of" in lines  # depth 1: two spaces


def test_sr_text_is_escaped_in_html(site, http):
    base, _, _ = site
    page = http.get(base + synth(6) + "/rendered").text
    assert "<script>" not in page and "&lt;script&gt;" in page and "Report &lt;b&gt;" in page
    assert SR_HOSTILE in http.get(base + synth(6) + "/rendered", headers={"Accept": "text/plain"}).text


def test_sr_lines_are_in_tree_order():
    ds = pydicom.dcmread(render_corpus_file("test-SR.dcm"))
    lines = render_docs.sr_lines(ds)
    assert lines[0] == (0, "Some UID", "1.2.3.4.5")
    assert (1, "Text Code", "A mass of") in lines


def render_corpus_file(name: str):
    from .render_corpus import TEST_FILES

    return TEST_FILES / name


# -- errors ---------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "params, named",
    [
        ({"quality": "0"}, "quality"),
        ({"quality": "high"}, "quality"),
        ({"window": "a,b"}, "window"),
        ({"window": "nan,10"}, "finite"),
        ({"window": "100,0.5,linear"}, "at least 1"),
        ({"window": "100,10,cubic"}, "linear-exact"),
        ({"viewport": "0,10"}, "viewport"),
        ({"viewport": "10,10,1,1"}, "viewport"),
        ({"viewport": "10,10,99,0,1,1"}, "outside"),
    ],
)
def test_bad_parameters_are_400_naming_them(site, http, params, named):
    base, _, _ = site
    r = http.get(base + synth(1) + "/rendered", params=params)
    assert r.status_code == 400 and named in r.text


def test_a_rendering_parameter_given_twice_is_400(site, http):
    base, _, _ = site
    r = http.get(base + synth(1) + "/rendered", params=[("quality", "5"), ("quality", "6")])
    assert r.status_code == 400 and "quality" in r.text and "more than once" in r.text


def test_unknown_resources_are_404(site, http):
    base, stored, _ = site
    item = stored["CT_small.dcm"]
    assert http.get(f"{base}/studies/{generate_uid()}/rendered").status_code == 404
    assert http.get(f"{base}/studies/{item.study}/series/{item.series}/instances/9.9.9/thumbnail").status_code == 404
    assert http.get(f"{base}/studies/{SYNTH}.9/series/{item.series}/rendered").status_code == 404
    assert http.get(item.path(base) + "/frames/2/rendered").status_code == 404
    assert http.get(item.path(base) + "/frames/0/rendered").status_code == 400


def test_unacceptable_media_types_are_406(site, http):
    base, stored, _ = site
    r = http.get(stored["CT_small.dcm"].path(base) + "/rendered", headers={"Accept": "image/gif"})
    assert r.status_code == 406 and "image/jpeg or image/png" in r.text
    r = http.get(stored["test-SR.dcm"].path(base) + "/rendered", headers={"Accept": "image/png"})
    assert r.status_code == 406 and "text/html" in r.text


def test_what_cannot_be_rendered_is_422(site, http):
    base, stored, _ = site
    ecg = http.get(stored["waveform_ecg.dcm"].path(base) + "/rendered")
    assert ecg.status_code == 422 and "no pixel data" in ecg.text
    mpeg = http.get(base + synth(7) + "/rendered")
    assert mpeg.status_code == 422 and "1.2.840.10008.1.2.4.100" in mpeg.text
    assert http.get(f"{base}/studies/{SYNTH}.7/thumbnail").status_code == 422


def test_damaged_or_unrenderable_pixel_data_is_422_naming_the_instance(site, http):
    base, _, _ = site
    for n, needle in ((8, "less than expected"), (9, "HSV")):
        for suffix in ("/rendered", "/thumbnail", "/frames/1/rendered"):
            r = http.get(base + synth(n) + suffix)
            assert r.status_code == 422 and needle in r.text and f"{SYNTH}.{n}.1.1" in r.text


def test_a_damaged_later_frame_is_left_out_of_a_started_answer(site, http):
    base, _, _ = site
    r = http.get(base + synth(11) + "/rendered", headers=PNG)
    parts = parts_of(r)  # the answer is well-formed and holds the frame that could be rendered
    assert r.status_code == 200 and len(parts) == 1
    assert parts[0][0]["content-location"].endswith("/frames/1/rendered")
    alone = http.get(base + synth(11) + "/frames/2/rendered")
    assert alone.status_code == 422 and "frame 2" in alone.text


def test_annotation_is_not_supported_and_says_so(site, http):
    base, _, _ = site
    r = http.get(base + synth(1) + "/rendered", params={"annotation": "patient"})
    assert r.status_code == 200 and "annotation" in r.headers["warning"]


def test_head_answers_like_get_without_a_body(site, http):
    base, stored, _ = site
    r = http.head(stored["CT_small.dcm"].path(base) + "/thumbnail")
    assert r.status_code == 200 and r.headers["content-type"] == "image/jpeg" and r.content == b""


def test_a_file_meta_without_transfer_syntax_still_renders():
    ds = Dataset()
    ds.file_meta = FileMetaDataset()
    ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds.Rows, ds.Columns, ds.SamplesPerPixel, ds.PhotometricInterpretation = 1, 2, 1, "MONOCHROME2"
    ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 8, 8, 7, 0
    ds.PixelData = bytes([10, 20])
    png = render_image.render_frame(ds, 0, render_image.RenderOptions(media="image/png"))
    assert pixels(png).tolist() == [[0, 255]]


# -- WADO-URI rendered ----------------------------------------------------------------------
def wado(http, base: str, n: int | None = None, item=None, **params):
    if item is not None:
        uids = {"studyUID": item.study, "seriesUID": item.series, "objectUID": item.instance}
    else:
        uids = {"studyUID": f"{SYNTH}.{n}", "seriesUID": f"{SYNTH}.{n}.1", "objectUID": f"{SYNTH}.{n}.1.1"}
    return http.get(f"{base}/wado", params={"requestType": "WADO", **uids, **params})


def test_wado_uri_renders_images_with_its_parameters(site, http):
    base, stored, _ = site
    # windowCenter=100, windowWidth=201 (LINEAR): ((x - 99.5) / 200 + 0.5) * 255 on -0.5 < x <= 199.5:
    # 0 -> 0.6375 -> 1; 100 -> 128.14 -> 128; 200 and above -> 255
    r = wado(http, base, 1, contentType="image/png", windowCenter="100", windowWidth="201")
    assert r.status_code == 200 and r.headers["content-type"] == "image/png"
    assert pixels(r.content).tolist() == [[0, 1, 128, 255, 255, 255, 255, 255]]
    # region: the middle half of the columns, with the stored window
    r = wado(http, base, 1, contentType="image/png", region="0.25,0,0.75,1")
    assert pixels(r.content).tolist() == [[51, 102, 153, 204]]
    ct = stored["CT_small.dcm"]
    r = wado(http, base, item=ct, columns="64")
    assert r.headers["content-type"] == "image/jpeg" and Image.open(io.BytesIO(r.content)).size == (64, 64)
    dose = stored["rtdose.dcm"]
    third = wado(http, base, item=dose, contentType="image/png", frameNumber="3")
    assert np.array_equal(pixels(third.content), get_png(http, dose.path(base) + "/frames/3/rendered"))
    assert wado(http, base, item=dose, frameNumber="16").status_code == 404


def test_wado_uri_renders_documents_and_reports(site, http):
    base, stored, _ = site
    pdf = wado(http, base, 5)
    assert pdf.headers["content-type"] == "application/pdf" and pdf.content == PDF_BYTES
    text = wado(http, base, item=stored["test-SR.dcm"], contentType="text/plain")
    assert text.headers["content-type"] == "text/plain; charset=utf-8" and "A mass of" in text.text
    page = wado(http, base, item=stored["test-SR.dcm"], contentType="image/jpeg,text/html")
    assert page.headers["content-type"] == "text/html; charset=utf-8"


@pytest.mark.parametrize(
    "params, status, named",
    [
        ({"windowCenter": "100"}, 400, "windowWidth"),
        ({"imageQuality": "0"}, 400, "quality"),
        ({"presentationUID": "1.2.3"}, 400, "presentation"),
        ({"transferSyntax": "1.2.840.10008.1.2.1", "contentType": "image/jpeg"}, 400, "transferSyntax"),
        ({"region": "0.5,0,0.25,1"}, 400, "region"),
        ({"rows": "0"}, 400, "rows"),
        ({"frameNumber": "0"}, 400, "frameNumber"),
        ({"contentType": "image/gif"}, 406, "image/jpeg or image/png"),
        ({"contentType": "text/html"}, 406, "image/jpeg or image/png"),
    ],
)
def test_wado_uri_rendering_errors(site, http, params, status, named):
    base, _, _ = site
    r = wado(http, base, 1, **params)
    assert r.status_code == status and named in r.text


# -- the pipeline's other sources, without HTTP ----------------------------------------------
def pipeline_image(values: list[int], frames: int = 1) -> Dataset:
    ds = Dataset()
    ds.file_meta = FileMetaDataset()
    ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds.Rows, ds.Columns, ds.SamplesPerPixel, ds.PhotometricInterpretation = 1, len(values) // frames, 1, "MONOCHROME2"
    ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 16, 16, 15, 0
    if frames > 1:
        ds.NumberOfFrames = frames
    ds.PixelData = np.array(values, dtype="<u2").tobytes()
    return ds


def lut_item(first: int, bits: int, data: list[int]) -> Dataset:
    item = Dataset()
    item.LUTDescriptor = [len(data), first, bits]
    item.LUTData = data
    item["LUTData"].VR = "US"
    return item


def test_voi_lut_sequence_is_used_when_no_window_is_stored():
    ds = pipeline_image([0, 1, 2, 3])
    ds.VOILUTSequence = [lut_item(0, 8, [0, 50, 100, 255])]  # 8-bit LUT: shown as it is
    assert render_image.display(ds, 0).tolist() == [[0, 50, 100, 255]]
    ds.VOILUTSequence = [lut_item(0, 12, [0, 1000, 2000, 4095])]  # 12-bit LUT: * 255 / 4095
    # 1000 * 255 / 4095 = 62.27 -> 62; 2000 * 255 / 4095 = 124.54 -> 125
    assert render_image.display(ds, 0).tolist() == [[0, 62, 125, 255]]


def test_modality_lut_sequence_then_stored_window():
    ds = pipeline_image([0, 1, 2, 3])
    ds.ModalityLUTSequence = [lut_item(0, 16, [0, 100, 200, 300])]
    ds.ModalityLUTSequence[0].ModalityLUTType = "HU"
    ds.WindowCenter, ds.WindowWidth = 150, 101
    # LINEAR C=150, W=101 on 0, 100, 200, 300: edges 99.5 and 199.5;
    # 100 -> ((100 - 149.5) / 100 + 0.5) * 255 = 1.275 -> 1
    assert render_image.display(ds, 0).tolist() == [[0, 1, 255, 255]]


def test_enhanced_multiframe_windows_and_rescale_come_from_the_functional_groups():
    ds = pipeline_image([10, 20, 10, 20], frames=2)
    shared = Dataset()
    transform = Dataset()
    transform.RescaleSlope, transform.RescaleIntercept, transform.RescaleType = 10, 0, "US"
    shared.PixelValueTransformationSequence = [transform]
    ds.SharedFunctionalGroupsSequence = [shared]
    frames = []
    for center, width in ((150, 101), (100, 1000)):
        group, voi = Dataset(), Dataset()
        voi.WindowCenter, voi.WindowWidth = center, width
        group.FrameVOILUTSequence = [voi]
        frames.append(group)
    ds.PerFrameFunctionalGroupsSequence = frames
    # modality values 100 and 200 in both frames
    # frame 1: C=150, W=101 -> edges 99.5, 199.5: 100 -> 1.275 -> 1, 200 -> 255
    assert render_image.display(ds, 0).tolist() == [[1, 255]]
    # frame 2: C=100, W=1000: ((x - 99.5) / 999 + 0.5) * 255: 100 -> 127.63 -> 128, 200 -> 153.15 -> 153
    assert render_image.display(ds, 1).tolist() == [[128, 153]]
