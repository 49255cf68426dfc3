"""Test data and client runners for tests/test_dimse.py (and benchmarks/dimse_bench.py)."""

from __future__ import annotations

import contextlib
import io
import os
import re
import shutil
import signal
import socket
import subprocess
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pydicom
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.multival import MultiValue
from pydicom.uid import ExplicitVRLittleEndian

CT_IMAGE = "1.2.840.10008.5.1.4.1.1.2"
MR_IMAGE = "1.2.840.10008.5.1.4.1.1.4"
SC_IMAGE = "1.2.840.10008.5.1.4.1.1.7"

#: pydicom's bundled files with distinct SOP Instance UIDs, one per transfer syntax family
PYDICOM_FILES = [
    "CT_small.dcm",  # explicit VR little endian, CT
    "MR_small.dcm",  # explicit VR little endian, MR
    "rtplan.dcm",  # implicit VR little endian, RT plan (no pixels)
    "rtdose.dcm",  # implicit VR little endian, multi-frame dose
    "ExplVR_BigEnd.dcm",  # explicit VR big endian, US
    "JPEG2000.dcm",  # JPEG 2000, NM study
    "JPEG-lossy.dcm",  # JPEG extended 12 bit (Pillow cannot decode it), same NM study
    "SC_rgb_rle.dcm",  # RLE lossless
    "SC_rgb_jpeg_dcmtk.dcm",  # JPEG baseline
    "examples_jpeg2k.dcm",  # JPEG 2000 lossless
    "image_dfl.dcm",  # deflated explicit VR little endian
    "test-SR.dcm",  # structured report
    "waveform_ecg.dcm",  # waveform
]

# generated patients / studies / series (UIDs under a private-looking test root)
ROOT = "1.2.826.0.1.3680043.9.7777"
STUDY_A = f"{ROOT}.1"
SERIES_A1 = f"{ROOT}.1.1"
SERIES_A2 = f"{ROOT}.1.2"
STUDY_B = f"{ROOT}.2"
SERIES_B1 = f"{ROOT}.2.1"
STUDY_C = f"{ROOT}.3"
SERIES_C1 = f"{ROOT}.3.1"


def pydicom_test_files() -> Path:
    import pydicom.data

    return Path(pydicom.data.__file__).parent / "test_files"


def make_instance(
    *,
    sop: str,
    study: str,
    series: str,
    patient_id: str,
    patient_name: str,
    modality: str,
    study_date: str,
    study_time: str,
    instance_number: int,
    series_number: int = 1,
    sop_class: str = CT_IMAGE,
    accession: str = "",
    description: str = "",
    birth_date: str = "",
    sex: str = "",
    rows: int = 4,
) -> Dataset:
    """A small but complete image instance (16-bit, rows x rows) in explicit VR little endian."""
    ds = Dataset()
    ds.SpecificCharacterSet = "ISO_IR 192"
    ds.SOPClassUID = sop_class
    ds.SOPInstanceUID = sop
    ds.StudyInstanceUID = study
    ds.SeriesInstanceUID = series
    ds.PatientID = patient_id
    ds.PatientName = patient_name
    ds.PatientBirthDate = birth_date
    ds.PatientSex = sex
    ds.Modality = modality
    ds.StudyDate = study_date
    ds.StudyTime = study_time
    ds.SeriesDate = study_date
    ds.AccessionNumber = accession
    ds.StudyDescription = description
    ds.SeriesDescription = f"{modality} series {series_number}"
    ds.StudyID = "1"
    ds.ReferringPhysicianName = ""
    ds.SeriesNumber = series_number
    ds.InstanceNumber = instance_number
    ds.SamplesPerPixel = 1
    ds.PhotometricInterpretation = "MONOCHROME2"
    ds.Rows = rows
    ds.Columns = rows
    ds.BitsAllocated = 16
    ds.BitsStored = 12
    ds.HighBit = 11
    ds.PixelRepresentation = 0
    ds.PixelData = bytes((i * 7 + instance_number) % 256 for i in range(rows * rows * 2))
    ds.file_meta = FileMetaDataset()
    ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds.file_meta.MediaStorageSOPClassUID = sop_class
    ds.file_meta.MediaStorageSOPInstanceUID = sop
    return ds


