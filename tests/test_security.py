"""Security controls: no path traversal (UIDs, blob keys, CLI, DICOMweb paths), the DIMSE
calling-AE allowlist, TLS with client certificates, and no patient data in the DIMSE adapter's
logs at default settings. The threat model is docs/security.md."""

from __future__ import annotations

import logging
import ssl

import pytest
from pynetdicom import AE
from pynetdicom.sop_class import CTImageStorage, StudyRootQueryRetrieveInformationModelFind, Verification

import pacscore
from pacscore import IngestError
from pacscore.adapters import dimse
from pacscore.blobs.base import validate_key
from pacscore.blobs.file import FileBlobStore
from pacscore.cli import main as cli

from .expected_warnings import BAD_DATES, BAD_UIDS
from .factories import make_instance, to_bytes
from .pki import make_pki

TRAVERSALS = [
    "../../etc/passwd",
    "..",
    "../canary",
    "/etc/passwd",
    "a/../../b",
    "..\\..\\x",
    "1.2/../../3",
    "1.2.3\x00../x",
    "~root",
    "%2e%2e%2fx",
    "\n../x",
]


@pytest.fixture
def canary_arc(arc, tmp_path):
    """The shared archive holding one instance, beside a canary file (``tmp_path / "canary"``)
    that must be unchanged after the test: nothing the test sends writes outside the archive."""
    (tmp_path / "canary").write_text("secret")
    arc.store(make_instance(sop="1.2.3.4", study="1.2.3", series="1.2.3.1"))
    yield arc
    assert (tmp_path / "canary").read_text() == "secret"


@pytest.mark.parametrize("key", TRAVERSALS)
def test_blob_keys_cannot_escape_the_store(tmp_path, key):
    store = FileBlobStore(tmp_path / "blobs")
    for call in (
        lambda: validate_key(key),
        lambda: store.put(key, b"x"),
        lambda: store.get(key),
        lambda: store.delete(key),
        lambda: store.size(key),
    ):
        with pytest.raises(ValueError):
            call()
    assert not any(p.is_file() for p in tmp_path.rglob("*"))


@pytest.mark.parametrize("uid", [u for u in TRAVERSALS if "\\" not in u])
@BAD_UIDS
def test_uids_with_path_syntax_are_stored_under_a_safe_key(canary_arc, tmp_path, uid):
    """A UID is data, never a path: kept (uid_policy="lenient"), its blob under a hashed key
    inside the store (the canary_arc fixture checks the canary outside it)."""
    data = to_bytes(make_instance(sop=uid, study="1.2.3", series="1.2.3.1"))
    assert canary_arc.store(data).status == "stored"
    assert canary_arc.get(uid) == data
    keys = [k for k in canary_arc.blobs.keys() if k.startswith("u-")]
    assert len(keys) == 1 and validate_key(keys[0])
    assert all(
        p.resolve().is_relative_to(canary_arc.folder.resolve()) for p in tmp_path.rglob("*") if p.name != "canary"
    )
    assert canary_arc.delete(instance=uid) == 1


@BAD_UIDS
def test_a_uid_with_a_backslash_is_refused_as_several_values(canary_arc):
    """UI is multi-valued (PS3.5 6.2): a backslash makes two UIDs, which cannot name one entity."""
    with pytest.raises(IngestError, match="several values"):
        canary_arc.store(make_instance(sop="..\\..\\x", study="1.2.3", series="1.2.3.1"))
    assert canary_arc.count({}, level="IMAGE", relational=True) == 1 and len(list(canary_arc.blobs.keys())) == 1


@pytest.mark.parametrize("uid", TRAVERSALS + ["..", ".", "1..2", ".1.2", "1.2."])
@BAD_UIDS
def test_uid_policy_strict_refuses_non_uids(tmp_path, uid):
    with pacscore.open(tmp_path / "strict", uid_policy="strict") as arc:
        with pytest.raises(IngestError, match="SOPInstanceUID"):
            arc.store(make_instance(sop=uid, study="1.2.3", series="1.2.3.1"))
        assert arc.count({}, level="IMAGE", relational=True) == 0 and list(arc.blobs.keys()) == []


