"""C-MOVE and C-GET send what the identifier's unique keys name, and nothing else (issue 16).

The archive holds two patients and a study whose PatientID is empty: by C.2.2.1.2 that study
matches any PatientID key in a C-FIND, which is how a C-MOVE for a patient nobody has once sent
it. A retrieve identifier is not a query (PS3.4 C.4.2.2.1, C.4.3.2): a missing, empty or
wild-card unique key is refused with A900 naming the key, and nothing is sent.
"""

from __future__ import annotations

import pytest
from pydicom.dataset import Dataset
from pydicom.uid import ExplicitVRLittleEndian, ImplicitVRLittleEndian
from pynetdicom import AE, build_role, evt
from pynetdicom.pdu_primitives import SOPClassExtendedNegotiation
from pynetdicom.sop_class import (
    CTImageStorage,
    PatientRootQueryRetrieveInformationModelMove,
    PatientStudyOnlyQueryRetrieveInformationModelGet,
    StudyRootQueryRetrieveInformationModelFind,
    StudyRootQueryRetrieveInformationModelGet,
    StudyRootQueryRetrieveInformationModelMove,
)

import pacscore
from pacscore.adapters import dimse
from pacscore.adapters.retrieve_scope import retrieve_scope
from pacscore.errors import QueryError

from .dimse_helpers import dcmtk, key_args, make_instance, run, start_storescp, to_bytes
from .expected_warnings import BAD_UIDS

HAVE_DCMTK = all(dcmtk(t) for t in ("getscu", "movescu", "storescp"))

ROOT = "1.2.826.0.1.3680043.9.7778"
STUDY_P1 = f"{ROOT}.1"  # patient P1, two series
SERIES_P1A, SERIES_P1B = f"{ROOT}.1.1", f"{ROOT}.1.2"
STUDY_P2 = f"{ROOT}.2"  # patient P2
SERIES_P2 = f"{ROOT}.2.1"
STUDY_NOID = f"{ROOT}.3"  # PatientID empty
SERIES_NOID = f"{ROOT}.3.1"


def _instances() -> list[Dataset]:
    common = {"modality": "CT", "study_date": "20210101", "study_time": "120000"}
    out = []
    for series, study, pid, n in (
        (SERIES_P1A, STUDY_P1, "P1", 2),
        (SERIES_P1B, STUDY_P1, "P1", 1),
        (SERIES_P2, STUDY_P2, "P2", 2),
        (SERIES_NOID, STUDY_NOID, "", 3),
    ):
        for i in range(n):
            out.append(
                make_instance(
                    sop=f"{series}.{i + 1}",
                    study=study,
                    series=series,
                    patient_id=pid,
                    patient_name=f"Name^{pid or 'Unknown'}",
                    instance_number=i + 1,
                    **common,
                )
            )
    return out


SOPS = {ds.SOPInstanceUID: ds for ds in _instances()}


def sops(**where) -> set[str]:
    return {uid for uid, ds in SOPS.items() if all(getattr(ds, k) == v for k, v in where.items())}


@pytest.fixture(scope="module")
def arc(tmp_path_factory):
    with pacscore.open(tmp_path_factory.mktemp("scope") / "arc") as a:
        for ds in SOPS.values():
            a.store(to_bytes(ds))
        yield a


@pytest.fixture(scope="module")
def receiver():
    """A pynetdicom Storage SCP (the C-MOVE destination) that records what it receives."""
    got: list[str] = []
    ae = AE("PYSTORE")
    ae.add_supported_context(CTImageStorage, [ExplicitVRLittleEndian, ImplicitVRLittleEndian])

    def on_store(event):
        got.append(event.dataset.SOPInstanceUID)
        return 0x0000

    server = ae.start_server(("127.0.0.1", 0), block=False, evt_handlers=[(evt.EVT_C_STORE, on_store)])
    yield {"port": server.server_address[1], "got": got}
    server.shutdown()


@pytest.fixture(scope="module")
def scp(arc, receiver):
    server = dimse.serve(
        arc, "PACSCORE", 0, block=False, move_destinations={"PYSTORE": ("127.0.0.1", receiver["port"])}
    )
    yield server.server_address[1]
    server.shutdown()


