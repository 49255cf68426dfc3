"""Query targets for the conformance runner and the benchmark: an archive folder, a DICOM
C-FIND SCP (``dimse://AE@host:port``) or a QIDO-RS endpoint (``http(s)://host:port/dicomweb``).

Each target can ``store`` a list of pydicom Datasets (arc.store / C-STORE / STOW-RS) and
``find(level, identifier)`` -> list of result dicts keyword -> str (Study Root model; the
identifier holds the unique keys of the levels above as single values).
"""

from __future__ import annotations

import io
import re
import uuid
from typing import Any
from urllib.parse import urlsplit

from pydicom import dcmwrite
from pydicom.dataset import Dataset

__all__ = [
    "TargetError",
    "Target",
    "use_archive",
    "acquire_archive",
    "release_archive",
    "ArchiveTarget",
    "DimseTarget",
    "QidoTarget",
    "open_target",
    "UNIQUE",
]

UNIQUE = {"PATIENT": "PatientID", "STUDY": "StudyInstanceUID", "SERIES": "SeriesInstanceUID", "IMAGE": "SOPInstanceUID"}
STUDY_ROOT_FIND = "1.2.840.10008.5.1.4.1.2.2.1"


def _single_uid(value) -> bool:
    """A path segment can carry one UID, not a list, wildcard or universal key."""
    return isinstance(value, str) and bool(value) and "\\" not in value and "*" not in value and "?" not in value


class TargetError(RuntimeError):
    """The target refused or failed a request (status, HTTP code, exception text)."""


def _part10(ds: Dataset) -> bytes:
    buf = io.BytesIO()
    dcmwrite(buf, ds, enforce_file_format=True)
    return buf.getvalue()


def _text(value) -> str:
    if value is None:
        return ""
    if isinstance(value, (list, tuple)) or type(value).__name__ == "MultiValue":
        return "\\".join(str(v) for v in value)
    return str(value)


class Target:
    kind = "?"

    def __init__(self, text: str) -> None:
        self.text = text

    def store(self, datasets: list[Dataset]) -> int:
        raise NotImplementedError

    def find(self, level: str, identifier: dict) -> list[dict]:
        raise NotImplementedError

    def clone(self) -> Target:
        """A target of its own for another client thread (connections are not shared)."""
        return open_target(self.text, **getattr(self, "_kwargs", {}))

    def close(self) -> None:
        pass

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.text}>"


_OPEN: dict[str, object] = {}  # resolved folder -> Archive open in this process


def use_archive(archive) -> None:
    """Let archive-folder targets of this process use ``archive`` (already open: an LMDB
    environment opens once per process), e.g. when the same process serves it over DIMSE."""
    import os

    _OPEN[os.path.realpath(str(archive.folder))] = archive


def acquire_archive(folder: str, create: bool = False):
    """``(archive, owned)``: the archive registered for ``folder``, or a newly opened one (a
    missing archive is created only when ``create``: the caller stores into it)."""
    import os

    import pacscore

    found = _OPEN.get(os.path.realpath(str(folder)))
    if found is not None:
        return found, False
    arc = pacscore.open(folder, create=create)
    _OPEN[os.path.realpath(str(folder))] = arc
    return arc, True


def release_archive(archive, owned: bool) -> None:
    import os

    if owned:
        _OPEN.pop(os.path.realpath(str(archive.folder)), None)
        archive.close()


class ArchiveTarget(Target):
    """A pacscore archive folder, queried in-process (``Archive.find``)."""

    kind = "archive"

    def __init__(self, folder: str, archive=None, create: bool = False) -> None:
        super().__init__(str(folder))
        if archive is not None:
            self.arc, self._own = archive, False
        else:
            self.arc, self._own = acquire_archive(folder, create=create)

    def store(self, datasets: list[Dataset]) -> int:
        for ds in datasets:
            self.arc.store(ds)
        return len(datasets)

    def find(self, level: str, identifier: dict, **options) -> list[dict]:
        from ..errors import QueryError

        try:
            return list(self.arc.find(identifier, level=level, format="dict", **options))
        except QueryError as exc:
            raise TargetError(f"QueryError: {exc}") from exc

    def clone(self) -> ArchiveTarget:
        return ArchiveTarget(self.text, archive=self.arc)  # an Archive serves many threads

    def close(self) -> None:
        release_archive(self.arc, self._own)
        self._own = False


def _nodelay(assoc) -> None:
    """Switch Nagle off on our end: a C-FIND request is small and would wait for the delayed ACK."""
    import socket

    try:
        assoc.dul.socket.socket.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    except (OSError, AttributeError):
        pass