def test_cli_get_and_delete_refuse_traversal(tmp_path, capsys):
    (tmp_path / "canary").write_text("secret")
    folder = str(tmp_path / "cli")
    with pacscore.open(folder) as a:
        a.store(make_instance(sop="1.2.3.4", study="1.2.3", series="1.2.3.1"))
    for uid in ("../../etc/passwd", "../canary", "/etc/passwd"):
        assert cli(["get", "--archive", folder, uid]) == 2
        out = capsys.readouterr()
        assert "root:" not in out.out and "secret" not in out.out and "error" in out.err
        assert cli(["get", "--archive", folder, uid, "-o", str(tmp_path / "out.dcm")]) == 2
        assert not (tmp_path / "out.dcm").exists()
        assert cli(["delete", "--archive", folder, "--instance", uid]) == 0
        assert "deleted 0" in capsys.readouterr().out
    assert cli(["get", "--archive", folder, "1.2.3.4", "-o", str(tmp_path)]) == 2  # a folder is not overwritten
    assert (tmp_path / "canary").read_text() == "secret"
    with pacscore.open(folder) as a:
        assert a.verify().ok and a.count({}, level="IMAGE", relational=True) == 1


def test_dicomweb_paths_cannot_traverse(canary_arc):
    pytest.importorskip("starlette", reason="the web extra is not installed")
    from starlette.testclient import TestClient

    from pacscore.adapters.dicomweb import create_app

    with TestClient(create_app(canary_arc), raise_server_exceptions=False) as client:
        for path in (
            "/dicomweb/studies/..%2F..%2Fcanary",
            "/dicomweb/studies/1.2.3/series/1.2.3.1/instances/..%2F..%2Fcanary",
            "/dicomweb/studies/1.2.3/series/1.2.3.1/instances/%2Fetc%2Fpasswd",
            "/dicomweb/../../canary",
            "/dicomweb/studies/1.2.3/series/..%2f..%2f/instances",
        ):
            response = client.get(path, headers={"Accept": 'multipart/related; type="application/dicom"'})
            assert 400 <= response.status_code < 500, (path, response.status_code)
            assert b"secret" not in response.content and b"root:" not in response.content


# -- DIMSE: calling-AE allowlist ------------------------------------------------------------------


def _requestor(title: str) -> AE:
    ae = AE(ae_title=title)
    ae.add_requested_context(Verification)
    ae.add_requested_context(StudyRootQueryRetrieveInformationModelFind)
    ae.add_requested_context(CTImageStorage)
    ae.acse_timeout = ae.dimse_timeout = ae.network_timeout = 10
    return ae


def test_calling_ae_allowlist(canary_arc):
    server = dimse.serve(canary_arc, "PACSCORE", 0, block=False, allowed_calling_aets=["GOODSCU", "OTHER"])
    port = server.server_address[1]
    try:
        for title in ("EVILSCU", "GOODSCU2", "goodscu", "ANY-SCU", "GOOD"):
            assoc = _requestor(title).associate("127.0.0.1", port, ae_title="PACSCORE")
            assert assoc.is_rejected and not assoc.is_established, title
            rj = assoc.acceptor.primitive
            assert (rj.result, rj.result_source, rj.diagnostic) == (0x01, 0x01, 0x03), title
        for title in ("GOODSCU", "OTHER"):
            assoc = _requestor(title).associate("127.0.0.1", port, ae_title="PACSCORE")
            assert assoc.is_established, title
            assert assoc.send_c_echo().Status == 0
            assoc.release()
    finally:
        server.shutdown()


# -- TLS with client certificates -----------------------------------------------------------------


