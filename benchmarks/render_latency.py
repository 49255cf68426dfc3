"""How long the DICOMweb adapter takes to answer one frame or rendering request, in process.

    python -m benchmarks.render_latency [--repeat 20]

Stores two of pydicom's bundled files (a 512 x 512 CT in JPEG 2000, a 320 x 240 ultrasound of 30
JPEG baseline frames) in a temporary archive and times ``DicomWebService.handle`` for frames as
stored (OHIF's ``transfer-syntax=*``), decoded, re-encoded, and for rendered and thumbnail
images. Each figure is the median of ``--repeat`` requests, the whole body read; no HTTP server
is involved, so the figures are the adapter's own work (blob read, parse, decode, encode).
"""

from __future__ import annotations

import argparse
import io
import statistics
import tempfile
import time
import warnings
from pathlib import Path

import pydicom

import pacscore
from pacscore.adapters.web_core import DicomWebService, WebRequest

TEST_FILES = Path(pydicom.__file__).parent / "data" / "test_files"
OHIF = "multipart/related; type=application/octet-stream; transfer-syntax=*"
CASES = [
    ("693_J2KI.dcm", "/frames/1", OHIF, "512x512 JPEG 2000 frame, as stored (transfer-syntax=*)"),
    ("693_J2KI.dcm", "/frames/1", "multipart/related; type=application/octet-stream", "  decoded to Explicit VR LE"),
    ("693_J2KI.dcm", "/frames/1", "multipart/related; type=image/dicom-rle", "  re-encoded as RLE Lossless"),
    ("693_J2KI.dcm", "/rendered", "image/jpeg", "  rendered as JPEG"),
    ("693_J2KI.dcm", "/rendered", "image/png", "  rendered as PNG"),
    ("693_J2KI.dcm", "/thumbnail", "image/jpeg", "  thumbnail (128 x 128 JPEG)"),
    ("examples_ybr_color.dcm", "/frames/15", OHIF, "320x240 JPEG baseline frame 15 of 30, as stored"),
    ("examples_ybr_color.dcm", "/frames/15/rendered", "image/jpeg", "  frame 15 rendered as JPEG"),
    ("examples_ybr_color.dcm", "/rendered", "image/jpeg", "  all 30 frames rendered (multipart)"),
]


def store(arc, name: str) -> str:
    """Store ``name`` and return its instance path below the DICOMweb root."""
    ds = pydicom.dcmread(TEST_FILES / name)
    buf = io.BytesIO()
    ds.save_as(buf, enforce_file_format=False)
    arc.store(buf.getvalue())
    return f"/studies/{ds.StudyInstanceUID}/series/{ds.SeriesInstanceUID}/instances/{ds.SOPInstanceUID}"


def median_ms(service: DicomWebService, path: str, accept: str, repeat: int) -> float:
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        answer = service.handle(WebRequest("GET", path, [], {"accept": accept}))
        body = answer.body if isinstance(answer.body, bytes) else b"".join(answer.body)
        times.append(time.perf_counter() - start)
        if answer.status != 200:
            raise SystemExit(f"{path} ({accept}): {answer.status} {body[:200]!r}")
    return statistics.median(times) * 1000


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=20, help="requests per case (default 20)")
    args = parser.parse_args(argv)
    warnings.simplefilter("ignore")  # pydicom's notes on the bundled files' values
    with tempfile.TemporaryDirectory() as folder, pacscore.open(folder) as arc:
        paths = {name: store(arc, name) for name in {case[0] for case in CASES}}
        service = DicomWebService(arc)
        for name, suffix, accept, label in CASES:
            print(f"{label:<58} {median_ms(service, paths[name] + suffix, accept, args.repeat):8.1f} ms")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
