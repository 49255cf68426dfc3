"""The DIMSE adapter, driven by pynetdicom SCUs and DCMTK's command line tools.

One archive (pydicom's bundled files + generated instances) is served on a free port for the
whole module; the tests that write (C-STORE) get a fresh archive and SCP of their own.
"""

from __future__ import annotations

import logging
import shutil
import socket
import ssl
import time

import pydicom
import pytest
from pydicom.dataset import Dataset
from pydicom.uid import JPEG2000, ExplicitVRBigEndian, ExplicitVRLittleEndian, ImplicitVRLittleEndian
from pynetdicom import AE, build_role, evt
from pynetdicom.pdu_primitives import SOPClassExtendedNegotiation
from pynetdicom.sop_class import (
    ColorPaletteStorage,
    CTImageStorage,
    HangingProtocolStorage,
    MRImageStorage,
    NuclearMedicineImageStorage,
    PatientRootQueryRetrieveInformationModelFind,
    PatientRootQueryRetrieveInformationModelMove,
    SecondaryCaptureImageStorage,
    StudyRootQueryRetrieveInformationModelFind,
    StudyRootQueryRetrieveInformationModelGet,
    StudyRootQueryRetrieveInformationModelMove,
    UltrasoundImageStorage,
    Verification,
)

import pacscore
from pacscore.adapters import dimse
from pacscore.adapters.dimse_convert import choose_syntax, move_contexts

from . import dimse_helpers
from .dimse_helpers import (
    SERIES_A1,
    SERIES_A2,
    STUDY_A,
    STUDY_B,
    STUDY_C,
    dataset_bytes,
    dcmtk,
    findscu,
    generated_instances,
    key_args,
    make_instance,
    pydicom_test_files,
    refusing_port,
    run,
    start_storescp,
    values_of,
    wait_for_files,
    write_test_folder,
)
from .expected_warnings import BAD_DATES, BAD_UIDS
from .pki import make_pki

HAVE_DCMTK = all(dcmtk(t) for t in ("echoscu", "storescu", "findscu", "getscu", "movescu", "storescp"))

NM_STUDY = "1.3.6.1.4.1.5962.1.2.8.20040826185059.5457"  # JPEG2000.dcm + JPEG-lossy.dcm
CT_SMALL_STUDY = "1.3.6.1.4.1.5962.1.2.1.20040119072730.12322"
US_BE_STUDY = "1.2.840.113619.2.21.848.246800003.0.1952805748.3"  # ExplVR_BigEnd.dcm


# ---- fixtures -------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def data_folder(tmp_path_factory):
    folder = tmp_path_factory.mktemp("dimse_data")
    write_test_folder(folder)
    return folder


@pytest.fixture(scope="module")
def arc(tmp_path_factory, data_folder):
    with pacscore.open(tmp_path_factory.mktemp("dimse_arc") / "arc") as a:
        for path in sorted(data_folder.iterdir()):
            a.store(path)
        yield a


@pytest.fixture(scope="module")
def pystore_dest():
    """A pynetdicom Storage SCP that keeps what it receives (C-MOVE destination)."""
    received: list[Dataset] = []

    def on_store(event):
        ds = event.dataset
        ds.file_meta = event.file_meta
        received.append(ds)
        return 0x0000

    ae = AE("PYSTORE")
    for uid in (CTImageStorage, MRImageStorage, SecondaryCaptureImageStorage, NuclearMedicineImageStorage):
        ae.add_supported_context(uid, [ExplicitVRLittleEndian, ImplicitVRLittleEndian])
    server = ae.start_server(("127.0.0.1", 0), block=False, evt_handlers=[(evt.EVT_C_STORE, on_store)])
    yield {"port": server.server_address[1], "received": received}
    server.shutdown()


@pytest.fixture(scope="module")
def scp(arc, pystore_dest):
    with refusing_port() as nobody:
        server = dimse.serve(
            arc,
            "PACSCORE",
            0,
            "127.0.0.1",
            block=False,
            move_destinations={
                "PYSTORE": ("127.0.0.1", pystore_dest["port"]),
                "NOBODY": ("127.0.0.1", nobody),
            },
        )
        yield {"port": server.server_address[1], "server": server}
        server.shutdown()


@pytest.fixture
def fresh(tmp_path):
    """An empty archive with its own SCP, for the tests that store."""
    with pacscore.open(tmp_path / "fresh") as a:
        server = dimse.serve(a, "PACSCORE", 0, block=False)
        yield {"arc": a, "port": server.server_address[1], "server": server}
        server.shutdown()


def associate(port, *contexts, ae_title="PYSCU", ext_neg=None, handlers=None, **kw):
    ae = AE(ae_title)
    for cx in contexts:
        if isinstance(cx, tuple):
            ae.add_requested_context(*cx)
        else:
            ae.add_requested_context(cx)
    assoc = ae.associate("127.0.0.1", port, ae_title="PACSCORE", ext_neg=ext_neg, evt_handlers=handlers, **kw)
    assert assoc.is_established, "association not established"
    return assoc


def find_all(assoc, keys: dict, model=StudyRootQueryRetrieveInformationModelFind):
    ds = Dataset()
    for k, v in keys.items():
        setattr(ds, k, v)
    statuses, results = [], []
    for status, ident in assoc.send_c_find(ds, model):
        statuses.append(status)
        if status and status.Status in (0xFF00, 0xFF01):
            results.append(ident)
    return statuses, results


# ---- pure helpers -----------------------------------------------------------------------------
def test_choose_syntax_prefers_as_is_then_reencode_then_conversions():
    assert choose_syntax(JPEG2000, [JPEG2000, ExplicitVRLittleEndian]) == (JPEG2000, "as-is")
    assert choose_syntax(ExplicitVRLittleEndian, [ImplicitVRLittleEndian]) == (ImplicitVRLittleEndian, "reencode")
    assert choose_syntax(ExplicitVRBigEndian, [ImplicitVRLittleEndian])[1] == "byteswap"
    assert choose_syntax(JPEG2000, [ExplicitVRLittleEndian]) == (ExplicitVRLittleEndian, "decompress")
    with pytest.raises(Exception, match="accepted"):
        choose_syntax(ExplicitVRLittleEndian, [])


def test_move_contexts_stay_within_128():
    pairs = [(f"1.2.3.{i}", "1.2.840.10008.1.2.4.50") for i in range(100)]
    contexts = move_contexts(pairs)
    assert len(contexts) == 128
    assert all(ExplicitVRLittleEndian in cx.transfer_syntax for cx in contexts[:100])


