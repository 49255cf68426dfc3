"""The wire benchmark's reading of findscu's own log (benchmarks/wire.py) and its C-STORE table
(benchmarks/wire_store.py): the time inside findscu is only as good as this parsing."""

from __future__ import annotations

import socket
import subprocess

import pytest

from benchmarks import wire, wire_store

from .dimse_helpers import dcmtk

#: findscu's output under ``wire.log_config(wire.RELEASED_LINE)`` (DCMTK 3.6.7): the dcmnet trace
#: message that holds "Confirm Release" spans three lines, each with the same timestamp
RELEASED_LOG = """\
12:12:38.910.112 Requesting Association
12:12:38.914.183 DUL  FSM Table: State: 7 Event: 12
12:12:38.914.183 DUL  Event:  A-RELEASE-RP PDU (on transport)
12:12:38.914.183 DUL  Action: AR 3 Confirm Release
"""


def test_span_runs_from_the_association_request_to_the_release_confirmation() -> None:
    assert wire.findscu_span(RELEASED_LOG) == pytest.approx(0.004071, abs=1e-9)


def test_span_ignores_lines_without_a_timestamp_and_other_messages() -> None:
    noisy = "W: something findscu said\n" + RELEASED_LOG.replace(
        "12:12:38.914.183 DUL  FSM", "12:12:38.912.000 Received Final Find Response\n12:12:38.914.183 DUL  FSM"
    )
    assert wire.findscu_span(noisy) == pytest.approx(0.004071, abs=1e-9)


def test_span_up_to_releasing_uses_the_last_such_line() -> None:
    log = (
        "23:59:59.999.500 Requesting Association\n"
        "00:00:00.000.250 Releasing Association\n"  # past midnight: 750 µs, not minus a day
    )
    assert wire.findscu_span(log, wire.RELEASING_LINE) == pytest.approx(0.00075, abs=1e-9)


@pytest.mark.parametrize(
    "log",
    [
        "",
        "12:12:38.910.112 Requesting Association\n12:12:38.910.300 Association Request Failed\n",
        "12:12:38.914.183 DUL  Action: AR 3 Confirm Release\n",  # no start
        "12:12:38.910 Requesting Association\n12:12:38.914 Confirm Release\n",  # milliseconds only
    ],
)
def test_a_log_without_both_lines_is_refused(log: str) -> None:
    with pytest.raises(ValueError):
        wire.findscu_span(log)


def test_log_config_writes_only_the_two_lines() -> None:
    config = wire.log_config(wire.RELEASED_LINE)
    assert "log4cplus.logger.dcmtk.dcmnet = TRACE" in config
    assert f"StringToMatch = {wire.START_LINE}" in config and f"StringToMatch = {wire.RELEASED_LINE}" in config
    assert config.rstrip().endswith("DenyAllFilter")
    assert "dcmnet = INFO" in wire.log_config(wire.RELEASING_LINE)


@pytest.mark.skipif(dcmtk("findscu") is None, reason="DCMTK's findscu is not installed")
def test_real_findscu_writes_the_timestamp_the_parser_reads(tmp_path) -> None:
    """findscu (this machine's DCMTK) against a bound port nobody listens on: it logs "Requesting
    Association" in the layout STAMPED reads, and nothing after the refused connection."""
    config = tmp_path / "log.cfg"
    config.write_text(wire.log_config(wire.RELEASED_LINE))
    with socket.socket() as closed:
        closed.bind(("127.0.0.1", 0))  # bound, not listening: the connection is refused
        port = closed.getsockname()[1]
        findscu = str(dcmtk("findscu"))
        args = [findscu, "--log-config", str(config), "-S", "-k", "QueryRetrieveLevel=STUDY", "127.0.0.1", str(port)]
        proc = subprocess.run(args, capture_output=True, text=True, timeout=30)
    lines = (proc.stdout + proc.stderr).splitlines()
    assert proc.returncode != 0
    assert [wire.STAMPED.match(line) is not None for line in lines] == [True]
    assert lines[0].endswith(wire.START_LINE)
    with pytest.raises(ValueError):
        wire.findscu_span(proc.stdout + proc.stderr)


