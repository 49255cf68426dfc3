"""Orthanc as a peer over the wire: conformance and benchmarks in a private network namespace.

    python -m benchmarks.orthanc_peer conformance [--seed 1] [--queries 70]
    python -m benchmarks.orthanc_peer bench [--instances 300] [--repeat 3] [--clients 1]
    python -m benchmarks.orthanc_peer qido [--instances 300] [--repeat 3] [--clients 1]

Orthanc 1.10 listens on every interface and cannot bind one address, so this script re-executes
itself under ``unshare -n`` (a network namespace holding only loopback, brought up with
``ip link set lo up``; needs root) and refuses to start Orthanc anywhere else. Inside, it starts
Orthanc from a throw-away folder (DICOM on 127.0.0.1:4242 as AE ``ORTHANC``, the calling AEs
listed in ``DicomModalities``, ``DefaultEncoding: Utf8``, HTTP on 8042 for loopback only, the
DICOMweb plugin at ``/dicom-web`` when it is installed), runs the pacscore command line against
it, stops Orthanc and prints one JSON document:

- ``conformance``: ``pacscore conformance dimse://ORTHANC@127.0.0.1:4242 --json``; exits with
  that command's code (1 when deviations were found).
- ``bench``: serves an empty archive with ``pacscore serve dimse`` (AE ``PACSCORE``, port
  11112) and runs ``pacscore bench dimse://PACSCORE@... --compare dimse://ORTHANC@...
  --generate N --json``: the generated instances go to both through C-STORE, then both answer
  the suite of benchmarks/run.py over C-FIND.
- ``qido``: the same with ``pacscore serve web`` (port 8043) and Orthanc's DICOMweb plugin
  (STOW-RS, then QIDO-RS); exits 3 when the plugin is not installed.

``--orthanc-nodelay`` starts Orthanc with ``TCP_NODELAY=1`` in its environment: its DICOM layer
(DCMTK) then switches Nagle's algorithm off. Without it every C-FIND answered by Orthanc waits
for the client's delayed ACK (about 40 ms on Linux); pacscore's adapter and client switch Nagle
off by default.

The JSON holds the exact commands run (``commands``), their exit codes, Orthanc's version and
plugins, and the parsed output of the pacscore command (``result``).
"""

from __future__ import annotations

import argparse
import glob
import http.client
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from benchmarks.peers import _private_network, _quote, stop_child

ROOT = Path(__file__).resolve().parent.parent
ORTHANC_AE, ORTHANC_DICOM, ORTHANC_HTTP = "ORTHANC", 4242, 8042
PACSCORE_AE, PACSCORE_DIMSE, PACSCORE_WEB = "PACSCORE", 11112, 8043
CALLING_AES = ("PACSCORE-TEST", "PACSCORE-BENCH")
#: where Debian's orthanc-dicomweb puts the plugin
PLUGIN_GLOBS = (
    "/usr/share/orthanc/plugins/libOrthancDicomWeb.so*",
    "/usr/lib/orthanc/libOrthancDicomWeb.so*",
    "/usr/lib/*/orthanc/plugins/libOrthancDicomWeb.so*",
)
NO_PLUGIN = 3  # exit code of ``qido`` when the DICOMweb plugin is not installed


def orthanc_installed() -> bool:
    return shutil.which("Orthanc") is not None


def dicomweb_plugin() -> str | None:
    """The path of Orthanc's DICOMweb plugin (package orthanc-dicomweb), or None."""
    for pattern in PLUGIN_GLOBS:
        found = sorted(glob.glob(pattern))
        if found:
            return found[0]
    return None


def can_isolate() -> str | None:
    """None when this process can start Orthanc in a private network namespace, else why not."""
    if not orthanc_installed():
        return "Orthanc is not installed (apt-get install orthanc)"
    for tool in ("unshare", "ip"):
        if shutil.which(tool) is None:
            return f"{tool} is not available (util-linux / iproute2)"
    if os.geteuid() != 0:
        return "not root: unshare -n needs root to make a private network namespace"
    probe = subprocess.run(["unshare", "-n", "sh", "-c", "ip link set lo up"], capture_output=True, text=True)
    if probe.returncode != 0:  # e.g. a container without CAP_SYS_ADMIN / NET_ADMIN
        return f"cannot make a private network namespace: {probe.stderr.strip()[:200]}"
    return None