# ---- association, echo, TCP_NODELAY, calling AE ------------------------------------------------
@pytest.mark.interop
@pytest.mark.skipif(not HAVE_DCMTK, reason="DCMTK echoscu is not on PATH")
def test_echoscu(scp):
    proc = run(["echoscu", "-aet", "ECHOSCU", "-aec", "PACSCORE", "127.0.0.1", str(scp["port"])])
    assert proc.returncode == 0, proc.stderr


def test_pynetdicom_echo_and_tcp_nodelay_on_accepted_socket(scp):
    assoc = associate(scp["port"], Verification)
    try:
        assert assoc.send_c_echo().Status == 0x0000
        server = scp["server"]
        ours = [a.dul.socket.socket for a in server.active_associations if a.requestor.ae_title == "PYSCU"]
        ours += [c.sock for c in server.direct_connections() if c.assoc.requestor.ae_title == "PYSCU"]
        assert ours, "the server has no association from PYSCU"
        sock = ours[0]
        assert sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY) != 0
    finally:
        assoc.release()


def test_disallowed_calling_ae_is_rejected_with_reason_3(arc):
    server = dimse.serve(arc, "PACSCORE", 0, block=False, allowed_calling_aets=["GOODSCU"])
    try:
        ae = AE("BADSCU")
        ae.add_requested_context(Verification)
        assoc = ae.associate("127.0.0.1", server.server_address[1], ae_title="PACSCORE")
        assert assoc.is_rejected
        rj = assoc.acceptor.primitive
        assert (rj.result, rj.result_source, rj.diagnostic) == (0x01, 0x01, 0x03)
        good = associate(server.server_address[1], Verification, ae_title="GOODSCU")
        assert good.send_c_echo().Status == 0
        good.release()
    finally:
        server.shutdown()


def test_handlers_on_own_ae_reject_unknown_calling_ae(arc):
    ae = dimse.make_ae("OWNAE")
    server = ae.start_server(
        ("127.0.0.1", 0), block=False, evt_handlers=dimse.handlers(arc, allowed_calling_aets=["GOODSCU"])
    )
    try:
        requestor = AE("INTRUDER")
        requestor.add_requested_context(Verification)
        assoc = requestor.associate("127.0.0.1", server.server_address[1], ae_title="OWNAE")
        assert assoc.is_rejected
        assert assoc.acceptor.primitive.diagnostic == 0x03
    finally:
        server.shutdown()


@pytest.mark.interop
@pytest.mark.skipif(not HAVE_DCMTK, reason="DCMTK echoscu is not on PATH")
def test_echoscu_with_disallowed_title_fails(arc):
    server = dimse.serve(arc, "PACSCORE", 0, block=False, allowed_calling_aets=["GOODSCU"])
    try:
        proc = run(["echoscu", "-aet", "BADSCU", "-aec", "PACSCORE", "127.0.0.1", str(server.server_address[1])])
        assert proc.returncode != 0
        assert "calling ae title not recogni" in (proc.stderr + proc.stdout).lower()
    finally:
        server.shutdown()


# ---- C-STORE ---------------------------------------------------------------------------------
#: storescu's option to propose each compressed syntax (plus the uncompressed ones)
STORESCU_PROPOSE = {
    "1.2.840.10008.1.2.4.50": "-xy",
    "1.2.840.10008.1.2.4.51": "-xx",
    "1.2.840.10008.1.2.4.70": "-xs",
    "1.2.840.10008.1.2.4.90": "-xv",
    "1.2.840.10008.1.2.4.91": "-xw",
    "1.2.840.10008.1.2.5": "-xr",
    "1.2.840.10008.1.2.1.99": "-xd",
}


def without_group_lengths(ds: Dataset, drop=(0xFFFCFFFC,)) -> Dataset:
    """A copy without group length elements (and trailing padding), for comparing re-encodings."""
    out = Dataset()
    for elem in ds:
        if elem.tag.element == 0 or int(elem.tag) in drop:
            continue
        out.add(elem)
    return out


@pytest.mark.interop
@pytest.mark.skipif(not HAVE_DCMTK, reason="DCMTK storescu/storescp are not on PATH")
@BAD_UIDS
def test_storescu_folder_lands_byte_identical(fresh, data_folder, tmp_path):
    """storescu re-encodes what it sends (sequence lengths, trailing padding), so the proof is
    against the wire: the same storescu runs against a bit-preserving storescp (+B) give the
    reference bytes; the archive must hold exactly those. Against the original files the
    datasets are equal element by element wherever the transfer syntax was kept."""
    arc = fresh["arc"]
    files = sorted(data_folder.iterdir())
    by_syntax: dict[str, list] = {}
    for path in files:
        ts = str(pydicom.dcmread(path, stop_before_pixels=True).file_meta.TransferSyntaxUID)
        by_syntax.setdefault(STORESCU_PROPOSE.get(ts, "-x="), []).append(path)
    # the uncompressed files as one folder, then one run per compressed syntax
    plain = tmp_path / "plain"
    plain.mkdir()
    for path in by_syntax.pop("-x="):
        shutil.copy(path, plain / path.name)
    runs = [("-x=", [str(plain)])] + [(flag, [str(p) for p in paths]) for flag, paths in by_syntax.items()]
    wire = tmp_path / "wire"
    wire.mkdir()
    reference = start_storescp(["-aet", "PACSCORE", "+B", "+xa", "-od", str(wire)])
    try:
        for port in (fresh["port"], reference.port):
            for flag, inputs in runs:
                proc = run(
                    [
                        "storescu",
                        "-aet",
                        "STORESCU",
                        "-aec",
                        "PACSCORE",
                        "-R",
                        "+sd",
                        flag,
                        "127.0.0.1",
                        str(port),
                        *inputs,
                    ],
                    timeout=60,
                )
                assert proc.returncode == 0, proc.stderr
        received = wait_for_files(wire, len(files))
    finally:
        reference.terminate()
        reference.wait(5)
    assert arc.count({}, level="IMAGE", model="STUDY", relational=True) == len(files)
    assert len(received) == len(files)
    identical = 0
    for path in received:
        on_wire = path.read_bytes()
        ds = pydicom.dcmread(path)
        stored = arc.get(ds.SOPInstanceUID)
        stored_ds = pydicom.dcmread(pydicom.filebase.DicomBytesIO(stored))
        assert stored_ds.file_meta.SourceApplicationEntityTitle == "STORESCU"
        if stored_ds.file_meta.TransferSyntaxUID == ds.file_meta.TransferSyntaxUID:
            assert dataset_bytes(stored) == dataset_bytes(on_wire), path.name
            identical += 1
        else:  # storescp and we accepted different syntaxes from the same proposal (BE, implicit)
            assert without_group_lengths(stored_ds) == without_group_lengths(ds), path.name
    assert identical >= len(files) - 3
    kept = 0
    for path in files:
        original = pydicom.dcmread(path)
        stored = pydicom.dcmread(pydicom.filebase.DicomBytesIO(arc.get(original.SOPInstanceUID)))
        if stored.file_meta.TransferSyntaxUID == original.file_meta.TransferSyntaxUID:
            kept += 1
            assert without_group_lengths(stored) == without_group_lengths(original), path.name
    assert kept >= len(files) - 1  # storescu sends the big endian file as explicit VR little endian


