"""DIMSE over the wire: DCMTK's findscu and storescu against pacscore, Orthanc, DCMTK's
dcmqrscp and pynetdicom's qrscp app.

    python -m benchmarks.peers --wire [--instances 1000] [--repeat 20] [--out DIR]
    python -m benchmarks.wire [same options]          # the same; both re-execute in a private
                                                      # network namespace (unshare -n, root)
    python -m benchmarks.wire --no-find               # only the C-STORE part (benchmarks/wire_store.py)
    python -m benchmarks.wire --no-store              # only the C-FIND part

Every SCP holds the same generated instances (benchmarks.run.build writes them; pacscore
ingests the files, Orthanc gets them through its REST API, dcmqrscp through dcmqridx,
pynetdicom's qrscp through storescu) and is asked by the same client, DCMTK's findscu, with
Nagle off on both ends (``TCP_NODELAY=1`` in the environment of findscu, Orthanc and dcmqrscp;
pacscore sets it on its sockets; qrscp has no setting for it, so ``python -m benchmarks.wire
qrscp`` sets it on each accepted socket and otherwise runs the app unchanged):

- ``process``: one findscu process (association, one C-FIND of the suite's "exact PatientID",
  release), median of ``--process-runs`` runs, twice over: the wall time of the whole process,
  and the time inside findscu from its "Requesting Association" log line (logged before the
  TCP connect) to its "Action: AR 3 Confirm Release" line (the DUL's trace line when the
  A-RELEASE-RP has arrived), both read from findscu's own log (``--log-config``, a
  PatternLayout with a microsecond timestamp, see ``log_config``). A findscu process spends
  10-20 ms starting, the same for every server; the second figure leaves that out;
- ``per query``: for each query of the suite of benchmarks/run.py, findscu with ``--repeat R``
  and with ``--repeat 1``; (t_R - t_1) / (R - 1) is the cost of one more C-FIND on the kept
  association, reported as queries/s. t is measured inside findscu, from "Requesting
  Association" to "Releasing Association" (logged before the A-RELEASE-RQ is sent):
  association and release cancel out, and so does process start-up;
- ``server CPU / match``: the SCP process's CPU time (/proc, user + system) over the R
  repetitions of the broad query, per returned match (pacscore, Orthanc and qrscp: one
  process each; dcmqrscp forks a child per association, not counted).

Two SCPs are yardsticks, not peers: ``floor`` (benchmarks/null_scp.py) answers every C-FIND with
no match, the client's own floor; ``replay`` (benchmarks/replay_scp.py) sends pacscore's
answer from memory, so Orthanc's time over the replay's is the highest ratio any SCP that
returns pacscore's matches could reach ("at best").

Targets are interleaved query by query. pacscore runs twice: with the wire fast path
(``ServeConfig.fastpath``, the default) and with pynetdicom's stock reactors
(``--no-fastpath``), in its own process (``python -m benchmarks.wire serve``), relational and
combined date-time matching on for every association (the suite needs them; findscu cannot
negotiate them). pynetdicom's qrscp needs SQLAlchemy; without it the qrscp column is left out
(with a message). Prints Markdown tables and writes ``wire.json`` / ``wire.md`` into ``--out``.
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import platform
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from benchmarks import run
from benchmarks.dimse_bench import dcmtk_tool
from benchmarks.orthanc_peer import OrthancServer, _env, wait_port
from benchmarks.peers import _private_network, _quote, stop_child

ROOT = Path(__file__).resolve().parent.parent
CALLING_AE = "FINDSCU"
PORTS = {
    "pacscore": 11112,
    "pacscore-stock": 11113,
    "orthanc": 4242,
    "dcmqrscp": 11114,
    "qrscp": 11115,
    "floor": 11116,
    "replay": 11117,
    "floor-sync": 11118,
}
AE_TITLES = {
    "pacscore": "PACSCORE",
    "pacscore-stock": "PACSCORE",
    "orthanc": "ORTHANC",
    "dcmqrscp": "DCMQRSCP",
    "qrscp": "QRSCP",
    "floor": "FLOOR",
    "replay": "REPLAY",
    "floor-sync": "FLOOR",
}
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


def qrscp_main(argv: list[str]) -> int:
    """``python -m benchmarks.wire qrscp [qrscp options]``: pynetdicom's qrscp app (the one
    ``python -m pynetdicom qrscp`` runs), with Nagle off on each accepted socket like the other
    SCPs (pynetdicom has no setting for it); everything else is the app's own."""
    import socket

    from pynetdicom import transport
    from pynetdicom.apps.qrscp import qrscp

    accept = transport.AssociationServer.get_request

    def get_request(self: transport.AssociationServer) -> tuple[socket.socket, tuple[str, int]]:
        sock, address = accept(self)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        return sock, address

    transport.AssociationServer.get_request = get_request  # type: ignore[method-assign]
    qrscp.main(argv)
    return 0


