"""The Modality Worklist Information Model - FIND SCP (PS3.4 K.4): the C-FIND handler for
``1.2.840.10008.5.1.4.31``, answered from ``Archive.worklist`` (pacscore/worklist).

pynetdicom binds one handler per C-FIND; ``bind()`` puts a dispatcher in front of the Q/R
handler that sends worklist requests here and every other one to the Q/R handler. Statuses
(K.4.1.1.4): FF00 per match, 0000 at the end, FE00 after a C-FIND-CANCEL, A900 for an
identifier that cannot be matched (a bad date, a wrong value type), A700 when there are more
matches than ``max_results`` or the index cannot be read, C000 when the identifier cannot be
decoded, C001 for any other failure.
"""

from __future__ import annotations

import time
from collections.abc import Iterator

from pydicom.dataset import Dataset
from pynetdicom import evt

from ..errors import QueryError, StorageError
from ..worklist import match
from .dimse_common import CANCEL, PENDING_ALL, Undecodable, status, tag_of

#: Modality Worklist Information Model - FIND (PS3.4 K.4, PS3.6 Annex A)
MODALITY_WORKLIST_FIND = "1.2.840.10008.5.1.4.31"


def bind(service, bindings: list[tuple]) -> list[tuple]:
    """``bindings`` (DimseService.bindings()) with the C-FIND handler replaced by one that
    serves the Modality Worklist model itself and passes every other model to ``service``."""

    def on_find(event):
        if str(event.request.AffectedSOPClassUID) == MODALITY_WORKLIST_FIND:
            return worklist_find(service, event)
        return service.on_find(event)

    return [(event, on_find) if event == evt.EVT_C_FIND else (event, fn) for event, fn in bindings]


def _options(service) -> dict:
    """The server's matching options; a bad key is refused (A900) unless the server asked for
    ``invalid_keys="nomatch"``. Extended negotiation is not offered for this SOP class."""
    opts = {k: v for k, v in service.config.find_options.items() if k != "relational"}
    opts["invalid_keys"] = service.config.invalid_keys or "error"
    return opts


def _identifier(event) -> Dataset:
    try:
        ident = event.identifier
        list(ident)  # force the deferred decode of every element
    except Exception as exc:
        raise Undecodable(f"identifier cannot be decoded: {type(exc).__name__}") from exc
    return ident


def worklist_find(service, event) -> Iterator[tuple]:
    """The C-FIND generator of the worklist model (pynetdicom's EVT_C_FIND contract)."""
    archive = service.archive
    st = service.state(event.assoc)
    st.requests += 1
    t0 = time.perf_counter()
    op = "C-FIND worklist"
    try:
        ident = _identifier(event)
        op = f"{op} {service._describe(ident)}"
        query = match.build(ident, archive.options.replace(**_options(service)))
        rows = archive.worklist.iter_find(query)
        limit = service.config.max_results
        if limit is not None:
            rows = list(rows)
            if len(rows) > limit:
                service._log_too_many(st, op, len(rows), limit)
                yield status(0xA700, f"too many matches: {len(rows)} > {limit}"), None
                return
    except Exception as exc:
        rsp = _failure(exc)
        service._log_failure(st, op, exc, rsp.Status)
        yield rsp, None
        return
    sent, outcome = 0, "0x0000"
    try:
        for row in rows:
            if event.is_cancelled:
                outcome = "0xFE00 (cancelled)"
                yield CANCEL, None
                return
            sent += 1
            yield PENDING_ALL, Dataset.from_json(row)
    except GeneratorExit:
        outcome = "association gone"
        raise
    except Exception as exc:
        rsp = _failure(exc) if sent == 0 else status(0xC001, f"unable to process: {type(exc).__name__}")
        outcome = f"0x{rsp.Status:04X}"
        service._log_failure(st, op, exc, rsp.Status)
        yield rsp, None
    finally:
        service._log_find(st, op, sent, outcome, t0)


def _failure(exc: Exception) -> Dataset:
    if isinstance(exc, QueryError):
        return status(0xA900, str(exc), tag_of(getattr(exc, "attribute", None)))
    if isinstance(exc, Undecodable):
        return status(0xC000, str(exc))
    if isinstance(exc, StorageError):
        return status(0xA700, f"storage error: {type(exc).__name__}")
    return status(0xC001, f"unable to process: {type(exc).__name__}")