@BAD_UIDS
def test_pynetdicom_store_keeps_bytes_and_reports_ingest_errors(fresh, data_folder):
    arc = fresh["arc"]
    names = ["CT_small.dcm", "MR_small.dcm", "rtplan.dcm", "JPEG2000.dcm", "SC_rgb_rle.dcm", "ExplVR_BigEnd.dcm"]
    contexts = [
        (CTImageStorage, [ExplicitVRLittleEndian]),
        (MRImageStorage, [ExplicitVRLittleEndian]),
        ("1.2.840.10008.5.1.4.1.1.481.5", [ImplicitVRLittleEndian]),
        (SecondaryCaptureImageStorage, [JPEG2000]),
        (SecondaryCaptureImageStorage, ["1.2.840.10008.1.2.5"]),
        (UltrasoundImageStorage, [ExplicitVRBigEndian]),
    ]
    assoc = associate(fresh["port"], *contexts)
    try:
        for name in names:
            path = data_folder / name
            original = pydicom.dcmread(path)
            assert assoc.send_c_store(original).Status == 0x0000, name
            stored = arc.get(original.SOPInstanceUID)
            if name == "ExplVR_BigEnd.dcm":  # pydicom drops its group lengths when it re-encodes it
                got = pydicom.dcmread(pydicom.filebase.DicomBytesIO(stored))
                assert got.file_meta.TransferSyntaxUID == ExplicitVRBigEndian
                assert without_group_lengths(got) == without_group_lengths(original)
            else:
                assert dataset_bytes(stored) == dataset_bytes(path.read_bytes()), name
        # an instance the archive cannot file: no Study Instance UID -> C000 with the reason
        bad = make_instance(
            sop="1.2.826.0.1.3680043.9.7777.99.1",
            study="x",
            series="1.2.3.4",
            patient_id="P",
            patient_name="A^B",
            modality="CT",
            study_date="20200101",
            study_time="1000",
            instance_number=1,
        )
        del bad.StudyInstanceUID
        rsp = assoc.send_c_store(bad)
        assert 0xC000 <= rsp.Status <= 0xCFFF
        assert "StudyInstanceUID" in rsp.ErrorComment or "Study" in rsp.ErrorComment
        assert arc.count({}, level="IMAGE", relational=True) == len(names)
    finally:
        assoc.release()


def test_non_patient_sop_classes_are_not_advertised(fresh, tmp_path):
    """Colour palettes, hanging protocols, ... (PS3.4 Annex GG) have no study to be filed under:
    their contexts are rejected at association, not accepted and then refused with C000."""
    from pacscore.adapters.dimse_convert import NON_PATIENT_SOP_CLASSES

    offered = {str(cx.abstract_syntax) for cx in dimse.supported_contexts()}
    assert ColorPaletteStorage in NON_PATIENT_SOP_CLASSES and HangingProtocolStorage in NON_PATIENT_SOP_CLASSES
    assert not offered & NON_PATIENT_SOP_CLASSES and CTImageStorage in offered
    palette = pydicom.dcmread(pydicom_test_files().parent / "palettes" / "hotiron.dcm")
    assoc = associate(fresh["port"], ColorPaletteStorage, HangingProtocolStorage, CTImageStorage)
    try:
        rejected = {str(cx.abstract_syntax): cx.result for cx in assoc.rejected_contexts}
        assert rejected == {ColorPaletteStorage: 0x03, HangingProtocolStorage: 0x03}  # abstract syntax not supported
        with pytest.raises(ValueError, match="No presentation context"):
            assoc.send_c_store(palette)
    finally:
        assoc.release()
    assert fresh["arc"].count({}, level="IMAGE", relational=True) == 0
    if dcmtk("storescu"):
        proc = run(
            [
                "storescu",
                "-aec",
                "PACSCORE",
                "127.0.0.1",
                str(fresh["port"]),
                str(pydicom_test_files().parent / "palettes" / "hotiron.dcm"),
            ]
        )
        assert "no presentation context" in (proc.stdout + proc.stderr).lower(), proc.stderr


A_ABORT_PDU = bytes([0x07, 0x00, 0, 0, 0, 4, 0, 0, 0, 0])  # A-ABORT, source: service-user
TRUNCATED_P_DATA = bytes([0x04, 0x00]) + (16000).to_bytes(4, "big") + b"\x00" * 100  # header says 16000 bytes


@pytest.mark.parametrize("how", ["a-abort", "truncated-pdu"])
def test_client_dropping_mid_store_leaves_archive_consistent(fresh, how):
    """After 5 P-DATA PDUs of an 8 MB C-STORE the client sends an A-ABORT (or half a PDU) and
    closes its socket, from inside pynetdicom's sending thread, so the cut is mid-transfer."""
    arc = fresh["arc"]
    before = arc.count({}, level="IMAGE", relational=True)
    big = make_instance(
        sop="1.2.826.0.1.3680043.9.7777.98.1",
        study="1.2.826.0.1.3680043.9.7777.98",
        series="1.2.826.0.1.3680043.9.7777.98.0",
        patient_id="BIG",
        patient_name="Big^Data",
        modality="CT",
        study_date="20200101",
        study_time="1000",
        instance_number=1,
        rows=2048,
    )
    sent = {"n": 0}

    def on_pdu_sent(event):
        if event.pdu.__class__.__name__ == "P_DATA_TF":
            sent["n"] += 1
            if sent["n"] == 5:
                sock = event.assoc.dul.socket.socket
                sock.sendall(A_ABORT_PDU if how == "a-abort" else TRUNCATED_P_DATA)
                sock.shutdown(socket.SHUT_RDWR)

    assoc = associate(fresh["port"], CTImageStorage, handlers=[(evt.EVT_PDU_SENT, on_pdu_sent)])
    logging.getLogger("pynetdicom").setLevel(logging.CRITICAL)  # the client side complains, rightly
    try:
        rsp = assoc.send_c_store(big)
    except Exception:
        rsp = Dataset()
    finally:
        logging.getLogger("pynetdicom").setLevel(logging.NOTSET)
        assoc.abort()
    assert sent["n"] >= 5
    assert "Status" not in rsp  # no C-STORE response: the transfer was cut
    deadline = time.monotonic() + 5
    while fresh["server"].active_associations and time.monotonic() < deadline:
        time.sleep(0.02)
    assert not fresh["server"].active_associations
    assert arc.count({}, level="IMAGE", relational=True) == before
    again = associate(fresh["port"], StudyRootQueryRetrieveInformationModelFind)
    statuses, results = find_all(again, {"QueryRetrieveLevel": "STUDY", "PatientID": "BIG", "StudyInstanceUID": ""})
    again.release()
    assert statuses[-1].Status == 0x0000 and results == []