def qrscp_missing() -> str | None:
    """Why pynetdicom's qrscp app cannot run here (it needs SQLAlchemy), or None."""
    import importlib.util

    return None if importlib.util.find_spec("sqlalchemy") else "SQLAlchemy is not installed (qrscp needs it)"


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


def start_qrscp(folder: Path, name: str = "qrscp") -> Child:
    """pynetdicom's qrscp on an empty database of its own in ``folder`` (config file: port, AE
    title, database file, storage directory)."""
    folder.mkdir(parents=True, exist_ok=True)
    config = folder / "qrscp.ini"
    config.write_text(
        "[DEFAULT]\n"
        f"ae_title: {AE_TITLES['qrscp']}\nport: {PORTS['qrscp']}\nmax_pdu: 16382\n"
        "acse_timeout: 30\ndimse_timeout: 30\nnetwork_timeout: 30\nbind_address: 127.0.0.1\n"
        f"instance_location: {folder / 'instances'}\ndatabase_location: {folder / 'instances.sqlite'}\n"
        "log_identifier: False\n"
    )
    command = [sys.executable, "-m", "benchmarks.wire", "qrscp", "-c", str(config)]
    return Child(name, command, folder, PORTS["qrscp"], env=_env())


def storescu(target: str, files: list[str], calling_ae: str = "STORESCU") -> subprocess.Popen:
    """One storescu process sending ``files`` on one association (Nagle off)."""
    args = ["storescu", "-aet", calling_ae, "-aec", AE_TITLES[target], "127.0.0.1", str(PORTS[target]), *files]
    env = dict(os.environ, TCP_NODELAY="1")
    return subprocess.Popen(args, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)


def store_all(target: str, files: list[str]) -> None:
    """C-STORE ``files`` to ``target`` on one association; raises when storescu failed."""
    proc = storescu(target, files)
    err, _ = proc.communicate(timeout=1800)
    if proc.returncode != 0:
        raise RuntimeError(f"storescu to {target} failed: {err.decode(errors='replace')[-500:]}")


def qrscp_count(folder: Path) -> tuple[int, int]:
    """(files in qrscp's storage directory, rows of its instance table)."""
    import sqlite3

    files = sum(1 for _ in (folder / "instances").iterdir()) if (folder / "instances").exists() else 0
    db = sqlite3.connect(f"file:{folder / 'instances.sqlite'}?mode=ro", uri=True)
    try:
        rows = db.execute("SELECT COUNT(*) FROM instance").fetchone()[0]
    finally:
        db.close()
    return files, rows


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
#: findscu's log lines that bound the time measured inside it (see the module docstring)
START_LINE = "Requesting Association"  # INFO (findscu), before the TCP connect
RELEASED_LINE = "Confirm Release"  # TRACE (dcmnet DUL, "Action: AR 3 Confirm Release"): A-RELEASE-RP arrived
RELEASING_LINE = "Releasing Association"  # INFO (findscu), before the A-RELEASE-RQ is sent
#: a line of ``log_config``'s layout: local time with milliseconds and microseconds (%Q: "123.456")
STAMPED = re.compile(r"^(\d{2}):(\d{2}):(\d{2})\.(\d{3})\.(\d{3}) (.*)$")


