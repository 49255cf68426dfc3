"""OHIF in a real browser: Debian's Chromium, headless, driven by playwright for Python, against
``pacscore serve web --viewer`` (the command, in a child process) on a demo-like archive.

What a person would check: the study list shows every study, and opening a CT, an MR, a JPEG
2000, a JPEG lossless, an RLE and a multi-frame study shows an image (a screenshot of the
viewport is not one colour) and its thumbnail. Screenshots are kept under
``$PACSCORE_TEST_ARTIFACTS/viewer`` (default: the test's temporary folder).

Needs: chromium (Debian package; playwright never downloads a browser here), the playwright
package, and the viewer (``pacscore viewer install``; ``make test`` fetches it first). Without
one of them the tests skip and say which. Every wait is for something the page shows, with a
generous deadline: a loaded 2-core machine renders slowly, but never differently.
"""

from __future__ import annotations

import base64
import io
import os
import shutil
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

import pacscore
from benchmarks.viewer_data import ViewerStudy, write_viewer_studies
from pacscore.adapters.web_viewer import thumbnails_supported
from pacscore.testing.generate import GeneratorConfig, write_files
from pacscore.viewer import ViewerMissing, find_viewer

from .factories import make_instance, to_bytes
from .viewer_helpers import serve_web

pytestmark = pytest.mark.interop

playwright_api = pytest.importorskip(
    "playwright.sync_api", reason="playwright is not installed (pip install playwright)"
)
Image = pytest.importorskip("PIL.Image", reason="Pillow is not installed")

CHROMIUM = shutil.which("chromium") or ("/usr/bin/chromium" if os.path.exists("/usr/bin/chromium") else None)
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--no-first-run",
    "--disable-sync",
    "--disable-quic",
]
#: deadlines (ms) for what the page must show; generous because the machine may be loaded
PAGE_TIMEOUT = 180_000
#: OHIF's first-visit tour covers the viewport; a returning user has seen it
TOUR_SEEN = "localStorage.setItem('shownTours', JSON.stringify(['basicViewerTour']));"
GENERATED_PATIENTS = 3
NO_MODALITY_STUDY = "1.2.826.0.1.3680043.10.1018.78"
KINDS = ("CT", "MR", "JPEG2000", "JPEGLossless", "RLE", "MultiFrame")


def _viewer_folder() -> Path:
    try:
        return find_viewer()
    except ViewerMissing as exc:
        pytest.skip(str(exc))


@pytest.fixture(scope="module")
def artifacts(tmp_path_factory) -> Path:
    root = os.environ.get("PACSCORE_TEST_ARTIFACTS")
    folder = Path(root) / "viewer" if root else tmp_path_factory.mktemp("viewer-artifacts")
    folder.mkdir(parents=True, exist_ok=True)
    return folder


@pytest.fixture(scope="module")
def demo(tmp_path_factory) -> tuple[Path, dict[str, ViewerStudy], int]:
    """A small demo archive: the viewer's sample studies, a few generated patients and a study
    without any Modality."""
    folder = tmp_path_factory.mktemp("viewer-demo")
    studies = {s.kind: s for s in write_viewer_studies(folder / "data" / "viewer")}
    write_files(GeneratorConfig(patients=GENERATED_PATIENTS, seed=1), folder / "data" / "generated")
    with pacscore.open(folder / "arc") as arc:
        report = arc.store_many(folder / "data")
        assert not report.rejected, report.rejected
        # a study whose series has no Modality: the kind that broke OHIF's study list (issue 18)
        uid = NO_MODALITY_STUDY
        arc.store(to_bytes(make_instance(sop=uid + ".1.1", study=uid, series=uid + ".1", modality=None)))
        total = arc.stats()["studies"]
    return folder / "arc", studies, total


@pytest.fixture(scope="module")
def server(demo, tmp_path_factory) -> Iterator[str]:
    """``pacscore serve web --viewer`` on a port the server binds itself; yields its base URL."""
    if CHROMIUM is None:
        pytest.skip("chromium is not installed (Debian: apt-get install chromium)")
    viewer = _viewer_folder()
    archive, _, _ = demo
    log = tmp_path_factory.mktemp("viewer-server") / "serve.log"
    with serve_web(["--archive", str(archive), "--viewer"], log, {"PACSCORE_VIEWER_DIR": str(viewer)}) as url:
        yield url


@pytest.fixture(scope="module")
def browser_context(server, tmp_path_factory):
    """One Chromium for the module, with a fresh profile of its own."""
    profile = tmp_path_factory.mktemp("chromium-profile")
    with playwright_api.sync_playwright() as pw:
        context = pw.chromium.launch_persistent_context(
            str(profile),
            executable_path=CHROMIUM,
            args=CHROMIUM_ARGS,
            headless=True,
            viewport={"width": 1280, "height": 900},
        )
        context.add_init_script(TOUR_SEEN)
        context.set_default_timeout(PAGE_TIMEOUT)
        try:
            yield context
        finally:
            context.close()


