"""Indexed presentation context negotiation (pacscore.adapters.dimse_negotiation).

The index must give pynetdicom's answer (``negotiate_as_acceptor``) for any request: the same
result per context (result code, transfer syntax, roles) and the same SCP/SCU role selection
replies. Then through ``serve()``: a request of 120 contexts is answered, unsupported abstract
and transfer syntaxes are rejected per context while the others work, and no association copies
the supported contexts.
"""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pydicom.uid import ExplicitVRBigEndian, ExplicitVRLittleEndian, ImplicitVRLittleEndian
from pynetdicom import AE, build_context, build_role
from pynetdicom.presentation import PresentationContext, negotiate_as_acceptor
from pynetdicom.sop_class import CTImageStorage, StudyRootQueryRetrieveInformationModelFind, Verification

import pacscore
from pacscore.adapters import dimse
from pacscore.adapters.dimse_convert import MAX_REQUESTED_CONTEXTS, storage_sop_classes
from pacscore.adapters.dimse_fastpath import guard_requestor
from pacscore.adapters.dimse_negotiation import (
    INDEXED_NEGOTIATION,
    ContextIndex,
    IndexedACSE,
    IndexedServer,
    negotiate,
)

SUPPORTED = dimse.supported_contexts()
INDEX = ContextIndex(SUPPORTED)
STORAGE = storage_sop_classes()
KNOWN_TS = sorted({str(ts) for cx in SUPPORTED for ts in cx.transfer_syntax})
UNKNOWN_UIDS = ["1.2.3.4.5.6", "1.2.826.0.1.3680043.9.7777.99", "1.2.840.10008.1.2.4.9999"]


def as_tuples(contexts: list[PresentationContext]) -> list[tuple]:
    return [
        (cx.context_id, str(cx.abstract_syntax), [str(t) for t in cx.transfer_syntax], cx.result, cx.as_scu, cx.as_scp)
        for cx in contexts
    ]


def roles_of(items) -> list[tuple]:
    return [(str(i.sop_class_uid), i.scu_role, i.scp_role) for i in items]


# ---- the index against pynetdicom -------------------------------------------------------------
abstract_syntaxes = st.sampled_from(
    [str(Verification), str(StudyRootQueryRetrieveInformationModelFind), *STORAGE[:40], *UNKNOWN_UIDS]
)
transfer_syntaxes = st.lists(st.sampled_from(KNOWN_TS + UNKNOWN_UIDS), min_size=1, max_size=5, unique=True)
#: a role selection item carries both roles (PS3.7 D.3.3.4)
role_values = st.booleans()


@st.composite
def requests(draw):
    """Requested contexts (odd IDs, some IDs repeated as a careless requestor may) and roles."""
    n = draw(st.integers(1, 24))
    contexts = []
    for i in range(n):
        cx = build_context(draw(abstract_syntaxes), draw(transfer_syntaxes))
        cx.context_id = draw(st.sampled_from([2 * i + 1, 1])) if i else 1
        contexts.append(cx)
    roles = {}
    for cx in contexts:
        if draw(st.booleans()) and draw(st.integers(0, 3)) == 0:
            roles[cx.abstract_syntax] = (draw(role_values), draw(role_values))
    return contexts, roles


@st.composite
def supported_lists(draw):
    """Supported contexts with the role settings an AE may have (None/None, or both set)."""
    chosen = draw(st.lists(abstract_syntaxes, min_size=0, max_size=12, unique=True))
    out = []
    for uid in chosen:
        cx = build_context(uid, draw(transfer_syntaxes))
        if draw(st.booleans()):
            cx.scu_role, cx.scp_role = draw(st.booleans()), draw(st.booleans())
        out.append(cx)
    return out


@settings(max_examples=150, deadline=None)
@given(requests())
def test_indexed_negotiation_answers_as_pynetdicom_with_our_contexts(request):
    requested, roles = request
    expected, expected_roles = negotiate_as_acceptor(requested, list(SUPPORTED), dict(roles))
    got, got_roles = negotiate(requested, INDEX, dict(roles))
    assert as_tuples(got) == as_tuples(expected)
    assert roles_of(got_roles) == roles_of(expected_roles)


@settings(max_examples=150, deadline=None)
@given(requests(), supported_lists())
def test_indexed_negotiation_answers_as_pynetdicom_with_any_supported_list(request, supported):
    requested, roles = request
    expected, expected_roles = negotiate_as_acceptor(requested, supported, dict(roles))
    got, got_roles = negotiate(requested, ContextIndex(supported), dict(roles))
    assert as_tuples(got) == as_tuples(expected)
    assert roles_of(got_roles) == roles_of(expected_roles)


