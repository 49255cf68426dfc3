"""The same data and query suite against a real peer: Orthanc (Debian package ``orthanc``).

    python -m benchmarks.peers --instances 5000 [--out DIR]
    python -m benchmarks.peers --wire [--instances 1000]     # DIMSE: see benchmarks/wire.py

Orthanc listens on every interface, so this script never runs it on a shared network: it
re-executes itself under ``unshare -n`` (a private network namespace holding only loopback,
brought up with ``ip link set lo up``; needs root) and talks to Orthanc on 127.0.0.1 only.
Inside, it builds a pacscore archive and a throw-away Orthanc store from the same generated
instances (Orthanc through POST /instances), then runs ``benchmarks.run.QUERY_SUITE`` on both
(Orthanc through /tools/find with Expand) and reports latencies and the ratios
Orthanc/pacscore for each query and for ingest. Skips with a message when Orthanc is not
installed.
"""

from __future__ import annotations

import argparse
import http.client
import json
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from benchmarks import run

LEVELS = {"PATIENT": "Patient", "STUDY": "Study", "SERIES": "Series", "IMAGE": "Instance"}
PORT = 8042


def _reexec_in_private_network(argv: list[str]) -> int:
    if shutil.which("unshare") is None or shutil.which("ip") is None:
        print("peers: unshare or ip is missing; not starting Orthanc outside a private network", file=sys.stderr)
        return 2
    inner = " ".join([sys.executable, "-m", "benchmarks.peers", "--in-netns", *map(_quote, argv)])
    return subprocess.call(["unshare", "-n", "sh", "-c", f"ip link set lo up && exec {inner}"])


def _quote(s: str) -> str:
    return "'" + s.replace("'", "'\"'\"'") + "'"


def _private_network() -> bool:
    """True when only the loopback interface exists here."""
    # /proc/self/net/dev follows the network namespace (/sys/class/net may not)
    with open("/proc/self/net/dev") as f:
        names = [line.split(":", 1)[0].strip() for line in f.readlines()[2:]]
    return names == ["lo"]


class Orthanc:
    def __init__(self, folder: Path) -> None:
        self.folder = folder
        config = {
            "Name": "pacscore-peer",
            "StorageDirectory": str(folder / "db"),
            "IndexDirectory": str(folder / "db"),
            "HttpPort": PORT,
            "DicomServerEnabled": False,
            "RemoteAccessAllowed": False,
            "AuthenticationEnabled": False,
            "Plugins": [],
            "LimitFindResults": 0,
            "LimitFindInstances": 0,
            "StorageCompression": False,
            "SaveJobs": False,
            "HttpCompressionEnabled": False,
        }
        (folder / "orthanc.json").write_text(json.dumps(config))
        self.log = open(folder / "orthanc.log", "w")
        self.proc = subprocess.Popen(["Orthanc", str(folder / "orthanc.json")], stdout=self.log, stderr=self.log)
        self.conn = http.client.HTTPConnection("127.0.0.1", PORT, timeout=600)
        for _ in range(200):
            try:
                self.request("GET", "/system")
                return
            except OSError:
                self.conn.close()
                time.sleep(0.05)
        raise RuntimeError("Orthanc did not start; see " + str(folder / "orthanc.log"))

    def request(self, method: str, path: str, body: bytes | None = None) -> object:
        headers = {
            "Content-Type": "application/dicom" if method == "POST" and path == "/instances" else "application/json"
        }
        self.conn.request(method, path, body=body, headers=headers)
        resp = self.conn.getresponse()
        data = resp.read()
        if resp.status >= 400:
            raise RuntimeError(f"Orthanc {method} {path}: {resp.status} {data[:200]!r}")
        return json.loads(data) if data else None

    def find(self, identifier: dict, level: str) -> list:
        query = {k: v for k, v in identifier.items() if isinstance(v, str) and v}
        body = {"Level": LEVELS[level], "Query": query, "Expand": True, "CaseSensitive": False}
        return self.request("POST", "/tools/find", json.dumps(body).encode())

    def close(self) -> None:
        self.conn.close()
        stop_child(self.proc, self.log, 10)  # the Orthanc this script started


