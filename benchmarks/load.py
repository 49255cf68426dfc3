"""Load: concurrent C-FIND and QIDO-RS clients and a C-STORE stream against one archive, then a
check that nothing acknowledged was lost.

    python -m benchmarks.load --seconds 30 --find-clients 8 --qido-clients 4 --store-clients 1 \
        [--prefill 500] [--archive DIR] [--client-processes] [--server-processes N] [--json out.json]

Everything runs on 127.0.0.1 in this process: the DIMSE adapter (``dimse.serve(block=False)``),
the DICOMweb adapter under uvicorn when it imports and answers, and client threads
(pynetdicom SCUs, httpx clients). Client threads share the interpreter with the servers, so the
figures are a floor for what separate client machines would see, not a capacity claim; with
``--client-processes`` the C-FIND and QIDO-RS clients run in their own processes instead (the
servers still share one interpreter, as they do in production). With ``--server-processes N``
the servers are the ``pacscore serve dimse --processes N`` and ``pacscore serve web --workers N``
commands instead, each in its own process group (pacscore/serve_processes.py), and the clients
run in their own processes.

For ``--seconds`` (each loop also stops after ``--max-ops``):

- every C-FIND client keeps one association and sends study-level queries (a patient's
  studies, a date range, a name wild card, a UID) and records latency and the final status;
- every QIDO-RS client sends the same kind of searches as GET /studies?... and records status
  and latency;
- every C-STORE client sends new instances (Explicit VR Little Endian only, so the transfer
  syntax is kept) and remembers the bytes pynetdicom put on the wire for each one answered
  0x0000.

Afterwards: every acknowledged instance must be findable (``Archive.count`` by its UID, and a
C-FIND for a sample) and ``Archive.get`` must return a Part-10 file whose data set is exactly
the bytes sent; ``verify`` must be clean. ``run()`` returns the figures (and ``main`` prints
them as JSON): per client kind the operations, errors, throughput and latency percentiles, and
``lost``, ``mismatched``, ``verify_ok``.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import random
import re
import socket
import struct
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from typing import Any

from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.uid import ExplicitVRLittleEndian

import pacscore
from pacscore.adapters import dimse
from pacscore.adapters.dimse_fastpath import guard_requestor

CT_IMAGE = "1.2.840.10008.5.1.4.1.1.2"
ROOT = "1.2.826.0.1.3680043.9.7781"
NAMES = ["Smith^John", "Smythe^Jane", "Müller^Hans", "Doe^Ann", "Brown^Bob", "Garcia^Maria", "Lee^Min", "Khan^Ali"]


def make_instance(i: int, study_of: int = 8, prefix: str = "1") -> Dataset:
    """A small CT instance; ``study_of`` instances per study, eight patients."""
    study = i // study_of
    ds = Dataset()
    ds.SpecificCharacterSet = "ISO_IR 192"
    ds.SOPClassUID = CT_IMAGE
    ds.SOPInstanceUID = f"{ROOT}.{prefix}.{study}.{i}"
    ds.StudyInstanceUID = f"{ROOT}.{prefix}.{study}"
    ds.SeriesInstanceUID = f"{ROOT}.{prefix}.{study}.1"
    ds.PatientID = f"P{study % 8}"
    ds.PatientName = NAMES[study % 8]
    ds.StudyDate = f"2020{(study % 12) + 1:02d}{(study % 28) + 1:02d}"
    ds.StudyTime = "101500"
    ds.Modality = "CT" if study % 3 else "MR"
    ds.AccessionNumber = f"A{study:06d}"
    ds.InstanceNumber = str(i % study_of + 1)
    ds.SeriesNumber = "1"
    ds.Rows = ds.Columns = 4
    ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 16, 12, 11, 0
    ds.SamplesPerPixel, ds.PhotometricInterpretation = 1, "MONOCHROME2"
    ds.PixelData = struct.pack("<16H", *([i % 4096] * 16))
    ds.file_meta = FileMetaDataset()
    ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds.file_meta.MediaStorageSOPClassUID = CT_IMAGE
    ds.file_meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
    return ds


def queries(rng: random.Random) -> dict:
    kind = rng.randrange(4)
    if kind == 0:
        return {"PatientID": f"P{rng.randrange(8)}"}
    if kind == 1:
        m = rng.randrange(1, 12)
        return {"StudyDate": f"2020{m:02d}01-2020{m + 1:02d}01"}
    if kind == 2:
        return {"PatientName": rng.choice(["Sm*", "*er*", "M?ller*", "D*"])}
    return {"StudyInstanceUID": f"{ROOT}.1.{rng.randrange(64)}"}


@dataclass
class Tally:
    latencies: list[float] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def add(self, seconds: float, error: str | None = None) -> None:
        with self.lock:
            self.latencies.append(seconds)
            if error:
                self.errors.append(error)

    def summary(self, wall: float) -> dict:
        lat = sorted(self.latencies)

        def pct(p):
            return round(lat[min(len(lat) - 1, int(p / 100 * len(lat)))] * 1000, 2) if lat else None

        return {
            "ops": len(lat),
            "errors": len(self.errors),
            "error_samples": sorted(set(self.errors))[:5],
            "per_second": round(len(lat) / wall, 1) if wall else None,
            "p50_ms": pct(50),
            "p95_ms": pct(95),
            "p99_ms": pct(99),
            "max_ms": round(lat[-1] * 1000, 2) if lat else None,
        }


def _kept_association(ae, assoc, port: int, tally: Tally):
    """The client's association, opened again when it is gone; None (tallied as an error, after
    a short pause) when the archive refuses it."""
    if assoc is not None and assoc.is_established:
        return assoc
    assoc = ae.associate("127.0.0.1", port, ae_title="PACSCORE")
    if assoc.is_established:
        # pynetdicom's requestor can drop a response that arrives in the instant its reactor
        # is being paused (docs/benchmarks-wire.md); the faster the SCP, the likelier
        return guard_requestor(assoc)
    tally.add(0.0, "association refused")
    time.sleep(0.05)
    return None


def _find_client(port: int, stop: threading.Event, tally: Tally, seed: int, max_ops: int) -> None:
    from pynetdicom import AE
    from pynetdicom.sop_class import StudyRootQueryRetrieveInformationModelFind as FIND

    rng = random.Random(seed)
    ae = AE(ae_title=f"FIND{seed % 1000}")
    ae.add_requested_context(FIND)
    ae.acse_timeout = ae.dimse_timeout = ae.network_timeout = 30
    assoc = None
    for _ in range(max_ops):
        if stop.is_set():
            break
        assoc = _kept_association(ae, assoc, port, tally)
        if assoc is None:
            continue
        ds = Dataset()
        ds.QueryRetrieveLevel = "STUDY"
        for k, v in queries(rng).items():
            setattr(ds, k, v)
        for k in (
            "StudyInstanceUID",
            "PatientName",
            "PatientID",
            "StudyDate",
            "ModalitiesInStudy",
            "NumberOfStudyRelatedInstances",
        ):
            if k not in ds:
                setattr(ds, k, "")
        start = time.perf_counter()
        error, final = None, None
        try:
            for status, _identifier in assoc.send_c_find(ds, FIND):
                if status is None or "Status" not in status:
                    error = "no response (timeout or abort)"
                    break
                final = status.Status
            if error is None and final != 0x0000:
                error = f"status 0x{final:04X}"
        except Exception as exc:  # a client error is a result, not a crash of the benchmark
            error = f"{type(exc).__name__}"
        tally.add(time.perf_counter() - start, error)
    if assoc is not None and assoc.is_established:
        assoc.release()


def _qido_client(base: str, stop: threading.Event, tally: Tally, seed: int, max_ops: int) -> None:
    import httpx

    rng = random.Random(seed)
    with httpx.Client(base_url=base, timeout=30, headers={"Accept": "application/dicom+json"}) as http:
        for _ in range(max_ops):
            if stop.is_set():
                break
            params = queries(rng)
            params["includefield"] = "NumberOfStudyRelatedInstances"
            start = time.perf_counter()
            error = None
            try:
                r = http.get("/studies", params=params)
                if r.status_code not in (200, 204):
                    error = f"HTTP {r.status_code}"
                elif r.status_code == 200:
                    r.json()
            except Exception as exc:
                error = type(exc).__name__
            tally.add(time.perf_counter() - start, error)


def _store_client(
    port: int, stop: threading.Event, tally: Tally, sent: dict, seed: int, max_ops: int, sent_lock: threading.Lock
) -> None:
    from pynetdicom import AE
    from pynetdicom.dsutils import encode

    ae = AE(ae_title=f"STORE{seed % 1000}")
    ae.add_requested_context(CT_IMAGE, [ExplicitVRLittleEndian])
    ae.acse_timeout = ae.dimse_timeout = ae.network_timeout = 30
    assoc = None
    for i in range(max_ops):
        if stop.is_set():
            break
        assoc = _kept_association(ae, assoc, port, tally)
        if assoc is None:
            continue
        ds = make_instance(i, prefix=f"9{seed}")
        wire = encode(ds, False, True)  # what pynetdicom sends for Explicit VR Little Endian
        start = time.perf_counter()
        error = None
        try:
            status = assoc.send_c_store(ds)
            if "Status" not in status:
                error = "no response (timeout or abort)"
            elif status.Status != 0x0000:
                error = f"status 0x{status.Status:04X}"
        except Exception as exc:
            error = type(exc).__name__
        tally.add(time.perf_counter() - start, error)
        if error is None:
            with sent_lock:
                sent[ds.SOPInstanceUID] = wire
    if assoc is not None and assoc.is_established:
        assoc.release()


def _worker(kind: str, target, seconds: float, seed: int, max_ops: int) -> tuple[list[float], list[str]]:
    """One C-FIND or QIDO-RS client in its own process (``--client-processes``)."""
    logging.getLogger("pynetdicom").setLevel(logging.CRITICAL)
    stop = threading.Event()
    tally = Tally()
    timer = threading.Timer(seconds, stop.set)
    timer.start()
    try:
        if kind == "c_find":
            _find_client(target, stop, tally, seed, max_ops)
        else:
            _qido_client(target, stop, tally, seed, max_ops)
    finally:
        timer.cancel()
    return tally.latencies, tally.errors


def _dataset_part(part10: bytes) -> bytes:
    """The data set after the file meta information of a Part-10 file."""
    if part10[128:132] != b"DICM":
        raise ValueError("not a Part-10 file")
    pos = 132
    while pos < len(part10):
        group = struct.unpack_from("<H", part10, pos)[0]
        if group != 0x0002:
            return part10[pos:]
        vr = part10[pos + 4 : pos + 6]
        if vr in (b"OB", b"OW", b"OF", b"SQ", b"UT", b"UN"):
            pos += 12 + struct.unpack_from("<I", part10, pos + 8)[0]
        else:
            pos += 8 + struct.unpack_from("<H", part10, pos + 6)[0]
    return b""


def _start_web(arc):
    """uvicorn serving create_app(arc) on a free loopback port, or None if unavailable."""
    try:
        import httpx
        import uvicorn

        from pacscore.adapters.dicomweb import create_app

        app = create_app(arc)
    except Exception as exc:
        logging.getLogger("benchmarks.load").warning("DICOMweb unavailable: %s", exc)
        return None
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind(("127.0.0.1", 0))
    sock.listen(128)
    port = sock.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning", access_log=False, lifespan="off"))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            return None
        time.sleep(0.02)
    base = f"http://127.0.0.1:{port}/dicomweb"
    try:
        if httpx.get(base + "/studies?limit=1", timeout=10).status_code not in (200, 204):
            raise RuntimeError("QIDO-RS does not answer")
    except Exception as exc:
        logging.getLogger("benchmarks.load").warning("DICOMweb unavailable: %s", exc)
        server.should_exit = True
        thread.join(10)
        sock.close()
        return None

    def stop():
        server.should_exit = True
        thread.join(15)
        sock.close()

    return base, stop


class _ServerCommand:
    """A ``pacscore serve ...`` command run for the benchmark, its output in a log file (a pipe
    nobody reads would fill and stop it); ``port`` is the one it says it listens on."""

    LISTENING = re.compile(r" on (?:http://)?\S+:(\d+)")

    def __init__(self, args: list[str], log_dir: str) -> None:
        import subprocess

        self.log = open(os.path.join(log_dir, f"serve-{args[0]}.log"), "w+")  # noqa: SIM115 - lives as long as the process
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "pacscore", "serve", *args, "--port", "0"],
            stdout=self.log,
            stderr=subprocess.STDOUT,
            text=True,
        )
        deadline = time.monotonic() + 120
        while True:
            self.log.seek(0)
            found = self.LISTENING.search(self.log.read())
            if found:
                self.port = int(found.group(1))
                return
            if self.proc.poll() is not None or time.monotonic() > deadline:
                self.stop()
                raise RuntimeError(f"pacscore serve {args[0]} did not start (exit {self.proc.returncode})")
            time.sleep(0.1)

    def stop(self) -> None:
        import signal

        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        self.proc.wait(60)
        self.log.close()


def _serve_processes(folder, processes: int, web: bool):
    """The DIMSE server and (if ``web``) the DICOMweb server as commands of ``processes`` processes."""
    logs = tempfile.mkdtemp(prefix="pacscore-load-logs-")  # kept: the servers' own account of the run
    dimse_cmd = _ServerCommand(["dimse", "--archive", str(folder), "--processes", str(processes)], logs)

    class Stopper:
        def shutdown(self) -> None:
            dimse_cmd.stop()

    web_part = None
    if web:
        web_cmd = _ServerCommand(
            ["web", "--archive", str(folder), "--workers", str(processes), "--log-level", "warning"], logs
        )
        web_part = (f"http://127.0.0.1:{web_cmd.port}/dicomweb", web_cmd.stop)
    # both answer before the clock starts: every process has opened the archive
    _wait_ready(dimse_cmd.port, web_part[0] if web_part else None)
    return Stopper(), dimse_cmd.port, web_part


def _wait_ready(port: int, base: str | None) -> None:
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        try:
            if _echo(port) and (base is None or _answers(base)):
                return
        except Exception:
            pass
        time.sleep(0.2)
    raise RuntimeError("the servers did not answer within 120 s")


def _echo(port: int) -> bool:
    from pynetdicom import AE
    from pynetdicom.sop_class import Verification

    ae = AE(ae_title="READY")
    ae.add_requested_context(Verification)
    assoc = ae.associate("127.0.0.1", port, ae_title="PACSCORE")
    if not assoc.is_established:
        return False
    try:
        return bool(assoc.send_c_echo().Status == 0)
    finally:
        assoc.release()


def _answers(base: str) -> bool:
    import httpx

    return httpx.get(base + "/studies?limit=1", timeout=10).status_code in (200, 204)


def run(
    folder=None,
    *,
    seconds: float = 10.0,
    find_clients: int = 4,
    qido_clients: int = 2,
    store_clients: int = 1,
    prefill: int = 256,
    max_ops: int = 1_000_000,
    seed: int = 1,
    check_sample: int = 50,
    client_processes: bool = False,
    server_processes: int = 0,
) -> dict:
    """Run the load for ``seconds`` against the archive in ``folder`` (a temporary one if None).

    ``client_processes``: run the C-FIND and QIDO-RS clients in their own (spawned) processes
    instead of threads of this one, so that they do not compete with the servers for the GIL.
    ``server_processes``: N > 0 serves with the ``pacscore serve`` commands of N processes each
    (and runs the clients in processes too)."""
    client_processes = client_processes or server_processes > 0
    tmp = None
    if folder is None:
        tmp = tempfile.TemporaryDirectory(prefix="pacscore-load-")
        folder = tmp.name
    result: dict = {
        "seconds": seconds,
        "find_clients": find_clients,
        "qido_clients": qido_clients,
        "store_clients": store_clients,
        "prefill": prefill,
        "client_processes": client_processes,
        "server_processes": server_processes,
    }
    try:
        with pacscore.open(folder) as arc:
            report = arc.store_many([make_instance(i) for i in range(prefill)])
            assert not report.rejected, report.rejected[:3]
            server: Any
            if server_processes:
                server, port, web = _serve_processes(folder, server_processes, web=qido_clients > 0)
            else:
                server = dimse.serve(arc, "PACSCORE", 0, "127.0.0.1", block=False, max_associations=64)
                port = server.server_address[1]
                web = _start_web(arc) if qido_clients else None
            result["dicomweb"] = web is not None
            stop = threading.Event()
            tallies = {"c_find": Tally(), "qido": Tally(), "c_store": Tally()}
            sent: dict[str, bytes] = {}
            sent_lock = threading.Lock()
            pool, futures = None, []
            if client_processes:
                import multiprocessing
                from concurrent.futures import ProcessPoolExecutor

                jobs = [("c_find", port, seed * 100 + n) for n in range(find_clients)]
                if web is not None:
                    jobs += [("qido", web[0], seed * 200 + n) for n in range(qido_clients)]
                pool = ProcessPoolExecutor(
                    max_workers=max(1, len(jobs)), mp_context=multiprocessing.get_context("spawn")
                )
                futures = [(kind, pool.submit(_worker, kind, target, seconds, s, max_ops)) for kind, target, s in jobs]
                threads = []
            else:
                threads = [
                    threading.Thread(target=_find_client, args=(port, stop, tallies["c_find"], seed * 100 + n, max_ops))
                    for n in range(find_clients)
                ]
                if web is not None:
                    threads += [
                        threading.Thread(
                            target=_qido_client, args=(web[0], stop, tallies["qido"], seed * 200 + n, max_ops)
                        )
                        for n in range(qido_clients)
                    ]
            threads += [
                threading.Thread(
                    target=_store_client, args=(port, stop, tallies["c_store"], sent, seed * 10 + n, max_ops, sent_lock)
                )
                for n in range(store_clients)
            ]
            start = time.monotonic()
            for t in threads:
                t.daemon = True
                t.start()
            time.sleep(seconds)
            stop.set()
            for t in threads:
                t.join(60)
            hung = sum(t.is_alive() for t in threads)
            for kind, future in futures:  # process clients stop on their own timer
                try:
                    latencies, errors = future.result(timeout=120)
                except Exception as exc:
                    hung += 1
                    tallies[kind].errors.append(f"client process: {type(exc).__name__}")
                    continue
                tallies[kind].latencies += latencies
                tallies[kind].errors += errors
            if pool is not None:
                pool.shutdown()
            wall = time.monotonic() - start
            result["hung_clients"] = hung
            result["wall_seconds"] = round(wall, 2)
            for name, tally in tallies.items():
                result[name] = tally.summary(wall)
            # nothing acknowledged is lost: findable, byte-identical data set, verify clean
            lost, mismatched = [], []
            for uid, wire in sent.items():
                if arc.count({"SOPInstanceUID": uid}, level="IMAGE", relational=True) != 1:
                    lost.append(uid)
                    continue
                if _dataset_part(arc.get(uid)) != wire:
                    mismatched.append(uid)
            sample = random.Random(seed).sample(sorted(sent), min(check_sample, len(sent)))
            unfound = _dimse_check(port, sample)
            server.shutdown()
            if web is not None:
                web[1]()
            verify = arc.verify()
            result.update(
                {
                    "acknowledged": len(sent),
                    "lost": len(lost),
                    "mismatched": len(mismatched),
                    "not_found_over_dimse": len(unfound),
                    "lost_samples": lost[:5],
                    "mismatched_samples": mismatched[:5],
                    "verify_ok": verify.ok and not verify.orphans,
                    "instances_after": arc.count({}, level="IMAGE", relational=True),
                }
            )
    finally:
        if tmp is not None:
            tmp.cleanup()
    return result


def _dimse_check(port: int, uids: list[str]) -> list[str]:
    """The UIDs a C-FIND at IMAGE level does not find (a sample, over the network)."""
    from pynetdicom import AE
    from pynetdicom.sop_class import StudyRootQueryRetrieveInformationModelFind as FIND

    if not uids:
        return []
    ae = AE(ae_title="CHECK")
    ae.add_requested_context(FIND)
    assoc = ae.associate("127.0.0.1", port, ae_title="PACSCORE")
    missing = []
    try:
        for uid in uids:
            ds = Dataset()
            ds.QueryRetrieveLevel = "IMAGE"
            ds.StudyInstanceUID = uid.rsplit(".", 1)[0]
            ds.SeriesInstanceUID = ds.StudyInstanceUID + ".1"
            ds.SOPInstanceUID = uid
            found = [i for s, i in assoc.send_c_find(ds, FIND) if s and s.Status in (0xFF00, 0xFF01)]
            if len(found) != 1:
                missing.append(uid)
    finally:
        assoc.release()
    return missing


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--seconds", type=float, default=30)
    p.add_argument("--find-clients", type=int, default=8)
    p.add_argument("--qido-clients", type=int, default=4)
    p.add_argument("--store-clients", type=int, default=1)
    p.add_argument("--prefill", type=int, default=512)
    p.add_argument("--max-ops", type=int, default=1_000_000, help="per client, a bound on its loop")
    p.add_argument("--archive", default=None, help="archive folder (default: a temporary one)")
    p.add_argument("--seed", type=int, default=1)
    p.add_argument(
        "--client-processes",
        action="store_true",
        help="run C-FIND and QIDO-RS clients in their own processes (not threads of the servers' one)",
    )
    p.add_argument(
        "--server-processes",
        type=int,
        default=0,
        metavar="N",
        help="serve with `pacscore serve dimse --processes N` and `serve web --workers N` (clients in processes)",
    )
    p.add_argument("--json", default=None, help="also write the result here")
    args = p.parse_args(argv)
    logging.basicConfig(level=logging.WARNING)
    logging.getLogger("pynetdicom").setLevel(logging.CRITICAL)
    result = run(
        args.archive,
        seconds=args.seconds,
        find_clients=args.find_clients,
        qido_clients=args.qido_clients,
        store_clients=args.store_clients,
        prefill=args.prefill,
        max_ops=args.max_ops,
        seed=args.seed,
        client_processes=args.client_processes,
        server_processes=args.server_processes,
    )
    text = json.dumps(result, indent=1)
    print(text)
    if args.json:
        with open(args.json, "w") as fh:
            fh.write(text)
    ok = result["lost"] == 0 and result["mismatched"] == 0 and result["verify_ok"] and not result["hung_clients"]
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