# ---- C-FIND ----------------------------------------------------------------------------------
FIND_CASES = [
    (
        "-P",
        "PATIENT",
        "PATIENT",
        {
            "PatientName": "",
            "PatientID": "",
            "PatientBirthDate": "",
            "PatientSex": "",
            "NumberOfPatientRelatedStudies": "",
        },
    ),
    ("-P", "PATIENT", "PATIENT", {"PatientName": "Compressed*", "PatientID": ""}),
    (
        "-P",
        "PATIENT",
        "STUDY",
        {
            "PatientID": "GEN1",
            "StudyInstanceUID": "",
            "StudyDate": "",
            "StudyTime": "",
            "AccessionNumber": "",
            "StudyDescription": "",
            "ModalitiesInStudy": "",
            "NumberOfStudyRelatedInstances": "",
        },
    ),
    (
        "-P",
        "PATIENT",
        "SERIES",
        {
            "PatientID": "GEN1",
            "StudyInstanceUID": STUDY_A,
            "SeriesInstanceUID": "",
            "Modality": "",
            "SeriesNumber": "",
            "NumberOfSeriesRelatedInstances": "",
        },
    ),
    (
        "-P",
        "PATIENT",
        "IMAGE",
        {
            "PatientID": "GEN1",
            "StudyInstanceUID": STUDY_A,
            "SeriesInstanceUID": SERIES_A1,
            "SOPInstanceUID": "",
            "SOPClassUID": "",
            "InstanceNumber": "",
        },
    ),
    (
        "-S",
        "STUDY",
        "STUDY",
        {
            "PatientName": "",
            "PatientID": "",
            "StudyInstanceUID": "",
            "StudyDate": "",
            "ModalitiesInStudy": "",
            "AccessionNumber": "",
            "NumberOfStudyRelatedSeries": "",
        },
    ),
    (
        "-S",
        "STUDY",
        "STUDY",
        {"PatientName": "compressed*", "StudyDate": "20040101-", "StudyInstanceUID": "", "ModalitiesInStudy": ""},
    ),
    (
        "-S",
        "STUDY",
        "SERIES",
        {
            "StudyInstanceUID": STUDY_A,
            "SeriesInstanceUID": "",
            "Modality": "",
            "SeriesNumber": "",
            "SeriesDescription": "",
        },
    ),
    ("-S", "STUDY", "SERIES", {"StudyInstanceUID": STUDY_A, "SeriesInstanceUID": "", "Modality": "MR"}),
    (
        "-S",
        "STUDY",
        "IMAGE",
        {
            "StudyInstanceUID": STUDY_A,
            "SeriesInstanceUID": SERIES_A2,
            "SOPInstanceUID": "",
            "InstanceNumber": "",
            "SOPClassUID": "",
        },
    ),
    ("-O", "PATIENT_STUDY_ONLY", "PATIENT", {"PatientName": "Gen*", "PatientID": "", "PatientSex": ""}),
    (
        "-O",
        "PATIENT_STUDY_ONLY",
        "STUDY",
        {"PatientID": "GEN2", "StudyInstanceUID": "", "StudyDate": "", "ModalitiesInStudy": ""},
    ),
]
UNIQUE = {
    "PATIENT": ["PatientID"],
    "STUDY": ["StudyInstanceUID"],
    "SERIES": ["StudyInstanceUID", "SeriesInstanceUID"],
    "IMAGE": ["StudyInstanceUID", "SeriesInstanceUID", "SOPInstanceUID"],
}


@pytest.mark.interop
@pytest.mark.skipif(not HAVE_DCMTK, reason="DCMTK findscu is not on PATH")
@pytest.mark.parametrize(
    "flag,model,level,keys", FIND_CASES, ids=[f"{c[1]}-{c[2]}-{i}" for i, c in enumerate(FIND_CASES)]
)
@BAD_DATES
def test_findscu_equals_archive_find(scp, arc, tmp_path, flag, model, level, keys):
    proc, responses = findscu(scp["port"], flag, level, keys, tmp_path / "rsp")
    assert proc.returncode == 0, proc.stderr
    expected = list(arc.find(dict(keys), level=level, model=model))
    assert expected, "the case should match something"
    compare = list(dict.fromkeys(list(keys) + UNIQUE[level]))
    assert [values_of(r, compare) for r in responses] == [values_of(e, compare) for e in expected]
    assert all(r.QueryRetrieveLevel == level for r in responses)
    assert all(r.RetrieveAETitle == "PACSCORE" for r in responses)


def test_pynetdicom_find_patient_root_and_unsupported_key_gives_ff01(scp, arc):
    assoc = associate(
        scp["port"], PatientRootQueryRetrieveInformationModelFind, StudyRootQueryRetrieveInformationModelFind
    )
    try:
        statuses, results = find_all(
            assoc,
            {"QueryRetrieveLevel": "PATIENT", "PatientID": "GEN*", "PatientName": ""},
            PatientRootQueryRetrieveInformationModelFind,
        )
        assert [r.PatientID for r in results] == [
            d.PatientID for d in arc.find({"PatientID": "GEN*"}, level="PATIENT", model="PATIENT")
        ]
        assert {"GEN1", "GEN2"} <= {r.PatientID for r in results}
        assert {s.Status for s in statuses[:-1]} == {0xFF00} and statuses[-1].Status == 0
        keys = {"QueryRetrieveLevel": "STUDY", "StudyInstanceUID": STUDY_A, "ImageComments": ""}
        assert arc.unsupported_keys(keys, "STUDY", "STUDY")
        statuses, results = find_all(assoc, keys)
        assert len(results) == 1 and statuses[0].Status == 0xFF01
        statuses, results = find_all(
            assoc,
            {
                "QueryRetrieveLevel": "STUDY",
                "StudyInstanceUID": STUDY_A,
                "InstanceAvailability": "",
                "RetrieveAETitle": "",
            },
        )
        assert (results[0].InstanceAvailability, results[0].RetrieveAETitle) == ("ONLINE", "PACSCORE")
    finally:
        assoc.release()