def test_our_preferred_transfer_syntax_wins_not_the_requestors_order():
    """PS3.8 9.3.3.2: the acceptor picks one of the proposed syntaxes; ours prefers explicit VR LE
    over implicit (dimse_convert.STORAGE_TRANSFER_SYNTAXES), whatever order they come in."""
    proposed = [ImplicitVRLittleEndian, ExplicitVRBigEndian, ExplicitVRLittleEndian]
    assert INDEX.preferred_syntax(CTImageStorage, proposed) == ExplicitVRLittleEndian
    assert INDEX.preferred_syntax(CTImageStorage, ["1.2.3.4"]) is None
    assert INDEX.preferred_syntax("1.2.3.4", proposed) is None


def test_the_index_is_the_list_pynetdicom_reads():
    assert list(INDEX) == list(SUPPORTED)
    assert len(INDEX.by_syntax) == len({str(cx.abstract_syntax) for cx in SUPPORTED})


def test_this_pynetdicom_negotiates_through_the_index():
    """IndexedACSE rebinds the one function pynetdicom's acceptor negotiation calls; if a new
    pynetdicom stops calling it by that name this fails (and the stock negotiation serves)."""
    assert INDEXED_NEGOTIATION
    assert IndexedACSE._negotiate_as_acceptor is not pynetdicom_acse_method()


def pynetdicom_acse_method():
    from pynetdicom.acse import ACSE

    return ACSE._negotiate_as_acceptor


# ---- through serve() ---------------------------------------------------------------------------
@pytest.fixture(scope="module")
def server(tmp_path_factory):
    with pacscore.open(tmp_path_factory.mktemp("neg") / "arc") as arc:
        srv = dimse.serve(arc, dimse.ServeConfig(port=0, block=False))
        try:
            yield srv
        finally:
            srv.shutdown()


def associate(port: int, contexts: list[PresentationContext], **kwargs):
    ae = AE("NEGTEST")
    ae.acse_timeout = ae.dimse_timeout = ae.network_timeout = 60
    ae.requested_contexts = contexts
    assoc = ae.associate("127.0.0.1", port, ae_title="PACSCORE", **kwargs)
    assert assoc.is_established
    return guard_requestor(assoc)


def test_serve_negotiates_through_a_shared_index_without_copying(server):
    assert isinstance(server, IndexedServer)
    assert server.contexts == []  # what pynetdicom would deep-copy for every association
    assert {str(cx.abstract_syntax) for cx in server.context_index} == {str(cx.abstract_syntax) for cx in SUPPORTED}


def test_a_request_of_120_contexts_is_answered_context_by_context(server):
    classes = STORAGE[:119]
    contexts = [build_context(Verification)]
    contexts += [build_context(uid, [ImplicitVRLittleEndian, ExplicitVRLittleEndian]) for uid in classes]
    assert len(contexts) == 120 <= MAX_REQUESTED_CONTEXTS
    assoc = associate(server.server_address[1], contexts)
    try:
        accepted = assoc.accepted_contexts
        assert len(accepted) == 120 and not assoc.rejected_contexts
        assert {str(cx.transfer_syntax[0]) for cx in accepted if cx.abstract_syntax != Verification} == {
            str(ExplicitVRLittleEndian)
        }
        assert assoc.send_c_echo().Status == 0x0000
    finally:
        assoc.release()
    assert assoc.is_released


def test_unsupported_syntaxes_are_rejected_per_context_and_the_rest_work(server):
    """Bad proposals (an unknown abstract syntax, an unknown transfer syntax) get their own
    result (0x03, 0x04; PS3.8 9.3.3.2) and spoil nothing else."""
    contexts = [
        build_context("1.2.826.0.1.3680043.9.7777.99"),
        build_context(CTImageStorage, ["1.2.840.10008.1.2.4.9999"]),
        build_context(Verification),
    ]
    assoc = associate(server.server_address[1], contexts)
    try:
        results = {str(cx.abstract_syntax): cx.result for cx in assoc.rejected_contexts}
        assert results == {"1.2.826.0.1.3680043.9.7777.99": 0x03, str(CTImageStorage): 0x04}
        assert [str(cx.abstract_syntax) for cx in assoc.accepted_contexts] == [str(Verification)]
        assert assoc.send_c_echo().Status == 0x0000
    finally:
        assoc.release()


def test_role_selection_goes_through_the_index(server):
    """C-GET needs the SCP role on storage contexts (PS3.4 C.4.3): proposed, it is granted."""
    contexts = [build_context(StudyRootQueryRetrieveInformationModelFind), build_context(CTImageStorage)]
    assoc = associate(server.server_address[1], contexts, ext_neg=[build_role(CTImageStorage, scp_role=True)])
    try:
        ct = [cx for cx in assoc.accepted_contexts if cx.abstract_syntax == CTImageStorage]
        assert ct and ct[0].as_scp  # granted: we, the requestor, may act as Storage SCP
    finally:
        assoc.release()