def ident(**keys) -> Dataset:
    ds = Dataset()
    for k, v in keys.items():
        setattr(ds, k, v)
    return ds


def relational(uid: str) -> SOPClassExtendedNegotiation:
    item = SOPClassExtendedNegotiation()
    item.sop_class_uid = uid
    item.service_class_application_information = b"\x01"
    return item


def c_get(port: int, keys: dict, model=StudyRootQueryRetrieveInformationModelGet, rel: bool = False):
    """(final status, SOP Instance UIDs received) of one C-GET."""
    got: list[str] = []

    def on_store(event):
        got.append(event.dataset.SOPInstanceUID)
        return 0x0000

    ae = AE("PYGET")
    ae.add_requested_context(model)
    ae.add_requested_context(CTImageStorage, [ExplicitVRLittleEndian])
    ext = [build_role(CTImageStorage, scp_role=True)] + ([relational(model)] if rel else [])
    assoc = ae.associate(
        "127.0.0.1", port, ae_title="PACSCORE", ext_neg=ext, evt_handlers=[(evt.EVT_C_STORE, on_store)]
    )
    assert assoc.is_established
    try:
        responses = list(assoc.send_c_get(ident(**keys), model))
    finally:
        assoc.release()
    return responses[-1][0], got


def c_move(
    port: int, receiver: dict, keys: dict, model=PatientRootQueryRetrieveInformationModelMove, rel: bool = False
):
    """(final status, SOP Instance UIDs the destination received) of one C-MOVE."""
    receiver["got"].clear()
    ae = AE("PYMOVE")
    ae.add_requested_context(model)
    assoc = ae.associate("127.0.0.1", port, ae_title="PACSCORE", ext_neg=[relational(model)] if rel else None)
    assert assoc.is_established
    try:
        responses = list(assoc.send_c_move(ident(**keys), "PYSTORE", model))
    finally:
        assoc.release()
    return responses[-1][0], list(receiver["got"])


def refused(status, keyword: str) -> bool:
    return status.Status == 0xA900 and status.ErrorComment.startswith(keyword)


# ---- the defects of the issue --------------------------------------------------------------------
def test_c_move_for_an_unknown_patient_sends_nothing_not_the_studies_without_patient_id(scp, receiver, arc):
    # what a C-FIND answers (C.2.2.1.2): the study with an empty PatientID matches any PatientID
    assert [
        d.StudyInstanceUID
        for d in arc.find({"PatientID": "NO-SUCH-PATIENT", "StudyInstanceUID": ""}, level="STUDY", model="STUDY")
    ] == [STUDY_NOID]
    for model in (StudyRootQueryRetrieveInformationModelMove, PatientRootQueryRetrieveInformationModelMove):
        status, got = c_move(scp, receiver, {"QueryRetrieveLevel": "STUDY", "PatientID": "NO-SUCH-PATIENT"}, model)
        assert refused(status, "StudyInstanceUID") and "missing" in status.ErrorComment
        assert got == []


@pytest.mark.parametrize("value", ["", "*", "1.2.826.0.1.3680043.9.7778.*", "1.2.826.0.1.3680043.9.7778.?"])
@BAD_UIDS
def test_c_get_with_an_empty_or_wild_card_study_uid_retrieves_nothing(scp, value):
    status, got = c_get(scp, {"QueryRetrieveLevel": "STUDY", "StudyInstanceUID": value})
    assert refused(status, "StudyInstanceUID") and status.OffendingElement == 0x0020000D
    assert got == []


def test_c_move_by_patient_id_sends_only_that_patient(scp, receiver):
    status, got = c_move(scp, receiver, {"QueryRetrieveLevel": "PATIENT", "PatientID": "P1"})
    assert status.Status == 0 and sorted(got) == sorted(sops(PatientID="P1"))
    for value in ("", "*", "P?"):
        status, got = c_move(scp, receiver, {"QueryRetrieveLevel": "PATIENT", "PatientID": value})
        assert refused(status, "PatientID") and got == []