def log_config(end_line: str) -> str:
    """A DCMTK oflog (log4cplus) configuration for ``findscu --log-config``: a microsecond
    timestamp on every line, and only the lines holding START_LINE or ``end_line`` written
    (StringMatchFilter; a multi-line message is matched as a whole). RELEASED_LINE is a trace
    line of dcmnet, so dcmnet logs at TRACE; other loggers stay at INFO."""
    lines = [
        "log4cplus.rootLogger = INFO, out",
        "log4cplus.logger.dcmtk.dcmnet = " + ("TRACE" if end_line == RELEASED_LINE else "INFO"),
        "log4cplus.appender.out = log4cplus::ConsoleAppender",
        "log4cplus.appender.out.layout = log4cplus::PatternLayout",
        "log4cplus.appender.out.layout.ConversionPattern = %D{%H:%M:%S.%Q} %m%n",
    ]
    for i, text in enumerate((START_LINE, end_line), 1):
        lines += [
            f"log4cplus.appender.out.filters.{i} = log4cplus::spi::StringMatchFilter",
            f"log4cplus.appender.out.filters.{i}.StringToMatch = {text}",
            f"log4cplus.appender.out.filters.{i}.AcceptOnMatch = true",
        ]
    lines.append("log4cplus.appender.out.filters.3 = log4cplus::spi::DenyAllFilter")
    return "\n".join(lines) + "\n"


def findscu_span(text: str, end_line: str = RELEASED_LINE, start_line: str = START_LINE) -> float:
    """Seconds from findscu's first ``start_line`` to its last ``end_line``, from the timestamps of
    a ``log_config`` log; raises ValueError when either line is missing (a failed run)."""
    start = end = None
    for line in text.splitlines():
        m = STAMPED.match(line.strip())
        if m is None:
            continue
        h, mi, sec, ms, us = (int(g) for g in m.groups()[:5])
        t = h * 3600 + mi * 60 + sec + ms / 1e3 + us / 1e6
        if start is None and start_line in m.group(6):
            start = t
        elif start is not None and end_line in m.group(6):
            end = t
    if start is None or end is None:
        missing = start_line if start is None else end_line
        raise ValueError(f"findscu's log has no {missing!r} line: {text[-300:]!r}")
    return end - start if end >= start else end - start + 86400  # past midnight


def findscu_args(
    target: str, ident: dict, level: str, repeat: int = 1, verbose: bool = False, log: Path | None = None
) -> list[str]:
    args = ["findscu", "-S", "-aet", CALLING_AE, "-aec", AE_TITLES[target], "-k", f"QueryRetrieveLevel={level}"]
    for key, value in ident.items():
        args += ["-k", f"{key}={value}" if value != "" else key]
    if repeat > 1:
        args += ["--repeat", str(repeat)]
    if verbose:
        args.append("-v")
    elif log is not None:  # findscu refuses --log-config beside -v
        args += ["--log-config", str(log)]
    return [*args, "127.0.0.1", str(PORTS[target])]


def timed(args: list[str], end_line: str | None = None) -> tuple[float, float | None]:
    """(wall seconds of the findscu process, seconds inside it up to ``end_line`` or None)."""
    env = dict(os.environ, TCP_NODELAY="1")
    t0 = time.perf_counter()
    proc = subprocess.run(args, env=env, capture_output=True, timeout=600)
    spent = time.perf_counter() - t0
    if proc.returncode != 0:
        raise RuntimeError(f"{' '.join(args)} failed: {proc.stderr.decode(errors='replace')[-500:]}")
    text = (proc.stdout + proc.stderr).decode(errors="replace")
    return spent, findscu_span(text, end_line) if end_line else None


