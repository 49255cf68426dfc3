"""The direct loop (pacscore.adapters.dimse_direct): C-ECHO, C-FIND and C-STORE associations
served in one thread each, below pynetdicom; every other association handed to pynetdicom.

Clients are pynetdicom, DCMTK and raw sockets (for what a polite client never sends). Each test
checks which path served the association (``server.direct_connections()`` against pynetdicom's
``active_associations``), so that a change of the eligibility rule cannot pass silently.
Synchronisation waits for conditions, never for fixed times.
"""

from __future__ import annotations

import select
import socket
import struct
import time
from io import BytesIO

import pydicom
import pytest
from hypothesis import given
from hypothesis import strategies as st
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.uid import ExplicitVRBigEndian, ExplicitVRLittleEndian, ImplicitVRLittleEndian
from pynetdicom import AE, build_context
from pynetdicom.pdu import A_ASSOCIATE_AC, A_ASSOCIATE_RQ, P_DATA_TF
from pynetdicom.pdu_primitives import (
    A_ASSOCIATE,
    MaximumLengthNotification,
    SCP_SCU_RoleSelectionNegotiation,
    SOPClassExtendedNegotiation,
)
from pynetdicom.sop_class import (
    CTImageStorage,
    ModalityWorklistInformationFind,
    StudyRootQueryRetrieveInformationModelGet,
    Verification,
)
from pynetdicom.transport import AddressInformation

import pacscore
from pacscore.adapters import dimse
from pacscore.adapters.dimse_convert import storage_sop_classes
from pacscore.adapters.dimse_negotiation import ContextIndex, negotiate
from pacscore.adapters.dimse_pdu import (
    ProtocolError,
    associate_ac,
    message_pdus,
    parse_associate_rq,
    parse_command,
    pdvs,
)

from . import dimse_helpers
from .dimse_helpers import (
    DEADLINE,
    FIND,
    STUDY_KEYS,
    GatedArchive,
    abort_mid_query,
    cancel_between_responses,
    dataset_bytes,
    dcmtk,
    findscu,
    generated_instances,
    identifier,
    in_process,
    norm,
    over_wire,
    pending,
    run,
    to_bytes,
    wait_until,
)
from .worklist_items import make_item

HAVE_DCMTK = dcmtk("findscu") is not None and dcmtk("storescu") is not None


@pytest.fixture(scope="module")
def archive(tmp_path_factory):
    with pacscore.open(tmp_path_factory.mktemp("direct") / "arc") as arc:
        for ds in generated_instances():
            arc.store(ds)
        yield arc


def serve(arc, **options):
    return dimse.serve(arc, dimse.ServeConfig(port=0, block=False, **options))


@pytest.fixture(scope="module")
def server(archive):
    srv = serve(archive)
    try:
        yield srv
    finally:
        srv.shutdown()


def associate(port: int, *contexts, **kwargs):
    return dimse_helpers.associate(port, *contexts, title="DIRECTTEST", **kwargs)


def served_directly(server, title: str = "DIRECTTEST") -> bool:
    """True when the association from ``title`` is the direct loop's, False when pynetdicom's
    (waits out an association of an earlier test that is still ending)."""

    def paths():
        direct = [c for c in server.direct_connections() if c.assoc.requestor.ae_title == title]
        theirs = [a for a in server.active_associations if a.requestor.ae_title == title]
        return bool(direct), bool(theirs)

    wait_until(lambda: sum(paths()) == 1, "one path serving the association")
    return paths()[0]


# ---- PDUs and command sets, against pynetdicom's own encoders ------------------------------------
def rq_bytes(contexts, max_length: int = 16382, extra_items=()) -> bytes:
    primitive = A_ASSOCIATE()
    primitive.application_context_name = "1.2.840.10008.3.1.1.1"
    primitive.calling_ae_title = "CALLER"
    primitive.called_ae_title = "PACSCORE"
    primitive.calling_presentation_address = AddressInformation("127.0.0.1", 1)
    primitive.called_presentation_address = AddressInformation("127.0.0.1", 2)
    primitive.presentation_context_definition_list = contexts
    item = MaximumLengthNotification()
    item.maximum_length_received = max_length
    primitive.user_information = [item, *extra_items]
    return A_ASSOCIATE_RQ(primitive).encode()


