"""Clinical workflow services kept in the archive: performed procedure steps (MPPS, PS3.4
Annex F) and storage commitment (PS3.4 Annex J). The DIMSE side is in adapters/dimse_mpps.py
and adapters/dimse_commitment.py; docs/workflow.md shows the round trip."""

from .commitment import CommitmentResult, Commitments, PendingReport
from .errors import NoSuchProcedureStep, ProcedureStepError
from .mpps import PerformedStep, ProcedureSteps
from .mpps_rules import COMPLETED, DISCONTINUED, IN_PROGRESS

__all__ = [
    "COMPLETED",
    "DISCONTINUED",
    "IN_PROGRESS",
    "CommitmentResult",
    "Commitments",
    "NoSuchProcedureStep",
    "PendingReport",
    "PerformedStep",
    "ProcedureStepError",
    "ProcedureSteps",
]
