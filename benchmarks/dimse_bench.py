"""C-FIND through the DIMSE adapter vs the same query in-process, with and without TCP_NODELAY.

    python -m benchmarks.dimse_bench --instances 2000 [--repeat 200] [--json out.json]

Builds a temporary archive (benchmarks.generate when it is there, a small built-in generator
otherwise), serves it twice (TCP_NODELAY on the accepted sockets, and off), and times three
queries — a point query (one study by UID), a patient's studies, and a broad query returning
every study — through:

- ``in-process``: ``list(arc.find(...))``;
- ``pynetdicom``: one association, the query repeated; Nagle off on both ends, on the SCP only,
  or on neither; and with pynetdicom's reactor poll lowered from 1 ms to 0.1 ms (``poll_interval``);
- ``findscu``: DCMTK, one query per process (association included), and ``--repeat`` inside one
  association to get the per-query cost, with the SCP's TCP_NODELAY on and off (findscu gets
  TCP_NODELAY=1 or 0 in its environment).

Prints a table and a JSON document (``--json`` writes it to a file too).
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from pydicom.dataset import Dataset

import pacscore
from benchmarks.generate import first_instances
from pacscore.adapters import dimse

FIND = "1.2.840.10008.5.1.4.1.2.2.1"  # Study Root Query/Retrieve Information Model - FIND


# ---- data ---------------------------------------------------------------------------------------
def instances_bytes(instances: int, seed: int):
    return "benchmarks.generate", first_instances(instances, seed)


# ---- measurements --------------------------------------------------------------------------------
def _stats(samples: list[float]) -> dict:
    s = sorted(samples)
    return {
        "n": len(s),
        "median_ms": statistics.median(s) * 1e3,
        "p95_ms": s[min(len(s) - 1, int(len(s) * 0.95))] * 1e3,
        "mean_ms": statistics.fmean(s) * 1e3,
    }


def bench_inprocess(arc, query: dict, repeat: int) -> tuple[dict, int]:
    times, n = [], 0
    for _ in range(repeat):
        t0 = time.perf_counter()
        n = len(list(arc.find(dict(query), level="STUDY", model="STUDY")))
        times.append(time.perf_counter() - t0)
    return _stats(times), n


def bench_pynetdicom(
    port: int, query: dict, repeat: int, client_nodelay: bool, client_poll: float | None = None
) -> tuple[dict, int]:
    from pynetdicom import AE, evt

    ae = AE("BENCHSCU")
    ae.add_requested_context(FIND)

    def opened(event):
        if client_nodelay:
            dimse.set_nodelay(event.assoc.dul.socket.socket)
        if client_poll is not None:
            event.assoc.dul._run_loop_delay = client_poll

    handlers = [(evt.EVT_CONN_OPEN, opened)]
    assoc = ae.associate("127.0.0.1", port, ae_title="PACSCORE", evt_handlers=handlers)
    if not assoc.is_established:
        raise RuntimeError("association with the SCP failed")
    ident = Dataset()
    ident.QueryRetrieveLevel = "STUDY"
    for k, v in query.items():
        setattr(ident, k, v)
    times, n = [], 0
    try:
        for _ in range(repeat):
            t0 = time.perf_counter()
            n = sum(1 for status, _ in assoc.send_c_find(ident, FIND) if status and status.Status in (0xFF00, 0xFF01))
            times.append(time.perf_counter() - t0)
    finally:
        assoc.release()
    return _stats(times), n


def dcmtk_tool(tool: str) -> str | None:
    """The path of DCMTK's ``tool`` on PATH, skipping the Python scripts of the same names that
    pynetdicom installs into a virtualenv's bin folder (first on PATH when it is activated)."""
    for folder in os.environ.get("PATH", "").split(os.pathsep):
        path = Path(folder or ".") / tool
        if path.is_file() and os.access(path, os.X_OK):
            with open(path, "rb") as f:
                if f.read(2) != b"#!":
                    return str(path)
    return None


def dcmtk_findscu() -> str | None:
    """DCMTK's findscu (not pynetdicom's script of the same name)."""
    return dcmtk_tool("findscu")


FINDSCU = dcmtk_findscu()


def _findscu_args(port: int, query: dict, repeat: int) -> list[str]:
    args = [FINDSCU, "-S", "-aet", "FINDSCU", "-aec", "PACSCORE", "-k", "QueryRetrieveLevel=STUDY"]
    for k, v in query.items():
        args += ["-k", f"{k}={v}" if v else k]
    if repeat > 1:
        args += ["--repeat", str(repeat)]
    return args + ["127.0.0.1", str(port)]