def test_an_association_request_reads_as_pynetdicom_wrote_it():
    contexts = [build_context(FIND, [ImplicitVRLittleEndian, ExplicitVRLittleEndian])]
    contexts += [build_context(uid) for uid in storage_sop_classes()[:40]]
    for i, cx in enumerate(contexts):
        cx.context_id = 2 * i + 1
    rq = parse_associate_rq(rq_bytes(contexts, 4096))
    assert rq.calling_title == "CALLER" and rq.max_length == 4096
    assert rq.application_context == "1.2.840.10008.3.1.1.1" and rq.protocol_version == 1
    assert rq.contexts == [
        (cx.context_id, str(cx.abstract_syntax), [str(t) for t in cx.transfer_syntax]) for cx in contexts
    ]
    assert not rq.other_user_items


def test_role_selection_and_extended_negotiation_are_noticed():
    role = SCP_SCU_RoleSelectionNegotiation()
    role.sop_class_uid, role.scu_role, role.scp_role = CTImageStorage, True, True
    ext = SOPClassExtendedNegotiation()
    ext.sop_class_uid, ext.service_class_application_information = FIND, b"\x01"
    cx = build_context(FIND)
    cx.context_id = 1
    rq = parse_associate_rq(rq_bytes([cx], extra_items=[role, ext]))
    assert rq.other_user_items == {0x54, 0x56}


@given(st.data())
def test_a_cut_or_damaged_request_is_a_protocol_error_never_a_crash(data):
    cx = build_context(FIND)
    cx.context_id = 1
    raw = bytearray(rq_bytes([cx]))
    if data.draw(st.booleans()):
        raw = raw[: data.draw(st.integers(0, len(raw) - 1))]
    else:
        at = data.draw(st.integers(74, len(raw) - 1))
        raw[at] = data.draw(st.integers(0, 255))
    try:
        parse_associate_rq(bytes(raw))
    except ProtocolError:
        pass


def test_the_accept_decodes_in_pynetdicom():
    cx = build_context(FIND)
    cx.context_id = 1
    rq = parse_associate_rq(rq_bytes([cx]))
    raw = associate_ac(
        rq, [(1, 0, ImplicitVRLittleEndian), (3, 3, "1.2.3")], 8192, "1.2.826.0.1.3680043.9.3811.3", "PYNETDICOM_304"
    )
    ac = A_ASSOCIATE_AC()
    ac.decode(raw)
    primitive = ac.to_primitive()
    results = [
        (c.context_id, c.result, c.transfer_syntax[0]) for c in primitive.presentation_context_definition_results_list
    ]
    assert results == [(1, 0, ImplicitVRLittleEndian), (3, 3, "1.2.3")]
    assert primitive.maximum_length_received == 8192
    assert primitive.called_ae_title == "PACSCORE" and primitive.calling_ae_title == "CALLER"


@given(
    st.binary(min_size=0, max_size=3000),
    st.one_of(st.none(), st.binary(min_size=0, max_size=9000)),
    st.sampled_from([0, 64, 100, 1024, 16382]),
)
def test_messages_are_framed_within_the_peers_maximum_length(command, data, max_length):
    raw = message_pdus(5, command, data, max_length)
    got = {True: b"", False: b""}
    last = {True: False, False: False}
    stream = BytesIO(raw)
    while stream.tell() < len(raw):
        kind, length = struct.unpack(">BxL", stream.read(6))
        body = stream.read(length)
        assert kind == 0x04 and len(body) == length
        assert not max_length or length <= max_length
        pdu = P_DATA_TF()
        pdu.decode(bytes((kind, 0)) + struct.pack(">L", length) + body)  # pynetdicom reads it too
        for context_id, control, fragment in pdvs(body):
            assert context_id == 5
            is_command = bool(control & 1)
            assert not last[is_command], "nothing after the last fragment"
            got[is_command] += fragment
            last[is_command] = bool(control & 2)
    assert got[True] == command and last[True]
    if data is not None:
        assert got[False] == data and last[False]
    else:
        assert got[False] == b""