class DimseTarget(Target):
    """A DICOM SCP: C-STORE for storing, Study Root C-FIND for queries (one association kept)."""

    kind = "dimse"

    def __init__(self, text: str, calling_ae: str = "PACSCORE-TEST", timeout: float = 30) -> None:
        super().__init__(text)
        m = re.fullmatch(r"dimse://([^@]+)@(\[[^\]]+\]|[^:]+):(\d+)", text)
        if not m:
            raise ValueError(f"a DIMSE target is dimse://AE@host:port, not {text!r}")
        self.called, self.host, self.port = m[1], m[2].strip("[]"), int(m[3])
        self.calling_ae = calling_ae
        self.timeout = timeout
        self._kwargs = {"calling_ae": calling_ae}
        self._assocs: dict = {}  # extended negotiation bytes -> kept C-FIND association

    def _ae(self, contexts):
        from pynetdicom import AE

        ae = AE(ae_title=self.calling_ae)
        ae.acse_timeout = ae.dimse_timeout = ae.network_timeout = self.timeout
        for cx in contexts:
            ae.add_requested_context(*cx)
        return ae

    def store(self, datasets: list[Dataset]) -> int:
        from pydicom.uid import ExplicitVRLittleEndian, ImplicitVRLittleEndian

        classes = sorted({str(ds.SOPClassUID) for ds in datasets})
        ae = self._ae([(c, [ExplicitVRLittleEndian, ImplicitVRLittleEndian]) for c in classes])
        assoc = ae.associate(self.host, self.port, ae_title=self.called)
        if not assoc.is_established:
            raise TargetError(f"association with {self.text} for C-STORE was not accepted")
        try:
            for ds in datasets:
                status = assoc.send_c_store(ds)
                code = getattr(status, "Status", None)
                if code is None or (code != 0 and code >> 12 not in (0xB,)):
                    raise TargetError(f"C-STORE {ds.SOPInstanceUID}: status {code if code is None else hex(code)}")
        finally:
            assoc.release()
        return len(datasets)

    def _association(self, flags: bytes = b""):
        """A kept C-FIND association per set of extended negotiation ``flags`` (PS3.4 C.5.1:
        relational, combined date-time, fuzzy PN, timezone), so mixed suites do not re-associate."""
        assoc = self._assocs.get(flags)
        if assoc is not None and assoc.is_established:
            return assoc
        ext_neg = None
        if flags:
            from pynetdicom.pdu_primitives import SOPClassExtendedNegotiation

            item = SOPClassExtendedNegotiation()
            item.sop_class_uid = STUDY_ROOT_FIND
            item.service_class_application_information = flags
            ext_neg = [item]
        ae = self._ae([(STUDY_ROOT_FIND,)])
        assoc = ae.associate(self.host, self.port, ae_title=self.called, ext_neg=ext_neg)
        if not assoc.is_established:
            raise TargetError(f"association with {self.text} for C-FIND was not accepted")
        _nodelay(assoc)
        from ..adapters.dimse_fastpath import guard_requestor

        guard_requestor(assoc)  # a fast SCP's response must not be taken by pynetdicom's reactor
        self._assocs[flags] = assoc
        return assoc

    def find(self, level: str, identifier: dict, **options) -> list[dict]:
        """Matching options are asked for by extended negotiation; a peer that does not agree
        applies its baseline (and may refuse a relational identifier)."""
        ds = Dataset()
        ds.SpecificCharacterSet = "ISO_IR 192"
        ds.QueryRetrieveLevel = level
        for kw, value in identifier.items():
            if kw != "QueryRetrieveLevel":
                setattr(ds, kw, value)
        if UNIQUE[level] not in ds:
            setattr(ds, UNIQUE[level], "")
        from ..adapters.dimse_common import FIND_EXT_OPTIONS  # the negotiation bytes in order

        flags = bytes(int(bool(options.get(name))) for name in FIND_EXT_OPTIONS)
        assoc = self._association(flags if any(flags) else b"")
        out = []
        for status, answer in assoc.send_c_find(ds, STUDY_ROOT_FIND):
            code = getattr(status, "Status", None)
            if code is None:
                self.close()
                raise TargetError("C-FIND: no response (association aborted or timed out)")
            if code in (0xFF00, 0xFF01):
                out.append({e.keyword: _text(e.value) for e in answer if e.keyword} if answer is not None else {})
            elif code != 0:
                raise TargetError(f"C-FIND status 0x{code:04X}")
        return out

    def close(self) -> None:
        assocs, self._assocs = list(self._assocs.values()), {}
        for assoc in assocs:
            try:
                assoc.release()
            except Exception:  # already gone
                pass