def test_malformed_identifiers_get_a_failure_status_not_a_dropped_association(scp):
    assoc = associate(scp["port"], StudyRootQueryRetrieveInformationModelFind, Verification)
    try:
        statuses, _ = find_all(assoc, {"PatientName": "X*"})  # no QueryRetrieveLevel
        assert statuses[-1].Status == 0xA900 or 0xC000 <= statuses[-1].Status <= 0xCFFF
        assert "QueryRetrieveLevel" in statuses[-1].ErrorComment
        statuses, _ = find_all(assoc, {"QueryRetrieveLevel": "FOO", "PatientName": ""})
        assert statuses[-1].Status == 0xA900 or 0xC000 <= statuses[-1].Status <= 0xCFFF
        assert "QueryRetrieveLevel" in statuses[-1].get("ErrorComment", "")
        statuses, _ = find_all(assoc, {"QueryRetrieveLevel": "SERIES", "Modality": "CT", "SeriesInstanceUID": ""})
        assert statuses[-1].Status == 0xA900  # hierarchical: no Study Instance UID
        assert "StudyInstanceUID" in statuses[-1].ErrorComment
        assert assoc.is_established and assoc.send_c_echo().Status == 0
    finally:
        assoc.release()


@BAD_DATES
def test_invalid_keys_policy_and_max_results(arc):
    server = dimse.serve(arc, "PACSCORE", 0, block=False, invalid_keys="error", max_results=3)
    try:
        assoc = associate(server.server_address[1], StudyRootQueryRetrieveInformationModelFind)
        statuses, _ = find_all(
            assoc, {"QueryRetrieveLevel": "STUDY", "StudyDate": "2020-13-45", "StudyInstanceUID": ""}
        )
        assert statuses[-1].Status == 0xA900 and "StudyDate" in statuses[-1].ErrorComment
        statuses, results = find_all(assoc, {"QueryRetrieveLevel": "STUDY", "StudyInstanceUID": ""})
        assert statuses[-1].Status == 0xA700 and results == []
        statuses, results = find_all(
            assoc, {"QueryRetrieveLevel": "STUDY", "StudyInstanceUID": f"{STUDY_A}\\{STUDY_B}"}
        )
        assert statuses[-1].Status == 0 and len(results) == 2
        assoc.release()
    finally:
        server.shutdown()
    # the default policy: the same invalid key matches nothing
    port_server = dimse.serve(arc, "PACSCORE", 0, block=False)
    try:
        assoc = associate(port_server.server_address[1], StudyRootQueryRetrieveInformationModelFind)
        statuses, results = find_all(
            assoc, {"QueryRetrieveLevel": "STUDY", "StudyDate": "2020-13-45", "StudyInstanceUID": ""}
        )
        assert statuses[-1].Status == 0 and results == []
        assoc.release()
    finally:
        port_server.shutdown()


def test_serve_takes_a_frozen_config_that_its_old_arguments_build(arc):
    import dataclasses

    config = dimse.ServeConfig(
        ae_title="CFGSCP",
        port=0,
        block=False,
        handlers=dimse.DimseConfig(max_results=1, move_destinations={"X ": ("h", "104")}),
    )
    assert dimse.ServeConfig.from_options(
        "CFGSCP", 0, block=False, max_results=1, move_destinations={"X ": ("h", "104")}
    ) == dataclasses.replace(config, handlers=dataclasses.replace(config.handlers, move_destinations={"X": ("h", 104)}))
    with pytest.raises(dataclasses.FrozenInstanceError):
        config.port = 1
    with pytest.raises(dataclasses.FrozenInstanceError):
        config.handlers.max_results = 5
    with pytest.raises(TypeError, match="no_such_option"):
        dimse.serve(arc, "PACSCORE", 0, block=False, no_such_option=1)
    with pytest.raises(TypeError, match="no other arguments"):
        dimse.serve(arc, config, port=1)
    with pytest.raises(TypeError, match="port twice"):
        dimse.serve(arc, "PACSCORE", 0, port=0, block=False)
    with pytest.raises(ValueError, match="invalid_keys"):
        dimse.serve(arc, dataclasses.replace(config, handlers=dimse.DimseConfig(invalid_keys="maybe")))
    server = dimse.serve(arc, config)
    try:
        assert server.ae.ae_title == "CFGSCP"
        assoc = associate(server.server_address[1], StudyRootQueryRetrieveInformationModelFind)
        statuses, results = find_all(assoc, {"QueryRetrieveLevel": "STUDY", "StudyInstanceUID": ""})
        assert statuses[-1].Status == 0xA700 and results == []  # the handlers' max_results=1
        assoc.release()
    finally:
        server.shutdown()


def test_the_ae_that_serve_made_stops_its_server(arc):
    """serve() starts the SCP through pynetdicom's public start_server, so the AE knows its
    server: ae.shutdown() stops it as server.shutdown() does."""
    server = dimse.serve(arc, "PACSCORE", 0, block=False)
    port = server.server_address[1]
    assoc = associate(port, Verification)
    assert assoc.send_c_echo().Status == 0
    assoc.release()
    server.ae.shutdown()
    deadline = time.monotonic() + 15
    while True:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1):
                pass
        except OSError:
            break  # refused: nothing listens any more
        assert time.monotonic() < deadline, "the server still accepts connections after ae.shutdown()"
        time.sleep(0.02)


