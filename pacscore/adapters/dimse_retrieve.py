"""C-GET and C-MOVE for the DIMSE adapter (a mixin of DimseService).

Both select the instances by the identifier's unique keys alone (``retrieve_scope``: checked,
then looked up with ``Archive.instances``; never matched like a C-FIND), then hand pynetdicom
one Dataset per instance, read from the stored bytes and converted only when the peer did not
accept the stored transfer syntax.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from pydicom.dataset import Dataset
from pynetdicom import evt

from ..errors import NotFound
from .dimse_common import (
    CANCEL,
    GET_MODELS,
    LOG,
    MODEL_LABEL,
    MOVE_MODELS,
    PENDING_ALL,
    amend_response,
    set_nodelay,
)
from .dimse_convert import ConversionError, accepted_syntaxes, move_contexts, prepare_for_peer
from .retrieve_scope import retrieve_scope, select_instances


class RetrieveHandlers:
    """C-GET / C-MOVE handlers; expects ``archive``, ``config``, ``state()``, ``_identifier()``,
    ``_options()``, ``_describe()``, ``_failure()`` and ``_log_failure()`` from DimseService."""

    # what DimseService, which mixes this class in, provides
    archive: Any
    state: Callable[..., Any]
    _request: Callable[..., tuple]
    _failure: Callable[..., Any]
    _log_failure: Callable[..., Any]

    def _collect(self, ident: Dataset, level: str, model: str, opts: dict) -> list:
        """The instances an identifier designates by its unique keys (raises QueryError)."""
        scope = retrieve_scope(ident, level, model, relational=bool(opts.get("relational")))
        return select_instances(self.archive, scope)

    def _sub_operations(self, event, st, op, refs, contexts_of):
        """Yield (status, dataset) for each instance; failures to prepare count as failed."""
        cache: dict[str, list[str]] = {}
        for ref in refs:
            if event.is_cancelled:
                LOG.info("assoc %d %s: %s cancelled", st.number, st.peer, op)
                yield CANCEL, None
                return
            try:
                syntaxes = cache.get(ref.sop_class_uid)
                if syntaxes is None:
                    syntaxes = cache[ref.sop_class_uid] = accepted_syntaxes(contexts_of(), ref.sop_class_uid)
                data = self.archive.get(ref.sop_instance_uid)
                ds, how = prepare_for_peer(data, ref.transfer_syntax_uid, syntaxes)
                if " without " in how:  # a nested image that could not be decoded was left out
                    LOG.warning(
                        "assoc %d %s: %s %s sent after %s",
                        st.number,
                        st.peer,
                        op,
                        ref.sop_instance_uid if self.config.log_phi else "an instance",
                        how,
                    )
                elif how not in ("as-is", "reencode"):
                    LOG.debug(
                        "assoc %d %s: %s %s sent after %s",
                        st.number,
                        st.peer,
                        op,
                        ref.sop_instance_uid if self.config.log_phi else "instance",
                        how,
                    )
            except Exception as exc:  # one instance that cannot be prepared fails alone
                if self.config.log_phi:
                    uid, reason = ref.sop_instance_uid, str(exc)
                else:  # NotFound / StorageError messages carry the UID
                    uid = "an instance"
                    reason = str(exc) if isinstance(exc, ConversionError) else type(exc).__name__
                level = LOG.warning if isinstance(exc, (ConversionError, NotFound)) else LOG.error
                level("assoc %d %s: %s cannot send %s: %s", st.number, st.peer, op, uid, reason)
                # a Dataset without SOP Class UID makes pynetdicom's send_c_store raise, which it
                # counts as a failed sub-operation (and lists the UID) before going on
                failed = Dataset()
                failed.SOPInstanceUID = ref.sop_instance_uid
                yield PENDING_ALL, failed
                continue
            yield PENDING_ALL, ds

    def _retrieve_failure(self, st, op, exc) -> Dataset:
        rsp = self._failure(exc, "retrieve")
        self._log_failure(st, op, exc, rsp.Status)
        return rsp

    def _refuse(self, event, st, op, exc) -> None:
        """Remember the failure status of a request that sends nothing (see amend_response)."""
        st.refusals[int(event.request.MessageID)] = self._retrieve_failure(st, op, exc)

    def on_get(self, event):
        assoc = event.assoc
        st, t0, sop_class, model = self._request(event, GET_MODELS, "STUDY")
        op = f"C-GET {MODEL_LABEL[model]}"
        try:
            ident, level = self._identifier(event)
            op = f"{op} {level} {self._describe(ident)}"
            refs = self._collect(ident, level, model, self._options(assoc, sop_class))
        except Exception as exc:
            self._refuse(event, st, op, exc)
            yield 0  # no sub-operation; on_dimse_sent turns the final response into the refusal
            return
        LOG.info("assoc %d %s: %s -> %d instances", st.number, st.peer, op, len(refs))
        st.retrieve_started = t0
        yield len(refs)
        if refs:
            yield from self._sub_operations(event, st, "C-GET", refs, lambda: assoc.accepted_contexts)
        st.retrieve_started = t0

    def on_move(self, event):
        assoc = event.assoc
        st, t0, sop_class, model = self._request(event, MOVE_MODELS, "STUDY")
        dest_title = str(event.move_destination or "").strip()
        op = f"C-MOVE {MODEL_LABEL[model]} to {dest_title!r}"
        dest = self.config.move_destinations.get(dest_title)
        if dest is None:
            LOG.info("assoc %d %s: %s refused 0xA801, unknown move destination", st.number, st.peer, op)
            yield None, None
            return
        try:
            ident, level = self._identifier(event)
            op = f"{op} {level} {self._describe(ident)}"
            refs = self._collect(ident, level, model, self._options(assoc, sop_class))
        except Exception as exc:
            self._refuse(event, st, op, exc)
            yield None, None  # never associate with the destination; the refusal replaces A801
            return
        sub: dict = {}

        def capture(ev):
            sub["assoc"] = ev.assoc

        def nodelay(ev):
            set_nodelay(ev.assoc.dul.socket.socket)

        handlers = [(evt.EVT_ESTABLISHED, capture)]
        if self.config.tcp_nodelay:
            handlers.append((evt.EVT_CONN_OPEN, nodelay))
        kwargs = {
            "evt_handlers": handlers,
            "max_pdu": self.config.move_max_pdu,
            "contexts": move_contexts((r.sop_class_uid, r.transfer_syntax_uid) for r in refs),
        }
        if not refs:  # nothing to send: pynetdicom answers success without associating
            yield dest[0], int(dest[1]), kwargs
            LOG.info("assoc %d %s: %s -> 0 instances", st.number, st.peer, op)
            yield 0
            return
        if self.config.move_tls_args:
            kwargs["tls_args"] = self.config.move_tls_args
        yield dest[0], int(dest[1]), kwargs
        LOG.info("assoc %d %s: %s -> %d instances to %s:%s", st.number, st.peer, op, len(refs), dest[0], dest[1])
        st.retrieve_started = t0
        yield len(refs)
        if refs:

            def contexts():
                store = sub.get("assoc")
                return store.accepted_contexts if store is not None else []

            yield from self._sub_operations(event, st, "C-MOVE", refs, contexts)
        st.retrieve_started = t0

    def on_dimse_sent(self, event) -> None:
        """Log the final C-GET / C-MOVE response pynetdicom built from our yields (counts)."""
        name = type(event.message).__name__
        if name not in ("C_GET_RSP", "C_MOVE_RSP"):
            return
        cs = event.message.command_set
        st = self.state(event.assoc)
        refusal = st.refusals.pop(int(cs.get("MessageIDBeingRespondedTo", -1)), None)
        if refusal is not None:
            amend_response(event.message, refusal)
        code = int(cs.get("Status", 0))
        if code in (0xFF00, 0xFF01):
            return
        took = ""
        started = getattr(st, "retrieve_started", None)
        if started is not None:
            took = f" in {(time.perf_counter() - started) * 1e3:.1f} ms"
            st.retrieve_started = None
        LOG.info(
            "assoc %d %s: %s final 0x%04X: completed %s, failed %s, warning %s%s",
            st.number,
            st.peer,
            "C-GET" if name == "C_GET_RSP" else "C-MOVE",
            code,
            cs.get("NumberOfCompletedSuboperations", "-"),
            cs.get("NumberOfFailedSuboperations", "-"),
            cs.get("NumberOfWarningSuboperations", "-"),
            took,
        )
