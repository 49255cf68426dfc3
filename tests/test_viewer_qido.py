"""OHIF's own requests, byte for byte as OHIF 3.13 sends them, against QIDO-RS and WADO-RS.

The URLs below were read off a real OHIF 3.13.2 session (tests/test_viewer_browser.py drives
one). The study list failed on the first of them ("Cannot read properties of undefined (reading
'length')") because a study without any series Modality came back with Modalities in Study as
``{"vr": "CS"}`` and OHIF's getModalities reads its ``Value.length`` unguarded. That rule and
why it stays conformant: docs/conformance-dicomweb.md, 3.2."""

from __future__ import annotations

import io
import json
from pathlib import Path

import pydicom
import pytest

import pacscore
from benchmarks.viewer_data import write_viewer_studies
from pacscore.adapters.dicomweb import create_app

from .factories import make_instance, to_bytes
from .web_helpers import serving

httpx = pytest.importorskip("httpx")

#: the study list, exactly as OHIF asks for it (commas percent-encoded as OHIF's URL builder does)
STUDY_LIST = (
    "/dicomweb/studies?limit=101&offset=0&fuzzymatching=false&includefield=00081030%2C00080060%2C00080090%2C00100030"
)
#: the series of a study, as OHIF's study browser asks for them
SERIES_OF = "/dicomweb/studies/{study}/series?includefield=00080021%2C00080031%2C0008103E%2C00200011"
#: how OHIF asks for frames (wadors image loader, omitQuotationForMultipartRequest)
FRAMES_ACCEPT = "multipart/related; type=application/octet-stream; transfer-syntax=*"
JSON = {"Accept": "application/dicom+json"}
NO_MODALITY_STUDY = "1.2.826.0.1.3680043.10.1018.77"


def ohif_get_modalities(modality: dict | None, modalities_in_study: dict | None) -> dict:
    """OHIF 3.13's getModalities (platform/core/src/DICOMWeb/getModalities.js), line for line:
    it indexes ``ModalitiesInStudy.Value`` without a guard, so a missing Value raises here as
    it throws there."""
    if not modality and not modalities_in_study:
        return {}
    modalities = modality or {"vr": "CS", "Value": []}
    modalities["Value"] = modalities.get("Value") or []
    if modalities_in_study:
        if modalities.get("vr") and modalities["vr"] == modalities_in_study["vr"]:
            for value in modalities_in_study["Value"]:  # KeyError where OHIF throws
                if value not in modalities["Value"]:
                    modalities["Value"].append(value)
        else:
            return modalities_in_study
    return modalities


@pytest.fixture(scope="module")
def viewer_archive(tmp_path_factory) -> Path:
    """The viewer sample studies plus one study whose only series has no Modality."""
    folder = tmp_path_factory.mktemp("viewer-qido")
    studies = write_viewer_studies(folder / "data")
    with pacscore.open(folder / "arc") as arc:
        report = arc.store_many([s.path for s in studies])
        assert len(report.stored) == len(studies), report
        arc.store(
            to_bytes(
                make_instance(
                    sop=NO_MODALITY_STUDY + ".1.1",
                    study=NO_MODALITY_STUDY,
                    series=NO_MODALITY_STUDY + ".1",
                    modality=None,
                    patient_name="NoModality^Study",
                    patient_id="NOMOD",
                )
            )
        )
    return folder / "arc"


@pytest.fixture(scope="module")
def client(viewer_archive):
    with (
        serving(create_app(viewer_archive)) as port,
        httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=60) as http,
    ):
        yield http


@pytest.fixture(scope="module")
def samples(viewer_archive):
    return {s.kind: s for s in write_viewer_studies(viewer_archive.parent / "data")}


def _by_study(rows: list[dict]) -> dict[str, dict]:
    return {row["0020000D"]["Value"][0]: row for row in rows}


def test_ohif_study_list_request_gives_every_study_in_a_form_ohif_reads(client, samples):
    answer = client.get(STUDY_LIST, headers=JSON)
    assert answer.status_code == 200, answer.text
    rows = _by_study(answer.json())
    assert set(rows) == {s.study_uid for s in samples.values()} | {NO_MODALITY_STUDY}
    assert answer.headers["X-Total-Count"] == str(len(rows))
    for row in rows.values():
        # OHIF's parse of every row: none may throw
        ohif_get_modalities(row.get("00080060"), row.get("00080061"))
    assert "00080061" not in rows[NO_MODALITY_STUDY]  # unknown, so left out
    assert rows[samples["CT"].study_uid]["00080061"] == {"vr": "CS", "Value": ["CT"]}
    assert rows[samples["MR"].study_uid]["00081030"]["Value"] == ["viewer sample MR"]
    # Modality is a series attribute: not returned by a study search (PS3.18 10.6.3.3)
    assert all("00080060" not in row for row in rows.values())


def test_the_old_answer_is_what_broke_ohif():
    """The regression itself: the form the answer had before fails OHIF's parse."""
    with pytest.raises(KeyError):
        ohif_get_modalities(None, {"vr": "CS"})


