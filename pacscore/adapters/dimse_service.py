"""The pynetdicom event handlers behind ``pacscore.adapters.dimse.handlers()``.

One ``DimseService`` serves one Archive. Its bound methods are the handlers: C-ECHO, C-STORE,
C-FIND (here), C-GET and C-MOVE (dimse_retrieve), SOP Class Extended Negotiation, and the
association events used for the calling-AE check, TCP_NODELAY and the per-association log.
Everything that is DICOM protocol lives here; every matching decision is the Archive's.
"""

from __future__ import annotations

import itertools
import logging
import threading
import time
import weakref

from pydicom.dataset import Dataset
from pydicom.tag import Tag
from pydicom.uid import UID
from pynetdicom import evt

from .. import model
from ..errors import IngestError, QueryError, StorageError
from ..events import Origin
from ..group_commit import GroupCommitter
from ..query.identifier_raw import fast_path_open, string_of
from .dimse_common import (
    CANCEL,
    FIND_EXT_OPTIONS,
    FIND_MODELS,
    LOG,
    MODEL_LABEL,
    PENDING_ALL,
    PENDING_SOME,
    RETRIEVE_MODELS,
    AssocState,
    DimseConfig,
    Undecodable,
    set_nodelay,
    status,
    tag_of,
)
from .dimse_encode import encoded_results
from .dimse_file_meta import part10
from .dimse_retrieve import RetrieveHandlers

INSTANCE_AVAILABILITY = 0x00080056


class _Described:
    """An operation and the keys it asked, for the log: named only when a line is written, so a
    C-FIND served where INFO is not logged never pays for naming its keys."""

    __slots__ = ("prefix", "service", "ident")

    def __init__(self, prefix: str, service: DimseService, ident) -> None:
        self.prefix, self.service, self.ident = prefix, service, ident

    def __str__(self) -> str:
        return f"{self.prefix} {self.service._describe(self.ident)}"


def _keyword(tag: int) -> str:
    """A key's keyword for the log, "(gggg,eeee)" when the dictionary has none."""
    keyword = model.keyword_of(tag)
    return str(Tag(tag)) if keyword == f"{tag:08X}" else keyword


__all__ = ["DimseService", "DimseConfig", "LOG", "FIND_MODELS", "RETRIEVE_MODELS", "set_nodelay", "status"]