def to_bytes(ds: Dataset) -> bytes:
    buf = io.BytesIO()
    pydicom.dcmwrite(buf, ds, enforce_file_format=True)
    return buf.getvalue()


def generated_instances() -> list[Dataset]:
    """Two patients, three studies, four series, nine instances, with dates for combined matching."""
    out = []
    one = dict(patient_id="GEN1", patient_name="Gen^One", birth_date="19700101", sex="F")
    two = dict(patient_id="GEN2", patient_name="Gen^Two", birth_date="19800202", sex="M")
    study_a = dict(study=STUDY_A, study_date="20200101", study_time="235000", accession="ACC-A", description="Head")
    study_b = dict(study=STUDY_B, study_date="20200102", study_time="003000", accession="ACC-B", description="Chest")
    study_c = dict(study=STUDY_C, study_date="20200105", study_time="120000", accession="ACC-C", description="Knee")
    for i in range(3):
        out.append(
            make_instance(
                sop=f"{SERIES_A1}.{i + 1}", series=SERIES_A1, modality="CT", instance_number=i + 1, **one, **study_a
            )
        )
    for i in range(2):
        out.append(
            make_instance(
                sop=f"{SERIES_A2}.{i + 1}",
                series=SERIES_A2,
                modality="MR",
                sop_class=MR_IMAGE,
                series_number=2,
                instance_number=i + 1,
                **one,
                **study_a,
            )
        )
    for i in range(2):
        out.append(
            make_instance(
                sop=f"{SERIES_B1}.{i + 1}", series=SERIES_B1, modality="CT", instance_number=i + 1, **two, **study_b
            )
        )
    for i in range(2):
        out.append(
            make_instance(
                sop=f"{SERIES_C1}.{i + 1}",
                series=SERIES_C1,
                modality="MR",
                sop_class=MR_IMAGE,
                instance_number=i + 1,
                **two,
                **study_c,
            )
        )
    return out


def write_test_folder(folder: Path) -> list[Path]:
    """Copy the chosen pydicom files and write the generated instances into ``folder``."""
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    src = pydicom_test_files()
    for name in PYDICOM_FILES:
        shutil.copy(src / name, folder / name)
        paths.append(folder / name)
    for ds in generated_instances():
        path = folder / f"gen_{ds.SOPInstanceUID}.dcm"
        path.write_bytes(to_bytes(ds))
        paths.append(path)
    return paths


def dataset_bytes(part10: bytes) -> bytes:
    """The data set of a Part-10 file, after the preamble and the file meta group."""
    assert part10[128:132] == b"DICM", "not a Part-10 file"
    assert part10[132:136] == b"\x02\x00\x00\x00" and part10[136:138] == b"UL", "no group length"
    length = int.from_bytes(part10[140:144], "little")
    return part10[144 + length :]


