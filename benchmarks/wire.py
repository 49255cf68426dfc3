"""DIMSE over the wire: DCMTK's findscu against pacscore, Orthanc and DCMTK's dcmqrscp.

    python -m benchmarks.peers --wire [--instances 1000] [--repeat 20] [--out DIR]
    python -m benchmarks.wire [same options]          # the same; both re-execute in a private
                                                      # network namespace (unshare -n, root)

Every SCP holds the same generated instances (benchmarks.run.build writes them; pacscore
ingests the files, Orthanc gets them through its REST API, dcmqrscp through dcmqridx) and is
asked by the same client, DCMTK's findscu, with Nagle off on both ends (``TCP_NODELAY=1`` in
the environment of findscu, Orthanc and dcmqrscp; pacscore sets it on its sockets):

- ``process``: one findscu process (association, one C-FIND of the suite's "exact PatientID",
  release), median wall time of ``--process-runs`` runs;
- ``per query``: for each of the 14 queries of benchmarks/run.py, findscu with ``--repeat R``
  and with ``--repeat 1``; (t_R - t_1) / (R - 1) is the cost of one more C-FIND on the kept
  association (process start and association cancel out), reported as queries/s;
- ``server CPU / match``: the SCP process's CPU time (/proc, user + system) over the R
  repetitions of the broad query, per returned match (pacscore and Orthanc: one process each;
  dcmqrscp forks a child per association, not counted).

Targets are interleaved query by query. pacscore runs twice: with the wire fast path
(``ServeConfig.fastpath``, the default) and with pynetdicom's stock reactors
(``--no-fastpath``), in its own process (``python -m benchmarks.wire serve``), relational and
combined date-time matching on for every association (the suite needs them; findscu cannot
negotiate them). Prints a Markdown table and writes ``wire.json`` / ``wire.md`` into ``--out``.
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from benchmarks import run
from benchmarks.orthanc_peer import OrthancServer, _env, wait_port
from benchmarks.peers import _private_network, _quote, stop_child

ROOT = Path(__file__).resolve().parent.parent
CALLING_AE = "FINDSCU"
PORTS = {"pacscore": 11112, "pacscore-stock": 11113, "orthanc": 4242, "dcmqrscp": 11114}
AE_TITLES = {"pacscore": "PACSCORE", "pacscore-stock": "PACSCORE", "orthanc": "ORTHANC", "dcmqrscp": "DCMQRSCP"}
PROCESS_QUERY = "exact PatientID"
BROAD_QUERY = "broad: all studies since 2005"


# ---- the SCPs ----------------------------------------------------------------------------------
def serve_main(argv: list[str]) -> int:
    """``python -m benchmarks.wire serve ARCHIVE PORT [--no-fastpath]``: pacscore's SCP for the
    benchmark, in this process until SIGTERM."""
    import signal

    import pacscore
    from pacscore.adapters import dimse

    parser = argparse.ArgumentParser(prog="benchmarks.wire serve")
    parser.add_argument("archive")
    parser.add_argument("port", type=int)
    parser.add_argument("--no-fastpath", action="store_true")
    args = parser.parse_args(argv)

    def stop(*_):
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, stop)
    handlers = dimse.DimseConfig(strict_negotiation=False, find_options={"relational": True, "combined_datetime": True})
    with pacscore.open(args.archive) as arc:
        config = dimse.ServeConfig(
            port=args.port, handlers=handlers, fastpath=not args.no_fastpath, max_associations=50, block=True
        )
        dimse.serve(arc, config)
    return 0


class Child:
    """A server process this script started (stopped by its own handle)."""

    def __init__(self, name: str, command: list[str], folder: Path, port: int, env: dict | None = None) -> None:
        self.name = name
        self.log = open(folder / f"{name}.log", "w")  # noqa: SIM115 - lives as long as the process
        self.proc = subprocess.Popen(command, cwd=ROOT, env=env, stdout=self.log, stderr=subprocess.STDOUT)
        try:
            wait_port(port, self.proc, timeout=120)
        except RuntimeError:
            self.stop()  # ours: never leave it running
            raise

    @property
    def pid(self) -> int:
        return self.proc.pid

    def stop(self) -> None:
        stop_child(self.proc, self.log)


def start_pacscore(archive: Path, folder: Path, fastpath: bool) -> Child:
    name = "pacscore" if fastpath else "pacscore-stock"
    command = [sys.executable, "-m", "benchmarks.wire", "serve", str(archive), str(PORTS[name])]
    return Child(name, command + ([] if fastpath else ["--no-fastpath"]), folder, PORTS[name], env=_env())


def start_dcmqrscp(files: list[str], folder: Path) -> Child:
    db = folder / "dcmqrscp-db"
    db.mkdir()
    config = folder / "dcmqrscp.cfg"
    config.write_text(
        f"NetworkTCPPort = {PORTS['dcmqrscp']}\nMaxPDUSize = 16384\nMaxAssociations = 16\n"
        "HostTable BEGIN\nHostTable END\nVendorTable BEGIN\nVendorTable END\n"
        f"AETable BEGIN\nDCMQRSCP {db} RW (100000, 4096mb) ANY\nAETable END\n"
    )
    for i in range(0, len(files), 200):  # dcmqridx registers the files where they are
        subprocess.run(["dcmqridx", str(db), *files[i : i + 200]], check=True, capture_output=True)
    env = dict(os.environ, TCP_NODELAY="1")
    return Child("dcmqrscp", ["dcmqrscp", "-c", str(config)], folder, PORTS["dcmqrscp"], env=env)


def load_orthanc(orthanc: OrthancServer, files: list[str]) -> None:
    conn = http.client.HTTPConnection("127.0.0.1", orthanc.http_port, timeout=600)
    try:
        for path in files:
            conn.request(
                "POST", "/instances", body=Path(path).read_bytes(), headers={"Content-Type": "application/dicom"}
            )
            resp = conn.getresponse()
            resp.read()
            if resp.status >= 400:
                raise RuntimeError(f"Orthanc refused {path}: {resp.status}")
    finally:
        conn.close()


# ---- the client ----------------------------------------------------------------------------------
def findscu_args(target: str, ident: dict, level: str, repeat: int = 1, verbose: bool = False) -> list[str]:
    args = ["findscu", "-S", "-aet", CALLING_AE, "-aec", AE_TITLES[target], "-k", f"QueryRetrieveLevel={level}"]
    for key, value in ident.items():
        args += ["-k", f"{key}={value}" if value != "" else key]
    if repeat > 1:
        args += ["--repeat", str(repeat)]
    if verbose:
        args.append("-v")
    return [*args, "127.0.0.1", str(PORTS[target])]


def timed(args: list[str]) -> float:
    env = dict(os.environ, TCP_NODELAY="1")
    t0 = time.perf_counter()
    proc = subprocess.run(args, env=env, capture_output=True, timeout=600)
    spent = time.perf_counter() - t0
    if proc.returncode != 0:
        raise RuntimeError(f"{' '.join(args)} failed: {proc.stderr.decode(errors='replace')[-500:]}")
    return spent


def matches(target: str, ident: dict, level: str) -> tuple[int, str]:
    """How many pending responses one query gets, and the final status findscu logged."""
    env = dict(os.environ, TCP_NODELAY="1")
    proc = subprocess.run(findscu_args(target, ident, level, verbose=True), env=env, capture_output=True, text=True)
    out = proc.stdout + proc.stderr
    pending = sum(1 for line in out.splitlines() if "Find Response:" in line and "(Pending)" in line)
    final = [line.split("(")[-1].rstrip(")") for line in out.splitlines() if "Find Response:" in line]
    status = final[-1] if final else f"exit {proc.returncode}"
    return pending, status


def cpu_seconds(pid: int) -> float:
    """User + system CPU of a process (Linux /proc; clock ticks)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