def test_a_command_set_reads_as_pynetdicom_encoded_it():
    from pynetdicom.dimse_messages import C_FIND_RQ as FindMessage
    from pynetdicom.dimse_primitives import C_FIND

    primitive = C_FIND()
    primitive.MessageID = 7
    primitive.AffectedSOPClassUID = FIND
    primitive.Priority = 2
    primitive.Identifier = BytesIO(b"\x08\x00\x52\x00\x06\x00\x00\x00STUDY ")
    message = FindMessage()
    message.primitive_to_message(primitive)
    command = b"".join(
        value[1:]  # each presentation data value: its message control header, then the fragment
        for p_data in message.encode_msg(1, 16382)
        for _, value in p_data.presentation_data_value_list
        if value[0] & 1
    )
    fields = parse_command(command)
    assert fields[0x0100] == 0x0020 and fields[0x0110] == 7 and fields[0x0002] == FIND
    assert fields[0x0700] == 2 and fields[0x0800] != 0x0101


@given(
    sop_class=st.sampled_from([FIND, "1.2.840.10008.1.1", "1.2.840.10008.5.1.4.31", "1.2.3", "1.2.34"]),
    field=st.sampled_from([0x8020, 0x8030, 0x8001]),
    message_id=st.integers(0, 0xFFFF),
    status=st.sampled_from([0x0000, 0xFF00, 0xFF01, 0xFE00, 0xA700, 0xC001]),
    data_set=st.booleans(),
)
def test_a_response_command_from_its_template_is_the_one_built_field_by_field(
    sop_class, field, message_id, status, data_set
):
    from pacscore.adapters.dimse_pdu import command_bytes, response_command

    built = command_bytes(
        [
            (0x00000002, "UI", sop_class),
            (0x00000100, "US", field),
            (0x00000120, "US", message_id),
            (0x00000800, "US", 0x0001 if data_set else 0x0101),
            (0x00000900, "US", status),
        ]
    )
    assert response_command(sop_class, field, message_id, status, data_set) == built
    assert parse_command(built)[0x0120] == message_id


def test_the_direct_negotiation_answers_as_the_indexed_one():
    index = ContextIndex(dimse.supported_contexts())
    proposed = [
        build_context(FIND, [ExplicitVRBigEndian, ExplicitVRLittleEndian]),
        build_context(CTImageStorage, ["1.2.840.10008.1.2.4.50", ImplicitVRLittleEndian]),
        build_context("1.2.3.4.5.6", [ImplicitVRLittleEndian]),
        build_context(Verification, ["1.2.3.999"]),
    ]
    for i, cx in enumerate(proposed):
        cx.context_id = 2 * i + 1
    expected = [(cx.context_id, cx.result, str(cx.transfer_syntax[0])) for cx in negotiate(proposed, index)[0]]
    from pacscore.adapters.dimse_direct import DirectConnection

    class Server:
        context_index = index
        direct_service = None

    conn = DirectConnection(Server(), None, ("127.0.0.1", 1), parse_associate_rq(rq_bytes(proposed)))
    results, accepted = conn._negotiate()
    assert results == expected
    assert [cx.context_id for cx in accepted] == [cx.context_id for cx in proposed if cx.context_id in (1, 3)]


# ---- which path serves an association ------------------------------------------------------------
def test_find_and_echo_associations_are_served_directly(server, archive):
    assoc = associate(server.server_address[1], FIND, Verification)
    try:
        assert served_directly(server)
        assert assoc.send_c_echo().Status == 0x0000
        for _ in range(5):
            statuses, found = pending(assoc, identifier(**STUDY_KEYS))
            assert statuses[-1] == 0x0000 and set(statuses[:-1]) == {0xFF00}
            assert over_wire(found, STUDY_KEYS) == in_process(archive, STUDY_KEYS)
    finally:
        assoc.release()
    assert assoc.is_released
    wait_until(lambda: not server.direct_connections(), "the server to end the released association")