@contextlib.contextmanager
def refusing_port() -> Iterator[int]:
    """A port where nothing accepts connections, for as long as the block runs: a socket bound to
    a port the kernel picked and never listening, so no other process can take the port meanwhile."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        yield s.getsockname()[1]


def dcmtk(tool: str) -> str | None:
    """The path of DCMTK's ``tool``: pynetdicom installs Python scripts with the same names
    (echoscu, findscu, getscu, movescu, storescu, storescp) into the virtualenv's bin folder,
    which comes first on PATH when the venv is activated; skip those."""
    for folder in os.environ.get("PATH", "").split(os.pathsep):
        path = Path(folder or ".") / tool
        if not (path.is_file() and os.access(path, os.X_OK)):
            continue
        try:
            with open(path, "rb") as f:
                if f.read(2) == b"#!":  # a script, not DCMTK's binary
                    continue
        except OSError:
            continue
        return str(path)
    return None


def start_storescp(args: list[str], timeout: float = 15.0, attempts: int = 5) -> subprocess.Popen:
    """Start DCMTK's storescp (``args`` without the port) on a free port and return it once it
    answers a C-ECHO; the port is ``proc.port``.

    storescp cannot bind port 0 (it refuses the value), so the port is picked here; should
    another process take it before storescp binds it, storescp exits saying so and is started
    again on another port. Readiness is polled (a C-ECHO), never waited for with a fixed sleep."""
    for _ in range(attempts):
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        proc = _storescp_on(args, port, timeout)
        if proc is not None:
            proc.port = port
            return proc
    raise RuntimeError(f"storescp found no free port in {attempts} attempts")


def _storescp_on(args: list[str], port: int, timeout: float) -> subprocess.Popen | None:
    """storescp answering on ``port``, or None when the port was taken."""
    from pynetdicom import AE

    proc = subprocess.Popen(
        [dcmtk("storescp"), *args, str(port)], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, env=dcmtk_env()
    )
    ae = AE(ae_title="PROBE")
    ae.add_requested_context("1.2.840.10008.1.1")
    ae.acse_timeout = ae.network_timeout = ae.connection_timeout = 2
    deadline = time.monotonic() + timeout
    while True:
        if proc.poll() is not None:
            out = proc.stdout.read().decode("utf-8", "replace") if proc.stdout else ""
            if "Address already in use" in out:
                return None
            raise RuntimeError(f"storescp on port {port} exited with {proc.returncode}: {out.strip()}")
        assoc = ae.associate("127.0.0.1", port, ae_title="ANY")
        if assoc.is_established:
            status = assoc.send_c_echo()
            assoc.release()
            if status and status.Status == 0:
                return proc
        if time.monotonic() > deadline:
            proc.terminate()
            proc.wait(5)
            raise RuntimeError(f"storescp on port {port} did not answer a C-ECHO within {timeout} s")
        time.sleep(0.05)


def dcmtk_env() -> dict:
    env = dict(os.environ)
    env["TCP_NODELAY"] = "1"
    return env


def run(args: list[str], timeout: float = 30) -> subprocess.CompletedProcess:
    """Run a DCMTK tool (``args[0]`` is its name) with TCP_NODELAY=1."""
    exe = dcmtk(args[0])
    if exe is None:
        raise FileNotFoundError(f"DCMTK's {args[0]} is not on PATH")
    return subprocess.run([exe, *args[1:]], capture_output=True, text=True, timeout=timeout, env=dcmtk_env())


def key_args(keys: dict) -> list[str]:
    """findscu/getscu/movescu -k arguments: "" asks for the attribute back."""
    out = []
    for keyword, value in keys.items():
        out += ["-k", f"{keyword}={value}" if value != "" else keyword]
    return out


def findscu(
    port: int,
    model_flag: str,
    level: str,
    keys: dict,
    out_dir: Path,
    aet: str = "FINDSCU",
    extra: list[str] | None = None,
) -> tuple[subprocess.CompletedProcess, list[Dataset]]:
    """Run findscu with -X and return the process and the response identifiers, in order."""
    out_dir.mkdir(parents=True, exist_ok=True)
    for f in out_dir.glob("rsp*.dcm"):
        f.unlink()
    args = [
        "findscu",
        model_flag,
        "-aet",
        aet,
        "-aec",
        "PACSCORE",
        "-X",
        "-od",
        str(out_dir),
        "-k",
        f"QueryRetrieveLevel={level}",
        *key_args(keys),
        *(extra or []),
        "127.0.0.1",
        str(port),
    ]
    proc = run(args)
    found = [pydicom.dcmread(f) for f in sorted(out_dir.glob("rsp*.dcm"))]
    return proc, found


def norm(value) -> object:
    """A comparable form of a pydicom value: strings, tuples of strings for multi-values."""
    if value is None:
        return ""
    if isinstance(value, (MultiValue, list, tuple)):
        return tuple(str(v) for v in value)
    if isinstance(value, Dataset):
        return tuple(sorted((e.keyword, norm(e.value)) for e in value))
    return str(value)


def values_of(ds: Dataset, keywords: list[str]) -> dict:
    return {kw: norm(ds.get(kw)) for kw in keywords}


def wait_for_files(folder: Path, count: int, timeout: float = 10.0) -> list[Path]:
    deadline = time.monotonic() + timeout
    while True:
        files = [p for p in folder.iterdir() if p.is_file()]
        if len(files) >= count or time.monotonic() > deadline:
            return files
        time.sleep(0.05)


def read_lines(stream, lines: list[str]) -> None:
    """Append each line of ``stream`` to ``lines`` as it comes, until its end (run in a thread)."""
    while line := stream.readline():  # one append a line: a poller sees each as soon as it is read
        lines.append(line)


def bound_port_logged(proc, logged: list[str], timeout: float = 15) -> int:
    """The port a ``serve dimse --port 0`` process bound, read from its "serving ... on HOST:PORT"
    log line, polled in ``logged`` (which ``read_lines`` fills from the process's stderr)."""
    pattern = re.compile(r"serving .* on [^ ]+:(\d+)")
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for line in list(logged):
            found = pattern.search(line)
            if found:
                return int(found.group(1))
        assert proc.poll() is None, "".join(logged)
        time.sleep(0.02)
    raise AssertionError(f"serve dimse logged no port within {timeout} s: {''.join(logged)}")


# ---- waiting on a served association (tests/test_dimse_wire.py, tests/test_dimse_direct.py) --------
DEADLINE = 30.0


def wait_until(condition, what: str, timeout: float = DEADLINE) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.005)