def matches(target: str, ident: dict, level: str) -> tuple[int, str]:
    """How many pending responses one query gets, and the final status findscu logged."""
    env = dict(os.environ, TCP_NODELAY="1")
    proc = subprocess.run(findscu_args(target, ident, level, verbose=True), env=env, capture_output=True)
    out = (proc.stdout + proc.stderr).decode(errors="replace")  # values may be in any character set
    pending = sum(1 for line in out.splitlines() if "Find Response:" in line and "(Pending)" in line)
    final = [line.split("(")[-1].rstrip(")") for line in out.splitlines() if "Find Response:" in line]
    status = final[-1] if final else f"exit {proc.returncode}"
    return pending, status


def cpu_seconds(pid: int) -> float:
    """User + system CPU of a process (Linux /proc; clock ticks)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


# ---- the run --------------------------------------------------------------------------------------
def measure(targets: dict, suite: list, repeat: int, process_runs: int, folder: Path) -> dict:
    logs = {}
    for end_line in (RELEASED_LINE, RELEASING_LINE):
        logs[end_line] = folder / f"findscu-{len(logs)}.logcfg"
        logs[end_line].write_text(log_config(end_line))
    out: dict = {"process_ms": {}, "association_ms": {}, "queries": []}
    ident, level = next((i, lv) for n, i, lv, _ in suite if n == PROCESS_QUERY)
    samples: dict[str, list[float]] = {t: [] for t in targets}
    inside: dict[str, list[float]] = {t: [] for t in targets}
    for _ in range(process_runs):
        for target in targets:  # interleaved
            wall, span = timed(findscu_args(target, ident, level, log=logs[RELEASED_LINE]), RELEASED_LINE)
            samples[target].append(wall)
            inside[target].append(span or 0.0)
    out["process_ms"] = {t: round(statistics.median(s) * 1e3, 1) for t, s in samples.items()}
    out["association_ms"] = {t: round(statistics.median(s) * 1e3, 2) for t, s in inside.items()}
    for name, ident, level, _opts in suite:
        row: dict = {"name": name, "level": level, "matches": {}, "status": {}, "per_query_ms": {}, "qps": {}}
        for target in targets:
            row["matches"][target], row["status"][target] = matches(target, ident, level)
        per_query: dict[str, list[float]] = {t: [] for t in targets}
        per_query_wall: dict[str, list[float]] = {t: [] for t in targets}
        cpu: dict[str, float] = {}
        for _ in range(3):
            for target, child in targets.items():
                log = logs[RELEASING_LINE]
                one_wall, one = timed(findscu_args(target, ident, level, log=log), RELEASING_LINE)
                before = cpu_seconds(child.pid) if child is not None else None
                many_wall, many = timed(findscu_args(target, ident, level, repeat=repeat, log=log), RELEASING_LINE)
                if before is not None and name == BROAD_QUERY:
                    cpu[target] = cpu.get(target, 0.0) + cpu_seconds(child.pid) - before
                per_query[target].append(max((many or 0.0) - (one or 0.0), 0.0) / (repeat - 1))
                per_query_wall[target].append(max(many_wall - one_wall, 0.0) / (repeat - 1))
        row["per_query_wall_ms"] = {t: round(statistics.median(v) * 1e3, 2) for t, v in per_query_wall.items()}
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


def _ratio(a: float | None, b: float | None) -> str:
    return str(round(a / b, 2)) if a and b else ""


def _share_ratio(row: dict) -> str:
    """Orthanc's time per query over pacscore's, each less the do-nothing SCP's (the client's)."""
    ms = row["per_query_ms"]
    if not all(ms.get(t) for t in ("pacscore", "orthanc", "floor")):
        return ""
    return _ratio(ms["orthanc"] - ms["floor"], ms["pacscore"] - ms["floor"])


def markdown(result: dict) -> str:
    """The Markdown tables of a run: the C-FIND part when it ran, then the C-STORE part."""
    lines: list[str] = []
    if "queries" in result:
        lines += markdown_find(result)
    if "store" in result:
        from benchmarks import wire_store

        lines += ["", *wire_store.markdown(result["store"])] if lines else wire_store.markdown(result["store"])
    return "\n".join(lines) + "\n"


def markdown_find(result: dict) -> list[str]:
    targets = result["targets"]
    lines = [
        f"{result['instances']} instances, findscu (DCMTK {result['dcmtk']}), Nagle off on both ends, "
        f"--repeat {result['repeat']}, median of {result['process_runs']} processes; {result['machine']}",
        "",
        f"| {PROCESS_QUERY}: association + C-FIND + release, ms | " + " | ".join(targets) + " | Orthanc / pacscore |",
        "|---|" + "---:|" * (len(targets) + 1),
    ]
    for label, key in (("whole findscu process", "process_ms"), ("inside findscu (its log)", "association_ms")):
        p = result[key]
        ratio = _ratio(p.get("orthanc"), p.get("pacscore"))
        lines.append(f"| {label} | " + " | ".join(str(p[t]) for t in targets) + f" | {ratio} |")
    inside = result["association_ms"]
    if "floor" in inside:  # each SCP's own share: what it adds to the do-nothing SCP's time
        share = {t: round(inside[t] - inside["floor"], 2) for t in targets}
        ratio = _ratio(share.get("orthanc"), share.get("pacscore"))
        lines.append(
            "| the SCP's share (inside − floor) | " + " | ".join(str(share[t]) for t in targets) + f" | {ratio} |"
        )
    if "replay" in inside and "orthanc" in inside:
        lines += [
            "",
            f"At best (an SCP sending pacscore's answer from memory, the replay column): Orthanc / replay "
            f"{_ratio(inside['orthanc'], inside['replay'])} inside findscu, "
            f"{_ratio(result['process_ms']['orthanc'], result['process_ms']['replay'])} for the whole process.",
        ]
    bound = "replay" in targets and "orthanc" in targets
    lines += [
        "",
        "| kept association, C-FIND q/s | level | matches "
        + " / ".join(targets)
        + " | "
        + " | ".join(targets)
        + " | pacscore / Orthanc | SCP's share, Orthanc / pacscore |"
        + (" at best: replay / Orthanc |" if bound else ""),
        "|---|---|---|" + "---:|" * (len(targets) + 2 + bound),
    ]
    for row in result["queries"]:
        m = " / ".join(str(row["matches"][t]) for t in targets)
        q = row["qps"]
        lines.append(
            f"| {row['name']} | {row['level']} | {m} | "
            + " | ".join(str(q[t] if q[t] is not None else "–") for t in targets)
            + f" | {_ratio(q.get('pacscore'), q.get('orthanc'))} | {_share_ratio(row)} |"
            + (f" {_ratio(q.get('replay'), q.get('orthanc'))} |" if bound else "")
        )
    for row in result["queries"]:
        if "server_cpu_us_per_match" in row:
            cpu = row["server_cpu_us_per_match"]
            lines += [
                "",
                f"server CPU per returned match ({row['name']}, {row['matches'].get('pacscore')} matches × "
                f"{3 * result['repeat']}): " + ", ".join(f"{t} {v} µs" for t, v in cpu.items()),
            ]
    return lines


def find_part(folder: Path, args: argparse.Namespace) -> dict:
    """Load every C-FIND SCP with the same instances, measure, stop them."""
    import pacscore

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
                folder / "orthanc", calling_aes=(CALLING_AE,), dicomweb=False, nodelay=True, dicom_port=PORTS["orthanc"]
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
        why = None if args.qrscp else "--no-qrscp"
        why = why or qrscp_missing() or (None if shutil.which("storescu") else "storescu is not installed")
        if why is None:
            qrscp = start_qrscp(folder / "qrscp")
            children.append(qrscp)
            store_all("qrscp", files)
            stored = qrscp_count(folder / "qrscp")
            if stored != (len(files), len(files)):
                raise RuntimeError(f"qrscp holds {stored} (files, rows) of the {len(files)} instances sent")
            targets["qrscp"] = qrscp
        elif args.qrscp:
            print(f"wire: pynetdicom's qrscp left out: {why}", file=sys.stderr)
        # a do-nothing SCP timed by the same client: findscu's own share (benchmarks/null_scp.py)
        floor = Child(
            "floor", [sys.executable, "-m", "benchmarks.null_scp", str(PORTS["floor"])], folder, PORTS["floor"]
        )
        children.append(floor)
        targets["floor"] = floor
        # pacscore's answers sent from memory: what the client spends on them (benchmarks/replay_scp.py)
        replay = Child(
            "replay",
            [sys.executable, "-m", "benchmarks.replay_scp", str(folder / "archive"), str(PORTS["replay"])],
            folder,
            PORTS["replay"],
        )
        children.append(replay)
        targets["replay"] = None  # a bound, not an SCP: no CPU figure
        result = measure(targets, suite, args.repeat, args.process_runs, folder)
    finally:
        for child in children:
            child.stop()
        if orthanc is not None:
            orthanc.stop()
    result.update(
        {
            "instances": built["instances"],
            "repeat": args.repeat,
            "process_runs": args.process_runs,
            "targets": list(targets),
        }
    )
    return result


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["serve"]:
        return serve_main(argv[1:])
    if argv[:1] == ["qrscp"]:
        return qrscp_main(argv[1:])
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--instances", type=int, default=1000)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--repeat", type=int, default=50, help="C-FINDs per kept association")
    parser.add_argument("--process-runs", type=int, default=15)
    parser.add_argument("--out", default="bench-out")
    parser.add_argument("--find", action=argparse.BooleanOptionalAction, default=True, help="the C-FIND part")
    parser.add_argument(
        "--store", action=argparse.BooleanOptionalAction, default=True, help="the C-STORE part (wire_store.py)"
    )
    parser.add_argument("--store-instances", type=int, default=1000)
    parser.add_argument("--store-runs", type=int, default=3)
    parser.add_argument("--no-dcmqrscp", action="store_true")
    parser.add_argument("--no-qrscp", dest="qrscp", action="store_false", help="leave pynetdicom's qrscp app out")
    parser.add_argument("--in-netns", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    dcmtk_findscu = dcmtk_tool("findscu")
    if dcmtk_findscu is not None:  # DCMTK's tools before pynetdicom's scripts of the same names
        os.environ["PATH"] = os.pathsep.join([str(Path(dcmtk_findscu).parent), os.environ.get("PATH", "")])
    for tool in ("findscu",) * args.find + ("storescu",) * args.store:
        if dcmtk_tool(tool) is None:
            print(f"wire: DCMTK's {tool} is not installed (apt-get install dcmtk)", file=sys.stderr)
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
    from benchmarks import wire_store

    warnings.filterwarnings("ignore", module="pydicom")
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    dcmtk = subprocess.run(["findscu", "--version"], capture_output=True, text=True).stdout.split("\n")[0]
    result: dict[str, Any] = {
        "dcmtk": dcmtk.split()[2] if len(dcmtk.split()) > 2 else dcmtk,
        "machine": f"{platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}",
        "implementation": pacscore.IMPLEMENTATION,
    }
    with tempfile.TemporaryDirectory(prefix="pacscore-wire-") as tmp:
        folder = Path(tmp)
        if args.find:
            (folder / "find").mkdir()
            result.update(find_part(folder / "find", args))
            write(out, result)  # kept even if the C-STORE part fails
        if args.store:
            (folder / "store").mkdir()
            options = {"dcmqrscp": args.no_dcmqrscp is False, "qrscp": args.qrscp}
            store = wire_store.measure(folder / "store", args.store_instances, args.seed, args.store_runs, options)
            result["store"] = store
            result["store"]["machine"] = result["machine"]
    print(write(out, result))
    return 1 if result.get("store", {}).get("problems") else 0


def write(out: Path, result: dict) -> str:
    """Write wire.json and wire.md into ``out``; returns the Markdown."""
    (out / "wire.json").write_text(json.dumps(result, indent=2))
    text = markdown(result)
    (out / "wire.md").write_text(text)
    return text


if __name__ == "__main__":
    sys.exit(main())