def test_other_keys_neither_widen_nor_narrow(scp, receiver):
    keys = {
        "QueryRetrieveLevel": "STUDY",
        "StudyInstanceUID": STUDY_P1,
        "PatientName": "Nobody*",
        "StudyDate": "19000101",
        "Modality": "MR",
    }
    status, got = c_get(scp, keys)
    assert status.Status == 0 and sorted(got) == sorted(sops(StudyInstanceUID=STUDY_P1))
    keys = {"QueryRetrieveLevel": "STUDY", "PatientID": "P2", "StudyInstanceUID": STUDY_P2, "PatientName": "*"}
    status, got = c_move(scp, receiver, keys)
    assert status.Status == 0 and sorted(got) == sorted(sops(StudyInstanceUID=STUDY_P2))


def test_a_uid_list_at_the_retrieve_level(scp):
    status, got = c_get(scp, {"QueryRetrieveLevel": "STUDY", "StudyInstanceUID": [STUDY_P1, STUDY_P2]})
    assert status.Status == 0
    assert sorted(got) == sorted(sops(StudyInstanceUID=STUDY_P1) | sops(StudyInstanceUID=STUDY_P2))
    status, got = c_get(
        scp,
        {
            "QueryRetrieveLevel": "SERIES",
            "StudyInstanceUID": STUDY_P1,
            "SeriesInstanceUID": f"{SERIES_P1A}\\{SERIES_P1B}",
        },
    )
    assert status.Status == 0 and sorted(got) == sorted(sops(StudyInstanceUID=STUDY_P1))


def test_hierarchical_retrieve_needs_the_keys_above_and_they_must_agree(scp, receiver):
    status, got = c_get(scp, {"QueryRetrieveLevel": "SERIES", "SeriesInstanceUID": SERIES_P1A})
    assert refused(status, "StudyInstanceUID") and "relational-retrieve" in status.ErrorComment and got == []
    # a series of another study: nothing, not the series
    status, got = c_get(
        scp, {"QueryRetrieveLevel": "SERIES", "StudyInstanceUID": STUDY_P2, "SeriesInstanceUID": SERIES_P1A}
    )
    assert status.Status == 0 and got == []
    # a list above the retrieve level is not a unique key
    status, got = c_get(
        scp, {"QueryRetrieveLevel": "SERIES", "StudyInstanceUID": [STUDY_P1, STUDY_P2], "SeriesInstanceUID": SERIES_P1A}
    )
    assert refused(status, "StudyInstanceUID") and got == []
    # Patient Root: the PatientID is a key above STUDY, and it has to be that study's patient
    status, got = c_move(scp, receiver, {"QueryRetrieveLevel": "STUDY", "StudyInstanceUID": STUDY_NOID})
    assert refused(status, "PatientID") and got == []
    status, got = c_move(
        scp, receiver, {"QueryRetrieveLevel": "STUDY", "PatientID": "NO-SUCH-PATIENT", "StudyInstanceUID": STUDY_NOID}
    )
    assert status.Status == 0 and got == []
    status, got = c_move(
        scp,
        receiver,
        {
            "QueryRetrieveLevel": "IMAGE",
            "PatientID": "P1",
            "StudyInstanceUID": STUDY_P1,
            "SeriesInstanceUID": SERIES_P1A,
            "SOPInstanceUID": f"{SERIES_P1A}.2",
        },
    )
    assert status.Status == 0 and got == [f"{SERIES_P1A}.2"]


def test_relational_retrieve_takes_the_level_key_alone(scp, receiver):
    status, got = c_get(scp, {"QueryRetrieveLevel": "SERIES", "SeriesInstanceUID": [SERIES_P1B, SERIES_P2]}, rel=True)
    assert status.Status == 0 and sorted(got) == sorted(
        sops(SeriesInstanceUID=SERIES_P1B) | sops(SeriesInstanceUID=SERIES_P2)
    )
    status, got = c_move(scp, receiver, {"QueryRetrieveLevel": "IMAGE", "SOPInstanceUID": f"{SERIES_NOID}.3"}, rel=True)
    assert status.Status == 0 and got == [f"{SERIES_NOID}.3"]
    # the level's own key is still required, and keys above that are given must agree
    status, got = c_get(scp, {"QueryRetrieveLevel": "SERIES", "StudyInstanceUID": STUDY_P1}, rel=True)
    assert refused(status, "SeriesInstanceUID") and got == []
    status, got = c_move(
        scp, receiver, {"QueryRetrieveLevel": "SERIES", "PatientID": "P2", "SeriesInstanceUID": SERIES_P1A}, rel=True
    )
    assert status.Status == 0 and got == []