def wait_port(port: int, proc: subprocess.Popen | None = None, timeout: float = 30) -> None:
    """Wait until 127.0.0.1:port accepts connections (or ``proc`` died)."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1):
                return
        except OSError:
            if (proc is not None and proc.poll() is not None) or time.monotonic() > deadline:
                raise RuntimeError(f"nothing listens on 127.0.0.1:{port}") from None
            time.sleep(0.05)


class OrthancServer:
    """Orthanc started from ``config`` in ``folder`` (this network namespace must be loopback only)."""

    def __init__(
        self,
        folder: Path,
        *,
        dicom_port: int = ORTHANC_DICOM,
        http_port: int = ORTHANC_HTTP,
        calling_aes=CALLING_AES,
        dicomweb: bool = True,
        nodelay: bool = False,
        **extra,
    ) -> None:
        if not _private_network():
            raise RuntimeError("refusing to start Orthanc: this network namespace has more than loopback")
        self.folder, self.dicom_port, self.http_port = Path(folder), dicom_port, http_port
        plugin = dicomweb_plugin() if dicomweb else None
        self.config = {
            "Name": "pacscore-interop",
            "StorageDirectory": str(self.folder / "db"),
            "IndexDirectory": str(self.folder / "db"),
            "StorageCompression": False,
            "HttpServerEnabled": True,
            "HttpPort": http_port,
            "RemoteAccessAllowed": False,
            "AuthenticationEnabled": False,
            "HttpCompressionEnabled": False,
            "SslEnabled": False,
            "DicomServerEnabled": True,
            "DicomAet": ORTHANC_AE,
            "DicomPort": dicom_port,
            "DicomCheckCalledAet": False,
            "DicomAlwaysAllowStore": True,
            "DicomAlwaysAllowEcho": True,
            "DicomCheckModalityHost": False,
            "DicomScpTimeout": 60,
            "UnknownSopClassAccepted": True,
            "DicomModalities": {ae.lower(): [ae, "127.0.0.1", 104] for ae in calling_aes},
            "DefaultEncoding": "Utf8",
            "LimitFindResults": 0,
            "LimitFindInstances": 0,
            "SaveJobs": False,
            "Plugins": [plugin] if plugin else [],
            "DicomWeb": {"Enable": bool(plugin), "Root": "/dicom-web/", "EnableWado": True, "Ssl": False},
            **extra,
        }
        (self.folder / "orthanc.json").write_text(json.dumps(self.config, indent=1))
        self.log = open(self.folder / "orthanc.log", "w")
        env = dict(os.environ)
        env.pop("TCP_NODELAY", None)
        if nodelay:  # DCMTK (Orthanc's DICOM layer) switches Nagle off on its sockets when this is set
            env["TCP_NODELAY"] = "1"
        self.proc = subprocess.Popen(
            ["Orthanc", str(self.folder / "orthanc.json")], env=env, stdout=self.log, stderr=subprocess.STDOUT
        )
        try:
            wait_port(http_port, self.proc)
            wait_port(dicom_port, self.proc)
            self.system = self.get("/system")
            self.plugins = self.get("/plugins")
        except Exception:
            self.stop()
            raise RuntimeError("Orthanc did not start:\n" + self.log_text()[-2000:]) from None

    @property
    def dicom_target(self) -> str:
        return f"dimse://{ORTHANC_AE}@127.0.0.1:{self.dicom_port}"

    @property
    def dicomweb_target(self) -> str | None:
        return f"http://127.0.0.1:{self.http_port}/dicom-web" if "dicom-web" in self.plugins else None

    def get(self, path: str):
        conn = http.client.HTTPConnection("127.0.0.1", self.http_port, timeout=30)
        try:
            conn.request("GET", path)
            resp = conn.getresponse()
            data = resp.read()
            if resp.status >= 400:
                raise RuntimeError(f"Orthanc GET {path}: {resp.status}")
            return json.loads(data)
        finally:
            conn.close()

    def log_text(self) -> str:
        self.log.flush()
        return (self.folder / "orthanc.log").read_text(errors="replace")

    def stop(self) -> None:
        stop_child(self.proc, self.log)  # the Orthanc this object started

    def __enter__(self) -> OrthancServer:
        return self

    def __exit__(self, *exc) -> None:
        self.stop()


def _env() -> dict:
    env = dict(os.environ)
    env["PYTHONPATH"] = str(ROOT) + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
    return env


class PacscoreServer:
    """``pacscore serve dimse`` or ``pacscore serve web`` on an (empty) archive folder, in a child process."""

    def __init__(self, kind: str, folder: Path, port: int) -> None:
        import pacscore

        self.port = port
        # `pacscore serve` never creates an archive (a mistyped folder must not get one): make it
        pacscore.open(folder).close()
        if kind == "dimse":
            args = ["serve", "dimse", "--archive", str(folder), "--ae", PACSCORE_AE, "--port", str(port)]
            self.target = f"dimse://{PACSCORE_AE}@127.0.0.1:{port}"
        else:
            args = [
                "serve",
                "web",
                "--archive",
                str(folder),
                "--port",
                str(port),
                "--max-results",
                "100000",
                "--default-limit",
                "100000",
                "--log-level",
                "warning",
            ]
            self.target = f"http://127.0.0.1:{port}/dicomweb"
        self.command = ["pacscore", *args]
        self.log = open(str(folder) + f".{kind}.log", "w")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "pacscore", *args], cwd=ROOT, env=_env(), stdout=self.log, stderr=subprocess.STDOUT
        )
        try:
            wait_port(port, self.proc)
        except Exception:
            self.stop()
            raise

    def stop(self) -> None:
        stop_child(self.proc, self.log)  # our own child


def run_pacscore(args: list[str], timeout: float = 900) -> tuple[int, object, str]:
    """``pacscore ARGS`` as a child process: (exit code, parsed JSON stdout or None, stderr tail)."""
    proc = subprocess.run(
        [sys.executable, "-m", "pacscore", *args], cwd=ROOT, env=_env(), capture_output=True, text=True, timeout=timeout
    )
    try:
        parsed = json.loads(proc.stdout)
    except json.JSONDecodeError:
        parsed = None
    return proc.returncode, parsed, (proc.stderr or "")[-2000:] + ("" if parsed is not None else proc.stdout[-2000:])


def _inside(args) -> int:
    if not _private_network():
        print("orthanc_peer: refusing to start Orthanc: this network namespace has more than loopback", file=sys.stderr)
        return 2
    out: dict = {"subcommand": args.cmd, "commands": []}
    code = 0
    with tempfile.TemporaryDirectory(prefix="pacscore-orthanc-") as tmp:
        tmp = Path(tmp)
        (tmp / "orthanc").mkdir()
        orthanc = OrthancServer(tmp / "orthanc", dicomweb=args.cmd == "qido", nodelay=args.orthanc_nodelay)
        out["orthanc_env"] = {"TCP_NODELAY": "1"} if args.orthanc_nodelay else {}
        servers: list[PacscoreServer] = []
        try:
            out["orthanc_version"] = orthanc.system.get("Version")
            out["orthanc_plugins"] = orthanc.plugins
            if args.cmd == "conformance":
                cmd = [
                    "conformance",
                    orthanc.dicom_target,
                    "--seed",
                    str(args.seed),
                    "--queries",
                    str(args.queries),
                    "--calling-ae",
                    CALLING_AES[0],
                    "--json",
                ]
            else:
                if args.cmd == "qido" and orthanc.dicomweb_target is None:
                    out["skipped"] = "Orthanc's DICOMweb plugin is not installed (apt-get install orthanc-dicomweb)"
                    print(json.dumps(out, indent=1, ensure_ascii=False))
                    return NO_PLUGIN
                kind = "dimse" if args.cmd == "bench" else "web"
                server = PacscoreServer(kind, tmp / "archive", PACSCORE_DIMSE if kind == "dimse" else PACSCORE_WEB)
                servers.append(server)
                out["commands"].append(" ".join(server.command).replace(str(tmp), "$TMP"))
                other = orthanc.dicom_target if kind == "dimse" else orthanc.dicomweb_target
                cmd = [
                    "bench",
                    server.target,
                    "--compare",
                    other,
                    "--generate",
                    str(args.instances),
                    "--seed",
                    str(args.seed),
                    "--repeat",
                    str(args.repeat),
                    "--clients",
                    str(args.clients),
                    "--calling-ae",
                    CALLING_AES[1],
                    "--json",
                ]
            out["commands"].append(" ".join(["pacscore", *map(_quote_if_needed, cmd)]))
            t0 = time.perf_counter()
            code, out["result"], out["stderr"] = run_pacscore(cmd)
            out["seconds"] = round(time.perf_counter() - t0, 2)
            out["returncode"] = code
        finally:
            for s in servers:
                s.stop()
            orthanc.stop()
    print(json.dumps(out, indent=1, ensure_ascii=False))
    return code


def _quote_if_needed(s: str) -> str:
    return s if s and all(c.isalnum() or c in "-_.:/@=," for c in s) else _quote(s)


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--in-netns", action="store_true", help=argparse.SUPPRESS)
    sub = parser.add_subparsers(dest="cmd", required=True)
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument(
        "--orthanc-nodelay",
        action="store_true",
        help="start Orthanc with TCP_NODELAY=1 (DCMTK then switches Nagle off on its sockets)",
    )
    p = sub.add_parser("conformance", parents=[common], help="pacscore conformance against Orthanc's C-FIND SCP")
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--queries", type=int, default=70)
    for name in ("bench", "qido"):
        p = sub.add_parser(
            name,
            parents=[common],
            help=(
                "C-FIND: pacscore's DIMSE adapter vs Orthanc"
                if name == "bench"
                else "QIDO-RS: pacscore's DICOMweb adapter vs Orthanc's DICOMweb plugin"
            ),
        )
        p.add_argument("--instances", type=int, default=300)
        p.add_argument("--seed", type=int, default=1)
        p.add_argument("--repeat", type=int, default=3)
        p.add_argument("--clients", type=int, default=1)
    args = parser.parse_args(argv)
    why = can_isolate()
    if why:
        print(f"orthanc_peer: {why}; not starting Orthanc", file=sys.stderr)
        return 2
    if args.in_netns:
        return _inside(args)
    inner = " ".join(
        [
            sys.executable,
            "-m",
            "benchmarks.orthanc_peer",
            "--in-netns",
            *map(_quote, [a for a in argv if a != "--in-netns"]),
        ]
    )
    return subprocess.call(["unshare", "-n", "sh", "-c", f"ip link set lo up && exec {inner}"], cwd=ROOT, env=_env())


if __name__ == "__main__":
    sys.exit(main())