# ---- the run --------------------------------------------------------------------------------------
def measure(targets: dict, suite: list, repeat: int, process_runs: int) -> dict:
    out: dict = {"process_ms": {}, "queries": []}
    ident, level = next((i, lv) for n, i, lv, _ in suite if n == PROCESS_QUERY)
    samples: dict[str, list[float]] = {t: [] for t in targets}
    for _ in range(process_runs):
        for target in targets:  # interleaved
            samples[target].append(timed(findscu_args(target, ident, level)))
    out["process_ms"] = {t: round(statistics.median(s) * 1e3, 1) for t, s in samples.items()}
    for name, ident, level, _opts in suite:
        row: dict = {"name": name, "level": level, "matches": {}, "status": {}, "per_query_ms": {}, "qps": {}}
        for target in targets:
            row["matches"][target], row["status"][target] = matches(target, ident, level)
        per_query: dict[str, list[float]] = {t: [] for t in targets}
        cpu: dict[str, float] = {}
        for _ in range(3):
            for target, child in targets.items():
                one = timed(findscu_args(target, ident, level))
                before = cpu_seconds(child.pid) if child is not None else None
                many = timed(findscu_args(target, ident, level, repeat=repeat))
                if before is not None and name == BROAD_QUERY:
                    cpu[target] = cpu.get(target, 0.0) + cpu_seconds(child.pid) - before
                per_query[target].append(max(many - one, 0.0) / (repeat - 1))
        for target, values in per_query.items():
            ms = statistics.median(values) * 1e3
            row["per_query_ms"][target] = round(ms, 2)
            row["qps"][target] = round(1e3 / ms, 1) if ms > 0 else None
        if cpu:
            row["server_cpu_us_per_match"] = {
                t: round(c / (3 * repeat * row["matches"][t]) * 1e6, 1) for t, c in cpu.items() if row["matches"][t]
            }
        out["queries"].append(row)
    return out


