"""Shared pieces of the DIMSE adapter: configuration, SOP class tables, status helpers."""

from __future__ import annotations

import hashlib
import logging
import socket
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from pydicom.dataset import Dataset
from pydicom.tag import Tag
from pynetdicom.sop_class import (
    PatientRootQueryRetrieveInformationModelFind,
    PatientRootQueryRetrieveInformationModelGet,
    PatientRootQueryRetrieveInformationModelMove,
    PatientStudyOnlyQueryRetrieveInformationModelFind,
    PatientStudyOnlyQueryRetrieveInformationModelGet,
    PatientStudyOnlyQueryRetrieveInformationModelMove,
    StudyRootQueryRetrieveInformationModelFind,
    StudyRootQueryRetrieveInformationModelGet,
    StudyRootQueryRetrieveInformationModelMove,
)

LOG = logging.getLogger("pacscore.dimse")

#: Q/R SOP class -> pacscore model name
FIND_MODELS = {
    str(PatientRootQueryRetrieveInformationModelFind): "PATIENT",
    str(StudyRootQueryRetrieveInformationModelFind): "STUDY",
    str(PatientStudyOnlyQueryRetrieveInformationModelFind): "PATIENT_STUDY_ONLY",
}
GET_MODELS = {
    str(PatientRootQueryRetrieveInformationModelGet): "PATIENT",
    str(StudyRootQueryRetrieveInformationModelGet): "STUDY",
    str(PatientStudyOnlyQueryRetrieveInformationModelGet): "PATIENT_STUDY_ONLY",
}
MOVE_MODELS = {
    str(PatientRootQueryRetrieveInformationModelMove): "PATIENT",
    str(StudyRootQueryRetrieveInformationModelMove): "STUDY",
    str(PatientStudyOnlyQueryRetrieveInformationModelMove): "PATIENT_STUDY_ONLY",
}
RETRIEVE_MODELS = {**GET_MODELS, **MOVE_MODELS}
MODEL_LABEL = {"PATIENT": "patient-root", "STUDY": "study-root", "PATIENT_STUDY_ONLY": "patient/study-only"}

#: C-FIND extended negotiation (PS3.4 C.5.1.1): byte position -> matching option
FIND_EXT_OPTIONS = ("relational", "combined_datetime", "fuzzy_pn", "timezone_adjustment")

PENDING_ALL = 0xFF00
PENDING_SOME = 0xFF01
CANCEL = 0xFE00


@dataclass(frozen=True)
class DimseConfig:
    """Everything the handlers need to know; ``handlers(archive, **config)`` takes these names."""

    #: AE title -> (host, port) of the C-MOVE destinations
    move_destinations: dict[str, tuple[str, int]] = field(default_factory=dict)
    #: calling AE titles allowed to associate (None: any)
    allowed_calling_aets: list[str] | None = None
    #: C-FIND: more matches than this refuse with A700 (None: unlimited)
    max_results: int | None = None
    #: forwarded to Archive.find as ``invalid_keys`` ("nomatch" / "error"); None: archive default
    invalid_keys: str | None = None
    #: extended negotiation options we agree to (subset of FIND_EXT_OPTIONS)
    extended_negotiation: tuple[str, ...] = FIND_EXT_OPTIONS
    #: accept relational-retrieve (C-GET / C-MOVE extended negotiation byte 1)
    relational_retrieve: bool = True
    #: pass relational=False / combined_datetime=False when not negotiated (PS3.4 baseline)
    strict_negotiation: bool = True
    #: matching options passed to every C-FIND's Archive.find / count (e.g. empty_record_matches)
    find_options: dict = field(default_factory=dict)
    #: set TCP_NODELAY on accepted sockets and on C-MOVE sub-association sockets
    tcp_nodelay: bool = True
    #: put patient data (identifier values, UIDs) into the pacscore.dimse log
    log_phi: bool = False
    #: Retrieve AE Title (0008,0054) put into C-FIND responses; None: the called AE title
    retrieve_ae_title: str | None = None
    #: max PDU proposed on C-MOVE sub-associations (0: unlimited)
    move_max_pdu: int = 16382
    #: (ssl.SSLContext, server_hostname) for C-MOVE sub-associations, or None
    move_tls_args: tuple | None = None
    #: seconds pynetdicom's DUL thread sleeps when idle (its default: 0.001); lower answers
    #: faster (about 1 ms less per request at 0.0001) for more idle CPU per open association
    poll_interval: float | None = None
    #: storage commitment: requester AE title -> (host, port) its N-EVENT-REPORT goes to when
    #: the requesting association is closed (docs/conformance-dimse.md)
    commitment_peers: dict[str, tuple[str, int]] = field(default_factory=dict)
    #: seconds between retries of undelivered storage commitment reports (None: no retries)
    commitment_retry_interval: float | None = 60.0