def test_store_table_marks_an_scp_that_refused_or_lost_instances() -> None:
    result = {
        "instances": 1000,
        "mean_bytes": 1400,
        "runs": 3,
        "targets": ["pacscore", "orthanc", "dcmqrscp"],
        "instances_per_s": {
            "pacscore": {"1": 900.0, "4": 1500.0},
            "orthanc": {"1": 300.0, "4": 500.0},
            "dcmqrscp": {"1": 1200.0, "4": 700.0},
        },
        "fsync": {n: wire_store.FSYNC[n] for n in ("pacscore", "orthanc", "dcmqrscp")},
        "problems": {"dcmqrscp": {"4": ["held 786 of 1000, 1 storescu failed", "held 998 of 1000"]}},
    }
    text = "\n".join(wire_store.markdown(result))
    assert "| one association (one storescu) | 900.0 | 300.0 | 1200.0 | 3.0 |" in text
    marked = "700.0 ✗ (held 786 of 1000, 1 storescu failed; held 998 of 1000) | 3.0 |"
    assert "| 4 associations (storescu × 4) | 1500.0 | 500.0 | " + marked in text
    assert "refused stores" in text
    result["problems"] = {}
    assert "✗" not in "\n".join(wire_store.markdown(result))


def test_the_replay_scp_sends_pacscores_answer_and_then_the_same_from_memory(tmp_path) -> None:
    """The replay yardstick (benchmarks/replay_scp.py) must send exactly pacscore's matches, the
    first time computed and every later time from memory, or its bound would be of another
    answer."""
    import threading

    import pacscore
    from benchmarks import replay_scp

    from . import dimse_helpers
    from .dimse_helpers import FIND, identifier, pending

    with pacscore.open(tmp_path / "arc") as arc:
        for ds in dimse_helpers.generated_instances():
            arc.store(ds)
        replay = replay_scp.Replay(arc)
        with socket.create_server(("127.0.0.1", 0)) as listener:
            port = listener.getsockname()[1]

            def accept_one() -> None:
                sock, _ = listener.accept()
                replay.serve(sock)

            thread = threading.Thread(target=accept_one, daemon=True)
            thread.start()
            assoc = dimse_helpers.associate(port, FIND)
            try:
                keys = {"PatientID": "", "PatientName": "", "StudyInstanceUID": "", "StudyDate": ""}
                first = pending(assoc, identifier(**keys))
                again = pending(assoc, identifier(**keys))
                other = pending(assoc, identifier(StudyDate="19000101-19000102", StudyInstanceUID=""))
            finally:
                assoc.release()
            thread.join(10)
        expected = list(arc.find(keys | {"QueryRetrieveLevel": "STUDY"}, level="STUDY", **replay_scp.FIND_OPTIONS))
    assert first[0][-1] == again[0][-1] == other[0][-1] == 0x0000
    uids = sorted(str(d.StudyInstanceUID) for d in first[1])
    assert uids == sorted(str(d.StudyInstanceUID) for d in expected) and len(uids) > 1
    assert [d.to_json_dict() for d in again[1]] == [d.to_json_dict() for d in first[1]]
    assert other[1] == [] and len(replay.answers) == 2  # two identifiers, each computed once


@pytest.mark.skipif(dcmtk("storescu") is None, reason="DCMTK's storescu is not installed")
def test_the_synced_floor_acknowledges_each_store_only_after_writing_it(tmp_path) -> None:
    """The C-STORE yardstick ``floor-sync`` (benchmarks/null_scp.py --sync-to): DCMTK's storescu
    gets Success for every instance, and each data set is in the synced file by then; its rate
    is only a bound if it really writes and syncs what it acknowledges."""
    import threading

    from benchmarks import null_scp

    from .factories import make_instance, to_bytes

    files = []
    for i in range(3):
        path = tmp_path / f"{i}.dcm"
        path.write_bytes(to_bytes(make_instance(sop=f"1.2.3.1.{i}")))
        files.append(path)
    log = null_scp.SyncedLog(str(tmp_path / "log.bin"))
    synced: list[bytes] = []
    real_append = log.append

    def append(data: bytes) -> None:
        real_append(data)
        synced.append(data)

    log.append = append  # type: ignore[method-assign]
    with socket.create_server(("127.0.0.1", 0)) as listener:
        port = listener.getsockname()[1]

        def accept_one() -> None:
            sock, _ = listener.accept()
            null_scp.serve_one(sock, null_scp.synced_answer(log))

        thread = threading.Thread(target=accept_one, daemon=True)
        thread.start()
        args = [str(dcmtk("storescu")), "-v", "-aec", "FLOOR", "127.0.0.1", str(port), *map(str, files)]
        proc = subprocess.run(args, capture_output=True, text=True, timeout=60)
        thread.join(10)
    out = proc.stdout + proc.stderr
    assert proc.returncode == 0, out
    assert out.count("Received Store Response (Success)") == 3, out
    assert "W:" not in out and "E:" not in out, out  # the responses are well formed
    assert len(synced) == 3
    written = (tmp_path / "log.bin").read_bytes()
    for data in synced:  # each data set as received (Implicit VR LE), in the file
        assert data and data in written