@pytest.mark.parametrize("syntax", [ImplicitVRLittleEndian, ExplicitVRLittleEndian, ExplicitVRBigEndian])
def test_every_transfer_syntax_of_a_find_context_answers_as_in_process(server, archive, syntax):
    assoc = associate(server.server_address[1], build_context(FIND, [syntax]))
    try:
        assert served_directly(server)
        keys = {**STUDY_KEYS, "ModalitiesInStudy": "", "NumberOfStudyRelatedInstances": ""}
        statuses, found = pending(assoc, identifier(**keys))
        assert statuses[-1] == 0x0000
        expected = sorted(tuple(norm(d.get(k)) for k in keys) for d in archive.find(dict(keys), level="STUDY"))
        assert over_wire(found, keys) == expected
    finally:
        assoc.release()


def test_a_small_peer_maximum_length_fragments_the_responses(server, archive):
    keys = {**STUDY_KEYS, "StudyDescription": "", "AccessionNumber": "", "ModalitiesInStudy": ""}
    assoc = associate(server.server_address[1], FIND, max_pdu=64)
    try:
        assert served_directly(server)
        statuses, found = pending(assoc, identifier(**keys))
        assert statuses[-1] == 0x0000
        assert over_wire(found, STUDY_KEYS) == in_process(archive, STUDY_KEYS)
    finally:
        assoc.release()


def test_a_refused_identifier_gets_its_status_over_the_direct_loop(server):
    assoc = associate(server.server_address[1], FIND)
    try:
        assert served_directly(server)
        statuses, found = pending(assoc, identifier(level="NOSUCHLEVEL", PatientID=""))
        assert found == [] and statuses[-1] in (0xA900, 0xC000)
        statuses, _ = pending(assoc, identifier(**STUDY_KEYS))
        assert statuses[-1] == 0x0000  # the association still serves
    finally:
        assoc.release()


def test_the_worklist_model_is_served_directly(tmp_path):
    with pacscore.open(tmp_path / "arc") as arc:
        arc.worklist.add(
            make_item("WL1", "1.2.826.0.1.3680043.9.8.77", "S1", "CT", "20260101", "080000", "CT1", "Work^List")
        )
        srv = serve(arc)
        try:
            assoc = associate(srv.server_address[1], ModalityWorklistInformationFind)
            try:
                assert served_directly(srv)
                query = Dataset()
                query.PatientID, query.PatientName = "WL1", ""
                query.ScheduledProcedureStepSequence = [Dataset()]
                query.ScheduledProcedureStepSequence[0].Modality = "CT"
                statuses, found = pending(assoc, query, model=ModalityWorklistInformationFind)
                assert statuses[-1] == 0x0000 and [d.PatientName for d in found] == ["Work^List"]
            finally:
                assoc.release()
        finally:
            srv.shutdown()


def test_retrieve_contexts_go_to_pynetdicom(server):
    assoc = associate(server.server_address[1], FIND, StudyRootQueryRetrieveInformationModelGet)
    try:
        assert not served_directly(server)
        statuses, _ = pending(assoc, identifier(**STUDY_KEYS))
        assert statuses[-1] == 0x0000
    finally:
        assoc.release()


def test_extended_negotiation_goes_to_pynetdicom(server):
    ext = SOPClassExtendedNegotiation()
    ext.sop_class_uid, ext.service_class_application_information = FIND, b"\x01"
    assoc = associate(server.server_address[1], FIND, ext_neg=[ext])
    try:
        assert not served_directly(server)
    finally:
        assoc.release()


def test_an_unknown_abstract_syntax_is_rejected_and_the_rest_served_directly(server):
    assoc = associate(server.server_address[1], FIND, "1.2.3.4.5.6.7")
    try:
        assert served_directly(server)
        results = {str(cx.abstract_syntax): cx.result for cx in assoc.rejected_contexts}
        assert results == {"1.2.3.4.5.6.7": 0x03}
    finally:
        assoc.release()


