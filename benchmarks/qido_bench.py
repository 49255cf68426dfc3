"""QIDO-RS latency through the DICOMweb adapter vs the same query in-process.

    python -m benchmarks.qido_bench --instances 2000 [--repeat 200] [--json out.json]

Builds a temporary archive (benchmarks.generate when it is there, a small built-in generator
otherwise), serves it with uvicorn in a child process (the app of
``pacscore.adapters.dicomweb.create_app``, access log off) and times a few typical searches:

- ``in-process``: ``list(arc.find(identifier, format="json"))`` with the identifier the adapter
  builds for the request (defaults, combined date-time matching, relational per resource);
- ``core``: ``DicomWebService.handle()`` in this process: parameter parsing, the find, the
  count when a page is full, Retrieve URLs and JSON encoding, without HTTP;
- ``http (httpx)``: GET over one keep-alive connection to the uvicorn process;
- ``http (dicomweb-client)``: the same through dicomweb-client (requests), when installed.

Prints a table and a JSON document (``--json`` writes it to a file too).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pacscore
from benchmarks.generate import first_instances
from pacscore.adapters import web_qido
from pacscore.adapters.web_core import DicomWebService, WebRequest

PREFIX = "/dicomweb"


# ---- data ---------------------------------------------------------------------------------------
def instances_bytes(instances: int, seed: int) -> tuple[str, list[bytes]]:
    return "benchmarks.generate", first_instances(instances, seed)


# ---- the server ---------------------------------------------------------------------------------
SERVER_CODE = """
import sys, uvicorn
from pacscore.adapters.dicomweb import create_app
folder, port, limit = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
app = create_app(folder, max_results=limit, default_limit=limit)
uvicorn.run(app, host="127.0.0.1", port=port, access_log=False, log_level="warning")
"""


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_server(folder: str, limit: int) -> tuple[subprocess.Popen, str]:
    port = _free_port()
    env = dict(os.environ)
    root = str(Path(__file__).resolve().parent.parent)
    env["PYTHONPATH"] = root + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
    proc = subprocess.Popen([sys.executable, "-c", SERVER_CODE, folder, str(port), str(limit)], env=env)
    url = f"http://127.0.0.1:{port}{PREFIX}"
    import httpx

    deadline = time.monotonic() + 30
    while True:
        try:
            httpx.get(f"{url}/studies", params={"limit": 1}, timeout=2)
            return proc, url
        except httpx.TransportError:
            if proc.poll() is not None or time.monotonic() > deadline:
                proc.kill()
                raise RuntimeError("the uvicorn child process did not start") from None
            time.sleep(0.1)


# ---- measurements -------------------------------------------------------------------------------
def _stats(samples: list[float]) -> dict:
    s = sorted(samples)
    return {
        "n": len(s),
        "median_ms": statistics.median(s) * 1e3,
        "p95_ms": s[min(len(s) - 1, int(len(s) * 0.95))] * 1e3,
        "mean_ms": statistics.fmean(s) * 1e3,
    }


def _timed(fn, repeat: int) -> tuple[dict, int]:
    fn()  # warm up (page cache, imports, connection)
    times, n = [], 0
    for _ in range(repeat):
        t0 = time.perf_counter()
        n = fn()
        times.append(time.perf_counter() - t0)
    return _stats(times), n


def queries_for(arc) -> dict[str, tuple[str, list[tuple[str, str]]]]:
    studies = list(arc.find({"StudyInstanceUID": "", "PatientID": "", "PatientName": ""}, level="STUDY", format="dict"))
    probe = studies[len(studies) // 2]
    study = probe["StudyInstanceUID"]
    series = next(iter(arc.find({"StudyInstanceUID": study, "SeriesInstanceUID": ""}, level="SERIES", format="dict")))
    name = str(probe["PatientName"] or "A").split("^")[0][:2] or "A"
    return {
        "point (1 study by UID)": ("/studies", [("StudyInstanceUID", study)]),
        "patient's studies": ("/studies", [("PatientID", str(probe["PatientID"]))]),
        "name prefix (PatientName=XY*)": ("/studies", [("PatientName", f"{name}*")]),
        "date range, one year": ("/studies", [("StudyDate", "20150101-20151231")]),
        "series of a study": (f"/studies/{study}/series", []),
        "instances of a series": (f"/studies/{study}/series/{series['SeriesInstanceUID']}/instances", []),
        "broad (every study)": ("/studies", []),
    }


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m benchmarks.qido_bench", description=__doc__.split("\n\n")[0])
    ap.add_argument("--instances", type=int, default=2000)
    ap.add_argument("--repeat", type=int, default=200, help="requests per measurement (broad queries: 1/20)")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--archive", help="use (and fill if empty) this archive folder instead of a temporary one")
    ap.add_argument("--json", help="also write the JSON result to this file")
    args = ap.parse_args(argv)

    tmp = None
    folder = args.archive
    if folder is None:
        tmp = tempfile.mkdtemp(prefix="pacscore-qido-bench-")
        folder = os.path.join(tmp, "archive")
    result: dict = {
        "instances": args.instances,
        "python": platform.python_version(),
        "machine": platform.machine(),
        "cpus": os.cpu_count(),
        "implementation": pacscore.IMPLEMENTATION,
        "queries": {},
    }
    proc = None
    try:
        with pacscore.open(folder) as arc:
            if arc.count({}, level="IMAGE", relational=True) == 0:
                source, blobs = instances_bytes(args.instances, args.seed)
                t0 = time.perf_counter()
                arc.store_many(blobs)
                result["generator"] = source
                result["ingest_s"] = round(time.perf_counter() - t0, 3)
            n_studies = arc.count({}, level="STUDY")
            result["studies"] = n_studies
            limit = max(n_studies, 1)  # one page holds every study: the broad query is one response
            service = DicomWebService(arc, max_results=limit, default_limit=limit)
            proc, url = start_server(str(folder), limit)
            result["server"] = "uvicorn (child process), Starlette app from create_app, access log off"
            import httpx

            http = httpx.Client(timeout=60)
            try:
                from dicomweb_client.api import DICOMwebClient

                dwc = DICOMwebClient(url=url)
            except ImportError:
                dwc = None
            try:
                for label, (path, params) in queries_for(arc).items():
                    rep = args.repeat if not label.startswith("broad") else max(5, args.repeat // 20)
                    segs = [s for s in path.split("/") if s]
                    parsed = web_qido.parse_search(segs, params)
                    row: dict = {"request": path + ("?" + "&".join(f"{k}={v}" for k, v in params) if params else "")}

                    def inprocess(parsed=parsed):
                        return len(
                            list(arc.find(parsed.identifier, level=parsed.level, format="json", **parsed.options))
                        )

                    def core(path=path, params=params):
                        request = WebRequest(
                            "GET",
                            path,
                            list(params),
                            {"accept": "application/dicom+json"},
                            base_url="http://bench" + PREFIX,
                        )
                        answer = service.handle(request)
                        return 0 if answer.status == 204 else len(json.loads(answer.body))

                    def over_http(path=path, params=params):
                        r = http.get(url + path, params=params, headers={"Accept": "application/dicom+json"})
                        r.raise_for_status()
                        return 0 if r.status_code == 204 else len(r.json())

                    row["in-process find()"], n = _timed(inprocess, rep)
                    row["matches"] = n
                    row["core handle()"], got = _timed(core, rep)
                    assert got == n, f"{label}: core {got}, in-process {n}"
                    row["http (httpx)"], got = _timed(over_http, rep)
                    assert got == n, f"{label}: http {got}, in-process {n}"
                    if dwc is not None:

                        def with_dwc(path=path, params=params):
                            return len(dwc._http_get_application_json(url + path, params=dict(params)))

                        row["http (dicomweb-client)"], got = _timed(with_dwc, rep)
                        assert got == n, f"{label}: dicomweb-client {got}, in-process {n}"
                    result["queries"][label] = row
            finally:
                http.close()
    finally:
        if proc is not None:
            proc.terminate()
            try:
                proc.wait(10)
            except subprocess.TimeoutExpired:
                proc.kill()
        if tmp:
            shutil.rmtree(tmp, ignore_errors=True)

    print_table(result)
    text = json.dumps(result, indent=2)
    print(text)
    if args.json:
        Path(args.json).write_text(text)
    return 0


def print_table(result: dict) -> None:
    print(
        f"\nQIDO-RS vs in-process find(): {result['instances']} instances, {result.get('studies')} studies, "
        f"{result['implementation']} matcher, Python {result['python']}\n"
    )
    columns = ["in-process find()", "core handle()", "http (httpx)", "http (dicomweb-client)"]
    head = f"{'query':32} {'matches':>7}  " + "  ".join(f"{c:>22}" for c in columns)
    print(head)
    print(f"{'':32} {'':>7}  " + "  ".join(f"{'median / p95 ms':>22}" for _ in columns))
    print("-" * len(head))
    for label, row in result["queries"].items():
        cells = []
        for c in columns:
            s = row.get(c)
            cells.append(f"{s['median_ms']:9.3f} / {s['p95_ms']:9.3f}" if s else f"{'-':>22}")
        print(f"{label:32} {row['matches']:>7}  " + "  ".join(f"{c:>22}" for c in cells))
    print()


if __name__ == "__main__":
    sys.exit(main())
