"""Storage commitment with a real Orthanc as the requester (Debian package ``orthanc``).

    python -m benchmarks.orthanc_commitment      # prints JSON; tests/test_commitment.py checks it

Orthanc (1.6 and later) is a Storage Commitment SCU: ``POST /modalities/{id}/storage-commitment``
sends the N-ACTION, releases the association and takes the N-EVENT-REPORT on its own DICOM
port, on an association the SCP opens. So this exercises pacscore's report on a new
association to the configured address (``serve dimse --commitment-peer ORTHANC=...``) against a
third-party implementation. The archive holds three instances, one of them with a damaged blob;
Orthanc asks for those three and one the archive never had.

Orthanc listens on every interface, so, as in benchmarks/orthanc_peer.py, everything runs in a
private network namespace holding only loopback (``unshare -n``).
"""

from __future__ import annotations

import http.client
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from benchmarks.orthanc_peer import ORTHANC_AE, ORTHANC_DICOM, ROOT, OrthancServer, _env, can_isolate, wait_port
from benchmarks.peers import _private_network, stop_child

PACSCORE_AE, PACSCORE_DIMSE = "PACSCORE", 11112
CT_IMAGE = "1.2.840.10008.5.1.4.1.1.2"
STUDY = "1.2.826.0.1.3680043.9.7777.95"
STORED = [f"{STUDY}.1.{i}" for i in (1, 2, 3)]
DAMAGED = STORED[2]
NEVER_STORED = f"{STUDY}.1.404"
WAIT = 60.0  # seconds for Orthanc to get its report: a bound on a failure, not a measurement


def _archive(folder: Path) -> None:
    import pacscore
    from tests.factories import make_instance, to_bytes

    with pacscore.open(folder) as arc:
        for sop in STORED:
            arc.store(to_bytes(make_instance(sop=sop, study=STUDY, series=f"{STUDY}.1")))
        (key,) = [k for k in arc.blobs.keys() if k.startswith(DAMAGED + "_")]
        data = arc.blobs.get(key)
        arc.blobs.put(key, data[:-1] + bytes([data[-1] ^ 0xFF]))


def _http(method: str, port: int, path: str, body: dict | None = None) -> dict:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    try:
        conn.request(method, path, body=None if body is None else json.dumps(body))
        resp = conn.getresponse()
        data = resp.read()
        if resp.status >= 400:
            raise RuntimeError(f"Orthanc {method} {path}: {resp.status} {data[:500]!r}")
        return json.loads(data)
    finally:
        conn.close()


def _inside() -> int:
    if not _private_network():
        print("orthanc_commitment: refusing to start Orthanc outside a loopback-only namespace", file=sys.stderr)
        return 2
    out: dict = {}
    with tempfile.TemporaryDirectory(prefix="pacscore-commitment-") as tmp_name:
        tmp = Path(tmp_name)
        _archive(tmp / "archive")
        command = [
            "serve",
            "dimse",
            "--archive",
            str(tmp / "archive"),
            "--ae",
            PACSCORE_AE,
            "--port",
            str(PACSCORE_DIMSE),
            "--commitment-peer",
            f"{ORTHANC_AE}=127.0.0.1:{ORTHANC_DICOM}",
        ]
        out["command"] = " ".join(["pacscore", *command]).replace(str(tmp), "$TMP")
        log = open(tmp / "pacscore.log", "w")  # noqa: SIM115 (lives as long as the server)
        server = subprocess.Popen(
            [sys.executable, "-m", "pacscore", *command], cwd=ROOT, env=_env(), stdout=log, stderr=subprocess.STDOUT
        )
        (tmp / "orthanc").mkdir()
        orthanc = None
        try:
            wait_port(PACSCORE_DIMSE, server)
            orthanc = OrthancServer(
                tmp / "orthanc",
                dicomweb=False,
                DicomModalities={"pacs": [PACSCORE_AE, "127.0.0.1", PACSCORE_DIMSE]},
            )
            out["orthanc_version"] = orthanc.system.get("Version")
            asked = [{"SOPClassUID": CT_IMAGE, "SOPInstanceUID": sop} for sop in [*STORED, NEVER_STORED]]
            request = {"DicomInstances": asked, "Timeout": 60}
            job = _http("POST", orthanc.http_port, "/modalities/pacs/storage-commitment", request)
            deadline = time.monotonic() + WAIT
            report = _http("GET", orthanc.http_port, job["Path"])
            while report.get("Status") == "Pending" and time.monotonic() < deadline:
                time.sleep(0.1)
                report = _http("GET", orthanc.http_port, job["Path"])
            out["report"] = report
        except Exception as exc:
            out["error"] = f"{type(exc).__name__}: {exc}"
        finally:
            if orthanc is not None:
                out["orthanc_log"] = orthanc.log_text()[-3000:]
                orthanc.stop()
            stop_child(server, log)
            out["pacscore_log"] = (tmp / "pacscore.log").read_text(errors="replace")[-3000:]
    print(json.dumps(out, indent=1))
    return 0 if "report" in out else 1


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    why = can_isolate()
    if why:
        print(f"orthanc_commitment: {why}; not starting Orthanc", file=sys.stderr)
        return 2
    if argv == ["--in-netns"]:
        return _inside()
    inner = f"{sys.executable} -m benchmarks.orthanc_commitment --in-netns"
    return subprocess.call(["unshare", "-n", "sh", "-c", f"ip link set lo up && exec {inner}"], cwd=ROOT, env=_env())


if __name__ == "__main__":
    sys.exit(main())