def test_a_disallowed_calling_ae_is_rejected_with_reason_3(archive):
    srv = serve(archive, handlers=dimse.DimseConfig(allowed_calling_aets=["OTHER"]))
    try:
        ae = AE("DIRECTTEST")
        ae.add_requested_context(FIND)
        assoc = ae.associate("127.0.0.1", srv.server_address[1], ae_title="PACSCORE")
        assert assoc.is_rejected
        assert assoc.acceptor.primitive.diagnostic == 0x03
    finally:
        srv.shutdown()


def test_direct_false_serves_everything_through_pynetdicom(archive):
    srv = serve(archive, direct=False)
    try:
        assoc = associate(srv.server_address[1], FIND)
        try:
            assert not served_directly(srv)
        finally:
            assoc.release()
    finally:
        srv.shutdown()


# ---- the association's life ----------------------------------------------------------------------
def test_c_cancel_is_honoured_between_responses(archive):
    gated = GatedArchive(archive)
    srv = serve(gated)

    def cancel_arrived(server) -> bool:  # the C-CANCEL waits, unread, on the association's socket
        (conn,) = server.direct_connections()
        return bool(select.select([conn.sock], [], [], 0)[0])

    try:
        cancel_between_responses(srv, archive, gated, cancel_arrived)
    finally:
        srv.shutdown()


def test_an_abort_in_the_middle_of_a_query_ends_that_association_only(archive):
    gated = GatedArchive(archive)
    srv = serve(gated)
    try:
        assert not srv.active_associations
        abort_mid_query(srv, archive, gated, lambda s: s.direct_connections())
        assert not srv.active_associations  # none of them went to pynetdicom
    finally:
        gated.gate.set()
        srv.shutdown()


def test_a_silent_peer_meets_the_network_timeout(archive):
    srv = serve(archive, network_timeout=0.5)
    try:
        assoc = associate(srv.server_address[1], Verification)
        wait_until(lambda: not assoc.is_established, "the server to abort the idle association")
        assert assoc.is_aborted
    finally:
        srv.shutdown()


def test_the_association_limit_counts_direct_associations(archive):
    srv = serve(archive, max_associations=1)
    try:
        first = associate(srv.server_address[1], FIND)
        try:
            assert served_directly(srv)
            ae = AE("SECOND")
            ae.add_requested_context(FIND)
            second = ae.associate("127.0.0.1", srv.server_address[1], ae_title="PACSCORE")
            assert second.is_rejected
            assert second.acceptor.primitive.result == 0x02  # transient: local limit exceeded
        finally:
            first.release()
        wait_until(lambda: not srv.direct_connections(), "the first association to end")
        again = associate(srv.server_address[1], FIND)
        again.release()
    finally:
        srv.shutdown()


def test_shutdown_aborts_open_direct_associations(archive):
    srv = serve(archive)
    assoc = associate(srv.server_address[1], FIND)
    assert served_directly(srv)
    srv.shutdown()
    wait_until(lambda: not assoc.is_established, "the association to end with the server")
    assert assoc.is_aborted


def raw_association(port: int, rq: bytes, split: int | None = None) -> socket.socket:
    sock = socket.create_connection(("127.0.0.1", port), timeout=DEADLINE)
    if split is None:
        sock.sendall(rq)
    else:
        sock.sendall(rq[:split])
        time.sleep(0.05)  # the rest arrives later: the server must wait for it, not misread it
        sock.sendall(rq[split:])
    kind = sock.recv(1)
    assert kind == b"\x02", f"expected an A-ASSOCIATE-AC, got {kind!r}"
    length = struct.unpack(">xL", recv_exactly(sock, 5))[0]
    recv_exactly(sock, length)
    return sock


def recv_exactly(sock: socket.socket, n: int) -> bytes:
    out = b""
    while len(out) < n:
        chunk = sock.recv(n - len(out))
        assert chunk, "connection closed"
        out += chunk
    return out