class GatedArchive:
    """Delegates to an archive; find() yields its first result, then waits for ``gate``.

    Lets a test act (send C-CANCEL, abort) while the server is inside a query, at a known point."""

    def __init__(self, arc) -> None:
        self._arc = arc
        self.gate = threading.Event()
        self.first_sent = threading.Event()
        self.produced = 0
        self.closed = threading.Event()

    def __getattr__(self, name):
        return getattr(self._arc, name)

    def find(self, *args, **kwargs):
        try:
            for ds in self._arc.find(*args, **kwargs):
                if self.produced == 1:
                    self.first_sent.set()
                    assert self.gate.wait(DEADLINE), "the test never opened the gate"
                self.produced += 1
                yield ds
        finally:
            self.closed.set()


def in_process(arc, keys: dict) -> list[tuple]:
    return sorted(tuple(norm(d.get(k)) for k in keys) for d in arc.find(dict(keys), level="STUDY"))


def over_wire(found: list[Dataset], keys: dict) -> list[tuple]:
    return sorted(tuple(norm(d.get(k)) for k in keys) for d in found)


# ---- a pynetdicom client of the served SCP (tests/test_dimse_wire.py, tests/test_dimse_direct.py) --
FIND = "1.2.840.10008.5.1.4.1.2.2.1"  # Study Root Query/Retrieve Information Model - FIND
STUDY_KEYS = {"StudyInstanceUID": "", "PatientID": "", "PatientName": "", "StudyDate": ""}


def associate(port: int, *contexts, title: str = "WIRETEST", max_pdu: int = 16382, **kwargs):
    """An established association from ``title`` to the SCP on ``port``, guarded (our answers
    come fast: see test_dimse_wire.test_the_requestor_guard_leaves_responses_to_the_send_loop)."""
    from pynetdicom import AE

    from pacscore.adapters.dimse_fastpath import guard_requestor

    ae = AE(title)
    ae.acse_timeout = ae.dimse_timeout = ae.network_timeout = 60
    ae.maximum_pdu_size = max_pdu
    for cx in contexts:
        if isinstance(cx, str):
            ae.add_requested_context(cx)
        else:
            ae.requested_contexts = [*ae.requested_contexts, cx]
    assoc = ae.associate("127.0.0.1", port, ae_title="PACSCORE", **kwargs)
    assert assoc.is_established
    return guard_requestor(assoc)


def identifier(level: str = "STUDY", **keys) -> Dataset:
    ds = Dataset()
    ds.QueryRetrieveLevel = level
    for k, v in keys.items():
        setattr(ds, k, v)
    return ds