def bench_findscu(port: int, query: dict, runs: int, repeat: int, nodelay_env: str) -> dict:
    env = dict(os.environ, TCP_NODELAY=nodelay_env)
    one = []
    for _ in range(runs):
        t0 = time.perf_counter()
        subprocess.run(_findscu_args(port, query, 1), env=env, capture_output=True, check=True)
        one.append(time.perf_counter() - t0)
    t0 = time.perf_counter()
    subprocess.run(_findscu_args(port, query, repeat), env=env, capture_output=True, check=True)
    many = time.perf_counter() - t0
    per_query = max(0.0, (many - statistics.median(one)) / max(1, repeat - 1))
    return {
        "process_median_ms": statistics.median(one) * 1e3,
        "per_query_in_association_ms": per_query * 1e3,
        "repeat": repeat,
    }


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m benchmarks.dimse_bench", description=__doc__.split("\n\n")[0])
    ap.add_argument("--instances", type=int, default=2000)
    ap.add_argument("--repeat", type=int, default=200, help="queries per pynetdicom / in-process measurement")
    ap.add_argument("--findscu-runs", type=int, default=15, help="findscu processes per measurement")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--archive", help="use (and fill if empty) this archive folder instead of a temporary one")
    ap.add_argument("--json", help="also write the JSON result to this file")
    args = ap.parse_args(argv)
    logging.getLogger("pynetdicom").setLevel(logging.ERROR)

    tmp = None
    folder = args.archive
    if folder is None:
        tmp = tempfile.mkdtemp(prefix="pacscore-dimse-bench-")
        folder = os.path.join(tmp, "archive")
    result: dict = {
        "instances": args.instances,
        "python": platform.python_version(),
        "implementation": pacscore.IMPLEMENTATION,
        "queries": {},
    }
    try:
        with pacscore.open(folder) as arc:
            if arc.count({}, level="IMAGE", relational=True) == 0:
                source, blobs = instances_bytes(args.instances, args.seed)
                t0 = time.perf_counter()
                arc.store_many(blobs)
                result["generator"] = source
                result["ingest_s"] = time.perf_counter() - t0
            studies = list(arc.find({"StudyInstanceUID": "", "PatientID": ""}, level="STUDY", format="dict"))
            result["studies"] = len(studies)
            probe = studies[len(studies) // 2]
            queries = {
                "point (1 study by UID)": {
                    "StudyInstanceUID": probe["StudyInstanceUID"],
                    "StudyDate": "",
                    "PatientName": "",
                },
                "patient's studies": {
                    "PatientID": probe["PatientID"],
                    "StudyInstanceUID": "",
                    "StudyDate": "",
                    "ModalitiesInStudy": "",
                },
                "broad (every study)": {
                    "StudyInstanceUID": "",
                    "PatientName": "",
                    "StudyDate": "",
                    "AccessionNumber": "",
                },
            }
            on = dimse.serve(arc, "PACSCORE", 0, block=False, tcp_nodelay=True)
            off = dimse.serve(arc, "PACSCORE", 0, block=False, tcp_nodelay=False)
            fast = dimse.serve(arc, "PACSCORE", 0, block=False, tcp_nodelay=True, poll_interval=0.0001)
            result["servers"] = {
                "nodelay": "tcp_nodelay=True",
                "no nodelay": "tcp_nodelay=False",
                "poll 0.1 ms": "tcp_nodelay=True, poll_interval=0.0001 (SCP and SCU DUL)",
            }
            have_findscu = FINDSCU is not None
            try:
                for label, q in queries.items():
                    rep = args.repeat if not label.startswith("broad") else max(5, args.repeat // 20)
                    row: dict = {}
                    row["in-process"], n = bench_inprocess(arc, q, rep)
                    row["matches"] = n
                    for name, port, client, poll in (
                        ("pynetdicom, nodelay both ends", on.server_address[1], True, None),
                        ("pynetdicom, nodelay SCP only", on.server_address[1], False, None),
                        ("pynetdicom, no nodelay", off.server_address[1], False, None),
                        ("pynetdicom, nodelay, poll 0.1 ms", fast.server_address[1], True, 0.0001),
                    ):
                        row[name], got = bench_pynetdicom(port, q, rep, client, poll)
                        assert got == n, f"{name}: {got} matches, in-process {n}"
                    if have_findscu:
                        reps = 50 if not label.startswith("broad") else 5
                        for name, server, env in (
                            ("findscu, nodelay", on, "1"),
                            ("findscu, no nodelay", off, "0"),
                            ("findscu, nodelay, SCP poll 0.1 ms", fast, "1"),
                        ):
                            row[name] = bench_findscu(server.server_address[1], q, args.findscu_runs, reps, env)
                    result["queries"][label] = row
            finally:
                on.shutdown()
                off.shutdown()
                fast.shutdown()
    finally:
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
        f"\nC-FIND, {result['instances']} instances, {result.get('studies')} studies, "
        f"matcher: {result['implementation']}"
    )
    print(f"{'query':26} {'path':48} {'matches':>7} {'median ms':>10} {'p95 ms':>8} {'results/s':>10}")
    for label, row in result["queries"].items():
        n = row["matches"]
        for path, m in row.items():
            if path == "matches":
                continue
            if "median_ms" in m:
                rate = n / (m["median_ms"] / 1e3) if m["median_ms"] else 0
                print(f"{label:26} {path:48} {n:7d} {m['median_ms']:10.2f} {m['p95_ms']:8.2f} {rate:10.0f}")
            else:
                print(f"{label:26} {path + ' (process)':48} {n:7d} {m['process_median_ms']:10.2f} {'':>8} {'':>10}")
                per = m["per_query_in_association_ms"]
                print(
                    f"{label:26} {path + ' (per query)':48} {n:7d} {per:10.2f} {'':>8} "
                    f"{(n / (per / 1e3) if per else 0):10.0f}"
                )
    print()


if __name__ == "__main__":
    sys.exit(main())
