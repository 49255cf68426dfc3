"""Multi-process serving (pacscore/serve_processes.py): ``serve web --workers 2`` and ``serve
dimse --processes 2`` answer from either process, survive a killed process, and stop every
process on SIGTERM of the parent, leaving no zombie."""

from __future__ import annotations

import contextlib
import os
import select
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

import pacscore
from pacscore.errors import StorageError
from pacscore.index import lmdb_index
from pacscore.serve_processes import READERS_ENV, prepare_readers

from .factories import make_instance, to_bytes

httpx = pytest.importorskip("httpx")
pytest.importorskip("uvicorn")
pynetdicom = pytest.importorskip("pynetdicom")

STUDIES = 6
#: generous: how long a server takes to start depends on the machine's load
START_TIMEOUT = 90.0


@pytest.fixture(scope="module")
def archive(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("served") / "arc"
    with pacscore.open(folder) as arc:
        arc.store_many(
            [
                to_bytes(
                    make_instance(sop=f"1.2.7.{s}.{i}", study=f"1.2.7.{s}", series=f"1.2.7.{s}.9", patient_id=f"P{s}")
                )
                for s in range(STUDIES)
                for i in range(3)
            ]
        )
    return folder


def _children(pid: int) -> set[int]:
    """The live child processes of ``pid`` (from /proc)."""
    out = set()
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        fields = stat[stat.rfind(")") + 2 :].split()
        if int(fields[1]) == pid and fields[0] != "Z":
            out.add(int(entry.name))
    return out


def _stop(pid: int) -> None:
    """SIGSTOP ``pid`` and wait until it is stopped: the signal takes effect when the kernel next
    schedules it, and a process still running could accept the next connection meanwhile."""
    os.kill(pid, signal.SIGSTOP)
    _wait_until(lambda: _state(pid) in ("T", "t"), f"process {pid} to stop")


def _state(pid: int) -> str:
    stat = Path(f"/proc/{pid}/stat").read_text()
    return stat[stat.rfind(")") + 2 :].split()[0]


def _gone(pid: int) -> bool:
    """No such process, or only its zombie entry left for a parent that will reap it."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return True
    return stat[stat.rfind(")") + 2 :].split()[0] == "Z"


def _wait_until(condition, what: str, timeout: float = START_TIMEOUT) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.05)


@contextlib.contextmanager
def _server(args: list[str], processes: int) -> Iterator[tuple[subprocess.Popen, int]]:
    """Start ``pacscore serve ...`` with port 0; yields the parent process and the port it printed
    once all its processes are up."""
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    proc = subprocess.Popen(
        [sys.executable, "-m", "pacscore", "serve", *args, "--port", "0"],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
        env=env,
    )
    try:
        ready, _, _ = select.select([proc.stdout], [], [], START_TIMEOUT)
        line = proc.stdout.readline() if ready else ""
        assert " on " in line, f"the server did not say where it listens: {line!r} (exit {proc.poll()})"
        port = int(line.split(" on ")[1].split()[0].rsplit(":", 1)[1].split("/")[0])
        _wait_until(lambda: len(_children(proc.pid)) == processes, f"{processes} serving processes")
        yield proc, port
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.wait(30)
        proc.stdout.close()


def _stops_cleanly(proc: subprocess.Popen) -> None:
    children = _children(proc.pid)
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(START_TIMEOUT) == 0
    _wait_until(lambda: all(_gone(c) for c in children), "the serving processes to exit")


# -- serve web --workers ------------------------------------------------------------------------


def _qido(port: int) -> list[str]:
    # a new connection per request: the kernel gives each to whichever process accepts first
    with httpx.Client(timeout=60, headers={"Connection": "close"}) as client:
        response = client.get(f"http://127.0.0.1:{port}/dicomweb/studies")
    response.raise_for_status()
    return sorted(study["0020000D"]["Value"][0] for study in response.json())


def test_web_workers_answer_from_each_process_and_stop_on_sigterm(archive):
    expected = [f"1.2.7.{s}" for s in range(STUDIES)]
    with _server(["web", "--archive", str(archive), "--workers", "2", "--log-level", "warning"], 2) as (proc, port):
        with ThreadPoolExecutor(8) as pool:  # several clients at once
            assert list(pool.map(lambda _: _qido(port), range(24))) == [expected] * 24
        # each process answers on its own: the other one stopped, connections wait for this one
        first, second = sorted(_children(proc.pid))
        for stopped in (first, second):
            try:
                _stop(stopped)
                assert _qido(port) == expected
            finally:
                os.kill(stopped, signal.SIGCONT)
        _stops_cleanly(proc)


def test_a_killed_web_process_is_replaced(archive):
    with _server(["web", "--archive", str(archive), "--workers", "2", "--log-level", "warning"], 2) as (proc, port):
        before = _children(proc.pid)
        victim = min(before)
        os.kill(victim, signal.SIGKILL)
        _wait_until(lambda: len(_children(proc.pid) - before) == 1, "a replacement process")
        assert victim not in _children(proc.pid)
        assert len(_qido(port)) == STUDIES
        _stops_cleanly(proc)


# -- serve dimse --processes ------------------------------------------------------------------


def _find_studies(port: int) -> list[str]:
    from pydicom.dataset import Dataset
    from pynetdicom import AE
    from pynetdicom.sop_class import StudyRootQueryRetrieveInformationModelFind

    ae = AE(ae_title="TESTSCU")
    ae.add_requested_context(StudyRootQueryRetrieveInformationModelFind)
    ae.acse_timeout = ae.dimse_timeout = ae.network_timeout = 60
    assoc = ae.associate("127.0.0.1", port, ae_title="PACSCORE")
    assert assoc.is_established
    try:
        query = Dataset()
        query.QueryRetrieveLevel = "STUDY"
        query.StudyInstanceUID = ""
        found = []
        for status, identifier in assoc.send_c_find(query, StudyRootQueryRetrieveInformationModelFind):
            if status and status.Status in (0xFF00, 0xFF01):
                found.append(str(identifier.StudyInstanceUID))
        return sorted(found)
    finally:
        assoc.release()


def test_dimse_processes_answer_from_each_process_and_stop_on_sigterm(archive):
    expected = [f"1.2.7.{s}" for s in range(STUDIES)]
    with _server(["dimse", "--archive", str(archive), "--processes", "2"], 2) as (proc, port):
        with ThreadPoolExecutor(6) as pool:
            assert list(pool.map(lambda _: _find_studies(port), range(12))) == [expected] * 12
        first, second = sorted(_children(proc.pid))
        for stopped in (first, second):
            try:
                _stop(stopped)
                assert _find_studies(port) == expected
            finally:
                os.kill(stopped, signal.SIGCONT)
        _stops_cleanly(proc)


def test_processes_must_be_a_positive_number(archive, capsys):
    from pacscore.cli import main

    with pytest.raises(SystemExit):
        main(["serve", "dimse", "--archive", str(archive), "--processes", "0"])
    assert "--processes" in capsys.readouterr().err


# -- reader slots -------------------------------------------------------------------------------


def test_reader_slots_are_sized_for_the_processes(tmp_path, monkeypatch):
    monkeypatch.delenv(READERS_ENV, raising=False)
    pacscore.open(tmp_path / "arc").close()
    slots = prepare_readers(tmp_path / "arc", processes=16, threads_per_process=41)
    assert os.environ[READERS_ENV] == str(16 * (41 + 8))
    assert slots >= 16 * 41


def test_a_bad_reader_slot_count_is_refused_by_name(monkeypatch):
    monkeypatch.setenv(READERS_ENV, "many")
    with pytest.raises(StorageError, match="PACSCORE_MAX_READERS"):
        lmdb_index.max_readers()


def test_the_load_tool_drives_two_processes_and_nothing_stored_is_lost(tmp_path):
    """benchmarks/load.py --server-processes: C-STORE into one of two processes while the other
    answers queries; every acknowledged instance is findable and byte-identical afterwards."""
    from benchmarks import load

    result = load.run(
        tmp_path / "arc",
        seconds=2,
        find_clients=1,
        qido_clients=1,
        store_clients=1,
        prefill=16,
        max_ops=200,
        server_processes=2,
    )
    assert result["server_processes"] == 2 and result["dicomweb"]
    assert result["c_find"]["ops"] > 0 and result["qido"]["ops"] > 0 and result["acknowledged"] > 0
    assert result["lost"] == result["mismatched"] == result["not_found_over_dimse"] == 0
    assert result["verify_ok"] and not result["hung_clients"]


@pytest.mark.parametrize("command", [["web", "--workers", "2"], ["dimse", "--processes", "2"]])
def test_a_platform_without_fork_is_told_so(archive, monkeypatch, capsys, command):
    from pacscore import serve_processes
    from pacscore.cli import main

    monkeypatch.setattr(serve_processes, "supported", lambda: False)
    assert main(["serve", command[0], "--archive", str(archive), "--port", "0", *command[1:]]) == 2
    assert "needs fork()" in capsys.readouterr().err
