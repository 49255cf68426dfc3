"""The workflow services of the DIMSE adapter in one place for dimse.py to register: MPPS
(dimse_mpps.py) and Storage Commitment Push Model (dimse_commitment.py)."""

from __future__ import annotations

from pynetdicom import build_context
from pynetdicom.presentation import PresentationContext

from ..workflow.commitment import STORAGE_COMMITMENT_CLASS
from .dimse_commitment import CommitmentService
from .dimse_common import AssocStates, DimseConfig
from .dimse_mpps import MPPS_CLASS, MppsHandlers


def workflow_contexts() -> list[PresentationContext]:
    """MPPS and Storage Commitment Push Model, default transfer syntaxes. The requester of a
    commitment keeps the SCU role; a report on the same association needs no role selection
    (PS3.4 J.3.3: the N-EVENT-REPORT goes the other way on the same context)."""
    return [build_context(MPPS_CLASS), build_context(STORAGE_COMMITMENT_CLASS)]


def workflow_bindings(archive, config: DimseConfig, state: AssocStates | None = None) -> list[tuple]:
    """The N-CREATE / N-SET (MPPS) and N-ACTION (storage commitment) handlers of ``archive``;
    ``state`` (``DimseService.state``) counts their requests in the association's record and
    names the association in their log lines, as the other handlers do."""
    commitment = CommitmentService(
        archive,
        config.commitment_peers,
        retry_interval=config.commitment_retry_interval,
        max_pdu=config.move_max_pdu,
        tls_args=config.move_tls_args,
        log_phi=config.log_phi,
        state=state,
    )
    return MppsHandlers(archive, log_phi=config.log_phi, state=state).bindings() + commitment.bindings()
