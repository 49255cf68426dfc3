"""The DIMSE fast path (pacscore.adapters.dimse_fastpath): pynetdicom's reactors without their
polling sleeps, on the associations pacscore accepts.

Through ``serve(..., fastpath=True, direct=False)`` (pynetdicom's threads with waking reactors;
the direct loop has tests/test_dimse_direct.py) with DCMTK's findscu and pynetdicom as clients: queries
answer as in process, many in one association and with many contexts; C-CANCEL stops a query
between responses; an abort in the middle of a query ends that association only; release ends
the association's threads. Synchronisation waits for conditions (with generous deadlines),
never for fixed times.
"""

from __future__ import annotations

import pytest
from pydicom.uid import ExplicitVRLittleEndian, ImplicitVRLittleEndian
from pynetdicom import AE, build_context, evt
from pynetdicom.sop_class import Verification

import pacscore
from pacscore.adapters import dimse
from pacscore.adapters.dimse_convert import storage_sop_classes
from pacscore.adapters.dimse_fastpath import FastAssociation, WakingDUL, guard_requestor, make_fast, supported

from .dimse_helpers import (
    FIND,
    STUDY_KEYS,
    GatedArchive,
    abort_mid_query,
    associate,
    cancel_between_responses,
    dcmtk,
    findscu,
    generated_instances,
    identifier,
    in_process,
    over_wire,
    pending,
    wait_until,
)

HAVE_FINDSCU = dcmtk("findscu") is not None


@pytest.fixture(scope="module")
def archive(tmp_path_factory):
    with pacscore.open(tmp_path_factory.mktemp("wire") / "arc") as arc:
        for ds in generated_instances():
            arc.store(ds)
        yield arc


def serve(arc, **options):
    return dimse.serve(arc, dimse.ServeConfig(port=0, block=False, fastpath=True, direct=False, **options))


@pytest.fixture(scope="module")
def server(archive):
    srv = serve(archive)
    try:
        yield srv
    finally:
        srv.shutdown()


def test_this_pynetdicom_gets_the_fast_path():
    assert supported()
    assert not supported("2.1.0") and not supported("3.1.0") and not supported("x")


def test_served_associations_run_the_waking_reactors(server):
    assoc = associate(server.server_address[1], Verification)
    try:
        wait_until(lambda: server.active_associations, "the server's association")
        (theirs,) = server.active_associations
        assert isinstance(theirs, FastAssociation) and isinstance(theirs.dul, WakingDUL)
        # pynetdicom's DEBUG formatting handlers, bound by every Association, are not (no DEBUG)
        assert not [h for h, _ in theirs.get_handlers(evt.EVT_DIMSE_SENT) if h.__module__ == "pynetdicom._handlers"]
        assert assoc.send_c_echo().Status == 0x0000
    finally:
        assoc.release()
    assert assoc.is_released
    wait_until(lambda: not server.active_associations, "the server to end the released association")


def test_make_fast_refuses_a_started_association(server):
    assoc = associate(server.server_address[1], Verification)
    try:
        wait_until(lambda: server.active_associations, "the server's association")
        with pytest.raises(RuntimeError, match="not started"):
            make_fast(server.active_associations[0])
    finally:
        assoc.release()


def test_many_queries_in_one_association_answer_as_in_process(server, archive):
    expected = in_process(archive, STUDY_KEYS)
    assert len(expected) >= 3
    assoc = associate(server.server_address[1], FIND)
    try:
        for _ in range(25):
            statuses, found = pending(assoc, identifier(**STUDY_KEYS))
            assert statuses[-1] == 0x0000
            assert over_wire(found, STUDY_KEYS) == expected
        statuses, found = pending(assoc, identifier(PatientID="NO SUCH PATIENT", StudyInstanceUID=""))
        assert statuses == [0x0000] and found == []
    finally:
        assoc.release()


def test_an_association_of_120_contexts_queries_on_the_fast_path(server, archive):
    contexts = [build_context(FIND), build_context(Verification)]
    contexts += [
        build_context(uid, [ImplicitVRLittleEndian, ExplicitVRLittleEndian]) for uid in storage_sop_classes()[:118]
    ]
    ae = AE("WIRETEST")
    ae.acse_timeout = ae.dimse_timeout = ae.network_timeout = 60
    ae.requested_contexts = contexts
    assoc = guard_requestor(ae.associate("127.0.0.1", server.server_address[1], ae_title="PACSCORE"))
    assert assoc.is_established
    try:
        assert len(assoc.accepted_contexts) == 120
        statuses, found = pending(assoc, identifier(**STUDY_KEYS))
        assert statuses[-1] == 0x0000 and over_wire(found, STUDY_KEYS) == in_process(archive, STUDY_KEYS)
    finally:
        assoc.release()