@dataclass
class AssocState:
    number: int
    peer: str
    negotiated: dict[str, dict[str, bool]] = field(default_factory=dict)
    requests: int = 0
    stored: int = 0
    store_failed: int = 0
    retrieve_started: float | None = None
    #: C-GET / C-MOVE message ID -> the status that replaces pynetdicom's final response
    refusals: dict[int, Dataset] = field(default_factory=dict)
    rejected: bool = False
    started: float = field(default_factory=time.perf_counter)


#: ``DimseService.state``: the record of an association (counted requests, the peer's name)
AssocStates = Callable[[Any], AssocState]


def request_prefix(state: AssocStates | None, assoc) -> str:
    """``"assoc N PEER: "`` for a request's log line, its request counted; "" without ``state``."""
    if state is None:
        return ""
    st = state(assoc)
    st.requests += 1
    return f"assoc {st.number} {st.peer}: "


def set_nodelay(sock) -> bool:
    """Set TCP_NODELAY on a (possibly TLS-wrapped) socket; False when it is not a TCP socket."""
    try:
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        return True
    except (OSError, AttributeError):
        return False


def status(code: int, comment: str | None = None, offending: int | None = None) -> Dataset:
    """A status Dataset with an Error Comment (LO: 64 characters at most)."""
    ds = Dataset()
    ds.Status = code
    if comment:
        ds.ErrorComment = comment.replace("\\", "/")[:64]
    if offending is not None:
        ds.OffendingElement = [offending]
    return ds


_SUB_OPERATION_COUNTS = (
    "NumberOfRemainingSuboperations",
    "NumberOfCompletedSuboperations",
    "NumberOfFailedSuboperations",
    "NumberOfWarningSuboperations",
)


def amend_response(message, answer: Dataset) -> None:
    """Put ``answer``'s Status, Error Comment and Offending Element into an outgoing C-GET /
    C-MOVE response (EVT_DIMSE_SENT fires before pynetdicom encodes the message).

    pynetdicom sends a handler's failure status only after it counted sub-operations (C-GET)
    or associated with the move destination (C-MOVE); a refused identifier must do neither,
    so the handler ends the request the quiet way (no sub-operation; unknown destination)
    and the response is given the refusal here, without sub-operation counts."""
    cs = message.command_set
    for keyword in ("Status", "ErrorComment", "OffendingElement", *_SUB_OPERATION_COUNTS):
        if keyword in cs:
            delattr(cs, keyword)
    for elem in answer:
        cs[elem.tag] = elem
    message._set_command_group_length()


def uid_label(uid: str, log_phi: bool) -> str:
    """A UID as the log shows it: itself with ``log_phi``, else a short stable tag (the start
    of its SHA-256) that ties the lines of one request together without the UID."""
    if log_phi:
        return uid
    return "#" + hashlib.sha256(uid.encode()).hexdigest()[:10]


def tag_of(attribute) -> int | None:
    if not attribute:
        return None
    try:
        return int(Tag(attribute))
    except Exception:  # a keyword pydicom does not know, or a sequence path
        try:
            return int(Tag(str(attribute).split(".")[0].split("[")[0]))
        except Exception:
            return None


class Undecodable(Exception):
    """The identifier's bytes could not be decoded."""