def stop_child(proc: subprocess.Popen, log, wait: float = 15) -> None:
    """Stop a server this script started, by its own handle (terminate, then kill), and close
    its log."""
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(wait)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
    log.close()


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if "--wire" in argv:  # the DIMSE comparison through DCMTK's findscu (benchmarks/wire.py)
        from benchmarks import wire

        return wire.main([a for a in argv if a != "--wire"])
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--instances", type=int, default=5000)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--out", default="bench-out")
    parser.add_argument("--min-time", type=float, default=0.4)
    parser.add_argument("--in-netns", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if shutil.which("Orthanc") is None:
        print(
            "peers: Orthanc is not installed (apt-get install orthanc); skipping the peer comparison", file=sys.stderr
        )
        return 0
    if not args.in_netns:
        return _reexec_in_private_network([a for a in argv if a != "--in-netns"])
    if not _private_network():
        print("peers: refusing to start Orthanc: this network namespace has more than loopback", file=sys.stderr)
        return 2

    import warnings

    import pacscore

    warnings.filterwarnings("ignore", module="pydicom")
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="pacscore-peers-") as tmp:
        tmp = Path(tmp)
        built = run.build(tmp / "archive", args.instances, args.seed, keep_files=True)
        files = built.pop("files")
        built["files"] = len(files)
        orthanc = Orthanc(tmp)
        try:
            n, spent = 0, 0.0
            for path in files:  # the same files pacscore ingested, read and sent one by one
                t0 = time.perf_counter()
                orthanc.request("POST", "/instances", Path(path).read_bytes())
                spent += time.perf_counter() - t0
                n += 1
            ingest = {"instances": n, "ingest_per_s": round(n / spent, 1), "source": "files"}
            rows = []
            with pacscore.open(tmp / "archive") as arc:
                for name, ident, level, opts in run.resolve_suite(arc):
                    p_times, p_res = run.time_query(
                        lambda: list(arc.find(ident, level=level, format="json", **opts)), args.min_time
                    )
                    o_times, o_res = run.time_query(lambda: orthanc.find(ident, level), args.min_time)
                    p, o = run.summarise(p_times), run.summarise(o_times)
                    rows.append(
                        {
                            "name": name,
                            "level": level,
                            "pacscore_matches": len(p_res),
                            "orthanc_matches": len(o_res),
                            "pacscore_median_ms": p["median_ms"],
                            "pacscore_p95_ms": p["p95_ms"],
                            "orthanc_median_ms": o["median_ms"],
                            "orthanc_p95_ms": o["p95_ms"],
                            "ratio": round(o["median_ms"] / p["median_ms"], 2) if p["median_ms"] else None,
                        }
                    )
        finally:
            orthanc.close()
    result = {
        "pacscore": built,
        "orthanc": ingest,
        "orthanc_version": "1.10",
        "ingest_ratio": round(built["ingest_per_s"] / ingest["ingest_per_s"], 2),
        "implementation": pacscore.IMPLEMENTATION,
        "queries": rows,
    }
    (out / "peers.json").write_text(json.dumps(result, indent=2))
    lines = [
        f"{built['instances']} instances; ingest pacscore {built['ingest_per_s']}/s, Orthanc "
        f"{ingest['ingest_per_s']}/s (pacscore/Orthanc {result['ingest_ratio']})",
        "",
        "| query | level | matches pacscore / Orthanc | pacscore median ms | Orthanc median ms | Orthanc/pacscore |",
        "|---|---|---:|---:|---:|---:|",
    ]
    for r in rows:
        lines.append(
            f"| {r['name']} | {r['level']} | {r['pacscore_matches']} / {r['orthanc_matches']} | "
            f"{r['pacscore_median_ms']} | {r['orthanc_median_ms']} | {r['ratio']} |"
        )
    (out / "peers.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    sys.exit(main())