@pytest.mark.skipif(not HAVE_FINDSCU, reason="DCMTK's findscu is not installed")
@pytest.mark.parametrize("syntax", ["-xi", "-xe"])
def test_findscu_queries_answer_as_in_process(server, archive, tmp_path, syntax):
    """DCMTK's findscu, implicit and explicit VR little endian, one association per process."""
    proc, found = findscu(server.server_address[1], "-S", "STUDY", STUDY_KEYS, tmp_path, extra=[syntax])
    assert proc.returncode == 0, proc.stderr
    assert over_wire(found, STUDY_KEYS) == in_process(archive, STUDY_KEYS)


@pytest.mark.skipif(not HAVE_FINDSCU, reason="DCMTK's findscu is not installed")
def test_findscu_repeated_queries_in_one_association(server, archive, tmp_path):
    proc, found = findscu(server.server_address[1], "-S", "STUDY", STUDY_KEYS, tmp_path, extra=["--repeat", "5"])
    assert proc.returncode == 0, proc.stderr
    expected = in_process(archive, STUDY_KEYS)
    # -X numbers the responses of all repetitions in one sequence of files
    assert sorted(over_wire(found, STUDY_KEYS)) == sorted(expected * 5)


def test_c_cancel_is_honoured_between_responses(archive):
    gated = GatedArchive(archive)
    srv = serve(gated)
    try:
        cancel_between_responses(srv, archive, gated, lambda s: 11 in s.active_associations[0].dimse.cancel_req)
    finally:
        srv.shutdown()


def test_an_abort_in_the_middle_of_a_query_ends_that_association_only(archive):
    gated = GatedArchive(archive)
    srv = serve(gated)
    try:
        abort_mid_query(srv, archive, gated, lambda s: s.active_associations)
    finally:
        gated.gate.set()
        srv.shutdown()


def test_a_silent_peer_meets_the_network_timeout(archive):
    """The waking reactor still sees the idle timer: a peer that says nothing is aborted."""
    srv = dimse.serve(archive, dimse.ServeConfig(port=0, block=False, fastpath=True, direct=False, network_timeout=0.5))
    try:
        assoc = associate(srv.server_address[1], Verification)
        wait_until(lambda: not assoc.is_established, "the server to abort the idle association")
        assert assoc.is_aborted
    finally:
        srv.shutdown()


def test_fastpath_off_serves_with_pynetdicoms_own_reactors(archive):
    srv = dimse.serve(archive, dimse.ServeConfig(port=0, block=False, fastpath=False))
    try:
        assoc = associate(srv.server_address[1], FIND)
        try:
            wait_until(lambda: srv.active_associations, "the server's association")
            assert not isinstance(srv.active_associations[0], FastAssociation)
            statuses, found = pending(assoc, identifier(**STUDY_KEYS))
            assert statuses[-1] == 0x0000 and over_wire(found, STUDY_KEYS) == in_process(archive, STUDY_KEYS)
        finally:
            assoc.release()
    finally:
        srv.shutdown()


def test_the_requestor_guard_leaves_responses_to_the_send_loop():
    """pynetdicom's requestor reactor may read the DIMSE queue in the instant after send_c_find
    paused it; guarded, its non-blocking reads skip responses (they belong to the send loop)
    and still take requests (an SCP may send the requestor N-EVENT-REPORTs, C-STOREs).
    Checked on an association whose reactor never started, so that nothing else reads."""
    from pynetdicom.association import Association
    from pynetdicom.dimse_primitives import C_ECHO, C_FIND

    assoc = guard_requestor(Association(AE("WIRETEST"), "requestor"))
    assoc.dimse_timeout = 30
    response, request = C_FIND(), C_ECHO()
    response.MessageIDBeingRespondedTo = 1
    request.MessageID, request.AffectedSOPClassUID = 2, Verification
    assoc.dimse.msg_queue.put((1, response))
    assert assoc.dimse.get_msg(block=False) == (None, None)  # the reactor's read: left queued
    assert assoc.dimse.get_msg(block=True) == (1, response)  # the send loop's read
    assoc.dimse.msg_queue.put((1, request))
    assert assoc.dimse.get_msg(block=False) == (1, request)
    assert assoc.dimse.get_msg(block=False) == (None, None)  # empty
    assoc.dimse.msg_queue.put((None, None))  # pynetdicom's wake-up of a blocked send loop
    assert assoc.dimse.get_msg(block=False) == (None, None)
    assert assoc.dimse.get_msg(block=True) == (None, None)


@pytest.mark.parametrize(
    "flag, fast, direct",
    [([], True, True), (["--no-fastpath"], False, True), (["--no-direct"], True, False)],
)
def test_serve_dimse_has_the_fast_path_and_the_direct_loop_unless_told_otherwise(flag, fast, direct):
    import argparse

    from pacscore import cli_serve

    parser = argparse.ArgumentParser(prog="pacscore")
    cli_serve.add_dimse_cli(parser.add_subparsers(dest="protocol"))
    args = parser.parse_args(["dimse", "--archive", "a", *flag])
    config = cli_serve.dimse_config(args)
    assert config.fastpath is fast and config.direct is direct