class PageLog:
    """What went wrong on a page, for the failure message: console errors, failed requests."""

    def __init__(self, page) -> None:
        self.lines: list[str] = []
        self.thumbnails: list[int] = []  # statuses of the server's /thumbnail answers
        page.on("response", lambda r: self.thumbnails.append(r.status) if "/thumbnail" in r.url else None)
        page.on(
            "console", lambda m: self.lines.append(f"console {m.type}: {m.text[:300]}") if m.type == "error" else None
        )
        page.on("requestfailed", lambda r: self.lines.append(f"failed: {r.url[:200]} {r.failure}"))
        page.on("response", lambda r: self.lines.append(f"HTTP {r.status} {r.url[:200]}") if r.status >= 400 else None)

    def __str__(self) -> str:
        return "\n".join(self.lines[-30:]) or "(nothing logged)"


def _colours(png: bytes) -> int:
    """How many distinct colours an image holds (a drawn image has many, an empty one 1)."""
    with Image.open(io.BytesIO(png)) as im:
        return len(im.convert("RGB").getcolors(maxcolors=1 << 24) or [])


#: the pixels of the viewport's canvas and of the first thumbnail, as PNG data URLs: read from
#: the page itself, so the overlays drawn on top (orientation letters, dates, toasts) never
#: count as image content
VIEWPORT_PIXELS = "() => document.querySelector('canvas.cornerstone-canvas').toDataURL('image/png')"
THUMBNAIL_PIXELS = """() => {
  const img = document.querySelector('[data-cy=study-browser-thumbnail] img');
  if (!img || !img.complete || !img.naturalWidth) return null;
  const canvas = document.createElement('canvas');
  canvas.width = img.naturalWidth;
  canvas.height = img.naturalHeight;
  canvas.getContext('2d').drawImage(img, 0, 0);
  return canvas.toDataURL('image/png');
}"""
ERROR_TEXT = "Something went wrong"


def _wait_until_drawn(page, pixels_js: str, what: str, log: PageLog) -> bytes:
    """Reads the pixels ``pixels_js`` returns until they hold more than a few colours; returns
    them as PNG. Fails at once when OHIF shows its error toast, else after PAGE_TIMEOUT."""
    deadline = time.monotonic() + PAGE_TIMEOUT / 1000
    png = b""
    while True:
        url = page.evaluate(pixels_js)
        if url:
            png = base64.b64decode(url.split(",", 1)[1])
            if _colours(png) > 16:  # an empty canvas has 1; these samples, drawn, 90 to 256
                return png
        if page.get_by_text(ERROR_TEXT).count():
            pytest.fail(f"OHIF failed to show {what}:\n{log}")
        if time.monotonic() > deadline:
            shown = _colours(png) if png else 0
            pytest.fail(f"{what} still shows {shown} colour(s) after {PAGE_TIMEOUT // 1000} s:\n{log}")
        page.wait_for_timeout(500)  # a poll interval, not a synchronisation


def test_the_study_list_shows_every_study(browser_context, server, demo, artifacts):
    _, studies, total = demo
    page = browser_context.new_page()
    log = PageLog(page)
    try:
        page.goto(server + "/", wait_until="networkidle")
        counter = page.get_by_text(f"1-{total} of {total}", exact=True)
        failed = page.get_by_text("Data Source Connection Error")
        counter.or_(failed).first.wait_for(state="visible")  # whichever comes: no waiting out a failure
        if failed.count():
            page.screenshot(path=artifacts / "study-list-error.png", full_page=True)
            pytest.fail(f"OHIF could not read the study list:\n{log}")
        for study in studies.values():
            name = study.patient_name.replace("^", ", ")
            page.get_by_text(name, exact=True).first.wait_for(state="visible")
        page.screenshot(path=artifacts / "study-list.png", full_page=True)
        table = page.locator("tbody").last  # the first one holds the filters
        assert table.locator("tr").count() == total, log
        listed = table.inner_text()
        for study in studies.values():
            assert f"viewer sample {study.kind}" in listed
    finally:
        page.close()


@pytest.mark.parametrize("kind", KINDS)
def test_opening_a_study_renders_its_image_and_thumbnail(browser_context, server, demo, artifacts, kind):
    _, studies, _ = demo
    study = studies[kind]
    page = browser_context.new_page()
    log = PageLog(page)
    try:
        page.goto(f"{server}/viewer?StudyInstanceUIDs={study.study_uid}", wait_until="networkidle")
        page.locator("canvas.cornerstone-canvas").first.wait_for(state="visible")
        png = _wait_until_drawn(page, VIEWPORT_PIXELS, f"the {kind} image ({study.transfer_syntax})", log)
        (artifacts / f"viewport-{kind}.png").write_bytes(png)
        thumbnail = _wait_until_drawn(page, THUMBNAIL_PIXELS, f"the {kind} thumbnail", log)
        (artifacts / f"thumbnail-{kind}.png").write_bytes(thumbnail)
        page.screenshot(path=artifacts / f"viewer-{kind}.png")
        if thumbnails_supported():  # the generated config asks the server for thumbnails
            assert 200 in log.thumbnails, log
        assert page.get_by_text(ERROR_TEXT).count() == 0, log
    finally:
        page.close()