class QidoTarget(Target):
    """A DICOMweb service root: STOW-RS to store, QIDO-RS (``/studies``, ``/studies/{uid}/series``,
    ``/studies/{uid}/series/{uid}/instances``) to query."""

    kind = "qido"

    def __init__(self, text: str, timeout: float = 60, headers: dict | None = None) -> None:
        super().__init__(text.rstrip("/"))
        import httpx

        if urlsplit(text).scheme not in ("http", "https"):
            raise ValueError(f"a DICOMweb target is http(s)://host:port/path, not {text!r}")
        self._kwargs = {"headers": headers}
        self.client = httpx.Client(timeout=timeout, headers=headers or {})

    def store(self, datasets: list[Dataset], batch: int = 50) -> int:
        for start in range(0, len(datasets), batch):
            boundary = uuid.uuid4().hex
            body = io.BytesIO()
            for ds in datasets[start : start + batch]:
                body.write(f"--{boundary}\r\nContent-Type: application/dicom\r\n\r\n".encode())
                body.write(_part10(ds))
                body.write(b"\r\n")
            body.write(f"--{boundary}--\r\n".encode())
            r = self.client.post(
                f"{self.text}/studies",
                content=body.getvalue(),
                headers={
                    "Content-Type": f'multipart/related; type="application/dicom"; boundary={boundary}',
                    "Accept": "application/dicom+json",
                },
            )
            if r.status_code not in (200, 202):
                raise TargetError(f"STOW-RS: HTTP {r.status_code} {r.text[:200]}")
        return len(datasets)

    def find(self, level: str, identifier: dict, **options) -> list[dict]:
        """A relational query goes to the top-level resource (``/series``, ``/instances``);
        ``fuzzy_pn`` becomes ``fuzzymatching=true``; a UID list is sent comma-separated."""
        from pydicom.datadict import dictionary_VR, keyword_for_tag, tag_for_keyword

        if level == "PATIENT":
            raise TargetError("QIDO-RS has no patient level")
        ident = {k: v for k, v in identifier.items() if k != "QueryRetrieveLevel"}
        relational = bool(options.get("relational"))
        study = series = None
        if level in ("SERIES", "IMAGE") and _single_uid(ident.get("StudyInstanceUID")):
            study = ident.pop("StudyInstanceUID")
        if level == "IMAGE" and study and _single_uid(ident.get("SeriesInstanceUID")):
            series = ident.pop("SeriesInstanceUID")
        if level == "STUDY":
            path = "/studies"
        elif level == "SERIES":
            path = f"/studies/{study}/series" if study else "/series"
        else:
            path = (
                f"/studies/{study}/series/{series}/instances"
                if series
                else f"/studies/{study}/instances"
                if study
                else "/instances"
            )
        if path.count("/") < {"STUDY": 1, "SERIES": 3, "IMAGE": 5}[level] and not relational:
            raise TargetError(f"a {level} query without the UIDs above it is relational")
        params: list[tuple[str, Any]] = [("limit", "100000")]  # Any: httpx's list of (name, primitive)
        if options.get("fuzzy_pn"):
            params.append(("fuzzymatching", "true"))
        for kw, value in ident.items():
            if value == "":
                params.append(("includefield", kw))
                continue
            tag = tag_for_keyword(kw)
            if tag is not None and dictionary_VR(tag) == "UI":
                value = ",".join(_text(value).split("\\"))
            params.append((kw, _text(value)))
        r = self.client.get(self.text + path, params=params, headers={"Accept": "application/dicom+json"})
        if r.status_code == 204 or (r.status_code == 404 and level != "STUDY"):
            return []
        if r.status_code != 200:
            raise TargetError(f"QIDO-RS: HTTP {r.status_code} {r.text[:200]}")
        out = []
        for item in r.json() if r.content else []:
            row = {}
            for tag, attr in item.items():
                kw = keyword_for_tag(int(tag, 16)) or tag
                vals = attr.get("Value") or []
                row[kw] = "\\".join(v.get("Alphabetic", "") if isinstance(v, dict) else str(v) for v in vals)
            out.append(row)
        return out

    def close(self) -> None:
        self.client.close()


#: the client package of each remote target and the extra that brings it (pyproject.toml)
_CLIENTS = {"dimse": ("pynetdicom", "dimse"), "qido": ("httpx", "web")}


def _require_client(kind: str) -> None:
    """Say what to install, before a missing client package fails somewhere inside a run."""
    import importlib.util

    from ..errors import PacsError

    package, extra = _CLIENTS[kind]
    if importlib.util.find_spec(package) is None:
        raise PacsError(f'a {kind} target needs {package}, which is not installed: pip install "pacscore[{extra}]"')


def open_target(
    text: str, *, calling_ae: str = "PACSCORE-TEST", headers: dict | None = None, create: bool = False
) -> Target:
    """A target from its spelling: ``dimse://AE@host:port``, ``http(s)://...`` or a folder (an
    archive that must exist, unless ``create``: the caller stores its data set into it)."""
    if text.startswith("dimse://"):
        _require_client("dimse")
        return DimseTarget(text, calling_ae=calling_ae)
    if text.startswith(("http://", "https://")):
        _require_client("qido")
        return QidoTarget(text, headers=headers)
    return ArchiveTarget(text, create=create)