def test_concurrent_associations_query_and_store(scp, arc, fresh):
    """Eight associations at once: six querying the shared archive, two storing into another."""
    import concurrent.futures

    keys = {"QueryRetrieveLevel": "SERIES", "StudyInstanceUID": STUDY_A, "SeriesInstanceUID": "", "Modality": ""}
    expected = [(d.SeriesInstanceUID, d.Modality) for d in arc.find(dict(keys), level="SERIES")]

    def query(_):
        assoc = associate(scp["port"], StudyRootQueryRetrieveInformationModelFind)
        try:
            return [[(r.SeriesInstanceUID, r.Modality) for r in find_all(assoc, keys)[1]] for _ in range(10)]
        finally:
            assoc.release()

    def store(batch):
        assoc = associate(fresh["port"], CTImageStorage, MRImageStorage)
        try:
            return [assoc.send_c_store(ds).Status for ds in batch]
        finally:
            assoc.release()

    instances = generated_instances()
    with concurrent.futures.ThreadPoolExecutor(8) as pool:
        queries = [pool.submit(query, i) for i in range(6)]
        stores = [pool.submit(store, instances[i::2]) for i in range(2)]
        assert all(r == expected for f in queries for r in f.result())
        assert all(code == 0 for f in stores for code in f.result())
    assert fresh["arc"].count({}, level="IMAGE", relational=True) == len(instances)


class SlowArchive:
    """Delegates to an archive; find() yields one result every 20 ms (for C-CANCEL)."""

    def __init__(self, arc):
        self._arc = arc
        self.produced = 0

    def __getattr__(self, name):
        return getattr(self._arc, name)

    def find(self, *args, **kw):
        for ds in self._arc.find(*args, **kw):
            time.sleep(0.02)
            self.produced += 1
            yield ds


def test_c_cancel_stops_a_broad_find(arc):
    slow = SlowArchive(arc)
    total = arc.count({"StudyInstanceUID": ""}, level="STUDY")
    assert total >= 8
    ae = dimse.make_ae("PACSCORE")
    server = ae.start_server(("127.0.0.1", 0), block=False, evt_handlers=dimse.handlers(slow))
    try:
        assoc = associate(server.server_address[1], StudyRootQueryRetrieveInformationModelFind)
        cx = next(c for c in assoc.accepted_contexts if c.abstract_syntax == StudyRootQueryRetrieveInformationModelFind)
        ds = Dataset()
        ds.QueryRetrieveLevel = "STUDY"
        ds.StudyInstanceUID = ""
        statuses = []
        for status, _ in assoc.send_c_find(ds, StudyRootQueryRetrieveInformationModelFind, msg_id=7):
            statuses.append(status.Status)
            if len(statuses) == 1:
                assoc.send_c_cancel(7, cx.context_id)
        assoc.release()
    finally:
        server.shutdown()
    assert statuses[-1] == 0xFE00
    assert len(statuses) - 1 < total
    assert slow.produced < total


# ---- extended negotiation ------------------------------------------------------------------------
def ext(uid, info: bytes):
    item = SOPClassExtendedNegotiation()
    item.sop_class_uid = uid
    item.service_class_application_information = info
    return item


def test_relational_query_only_when_negotiated(scp):
    keys = {"QueryRetrieveLevel": "SERIES", "Modality": "MR", "SeriesInstanceUID": ""}
    plain = associate(scp["port"], StudyRootQueryRetrieveInformationModelFind)
    statuses, results = find_all(plain, keys)
    plain.release()
    assert statuses[-1].Status == 0xA900 and results == []
    rel = associate(
        scp["port"],
        StudyRootQueryRetrieveInformationModelFind,
        ext_neg=[ext(StudyRootQueryRetrieveInformationModelFind, b"\x01")],
    )
    try:
        assert rel.acceptor.sop_class_extended[StudyRootQueryRetrieveInformationModelFind] == b"\x01"
        statuses, results = find_all(rel, keys)
    finally:
        rel.release()
    assert statuses[-1].Status == 0
    assert {r.SeriesInstanceUID for r in results} >= {SERIES_A2}
    assert all(r.Modality == "MR" for r in results)


def test_combined_datetime_applies_when_negotiated(scp, arc):
    keys = {
        "QueryRetrieveLevel": "STUDY",
        "StudyDate": "20200101-20200102",
        "StudyTime": "2300-0100",
        "StudyInstanceUID": "",
    }
    plain = associate(scp["port"], StudyRootQueryRetrieveInformationModelFind)
    _, separate = find_all(plain, keys)
    plain.release()
    combined = associate(
        scp["port"],
        StudyRootQueryRetrieveInformationModelFind,
        ext_neg=[ext(StudyRootQueryRetrieveInformationModelFind, b"\x00\x01\x00\x00")],
    )
    try:
        assert combined.acceptor.sop_class_extended[StudyRootQueryRetrieveInformationModelFind] == b"\x00\x01\x00\x00"
        _, together = find_all(combined, keys)
    finally:
        combined.release()
    assert separate == []  # StudyTime 2300-0100 alone is a reversed range
    got = [r.StudyInstanceUID for r in together]
    assert got == [d.StudyInstanceUID for d in arc.find(keys, combined_datetime=True)]
    assert STUDY_A in got and STUDY_B in got and STUDY_C not in got  # C: 2020-01-05 12:00


def test_extended_negotiation_reply_keeps_length_and_refuses_unknown_bytes(scp):
    assoc = associate(
        scp["port"],
        StudyRootQueryRetrieveInformationModelFind,
        StudyRootQueryRetrieveInformationModelMove,
        ext_neg=[
            ext(StudyRootQueryRetrieveInformationModelFind, b"\x01\x01\x01\x01\x01"),
            ext(StudyRootQueryRetrieveInformationModelMove, b"\x01\x01"),
        ],
    )
    try:
        got = assoc.acceptor.sop_class_extended
        assert got[StudyRootQueryRetrieveInformationModelFind] == b"\x01\x01\x01\x01\x00"
        assert got[StudyRootQueryRetrieveInformationModelMove] == b"\x01\x00"
    finally:
        assoc.release()


# ---- C-GET -------------------------------------------------------------------------------------
@pytest.mark.interop
@pytest.mark.skipif(not HAVE_DCMTK, reason="DCMTK getscu is not on PATH")
def test_getscu_retrieves_a_study(scp, arc, tmp_path):
    out = tmp_path / "get"
    out.mkdir()
    proc = run(
        [
            "getscu",
            "-S",
            "-aet",
            "GETSCU",
            "-aec",
            "PACSCORE",
            "-od",
            str(out),
            *key_args({"QueryRetrieveLevel": "STUDY", "StudyInstanceUID": STUDY_A}),
            "127.0.0.1",
            str(scp["port"]),
        ]
    )
    assert proc.returncode == 0, proc.stderr
    refs = arc.instances(study=STUDY_A)
    files = sorted(out.iterdir())
    assert len(files) == len(refs) == 5
    for path in files:
        got = pydicom.dcmread(path)
        stored = pydicom.dcmread(pydicom.filebase.DicomBytesIO(arc.get(got.SOPInstanceUID)))
        assert got == stored  # Dataset equality: every element, pixel data included