@pytest.mark.parametrize(
    "query",
    ["includefield=ModalitiesInStudy", "includefield=00080061", "ModalitiesInStudy="],
    ids=["includefield-keyword", "includefield-tag", "universal-key"],
)
def test_asking_for_modalities_in_study_returns_it_even_empty(client, query):
    rows = _by_study(client.get(f"/dicomweb/studies?{query}", headers=JSON).json())
    assert rows[NO_MODALITY_STUDY]["00080061"] == {"vr": "CS"}


def test_a_modality_filter_that_matches_an_unknown_modality_leaves_it_out(client, samples):
    # OHIF's modality filter; empty-record matching (PS3.4 C.2.2.1.2) lets the study in
    rows = _by_study(client.get(STUDY_LIST + "&ModalitiesInStudy=CT", headers=JSON).json())
    assert set(rows) == {samples["CT"].study_uid, NO_MODALITY_STUDY}
    assert "00080061" not in rows[NO_MODALITY_STUDY]
    for row in rows.values():
        ohif_get_modalities(row.get("00080060"), row.get("00080061"))


def test_ohif_opens_a_study_by_uid_and_by_patient(client, samples):
    ct = samples["CT"]
    rows = client.get(STUDY_LIST + f"&StudyInstanceUID={ct.study_uid}", headers=JSON).json()
    assert [r["0020000D"]["Value"][0] for r in rows] == [ct.study_uid]
    # the study browser then lists the patient's other studies by Patient ID
    rows = client.get(
        "/dicomweb/studies?00100020=VIEWER-CT&limit=101&offset=0&fuzzymatching=false"
        "&includefield=00081030%2C00080060%2C00080090%2C00100030",
        headers=JSON,
    ).json()
    assert [r["0020000D"]["Value"][0] for r in rows] == [ct.study_uid]


def test_ohif_series_request(client, samples):
    mf = samples["MultiFrame"]
    answer = client.get(SERIES_OF.format(study=mf.study_uid), headers=JSON)
    assert answer.status_code == 200, answer.text
    (row,) = answer.json()
    assert row["0020000E"]["Value"] == [mf.series_uid]
    assert row["0008103E"]["Value"] == [mf.source.name]
    assert row["00201209"]["Value"] == [1]
    assert row["00080060"]["Value"] == ["MR"]


def test_ohif_series_metadata_has_what_the_image_loader_needs(client, samples):
    mf = samples["MultiFrame"]
    answer = client.get(f"/dicomweb/studies/{mf.study_uid}/series/{mf.series_uid}/metadata", headers=JSON)
    assert answer.status_code == 200, answer.text
    (instance,) = answer.json()
    source = pydicom.dcmread(mf.path, stop_before_pixels=True)
    for tag, keyword in (("00280010", "Rows"), ("00280011", "Columns"), ("00280008", "NumberOfFrames")):
        assert int(instance[tag]["Value"][0]) == int(source[keyword].value)
    assert instance["00080018"]["Value"] == [mf.sop_uid]
    assert instance["7FE00010"]["BulkDataURI"].endswith(f"/instances/{mf.sop_uid}/bulkdata/7FE00010")
    json.dumps(instance)  # plain JSON all through


def test_ohif_frame_request_for_native_pixel_data(client, samples):
    mf = samples["MultiFrame"]
    ds = pydicom.dcmread(mf.path)
    frame_bytes = ds.Rows * ds.Columns * ds.BitsAllocated // 8
    url = f"/dicomweb/studies/{mf.study_uid}/series/{mf.series_uid}/instances/{mf.sop_uid}/frames/{mf.frames}"
    answer = client.get(url, headers={"Accept": FRAMES_ACCEPT})
    assert answer.status_code == 200, answer.text
    assert answer.headers["content-type"].startswith("multipart/related")
    expected = ds.PixelData[(mf.frames - 1) * frame_bytes : mf.frames * frame_bytes]
    assert expected in answer.content


def test_ohif_thumbnail_request(client, samples):
    """With the server's thumbnails (thumbnailRendering "thumbnail" in the generated config),
    OHIF fetches one per display set like this."""
    from PIL import Image

    from pacscore.adapters.web_viewer import thumbnails_supported

    if not thumbnails_supported():
        pytest.skip("this server has no /thumbnail resources: the viewer draws thumbnails from frames")
    ct = samples["CT"]
    url = (
        f"/dicomweb/studies/{ct.study_uid}/series/{ct.series_uid}/instances/{ct.sop_uid}/thumbnail?accept=image%2Fjpeg"
    )
    answer = client.get(url)
    assert answer.status_code == 200, answer.text
    assert answer.headers["content-type"].startswith("image/jpeg")
    with Image.open(io.BytesIO(answer.content)) as image:
        assert image.format == "JPEG"
        assert len(image.convert("L").getcolors(256) or []) > 16  # a picture, not a blank