def markdown(result: dict) -> str:
    targets = result["targets"]
    lines = [
        f"{result['instances']} instances, findscu (DCMTK {result['dcmtk']}), Nagle off on both ends, "
        f"--repeat {result['repeat']}; {result['machine']}",
        "",
        "| whole findscu process (association + C-FIND + release), ms | "
        + " | ".join(targets)
        + " | Orthanc / pacscore |",
        "|---|" + "---:|" * (len(targets) + 1),
    ]
    p = result["process_ms"]
    ratio = round(p["orthanc"] / p["pacscore"], 2) if "orthanc" in p and p.get("pacscore") else ""
    lines.append(f"| {PROCESS_QUERY} | " + " | ".join(str(p[t]) for t in targets) + f" | {ratio} |")
    lines += [
        "",
        "| kept association, C-FIND q/s | level | matches | " + " | ".join(targets) + " | pacscore / Orthanc |",
        "|---|---|---|" + "---:|" * (len(targets) + 1),
    ]
    for row in result["queries"]:
        m = " / ".join(str(row["matches"][t]) for t in targets)
        q = row["qps"]
        ratio = round(q["pacscore"] / q["orthanc"], 2) if q.get("orthanc") and q.get("pacscore") else ""
        lines.append(
            f"| {row['name']} | {row['level']} | {m} | " + " | ".join(str(q[t]) for t in targets) + f" | {ratio} |"
        )
    for row in result["queries"]:
        if "server_cpu_us_per_match" in row:
            cpu = row["server_cpu_us_per_match"]
            lines += [
                "",
                f"server CPU per returned match ({row['name']}): " + ", ".join(f"{t} {v} µs" for t, v in cpu.items()),
            ]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["serve"]:
        return serve_main(argv[1:])
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--instances", type=int, default=1000)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--repeat", type=int, default=50, help="C-FINDs per kept association")
    parser.add_argument("--process-runs", type=int, default=15)
    parser.add_argument("--out", default="bench-out")
    parser.add_argument("--no-dcmqrscp", action="store_true")
    parser.add_argument("--in-netns", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if shutil.which("findscu") is None:
        print("wire: DCMTK's findscu is not installed (apt-get install dcmtk)", file=sys.stderr)
        return 2
    if not args.in_netns:
        if shutil.which("unshare") is None or shutil.which("ip") is None:
            print("wire: unshare or ip is missing; not starting servers outside a private network", file=sys.stderr)
            return 2
        inner = " ".join([sys.executable, "-m", "benchmarks.wire", "--in-netns", *map(_quote, argv)])
        return subprocess.call(["unshare", "-n", "sh", "-c", f"ip link set lo up && exec {inner}"], cwd=ROOT)
    if not _private_network():
        print("wire: refusing to start servers: this network namespace has more than loopback", file=sys.stderr)
        return 2

    import warnings

    import pacscore

    warnings.filterwarnings("ignore", module="pydicom")
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="pacscore-wire-") as tmp:
        folder = Path(tmp)
        built = run.build(folder / "archive", args.instances, args.seed, keep_files=True)
        files = built.pop("files")
        with pacscore.open(folder / "archive") as arc:
            suite = run.resolve_suite(arc)
        children: list = []
        targets: dict = {}
        orthanc = None
        try:
            for name, fast in (("pacscore", True), ("pacscore-stock", False)):
                targets[name] = start_pacscore(folder / "archive", folder, fastpath=fast)
                children.append(targets[name])  # stopped below whatever fails later
            if shutil.which("Orthanc"):
                (folder / "orthanc").mkdir()
                orthanc = OrthancServer(
                    folder / "orthanc",
                    calling_aes=(CALLING_AE,),
                    dicomweb=False,
                    nodelay=True,
                    dicom_port=PORTS["orthanc"],
                )
                load_orthanc(orthanc, files)
                targets["orthanc"] = orthanc.proc  # has .pid
            if not args.no_dcmqrscp and shutil.which("dcmqrscp"):
                try:
                    children.append(start_dcmqrscp(files, folder))
                    targets["dcmqrscp"] = None  # forks per association: no CPU figure
                except (subprocess.CalledProcessError, RuntimeError) as exc:  # e.g. dcmqridx aborts
                    reason = f"exit {exc.returncode}" if isinstance(exc, subprocess.CalledProcessError) else exc
                    print(f"wire: dcmqrscp left out, it could not be loaded ({reason})", file=sys.stderr)
            result = measure(targets, suite, args.repeat, args.process_runs)
        finally:
            for child in children:
                child.stop()
            if orthanc is not None:
                orthanc.stop()
    dcmtk = subprocess.run(["findscu", "--version"], capture_output=True, text=True).stdout.split("\n")[0]
    result.update(
        {
            "instances": built["instances"],
            "repeat": args.repeat,
            "targets": list(targets),
            "dcmtk": dcmtk.split()[2] if len(dcmtk.split()) > 2 else dcmtk,
            "machine": f"{platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}",
            "implementation": pacscore.IMPLEMENTATION,
        }
    )
    (out / "wire.json").write_text(json.dumps(result, indent=2))
    text = markdown(result)
    (out / "wire.md").write_text(text)
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