def _c_get(port, keys, contexts, roles):
    received = []

    def on_store(event):
        ds = event.dataset
        ds.file_meta = event.file_meta
        received.append(ds)
        return 0x0000

    ae = AE("PYGET")
    ae.add_requested_context(StudyRootQueryRetrieveInformationModelGet)
    for uid, syntaxes in contexts:
        ae.add_requested_context(uid, syntaxes)
    assoc = ae.associate(
        "127.0.0.1",
        port,
        ae_title="PACSCORE",
        ext_neg=[build_role(u, scp_role=True) for u in roles],
        evt_handlers=[(evt.EVT_C_STORE, on_store)],
    )
    assert assoc.is_established
    ds = Dataset()
    for k, v in keys.items():
        setattr(ds, k, v)
    responses = list(assoc.send_c_get(ds, StudyRootQueryRetrieveInformationModelGet))
    assoc.release()
    statuses = [s for s, _ in responses]
    statuses[-1].identifier = responses[-1][1]
    return statuses, received


def test_c_get_decompresses_for_a_peer_without_the_stored_syntax_and_counts_failures(scp, data_folder):
    statuses, received = _c_get(
        scp["port"],
        {"QueryRetrieveLevel": "STUDY", "StudyInstanceUID": NM_STUDY},
        [(SecondaryCaptureImageStorage, [ExplicitVRLittleEndian])],
        [SecondaryCaptureImageStorage],
    )
    final = statuses[-1]
    # JPEG2000.dcm decompresses with Pillow; JPEG-lossy.dcm (12-bit JPEG extended) cannot
    assert final.Status == 0xB000
    assert (final.NumberOfCompletedSuboperations, final.NumberOfFailedSuboperations) == (1, 1)
    assert final.identifier.FailedSOPInstanceUIDList == "1.3.6.1.4.1.5962.1.1.8.1.5.20040826185059.5457"
    (ds,) = received
    original = pydicom.dcmread(data_folder / "JPEG2000.dcm")
    assert ds.SOPInstanceUID == original.SOPInstanceUID
    assert ds.file_meta.TransferSyntaxUID == ExplicitVRLittleEndian
    assert (ds.pixel_array == original.pixel_array).all()


def test_c_get_converts_between_little_and_big_endian(scp, data_folder):
    statuses, received = _c_get(
        scp["port"],
        {"QueryRetrieveLevel": "STUDY", "StudyInstanceUID": US_BE_STUDY},
        [(UltrasoundImageStorage, [ImplicitVRLittleEndian])],
        [UltrasoundImageStorage],
    )
    assert statuses[-1].Status == 0 and len(received) == 1
    original = pydicom.dcmread(data_folder / "ExplVR_BigEnd.dcm")
    assert received[0].file_meta.TransferSyntaxUID == ImplicitVRLittleEndian
    assert (received[0].pixel_array == original.pixel_array).all()
    statuses, received = _c_get(
        scp["port"],
        {"QueryRetrieveLevel": "STUDY", "StudyInstanceUID": CT_SMALL_STUDY},
        [(CTImageStorage, [ExplicitVRBigEndian])],
        [CTImageStorage],
    )
    assert statuses[-1].Status == 0 and len(received) == 1
    original = pydicom.dcmread(data_folder / "CT_small.dcm")
    assert received[0].file_meta.TransferSyntaxUID == ExplicitVRBigEndian
    assert (received[0].pixel_array == original.pixel_array).all()
    assert received[0].PatientName == original.PatientName and received[0].Rows == original.Rows


def test_c_get_with_a_bad_identifier_fails_with_a900(scp):
    statuses, received = _c_get(
        scp["port"],
        {"QueryRetrieveLevel": "NOPE", "StudyInstanceUID": STUDY_A},
        [(CTImageStorage, [ExplicitVRLittleEndian])],
        [CTImageStorage],
    )
    assert statuses[-1].Status == 0xA900 and received == []


# ---- C-MOVE ------------------------------------------------------------------------------------
@pytest.mark.interop
@pytest.mark.skipif(not HAVE_DCMTK, reason="DCMTK movescu/storescp are not on PATH")
def test_movescu_moves_a_series_to_storescp(arc, tmp_path, caplog):
    out = tmp_path / "storescp_in"
    out.mkdir()
    caplog.set_level(logging.INFO, logger="pacscore.dimse")  # the adapter's side, should it fail
    receiver = start_storescp(["-aet", "STORESCP", "+xa", "-od", str(out)])
    # an SCP of its own: the destination's port is known only once storescp has bound it
    server = dimse.serve(
        arc,
        dimse.ServeConfig(
            port=0,
            block=False,
            handlers=dimse.DimseConfig(move_destinations={"STORESCP": ("127.0.0.1", receiver.port)}),
        ),
    )
    try:
        proc = run(
            [
                "movescu",
                "-S",
                "-aet",
                "MOVESCU",
                "-aec",
                "PACSCORE",
                "-aem",
                "STORESCP",
                *key_args(
                    {"QueryRetrieveLevel": "SERIES", "StudyInstanceUID": STUDY_A, "SeriesInstanceUID": SERIES_A1}
                ),
                "127.0.0.1",
                str(server.server_address[1]),
            ]
        )
        assert proc.returncode == 0, proc.stderr
        files = wait_for_files(out, 3)
    finally:
        server.shutdown()
        receiver.terminate()
        receiver.wait(5)
    assert len(files) == 3
    for path in files:
        got = pydicom.dcmread(path)
        assert got.SeriesInstanceUID == SERIES_A1
        assert got == pydicom.dcmread(pydicom.filebase.DicomBytesIO(arc.get(got.SOPInstanceUID)))


