"""C-STORE over the wire into ``pacscore serve dimse`` from several associations at once: the
stores share durable commits (pacscore/group_commit.py), and a success response is only ever
sent for an instance that a crash cannot lose (PS3.4 B.2.3)."""

from __future__ import annotations

import io
import re
import signal
import subprocess
import threading
import time
from pathlib import Path

import pydicom
import pytest

import pacscore

from .dimse_helpers import dcmtk, dcmtk_env, make_instance, read_lines, serve_dimse_process, to_bytes

pytest.importorskip("pynetdicom")
pytestmark = pytest.mark.skipif(dcmtk("storescu") is None, reason="DCMTK storescu is not on PATH")

ROOT = Path(__file__).resolve().parent.parent
UID_ROOT = "1.2.826.0.1.3680043.9.7777.60"
WAIT = 120.0  # seconds: far above what the runs take


def write_folders(root: Path, associations: int, each: int) -> dict[str, bytes]:
    """One folder of ``each`` small instances per association (a study per folder); the bytes
    written, by SOP Instance UID."""
    written = {}
    for a in range(associations):
        folder = root / f"assoc{a}"
        folder.mkdir(parents=True)
        study = f"{UID_ROOT}.{a + 1}"
        for i in range(each):
            ds = make_instance(
                sop=f"{study}.1.{i + 1}",
                study=study,
                series=f"{study}.1",
                patient_id=f"BATCH{a}",
                patient_name=f"Batch^{a}",
                modality="CT",
                study_date="20210301",
                study_time="0900",
                instance_number=i + 1,
            )
            data = to_bytes(ds)
            (folder / f"{ds.SOPInstanceUID}.dcm").write_bytes(data)
            written[ds.SOPInstanceUID] = data
    return written


def stored_uids(arc: pacscore.Archive, associations: int) -> set[str]:
    """The SOP Instance UIDs the archive holds in the studies ``write_folders`` wrote."""
    studies = [f"{UID_ROOT}.{a + 1}" for a in range(associations)]
    return {ref.sop_instance_uid for ref in arc.instances(study=studies)}


def sent_by(arc: pacscore.Archive, uid: str) -> str:
    """The Source Application Entity Title in the stored file meta: the calling AE title."""
    return str(
        pydicom.dcmread(io.BytesIO(arc.get(uid)), stop_before_pixels=True).file_meta.SourceApplicationEntityTitle
    )


def serve_dimse(archive: Path):
    """``pacscore serve dimse`` on a free port, SIGKILLed if still running at the end."""
    return serve_dimse_process(archive, stop=signal.SIGKILL, wait=WAIT)


class Storescu:
    """storescu -v sending a folder on one association; its log lines are read as they come."""

    def __init__(self, port: int, folder: Path, aet: str) -> None:
        command = [dcmtk("storescu"), "-v", "-aet", aet, "-aec", "PACSCORE", "+sd", "127.0.0.1", str(port), str(folder)]
        self.proc = subprocess.Popen(
            command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, env=dcmtk_env()
        )
        self.lines: list[str] = []
        self._reader = threading.Thread(target=read_lines, args=(self.proc.stderr, self.lines), daemon=True)
        self._reader.start()

    def acknowledged(self) -> list[str]:
        """The SOP Instance UIDs (the file names) whose success response storescu logged: each
        "Received Store Response (Success)" answers the file of the "Sending file" line before it."""
        out, sending = [], None
        for line in list(self.lines):
            if found := re.search(r"Sending file: (.+)$", line.strip()):
                sending = Path(found.group(1)).stem
            elif "Received Store Response (Success)" in line and sending is not None:
                out.append(sending)
                sending = None
        return out

    def end(self) -> int:
        """Wait for storescu and for the last of its log; its exit status."""
        self.proc.wait(WAIT)
        self._reader.join(WAIT)  # it ends at the end of storescu's stderr
        self.proc.stderr.close()
        return self.proc.returncode


def test_four_parallel_associations_store_everything(tmp_path):
    pacscore.open(tmp_path / "arc").close()
    written = write_folders(tmp_path / "in", associations=4, each=25)
    with serve_dimse(tmp_path / "arc") as (server, port, logged):
        runs = [Storescu(port, tmp_path / "in" / f"assoc{a}", f"SCU{a}") for a in range(4)]
        for run in runs:
            assert run.end() == 0, "".join(run.lines)
            assert len(run.acknowledged()) == 25, "".join(run.lines)
        server.send_signal(signal.SIGTERM)
        assert server.wait(WAIT) == 0
    log = "".join(logged)
    assert log.count("stored 25, store failures 0") == 4, log
    with pacscore.open(tmp_path / "arc") as arc:
        assert stored_uids(arc, 4) == set(written)
        for a in range(4):
            uids = {ref.sop_instance_uid for ref in arc.instances(study=f"{UID_ROOT}.{a + 1}")}
            assert len(uids) == 25
            for uid in uids:  # each kept the calling AE title of its own association
                assert sent_by(arc, uid) == f"SCU{a}" and arc.header(uid).PatientID == f"BATCH{a}"


def test_every_acknowledged_instance_survives_a_kill(tmp_path):
    """SIGKILL the server while four associations store: whatever storescu was told was stored
    is in the archive when it is opened again (the instances not yet acknowledged may or may not
    be)."""
    pacscore.open(tmp_path / "arc").close()
    each = 250
    write_folders(tmp_path / "in", associations=4, each=each)
    with serve_dimse(tmp_path / "arc") as (server, port, _logged):
        runs = [Storescu(port, tmp_path / "in" / f"assoc{a}", f"SCU{a}") for a in range(4)]
        deadline = time.monotonic() + WAIT
        while sum(len(run.acknowledged()) for run in runs) < 60 and time.monotonic() < deadline:
            time.sleep(0.005)
        server.send_signal(signal.SIGKILL)
        server.wait(WAIT)
        for run in runs:
            run.end()  # storescu fails: the peer is gone
    told = [(a, uid) for a, run in enumerate(runs) for uid in run.acknowledged()]
    assert 60 <= len(told) < 4 * each, "the kill did not land while the associations were storing"
    with pacscore.open(tmp_path / "arc") as arc:
        stored = stored_uids(arc, 4)
        missing = [uid for _, uid in told if uid not in stored]
        assert not missing, f"{len(missing)} acknowledged instances are not in the archive: {missing[:5]}"
        for a, uid in told:
            assert sent_by(arc, uid) == f"SCU{a}"  # its bytes are there and match their checksum