class DimseService(RetrieveHandlers):
    """The handlers for one archive; ``handlers()`` returns its event bindings."""

    def __init__(self, archive, config: DimseConfig) -> None:
        self.archive = archive
        self.config = config
        self._states: weakref.WeakKeyDictionary[object, AssocState] = weakref.WeakKeyDictionary()
        self._lock = threading.Lock()
        self._numbers = itertools.count(1)
        # C-STOREs of all associations share their durable commits (pacscore/group_commit.py)
        self.committer = GroupCommitter(archive)

    # ---- bindings -------------------------------------------------------------------------
    def bindings(self) -> list[tuple]:
        hs = [
            (evt.EVT_CONN_OPEN, self.on_conn_open),
            (evt.EVT_REQUESTED, self.on_requested),
            (evt.EVT_ESTABLISHED, self.on_established),
            (evt.EVT_REJECTED, self.on_rejected),
            (evt.EVT_RELEASED, self.on_closed),
            (evt.EVT_ABORTED, self.on_closed),
            (evt.EVT_SOP_EXTENDED, self.on_sop_extended),
            (evt.EVT_C_ECHO, self.on_echo),
            (evt.EVT_C_STORE, self.on_store),
            (evt.EVT_C_FIND, self.on_find),
            (evt.EVT_C_GET, self.on_get),
            (evt.EVT_C_MOVE, self.on_move),
            (evt.EVT_DIMSE_SENT, self.on_dimse_sent),
        ]
        return hs

    # ---- association bookkeeping ----------------------------------------------------------
    def state(self, assoc) -> AssocState:
        with self._lock:
            st = self._states.get(assoc)
            if st is None:
                req = assoc.requestor
                try:
                    address = f"{req.address}:{req.port}"
                except Exception:
                    address = "?"
                title = (getattr(req, "ae_title", "") or "").strip()
                st = AssocState(next(self._numbers), f"{title or '?'}@{address}")
                self._states[assoc] = st
            return st

    def _request(self, event, models: dict, default: str | None = None) -> tuple:
        """What every request handler starts with: its association's state (the request
        counted), the start time, the SOP class asked for and the information model it names."""
        st = self.state(event.assoc)
        st.requests += 1
        sop_class = str(event.request.AffectedSOPClassUID)
        return st, time.perf_counter(), sop_class, models.get(sop_class, default)

    def _peer_title(self, assoc) -> str:
        title = (getattr(assoc.requestor, "ae_title", "") or "").strip()
        if not title and assoc.requestor.primitive is not None:
            title = str(assoc.requestor.primitive.calling_ae_title or "").strip()
        return title

    def on_conn_open(self, event) -> None:
        if not event.assoc.is_acceptor:
            return
        if self.config.tcp_nodelay:
            set_nodelay(event.assoc.dul.socket.socket)
        if self.config.poll_interval is not None:
            event.assoc.dul._run_loop_delay = max(0.0, float(self.config.poll_interval))

    def on_requested(self, event) -> None:
        assoc = event.assoc
        if not assoc.is_acceptor:
            return
        allowed = self.config.allowed_calling_aets
        calling = self._peer_title(assoc)
        if allowed is not None and calling not in [a.strip() for a in allowed]:
            st = self.state(assoc)
            st.peer = f"{calling or '?'}@{st.peer.split('@', 1)[-1]}"
            LOG.warning("assoc %d %s: rejected, calling AE title not recognised", st.number, st.peer)
            st.rejected = True
            assoc.acse.send_reject(0x01, 0x01, 0x03)  # rejected-permanent, service-user, calling AE
            evt.trigger(assoc, evt.EVT_REJECTED, {})
            assoc.kill()

    def on_established(self, event) -> None:
        assoc = event.assoc
        if not assoc.is_acceptor:
            return
        st = self.state(assoc)
        st.peer = f"{self._peer_title(assoc) or '?'}@{st.peer.split('@', 1)[-1]}"
        neg = ""
        if st.negotiated:
            parts = sorted({k for opts in st.negotiated.values() for k, v in opts.items() if v})
            neg = f", extended negotiation: {', '.join(parts) or 'none accepted'}"
        LOG.info(
            "assoc %d %s: established, %d presentation contexts accepted%s",
            st.number,
            st.peer,
            len(assoc.accepted_contexts),
            neg,
        )

    def on_rejected(self, event) -> None:
        if event.assoc.is_acceptor:
            st = self.state(event.assoc)
            if not st.rejected:  # pynetdicom's own rejections (association limit, ...)
                LOG.info("assoc %d %s: rejected", st.number, st.peer)

    def on_closed(self, event) -> None:
        assoc = event.assoc
        if not assoc.is_acceptor:
            return
        with self._lock:
            st = self._states.pop(assoc, None)
        if st is None:
            return
        how = "released" if event.event is evt.EVT_RELEASED else "aborted"
        extra = f", stored {st.stored}, store failures {st.store_failed}" if (st.stored or st.store_failed) else ""
        LOG.info(
            "assoc %d %s: %s after %d requests in %.1f s%s",
            st.number,
            st.peer,
            how,
            st.requests,
            time.perf_counter() - st.started,
            extra,
        )

    # ---- extended negotiation -------------------------------------------------------------
    def on_sop_extended(self, event) -> dict:
        """Answer SOP Class Extended Negotiation; remember what was agreed for this association."""
        st = self.state(event.assoc)
        reply: dict = {}
        for uid, info in (event.app_info or {}).items():
            uid = str(uid)
            info = bytes(info or b"")
            if not info:
                continue
            if uid in FIND_MODELS:
                out = bytearray(len(info))
                opts: dict[str, bool] = {}
                for i, name in enumerate(FIND_EXT_OPTIONS):
                    if i < len(info) and info[i] == 1 and name in self.config.extended_negotiation:
                        out[i] = 1
                        opts[name] = True
                st.negotiated[uid] = opts
                reply[uid] = bytes(out)
            elif uid in RETRIEVE_MODELS:
                out = bytearray(len(info))
                if info[0] == 1 and self.config.relational_retrieve:
                    out[0] = 1
                    st.negotiated[uid] = {"relational": True}
                reply[uid] = bytes(out)
        return reply

    def _options(self, assoc, sop_class: str) -> dict:
        st = self.state(assoc)
        agreed = st.negotiated.get(sop_class, {})
        opts = dict(self.config.find_options)
        if self.config.strict_negotiation:
            opts["relational"] = bool(agreed.get("relational"))
            if sop_class in FIND_MODELS:
                opts["combined_datetime"] = bool(agreed.get("combined_datetime"))
        else:
            opts.update({k: True for k, v in agreed.items() if v})
        for name in ("fuzzy_pn", "timezone_adjustment"):
            if agreed.get(name):
                opts[name] = True
        if self.config.invalid_keys:
            opts["invalid_keys"] = self.config.invalid_keys
        return opts

    # ---- helpers ---------------------------------------------------------------------------
    def _describe(self, ident: Dataset | dict[int, str]) -> str:
        """Which keys were asked (keywords only), or the whole identifier when log_phi is on."""
        if self.config.log_phi and isinstance(ident, Dataset):  # (_identifier decodes it then)
            parts = []
            for elem in ident:
                if elem.tag in (model.T_QR_LEVEL, model.T_CHARSET):
                    continue
                parts.append(f"{elem.keyword or elem.tag}={elem.repval}")
            return "{" + ", ".join(parts) + "}"
        # the tags, without decoding an element (a Dataset read from the wire keeps them raw)
        names = [_keyword(tag) for tag in ident.keys() if tag not in (model.T_QR_LEVEL, model.T_CHARSET)]
        return "[" + ",".join(names) + "]"

    def _identifier(self, event) -> tuple[Dataset | dict[int, str], str]:
        """The decoded identifier and its level; raises QueryError for what cannot be served."""
        # the direct loop reads a plain identifier from its bytes (no Dataset); with log_phi
        # the log shows pydicom's rendering of each value, so the Dataset is decoded then
        plain = None if self.config.log_phi else getattr(event, "plain_identifier", None)
        if plain is not None:
            if model.T_QR_LEVEL not in plain:
                raise QueryError("QueryRetrieveLevel", "missing from the identifier")
            level = plain[model.T_QR_LEVEL].strip().upper()
            if not level:
                raise QueryError("QueryRetrieveLevel", "empty")
            return plain, level
        try:
            ident = event.identifier
            if model.T_QR_LEVEL not in ident:
                raise QueryError("QueryRetrieveLevel", "missing from the identifier")
            # from the raw bytes when that is pydicom's answer (identifier_raw), else converted
            text = string_of(ident.get_item(model.T_QR_LEVEL, keep_deferred=True)) if fast_path_open(ident) else None
            if text is None:
                text = str(ident.QueryRetrieveLevel or "")
        except QueryError:
            raise
        except Exception as exc:
            raise Undecodable(f"identifier cannot be decoded: {type(exc).__name__}") from exc
        level = text.strip().upper()
        if not level:
            raise QueryError("QueryRetrieveLevel", "empty")
        return ident, level

    def _failure(self, exc: Exception, what: str) -> Dataset:
        """Map an exception raised while reading or matching the identifier to a status."""
        if isinstance(exc, QueryError):
            comment = str(exc)
            return status(0xA900, comment, tag_of(getattr(exc, "attribute", None)))
        if isinstance(exc, Undecodable):
            return status(0xC000, str(exc))
        if isinstance(exc, StorageError):
            return status(0xA700 if what == "find" else 0xA701, f"storage error: {type(exc).__name__}")
        return status(0xC001, f"unable to process: {type(exc).__name__}")

    def _log_find(self, st: AssocState, op: object, sent: int, outcome: str, t0: float) -> None:
        """The one log line of every C-FIND (Q/R and worklist): what was asked, how it ended."""
        LOG.info(
            "assoc %d %s: %s -> %d matches, %s (%.1f ms)",
            st.number,
            st.peer,
            op,
            sent,
            outcome,
            (time.perf_counter() - t0) * 1e3,
        )

    def _log_too_many(self, st: AssocState, op: object, n: int, limit: int) -> None:
        LOG.info("assoc %d %s: %s -> %d matches > max_results %d, 0xA700", st.number, st.peer, op, n, limit)

    def _log_failure(self, st: AssocState, op: object, exc: Exception, code: int) -> None:
        if isinstance(exc, QueryError):
            reason = str(exc) if self.config.log_phi else f"attribute {getattr(exc, 'attribute', None)}"
            LOG.info("assoc %d %s: %s refused 0x%04X, invalid identifier (%s)", st.number, st.peer, op, code, reason)
        elif isinstance(exc, Undecodable):
            LOG.info("assoc %d %s: %s refused 0x%04X, %s", st.number, st.peer, op, code, exc)
        else:
            LOG.error("assoc %d %s: %s failed 0x%04X", st.number, st.peer, op, code, exc_info=exc)

    def _query(self, ident, level, model, opts):
        """The archive's query for the identifier, built once for the unsupported-keys answer and
        the matching; None for an archive without ``_query`` (then each asks for itself)."""
        build = getattr(self.archive, "_query", None)
        return None if build is None else build(ident, level, model, opts)

    def _unsupported(self, ident, level, model, opts) -> list:
        try:
            return list(self.archive.unsupported_keys(ident, level, model))
        except QueryError:
            # Archive.unsupported_keys takes no matching options, so a negotiated relational
            # query is refused there as non-hierarchical; ask again with the options
            query = getattr(self.archive, "_query", None)
            if query is None:
                raise
            return list(query(ident, level, model, opts).ignored)

    # ---- C-ECHO ----------------------------------------------------------------------------
    def on_echo(self, event) -> int:
        st = self.state(event.assoc)
        st.requests += 1
        LOG.debug("assoc %d %s: C-ECHO -> 0x0000", st.number, st.peer)
        return 0x0000

    # ---- C-STORE ---------------------------------------------------------------------------
    def on_store(self, event) -> int | Dataset:
        """The pynetdicom C-STORE handler: ``store_encoded`` with the request's parts."""
        st = self.state(event.assoc)
        try:
            request = event.request
            args = (
                str(request.AffectedSOPClassUID),
                str(request.AffectedSOPInstanceUID),
                str(event.context.transfer_syntax),
                event.encoded_dataset(include_meta=False),
            )
        except Exception as exc:
            st.requests += 1
            st.store_failed += 1
            LOG.error("assoc %d %s: C-STORE failed 0x0110", st.number, st.peer, exc_info=exc)
            return status(0x0110, f"processing failure: {type(exc).__name__}")
        return self.store_encoded(st, self._peer_title(event.assoc), *args)

    def store_encoded(
        self,
        state: AssocState,
        title: str,
        sop_class_uid: str,
        sop_instance_uid: str,
        transfer_syntax: str,
        dataset_bytes: bytes,
    ) -> int | Dataset:
        """Store one C-STORE request's data set (as encoded in ``transfer_syntax``) from the peer
        calling as ``title``; returns the status to answer (PS3.4 B.2.3). The request is counted
        in ``state``. Returns only once the instance is durable: its commit is shared with the
        other associations storing at the same time (pacscore/group_commit.py)."""
        st = state
        st.requests += 1
        t0 = time.perf_counter()
        title = (title or "").strip()  # an AE title as sent: padded to 16 bytes (PS3.8 9.3.2)
        try:
            data = part10(sop_class_uid, sop_instance_uid, transfer_syntax, title, dataset_bytes)
            result = self.committer.store(data, origin=Origin("dimse", calling_ae=title or None))
        except IngestError as exc:
            st.store_failed += 1
            reason = getattr(exc, "reason", str(exc))
            LOG.warning(
                "assoc %d %s: C-STORE refused 0xC000, %s",
                st.number,
                st.peer,
                reason if self.config.log_phi else type(exc).__name__ + " (details with log_phi)",
            )
            return status(0xC000, f"cannot understand: {reason}")
        except (StorageError, OSError, MemoryError) as exc:
            st.store_failed += 1
            LOG.error("assoc %d %s: C-STORE failed 0xA700, storage error", st.number, st.peer, exc_info=exc)
            return status(0xA700, f"out of resources: {type(exc).__name__}")
        except Exception as exc:
            st.store_failed += 1
            LOG.error("assoc %d %s: C-STORE failed 0x0110", st.number, st.peer, exc_info=exc)
            return status(0x0110, f"processing failure: {type(exc).__name__}")
        st.stored += 1
        if LOG.isEnabledFor(logging.DEBUG):  # naming the SOP class costs more than the rest of the line
            LOG.debug(
                "assoc %d %s: C-STORE %s%s -> %s 0x0000 (%.1f ms)",
                st.number,
                st.peer,
                UID(sop_class_uid).name,
                f" {result.sop_instance_uid}" if self.config.log_phi else "",
                result.status,
                (time.perf_counter() - t0) * 1e3,
            )
        return 0x0000

    # ---- C-FIND ----------------------------------------------------------------------------
    def on_find(self, event):
        assoc = event.assoc
        st, t0, sop_class, model = self._request(event, FIND_MODELS)
        if model is None:
            LOG.info("assoc %d %s: C-FIND for unsupported SOP class %s", st.number, st.peer, sop_class)
            yield status(0xC000, "SOP class not served by this SCP"), None
            return
        op = f"C-FIND {MODEL_LABEL[model]}"
        try:
            ident, level = self._identifier(event)
            op = _Described(f"{op} {level}", self, ident)
            opts = self._options(assoc, sop_class)
            query = self._query(ident, level, model, opts)
            encoding = (event, self.archive, ident, level, model, opts)
            ignored = query.ignored if query is not None else self._unsupported(ident, level, model, opts)
            pending = PENDING_SOME if ignored else PENDING_ALL
            limit = self.config.max_results
            if limit is not None:
                n = self.archive.count(ident, level=level, model=model, **opts)
                if n > limit:
                    self._log_too_many(st, op, n, limit)
                    yield status(0xA700, f"too many matches: {n} > {limit}"), None
                    return
            retrieve_ae = self.config.retrieve_ae_title or str(assoc.acceptor.ae_title or "").strip()
            availability = INSTANCE_AVAILABILITY in ident  # a Dataset or a plain {tag: text}
            # identifiers encoded from the index's rows when the association takes them (dimse_encode)
            results = None if self.config.log_phi else encoded_results(*encoding, retrieve_ae, availability, query)
            if results is None:
                results = self.archive.find(ident, level=level, model=model, **opts)
        except Exception as exc:
            rsp = self._failure(exc, "find")
            self._log_failure(st, op, exc, rsp.Status)
            yield rsp, None
            return
        sent = 0
        outcome = "0x0000"
        try:
            for ds in results:
                if event.is_cancelled:
                    outcome = "0xFE00 (cancelled)"
                    yield CANCEL, None
                    return
                if isinstance(ds, Dataset):  # (an encoded identifier has both already)
                    if retrieve_ae and not ds.get("RetrieveAETitle"):
                        ds.RetrieveAETitle = retrieve_ae  # PS3.4 C.4.1.1.3.2: where to retrieve from
                    if availability:
                        ds.InstanceAvailability = "ONLINE"  # requested (C.4.1.1.3.2); all of it is on disk
                sent += 1
                yield pending, ds
            if not assoc.is_established:
                outcome = "association gone"
        except GeneratorExit:
            outcome = "association gone"
            raise
        except Exception as exc:
            if sent == 0:  # a lazy iterator may only now reject the identifier
                rsp = self._failure(exc, "find")
                outcome = f"0x{rsp.Status:04X}"
                self._log_failure(st, op, exc, rsp.Status)
                yield rsp, None
                return
            outcome = "0xC001"
            LOG.error("assoc %d %s: %s failed after %d matches", st.number, st.peer, op, sent, exc_info=exc)
            yield status(0xC001, f"unable to process: {type(exc).__name__}"), None
        finally:
            close = getattr(results, "close", None)
            if close is not None:  # end the archive's read transaction now, not at garbage collection
                close()
            self._log_find(st, op, sent, outcome, t0)