def test_pynetdicom_move_to_known_unknown_and_unreachable_destinations(scp, pystore_dest, monkeypatch, caplog):
    from pacscore.adapters import dimse_retrieve

    nodelay = []

    def spy(sock):  # the sub-association's socket, as the adapter sets it up
        result = real(sock)
        nodelay.append(sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY))
        return result

    real = dimse_retrieve.set_nodelay
    monkeypatch.setattr(dimse_retrieve, "set_nodelay", spy)
    caplog.set_level(logging.INFO, logger="pacscore.dimse")
    assoc = associate(
        scp["port"], PatientRootQueryRetrieveInformationModelMove, StudyRootQueryRetrieveInformationModelMove
    )
    ident = Dataset()
    ident.QueryRetrieveLevel = "STUDY"
    ident.PatientID = "GEN1"
    ident.StudyInstanceUID = STUDY_A
    try:
        pystore_dest["received"].clear()
        statuses = [s for s, _ in assoc.send_c_move(ident, "PYSTORE", PatientRootQueryRetrieveInformationModelMove)]
        assert statuses[-1].Status == 0 and statuses[-1].NumberOfCompletedSuboperations == 5
        assert nodelay and all(nodelay), "TCP_NODELAY not set on the C-MOVE sub-association"
        assert any("C-MOVE final 0x0000: completed 5, failed 0" in r.getMessage() for r in caplog.records)
        assert sorted(d.SOPInstanceUID for d in pystore_dest["received"]) == sorted(
            d.SOPInstanceUID for d in generated_instances() if d.StudyInstanceUID == STUDY_A
        )
        statuses = [s for s, _ in assoc.send_c_move(ident, "STRANGER", PatientRootQueryRetrieveInformationModelMove)]
        assert statuses[-1].Status == 0xA801
        statuses = [s for s, _ in assoc.send_c_move(ident, "NOBODY", PatientRootQueryRetrieveInformationModelMove)]
        assert statuses[-1].Status == 0xA801  # configured, but nobody listens there
    finally:
        assoc.release()


# ---- TLS ---------------------------------------------------------------------------------------
def test_tls_with_client_certificates(arc, tmp_path):
    pytest.importorskip("cryptography")
    pki = make_pki(tmp_path)
    server = dimse.serve(
        arc,
        "PACSCORE",
        0,
        block=False,
        ssl_context=dimse.tls_context(str(pki["server"][0]), str(pki["server"][1]), str(pki["ca"])),
    )
    port = server.server_address[1]
    try:
        client = ssl.create_default_context(ssl.Purpose.SERVER_AUTH, cafile=str(pki["ca"]))
        client.load_cert_chain(str(pki["client"][0]), str(pki["client"][1]))
        assoc = associate(port, Verification, tls_args=(client, "localhost"))
        assert assoc.send_c_echo().Status == 0
        assoc.release()
        anonymous = ssl.create_default_context(ssl.Purpose.SERVER_AUTH, cafile=str(pki["ca"]))
        ae = AE("NOCERT")
        ae.add_requested_context(Verification)
        logging.getLogger("pynetdicom").setLevel(logging.CRITICAL)
        try:
            assoc = ae.associate("127.0.0.1", port, ae_title="PACSCORE", tls_args=(anonymous, "localhost"))
        finally:
            logging.getLogger("pynetdicom").setLevel(logging.NOTSET)
        assert not assoc.is_established
    finally:
        server.shutdown()


# ---- logging ----------------------------------------------------------------------------------
def test_logs_name_the_peer_and_the_outcome_without_patient_data(scp, caplog):
    caplog.set_level(logging.INFO, logger="pacscore.dimse")
    assoc = associate(scp["port"], StudyRootQueryRetrieveInformationModelFind, ae_title="LOGSCU")
    find_all(assoc, {"QueryRetrieveLevel": "STUDY", "PatientName": "Gen^One", "StudyInstanceUID": ""})
    assoc.release()
    text = logged_text(caplog, until="released")
    assert "LOGSCU@127.0.0.1" in text
    assert "C-FIND study-root STUDY [PatientName,StudyInstanceUID] -> 1 matches, 0x0000" in text
    assert "released" in text
    assert "Gen^One" not in text and STUDY_A not in text


def test_cli_registers_serve_dimse():
    import argparse

    from pacscore import cli_serve

    parser = argparse.ArgumentParser(prog="pacscore")
    sub = parser.add_subparsers(dest="command")
    serve_parser = sub.add_parser("serve")
    cli_serve.add_dimse_cli(serve_parser.add_subparsers(dest="protocol"))
    args = parser.parse_args(
        [
            "serve",
            "dimse",
            "--archive",
            "a",
            "--move-dest",
            "VIEWER=10.0.0.5:104",
            "--allow",
            "X",
            "--allow",
            "Y",
            "--port",
            "4242",
        ]
    )
    assert args.func is cli_serve.main_serve_dimse
    assert dict(args.move_dest) == {"VIEWER": ("10.0.0.5", 104)}
    assert args.allow == ["X", "Y"] and args.port == 4242 and args.ae == "PACSCORE"
    with pytest.raises(SystemExit):
        parser.parse_args(["serve", "dimse", "--archive", "a", "--move-dest", "nonsense"])


def test_pacscore_serve_dimse_runs_until_sigterm(tmp_path, data_folder):

    no_id = make_instance(
        sop="1.2.826.0.1.3680043.9.7777.98.1.1",
        study="1.2.826.0.1.3680043.9.7777.98",
        series="1.2.826.0.1.3680043.9.7777.98.1",
        patient_id="",
        patient_name="",
        modality="OT",
        study_date="20200101",
        study_time="1000",
        instance_number=1,
    )
    with pacscore.open(tmp_path / "cli") as a:
        a.store(data_folder / "CT_small.dcm")
        a.store(dimse_helpers.to_bytes(no_id))
    options = ["--allow", "PYSCU", "--move-dest", "X=127.0.0.1:1", "--option", "empty_record_matches=false"]
    with dimse_helpers.serve_dimse_process(tmp_path / "cli", *options) as (proc, port, logged):
        assoc = associate(port, StudyRootQueryRetrieveInformationModelFind)
        _, results = find_all(
            assoc, {"QueryRetrieveLevel": "STUDY", "StudyInstanceUID": "", "PatientID": "NO-SUCH-PATIENT"}
        )
        _, every = find_all(assoc, {"QueryRetrieveLevel": "STUDY", "StudyInstanceUID": ""})
        assoc.release()
        assert results == []  # --option empty_record_matches=false: the study without PatientID stays out
        assert sorted(r.StudyInstanceUID for r in every) == sorted([CT_SMALL_STUDY, no_id.StudyInstanceUID])
    err = "".join(logged)
    assert proc.returncode == 0, err
    assert "PYSCU@127.0.0.1" in err and "C-FIND study-root STUDY" in err


def logged_text(caplog, until: str, timeout: float = 15) -> str:
    """The pacscore.dimse log so far, polled until it holds ``until`` (the SCP logs from its own
    threads, after the client has its answer) or ``timeout`` seconds pass."""
    deadline = time.monotonic() + timeout
    while True:
        text = "\n".join(r.getMessage() for r in caplog.records if r.name == "pacscore.dimse")
        if until in text or time.monotonic() > deadline:
            return text
        time.sleep(0.02)