def test_tls_requires_a_client_certificate_from_the_ca(canary_arc, tmp_path):
    pki = make_pki(tmp_path)
    server_ctx = dimse.tls_context(str(pki["server"][0]), str(pki["server"][1]), str(pki["ca"]))
    server = dimse.serve(canary_arc, "PACSCORE", 0, block=False, ssl_context=server_ctx)
    port = server.server_address[1]

    def client_ctx(identity=None):
        ctx = ssl.create_default_context(ssl.Purpose.SERVER_AUTH, cafile=str(pki["ca"]))
        if identity:
            ctx.load_cert_chain(str(pki[identity][0]), str(pki[identity][1]))
        return ctx

    def echo(ctx) -> bool:
        assoc = _requestor("GOODSCU").associate("127.0.0.1", port, ae_title="PACSCORE", tls_args=(ctx, "localhost"))
        if not assoc.is_established:
            return False
        try:
            return assoc.send_c_echo().Status == 0
        finally:
            assoc.release()

    try:
        assert echo(client_ctx("client"))  # a certificate from our CA: served
        assert not echo(client_ctx())  # no certificate: refused
        assert not echo(client_ctx("intruder"))  # a certificate from another CA: refused
        plain = _requestor("GOODSCU").associate("127.0.0.1", port, ae_title="PACSCORE")
        assert not plain.is_established  # no TLS at all: refused
        # and the client refuses a server it cannot verify
        other = ssl.create_default_context(ssl.Purpose.SERVER_AUTH)
        other.load_cert_chain(str(pki["client"][0]), str(pki["client"][1]))
        assert not echo(other)
    finally:
        server.shutdown()


# -- no patient data in logs ------------------------------------------------------------------------


class _Collect(logging.Handler):
    def __init__(self):
        super().__init__(logging.DEBUG)
        self.lines: list[str] = []

    def emit(self, record):
        text = record.getMessage()
        if record.exc_info:
            text += logging.Formatter().formatException(record.exc_info)
        self.lines.append(text)


@pytest.mark.parametrize("level", [logging.INFO, logging.DEBUG])
@BAD_DATES
def test_patient_data_absent_from_dimse_logs_by_default(tmp_path, level):
    from pydicom.dataset import Dataset

    name, pid = "Zyxwvut^Secretname", "PIDSECRET77"
    handler = _Collect()
    loggers = [logging.getLogger(n) for n in ("pacscore", "pynetdicom")]
    saved = [(lg, lg.level) for lg in loggers]
    for lg in loggers:
        lg.addHandler(handler)
        lg.setLevel(level)
    try:
        with pacscore.open(tmp_path / "a") as a:
            server = dimse.serve(a, "PACSCORE", 0, block=False)
            try:
                assoc = _requestor("ANYSCU").associate("127.0.0.1", server.server_address[1], ae_title="PACSCORE")
                assert assoc.is_established
                ds = make_instance(sop="1.2.3.77", study="1.2.3", series="1.2.3.1", patient_name=name, patient_id=pid)
                assert assoc.send_c_store(ds).Status == 0
                bad = make_instance(sop="1.2.3.78", study="1.2.3", series="", patient_name=name, patient_id=pid)
                assert assoc.send_c_store(bad).Status != 0  # refused: the reason must not leak PHI
                query = Dataset()
                query.QueryRetrieveLevel = "STUDY"
                query.PatientName, query.PatientID, query.StudyInstanceUID = name, pid, ""
                results = list(assoc.send_c_find(query, StudyRootQueryRetrieveInformationModelFind))
                assert any(r[1] is not None and r[1].PatientID == pid for r in results)
                query.StudyDate = "not a date"
                list(assoc.send_c_find(query, StudyRootQueryRetrieveInformationModelFind))
                assoc.release()
            finally:
                server.shutdown()
    finally:
        for lg, old in saved:
            lg.removeHandler(handler)
            lg.setLevel(old)
    text = "\n".join(handler.lines)
    assert handler.lines, "the adapter logs something"
    for secret in ("Zyxwvut", "Secretname", pid):
        assert secret not in text, [line for line in handler.lines if secret in line][:3]