def test_a_level_outside_the_model_is_refused(scp):
    status, got = c_get(scp, {"QueryRetrieveLevel": "PATIENT", "PatientID": "P1"})  # Study Root
    assert refused(status, "QueryRetrieveLevel") and got == []
    status, got = c_get(
        scp,
        {
            "QueryRetrieveLevel": "SERIES",
            "PatientID": "P1",
            "StudyInstanceUID": STUDY_P1,
            "SeriesInstanceUID": SERIES_P1A,
        },
        model=PatientStudyOnlyQueryRetrieveInformationModelGet,
    )
    assert refused(status, "QueryRetrieveLevel") and got == []


def test_c_find_keeps_empty_value_matching(scp):
    """The refusal is the retrieve's: C-FIND still answers C.2.2.1.2 by default."""
    ae = AE("PYFIND")
    ae.add_requested_context(StudyRootQueryRetrieveInformationModelFind)
    assoc = ae.associate("127.0.0.1", scp, ae_title="PACSCORE")
    try:
        found = [
            i.StudyInstanceUID
            for s, i in assoc.send_c_find(
                ident(QueryRetrieveLevel="STUDY", PatientID="NO-SUCH-PATIENT", StudyInstanceUID=""),
                StudyRootQueryRetrieveInformationModelFind,
            )
            if s.Status == 0xFF00
        ]
    finally:
        assoc.release()
    assert found == [STUDY_NOID]


def test_c_find_takes_the_servers_matching_options_per_query(arc):
    """``handlers(find_options=...)`` / ``serve dimse --option``: with empty_record_matches=False the
    study without PatientID no longer matches a PatientID key; the archive was opened without it."""
    server = dimse.serve(arc, "PACSCORE", 0, block=False, find_options={"empty_record_matches": False})
    ae = AE("PYFIND")
    ae.add_requested_context(StudyRootQueryRetrieveInformationModelFind)
    try:
        assoc = ae.associate("127.0.0.1", server.server_address[1], ae_title="PACSCORE")
        try:

            def studies(**keys):
                return sorted(
                    i.StudyInstanceUID
                    for s, i in assoc.send_c_find(
                        ident(QueryRetrieveLevel="STUDY", StudyInstanceUID="", **keys),
                        StudyRootQueryRetrieveInformationModelFind,
                    )
                    if s.Status == 0xFF00
                )

            assert studies(PatientID="NO-SUCH-PATIENT") == []
            assert studies(PatientID="P*") == [STUDY_P1, STUDY_P2]
        finally:
            assoc.release()
    finally:
        server.shutdown()
    assert arc.options.empty_record_matches is True
    with pytest.raises(ValueError, match="no_such_option"):
        dimse.handlers(arc, find_options={"no_such_option": True})


def test_serve_dimse_takes_option_arguments():
    import argparse

    from pacscore.cli_serve import add_dimse_cli

    parser = argparse.ArgumentParser()
    add_dimse_cli(parser.add_subparsers())
    args = parser.parse_args(["dimse", "--option", "empty_record_matches=false", "-o", "local_timezone=+0100"])
    assert dict(args.option) == {"empty_record_matches": False, "local_timezone": "+0100"}
    for bad in ("empty_record_matches", "empty_record_matches=perhaps", "nope=true"):
        with pytest.raises(SystemExit):
            parser.parse_args(["dimse", "--option", bad])


# ---- the scope rules without a network ----------------------------------------------------------
@pytest.mark.parametrize(
    "keys,level,model,rel,attribute",
    [
        ({}, "STUDY", "STUDY", False, "StudyInstanceUID"),
        ({"StudyInstanceUID": "1.2\\"}, "STUDY", "STUDY", False, "StudyInstanceUID"),
        ({"PatientID": "A\\B"}, "PATIENT", "PATIENT", False, "PatientID"),
        ({"PatientID": "A", "IssuerOfPatientID": "X*"}, "PATIENT", "PATIENT", False, "IssuerOfPatientID"),
        ({"StudyInstanceUID": "1.2", "SeriesInstanceUID": "1.2.3"}, "IMAGE", "STUDY", True, "SOPInstanceUID"),
        ({"StudyInstanceUID": "", "SeriesInstanceUID": "1.2.3"}, "SERIES", "STUDY", False, "StudyInstanceUID"),
        ({"StudyInstanceUID": "1.2"}, "IMAGE", "PATIENT_STUDY_ONLY", False, "QueryRetrieveLevel"),
    ],
)
def test_scope_refusals_name_the_key(keys, level, model, rel, attribute):
    with pytest.raises(QueryError) as err:
        retrieve_scope(ident(**keys), level, model, relational=rel)
    assert err.value.attribute == attribute