def test_a_request_in_two_segments_is_waited_for(server):
    cx = build_context(Verification)
    cx.context_id = 1
    sock = raw_association(server.server_address[1], rq_bytes([cx]), split=20)
    try:
        sock.sendall(b"\x05\x00\x00\x00\x00\x04\x00\x00\x00\x00")  # A-RELEASE-RQ
        assert recv_exactly(sock, 10)[:1] == b"\x06"
    finally:
        sock.close()


@pytest.mark.parametrize(
    "garbage",
    [
        b"\x09\x00\x00\x00\x00\x02\x00\x00",  # an unknown PDU type
        b"\x04\x00\x00\x00\x00\x06\x00\x00\x00\x02\x07\x03",  # a PDV on a context never accepted
        b"\x04\x00\x00\x00\x00\x04\x00\x00\x00\x09",  # a PDV longer than its PDU
    ],
)
def test_a_protocol_error_aborts_that_association_and_the_server_serves_on(server, archive, garbage):
    cx = build_context(Verification)
    cx.context_id = 1
    sock = raw_association(server.server_address[1], rq_bytes([cx]))
    try:
        sock.sendall(garbage)
        answer = recv_exactly(sock, 10)
        assert answer[:1] == b"\x07"  # A-ABORT
    finally:
        sock.close()
    assoc = associate(server.server_address[1], FIND)
    try:
        statuses, found = pending(assoc, identifier(**STUDY_KEYS))
        assert statuses[-1] == 0x0000 and len(found) == len(in_process(archive, STUDY_KEYS))
    finally:
        assoc.release()


# ---- C-STORE ---------------------------------------------------------------------------------------
def test_c_store_over_the_direct_loop_keeps_the_bytes(tmp_path):
    instances = generated_instances()
    with pacscore.open(tmp_path / "arc") as arc:
        srv = serve(arc)
        try:
            contexts = sorted({str(ds.SOPClassUID) for ds in instances})
            assoc = associate(srv.server_address[1], *contexts)
            try:
                assert served_directly(srv)
                for ds in instances:
                    assert assoc.send_c_store(ds).Status == 0x0000
            finally:
                assoc.release()
        finally:
            srv.shutdown()
        for ds in instances:
            part10 = arc.get(str(ds.SOPInstanceUID))
            assert dataset_bytes(part10) == dataset_bytes(to_bytes(ds))  # the data set as sent
            stored = pydicom.dcmread(BytesIO(part10))
            assert stored.PatientID == ds.PatientID and stored.StudyInstanceUID == ds.StudyInstanceUID
            assert stored.file_meta.SourceApplicationEntityTitle == "DIRECTTEST"


def test_an_undecodable_instance_is_refused_and_nothing_else_changes(tmp_path):
    instances = generated_instances()
    with pacscore.open(tmp_path / "arc") as arc:
        arc.store(instances[0])
        before = arc.stats()["instances"]
        srv = serve(arc)
        try:
            assoc = associate(srv.server_address[1], CTImageStorage)
            try:
                assert served_directly(srv)
                bad = Dataset()
                bad.file_meta = FileMetaDataset()
                bad.file_meta.TransferSyntaxUID = ImplicitVRLittleEndian
                bad.SOPClassUID = CTImageStorage
                bad.SOPInstanceUID = "1.2.3.4.5.999"  # no patient, study or series
                status = assoc.send_c_store(bad)
                assert status.Status == 0xC000 and "ErrorComment" in status
                assert assoc.send_c_store(instances[1]).Status == 0x0000
            finally:
                assoc.release()
        finally:
            srv.shutdown()
        assert arc.stats()["instances"] == before + 1
        assert arc.get(str(instances[0].SOPInstanceUID))


