"""The errors of the workflow services: each carries the DIMSE status the standard gives it, so
the DIMSE adapter answers with it and a Python caller can read the same reason."""

from __future__ import annotations

from ..errors import NotFound, PacsError

#: PS3.7 Annex C status codes the workflow services answer with
INVALID_ATTRIBUTE_VALUE = 0x0106
PROCESSING_FAILURE = 0x0110
DUPLICATE_SOP_INSTANCE = 0x0111
NO_SUCH_SOP_INSTANCE = 0x0112
CLASS_INSTANCE_CONFLICT = 0x0119
MISSING_ATTRIBUTE = 0x0120
MISSING_ATTRIBUTE_VALUE = 0x0121

#: PS3.4 Table F.7.2-2: the Error ID and Error Comment of an N-SET on a step in a final state
MAY_NO_LONGER_BE_UPDATED_ID = 0xA710
MAY_NO_LONGER_BE_UPDATED = "Performed Procedure Step Object may no longer be updated"


class ProcedureStepError(ValueError, PacsError):
    """A performed procedure step request the standard refuses; ``status`` is its DIMSE status,
    ``attribute`` the tag it names (if any), ``error_id`` the Error ID (0000,0903) if one is
    defined. ``reason`` is the Error Comment sent back; ``detail`` only adds to the message."""

    def __init__(
        self, status: int, reason: str, attribute: int | None = None, error_id: int | None = None, detail: str = ""
    ) -> None:
        self.status = status
        self.reason = reason
        self.attribute = attribute
        self.error_id = error_id
        super().__init__(f"{reason}{detail}")


class NoSuchProcedureStep(NotFound):
    """No performed procedure step has this SOP Instance UID (DIMSE status 0x0112)."""

    status = NO_SUCH_SOP_INSTANCE
    attribute = None
    error_id = None

    @property
    def reason(self) -> str:
        return str(self)