def test_scope_keeps_the_unique_keys_only():
    scope = retrieve_scope(
        ident(
            PatientID=" P1 ",
            IssuerOfPatientID="HOSP",
            StudyInstanceUID="1.2",
            SeriesInstanceUID=["1.2.3", "1.2.4", "1.2.3"],
            Modality="CT",
        ),
        "SERIES",
        "PATIENT",
    )
    assert scope.targets == ("1.2.3", "1.2.4")
    assert scope.above == {"PatientID": "P1", "StudyInstanceUID": "1.2"}
    assert scope.issuer == "HOSP"
    # relational: an empty key above is the same as leaving it out
    scope = retrieve_scope(ident(StudyInstanceUID="", SeriesInstanceUID="1.2.3"), "SERIES", "STUDY", relational=True)
    assert scope.above == {} and scope.targets == ("1.2.3",)


# ---- DCMTK --------------------------------------------------------------------------------------
@pytest.mark.interop
@pytest.mark.skipif(not HAVE_DCMTK, reason="DCMTK movescu/storescp are not on PATH")
def test_movescu_for_an_unknown_patient_is_refused_and_storescp_gets_nothing(arc, tmp_path):
    out = tmp_path / "in"
    out.mkdir()
    receiver = start_storescp(["-aet", "STORESCP", "-od", str(out)])
    # an SCP of its own: the destination's port is known only once storescp has bound it
    server = dimse.serve(
        arc,
        dimse.ServeConfig(
            port=0,
            block=False,
            handlers=dimse.DimseConfig(move_destinations={"STORESCP": ("127.0.0.1", receiver.port)}),
        ),
    )
    scp = server.server_address[1]
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
                *key_args({"QueryRetrieveLevel": "STUDY", "PatientID": "NO-SUCH-PATIENT"}),
                "127.0.0.1",
                str(scp),
            ]
        )
        # the same association's next request still works: a study moved by its keys arrives
        ok = run(
            [
                "movescu",
                "-P",
                "-aet",
                "MOVESCU",
                "-aec",
                "PACSCORE",
                "-aem",
                "STORESCP",
                *key_args({"QueryRetrieveLevel": "STUDY", "PatientID": "P2", "StudyInstanceUID": STUDY_P2}),
                "127.0.0.1",
                str(scp),
            ]
        )
    finally:
        server.shutdown()
        receiver.terminate()
        receiver.wait(5)
    text = proc.stdout + proc.stderr
    assert "DataSetDoesNotMatchSOPClass" in text, text  # DCMTK's name of 0xA900
    assert ok.returncode == 0, ok.stderr
    received = sorted(p.name for p in out.iterdir())
    assert len(received) == len(sops(StudyInstanceUID=STUDY_P2)), received  # only the second move's


@pytest.mark.interop
@pytest.mark.skipif(not HAVE_DCMTK, reason="DCMTK getscu is not on PATH")
@pytest.mark.parametrize("value", ["", "*"])
@BAD_UIDS
def test_getscu_with_an_empty_or_wild_card_study_uid_writes_nothing(scp, tmp_path, value):
    proc = run(
        [
            "getscu",
            "-S",
            "-aet",
            "GETSCU",
            "-aec",
            "PACSCORE",
            "-od",
            str(tmp_path),
            "-k",
            "QueryRetrieveLevel=STUDY",
            "-k",
            f"StudyInstanceUID={value}",
            "127.0.0.1",
            str(scp),
        ]
    )
    text = proc.stdout + proc.stderr
    assert "DataSetDoesNotMatchSOPClass" in text and "Release Failed" not in text, text
    assert list(tmp_path.iterdir()) == []