@pytest.mark.interop
@pytest.mark.skipif(not HAVE_DCMTK, reason="DCMTK is not installed")
def test_dcmtk_storescu_then_findscu_over_the_direct_loop(tmp_path):
    files = []
    for i, ds in enumerate(generated_instances()):
        path = tmp_path / f"in{i}.dcm"
        ds.save_as(path, enforce_file_format=True)
        files.append(str(path))
    with pacscore.open(tmp_path / "arc") as arc:
        srv = serve(arc)
        try:
            port = str(srv.server_address[1])
            proc = run(["storescu", "-aec", "PACSCORE", "127.0.0.1", port, *files])
            assert proc.returncode == 0, proc.stderr
            assert arc.stats()["instances"] == len(files)
            proc, found = findscu(srv.server_address[1], "-S", "STUDY", STUDY_KEYS, tmp_path / "out", extra=["-xe"])
            assert proc.returncode == 0, proc.stderr
            assert over_wire(found, STUDY_KEYS) == in_process(arc, STUDY_KEYS)
        finally:
            srv.shutdown()


def test_responses_from_the_archives_batches_go_out_in_one_send_per_batch(archive, monkeypatch):
    """Rows read in batches (the encoded path) are sent per batch: a small answer, every
    pending response and the final one, is one send; rows of unknown cost (a proxy archive's
    find) send the first match at once, so that a peer can cancel while the rest are found."""
    from pacscore.adapters import dimse_direct, dimse_encode

    sends: list[bytes] = []
    real_send = dimse_direct.DirectConnection._send

    def counting(self, data):
        sends.append(data)
        return real_send(self, data)

    monkeypatch.setattr(dimse_direct.DirectConnection, "_send", counting)
    for source, expected_sends in ((archive, 1), (GatedArchive(archive), 2)):
        if isinstance(source, GatedArchive):
            source.gate.set()
        srv = serve(source)
        try:
            assoc = associate(srv.server_address[1], FIND)
            try:
                sends.clear()
                statuses, found = pending(assoc, identifier(**STUDY_KEYS))
                assert statuses[-1] == 0x0000 and len(found) == len(in_process(archive, STUDY_KEYS)) >= 2
                assert len(sends) == expected_sends
            finally:
                assoc.release()
        finally:
            srv.shutdown()
    calls = []
    from pacscore.query import paging

    monkeypatch.setattr(paging, "RESULT_BATCH", 1)  # every row a batch of its own, and a full one:
    monkeypatch.setattr(dimse_encode, "RESULT_BATCH", 1)  # sent before the next row is read
    srv = serve(archive)
    try:
        assoc = associate(srv.server_address[1], FIND)
        try:
            sends.clear()
            statuses, found = pending(assoc, identifier(**STUDY_KEYS))
            calls.append(len(sends))
        finally:
            assoc.release()
    finally:
        srv.shutdown()
    assert calls == [len(found) + 1]


def test_two_requests_in_one_p_data_tf_are_both_answered(server):
    """PS3.8 9.3.5: one P-DATA-TF may carry several PDVs; the second request is not dropped."""
    from pacscore.adapters.dimse_pdu import command_bytes

    cx = build_context(Verification)
    cx.context_id = 1
    sock = raw_association(server.server_address[1], rq_bytes([cx]))
    try:
        bodies = []
        for message_id in (7, 8):
            command = command_bytes(
                [
                    (0x00000002, "UI", Verification),
                    (0x00000100, "US", 0x0030),
                    (0x00000110, "US", message_id),
                    (0x00000800, "US", 0x0101),
                ]
            )
            bodies.append(message_pdus(1, command, None, 0)[6:])  # the PDV without its PDU header
        body = b"".join(bodies)
        sock.sendall(struct.pack(">BxL", 0x04, len(body)) + body)
        answered = []
        while len(answered) < 2:
            kind, length = struct.unpack(">BxL", recv_exactly(sock, 6))
            assert kind == 0x04
            for _, control, fragment in pdvs(recv_exactly(sock, length)):
                assert control & 1
                fields = parse_command(fragment)
                assert fields[0x0100] == 0x8030
                answered.append(fields[0x0120])
        assert answered == [7, 8]
    finally:
        sock.close()