def pending(assoc, ds: Dataset, model: str = FIND, **kwargs) -> tuple[list[int], list[Dataset]]:
    """The statuses of a C-FIND's responses, and the identifiers of the pending ones."""
    statuses, found = [], []
    for status, ident in assoc.send_c_find(ds, model, **kwargs):
        statuses.append(status.Status)
        if ident is not None and status.Status in (0xFF00, 0xFF01):
            found.append(ident)
    return statuses, found


def cancel_between_responses(srv, archive, gated: GatedArchive, cancel_arrived) -> None:
    """C-CANCEL after the first match: Cancel (FE00) is the next response, the association
    serves on, and the archive's iterator is closed. ``cancel_arrived(srv)`` tells when the
    server has the C-CANCEL (each loop shows it its own way)."""
    assoc = associate(srv.server_address[1], FIND)
    cx = next(c for c in assoc.accepted_contexts if c.abstract_syntax == FIND)
    statuses = []
    try:
        for status, _ in assoc.send_c_find(identifier(**STUDY_KEYS), FIND, msg_id=11):
            statuses.append(status.Status)
            if len(statuses) == 1:
                assert gated.first_sent.wait(DEADLINE)
                assoc.send_c_cancel(11, cx.context_id)
                wait_until(lambda: cancel_arrived(srv), "the server to receive C-CANCEL")
                gated.gate.set()
        assert statuses == [0xFF00, 0xFE00]  # one match, then Cancel (PS3.4 C.4.1.3.2)
        statuses, found = pending(assoc, identifier(**STUDY_KEYS))
        assert statuses[-1] == 0x0000 and len(found) == len(in_process(archive, STUDY_KEYS))
    finally:
        gated.gate.set()
        assoc.release()
    assert gated.closed.wait(DEADLINE)  # the archive's iterator (and its read transaction) closed


def abort_mid_query(srv, archive, gated: GatedArchive, served) -> None:
    """An A-ABORT in the middle of a query ends that association only: the other one answers,
    then ends when released. ``served(srv)`` is the server's open associations."""
    other = associate(srv.server_address[1], FIND)
    assoc = associate(srv.server_address[1], FIND)
    wait_until(lambda: len(served(srv)) == 2, "both associations on the server")
    responses = assoc.send_c_find(identifier(**STUDY_KEYS), FIND)
    status, _ = next(responses)
    assert status.Status == 0xFF00
    assert gated.first_sent.wait(DEADLINE)
    assoc.abort()
    gated.gate.set()
    assert gated.closed.wait(DEADLINE)
    wait_until(lambda: len(served(srv)) == 1, "the server to end the aborted association")
    statuses, found = pending(other, identifier(**STUDY_KEYS))
    assert statuses[-1] == 0x0000 and len(found) == len(in_process(archive, STUDY_KEYS))
    other.release()
    wait_until(lambda: not served(srv), "the server to end the released association")


@contextlib.contextmanager
def serve_dimse_process(archive, *options: str, stop: int = signal.SIGTERM, wait: float = 30.0):
    """``pacscore serve dimse --archive ARCHIVE --port 0 OPTIONS...`` in a process of its own:
    yields (process, bound port, its log lines so far); on leaving, ``stop`` (SIGTERM, or SIGKILL
    for a crash) and the process's end are waited for, so ``returncode`` is set."""
    import sys

    root = Path(__file__).resolve().parent.parent
    proc = subprocess.Popen(
        [sys.executable, "-m", "pacscore", "serve", "dimse", "--archive", str(archive), "--port", "0", *options],
        cwd=root,
        env={**os.environ, "PYTHONPATH": str(root)},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    logged: list[str] = []
    reader = threading.Thread(target=read_lines, args=(proc.stderr, logged), daemon=True)
    reader.start()
    try:
        yield proc, bound_port_logged(proc, logged, timeout=wait), logged
    finally:
        if proc.poll() is None:
            proc.send_signal(stop)
        proc.wait(wait)
        reader.join(wait)  # it ends at the end of the process's stderr
        assert proc.stderr is not None
        proc.stderr.close()
