"""Applies ingests and deletes to the index inside one LMDB write transaction.

The writer keeps each level's record right, children lists ordered, and the computed attributes
of PS3.4 C.3.4 (ModalitiesInStudy, NumberOf...Related...) current, so queries read them like any
other stored attribute. Records touched several times in a batch are decoded once and encoded
once at commit (``flush``).
"""

from __future__ import annotations

import time
import zlib

from .. import model
from ..errors import StorageError
from ..ingest import ParsedInstance, patient_key
from . import codec as records
from . import compression, segments
from .layout import (
    INTERNAL_VR,
    LEVEL_BYTE,
    LEVEL_DB,
    T_CHECKSUM,
    T_PARENT,
    T_PATIENT,
    T_SEQ,
    T_SIZE,
    T_STUDY,
    is_internal,
)
from .secondary import index_entries
from .snapshot import Snapshot


class Writer:
    """One batch of changes in one write transaction: ``with index.env.begin(write=True)``."""

    def __init__(self, index, txn) -> None:
        self.index = index
        self.txn = txn
        self._extra: dict[str, tuple[int, ...]] | None = None
        self._dirty: dict[tuple[str, bytes], dict | None] = {}
        self._original: dict[tuple[str, bytes], dict | None] = {}
        self._compressors: dict[str, object] = {}  # kind -> compress function or None (compression.py)
        self._headers: dict[bytes, bytes] = {}  # SOP Instance UID -> its new header (from ingest)
        self._loaded_headers: dict[bytes, bytes] = {}  # ... -> the header of its loaded bundle

    def _instance_value(self, key: bytes, record: bytes) -> bytes:
        """What the ``instance`` database keeps of an instance: with a dictionary, the bundle of
        its record and header compressed (the header leaves the ``header`` database); without,
        the record, and the header goes to the ``header`` database (index/compression.py)."""
        if "instance" not in self._compressors:
            self._compressors["instance"] = compression.compressor(self.txn, self.index.db("meta"), "instance")
        compress = self._compressors["instance"]
        header_db = self.index.db("header")
        new_header = self._headers.pop(key, None)
        if compress is None:
            if new_header is not None:
                self.txn.put(key, zlib.compress(new_header, 1), db=header_db)
            return record
        if new_header is not None:
            header = new_header  # compressed once, in the bundle (ingest no longer zlibs it)
        elif key in self._loaded_headers:
            header = self._loaded_headers[key]
        else:  # written before the archive had a dictionary
            header = compression.zlib_header(self.txn.get(key, db=header_db)) or b""
        self.txn.delete(key, db=header_db)
        return compress(compression.bundle(record, header, key))  # type: ignore[operator]

    # -- record cache -----------------------------------------------------------------------
    def load(self, level: str, key: bytes) -> dict | None:
        ck = (level, key)
        if ck in self._dirty:
            return self._dirty[ck]
        raw = self.txn.get(key, db=self.index.db(LEVEL_DB[level]))
        if level == "IMAGE" and raw is not None and compression.is_compressed(raw):
            raw, self._loaded_headers[key] = compression.unbundle(
                compression.decompress(self.txn, self.index.db("meta"), raw), key
            )
        rec = records.decode(raw) if raw is not None else None
        self._original[ck] = rec
        self._dirty[ck] = dict(rec) if rec is not None else None
        return self._dirty[ck]

    def load_existing(self, level: str, key: bytes, what: str) -> dict:
        """A record the index's own links say exists; a missing one is a damaged index, reported
        as such (naming the entity) rather than as a TypeError deep in the writer."""
        rec = self.load(level, key)
        if rec is None:
            raise StorageError(
                f"the index is damaged: {what} ({level} {key.decode('utf-8', 'replace')}) is missing (run verify)"
            )
        return rec

    def save(self, level: str, key: bytes, rec: dict | None) -> None:
        ck = (level, key)
        if ck not in self._original:
            self.load(level, key)
        self._dirty[ck] = rec

    def flush(self) -> None:
        packed: dict[str, dict[bytes, bytes | None]] = {level: {} for level in segments.SEGMENTED_LEVELS}
        for (level, key), rec in self._dirty.items():
            old = self._original.get((level, key))
            if rec == old and not (level == "IMAGE" and key in self._headers):
                continue
            db = self.index.db(LEVEL_DB[level])
            if rec is None:
                self.txn.delete(key, db=db)
                raw = None
            else:
                raw = records.encode(rec)
                self.txn.put(key, self._instance_value(key, raw) if level == "IMAGE" else raw, db=db)
            if level in packed:
                packed[level][key] = raw
            self._reindex(level, key, old, rec)
        for level, changes in packed.items():  # the scan segments change in the same transaction
            segments.apply(self.txn, self.index.db("segments"), level, changes)
        self._original = {k: (dict(v) if v is not None else None) for k, v in self._dirty.items()}
        if compression.maybe_train(self.txn, self.index.db):  # the next values use the new dictionaries
            self._compressors.clear()

    def _reindex(self, level: str, key: bytes, old: dict | None, new: dict | None) -> None:
        idx = self.index.db("idx")
        if self._extra is None:  # the extra indexed tags as this transaction sees them
            self._extra = self.index.indexed_by_level(self.txn)
        extra = self._extra.get(level, ())
        before = index_entries(level, old, extra) if old is not None else set()
        after = index_entries(level, new, extra) if new is not None else set()
        for entry in before - after:
            self.txn.delete(entry, key, db=idx)
        for entry in after - before:
            self.txn.put(entry, key, db=idx, dupdata=True)

    # -- children ---------------------------------------------------------------------------
    def add_child(self, level: str, parent: bytes, child: bytes) -> None:
        self.txn.put(LEVEL_BYTE[level] + parent, child, db=self.index.db("children"), dupdata=True)

    def remove_child(self, level: str, parent: bytes, child: bytes) -> None:
        self.txn.delete(LEVEL_BYTE[level] + parent, child, db=self.index.db("children"))

    def children(self, level: str, parent: bytes) -> list[bytes]:
        """The children of an entity as this transaction sees them (written ones included)."""
        return Snapshot(self.index, self.txn).children(level, parent)

    # -- ingest -----------------------------------------------------------------------------
    def add(self, inst: ParsedInstance) -> None:
        """Index one instance whose blob is already durable."""
        sop = inst.sop_instance_uid.encode()
        series_key = inst.series_instance_uid.encode()
        study_key = inst.study_instance_uid.encode()
        pkey = inst.patient_key.encode("utf-8")
        lv = inst.levels

        patient = self.load("PATIENT", pkey)
        study = self.load("STUDY", study_key)
        series = self.load("SERIES", series_key)
        new_study = study is None
        new_series = series is None
        if study is None:
            study = {T_PARENT: (INTERNAL_VR, pkey.decode("utf-8"))}
            if patient is None:
                patient = {}
            self.add_child("PATIENT", pkey, study_key)
        else:
            pkey = study[T_PARENT][1].encode("utf-8")  # a study stays with its first patient
            patient = self.load("PATIENT", pkey) or {}
        if series is None:
            series = {T_PARENT: (INTERNAL_VR, inst.study_instance_uid)}
            self.add_child("STUDY", study_key, series_key)
        elif series[T_PARENT][1] != inst.study_instance_uid:
            # the series already lives in another study: keep the hierarchy the first instance made
            study_key = series[T_PARENT][1].encode()
            study = self.load_existing("STUDY", study_key, f"the study of series {inst.series_instance_uid}")
            pkey = study[T_PARENT][1].encode("utf-8")
            patient = self.load("PATIENT", pkey) or {}

        # the patient entity takes the latest values; each study keeps its own patient values
        _replace_level_fields(patient, lv["PATIENT"], model.COMPUTED["PATIENT"])
        _replace_level_fields(study, {**lv["PATIENT"], **lv["STUDY"]}, model.COMPUTED["STUDY"])
        _replace_level_fields(series, lv["SERIES"], model.COMPUTED["SERIES"])

        study[T_SEQ] = (INTERNAL_VR, str(time.time_ns()))
        # the keys that place the instance are authoritative, whatever VR the file gave them
        study[model.T_STUDY_UID] = ("UI", study_key.decode())
        series[model.T_SERIES_UID] = ("UI", series_key.decode())
        instance = dict(lv["IMAGE"])
        instance[model.T_SOP_UID] = ("UI", inst.sop_instance_uid)
        instance[T_PARENT] = (INTERNAL_VR, series_key.decode())
        instance[T_STUDY] = (INTERNAL_VR, study_key.decode())
        instance[T_PATIENT] = (INTERNAL_VR, pkey.decode("utf-8"))
        instance[T_SIZE] = (INTERNAL_VR, str(inst.size))
        instance[T_CHECKSUM] = (INTERNAL_VR, inst.checksum)
        instance[model.T_AVAILABLE_TS] = ("UI", inst.transfer_syntax_uid)
        self.save("IMAGE", sop, instance)
        self.add_child("SERIES", series_key, sop)
        self._headers[sop] = inst.header  # written with the record at flush (_instance_value)

        _bump(series, model.T_N_SERIES_INSTANCES, 1)
        _bump(study, model.T_N_STUDY_INSTANCES, 1)
        _bump(patient, model.T_N_PAT_INSTANCES, 1)
        if new_series:
            _bump(study, model.T_N_STUDY_SERIES, 1)
            _bump(patient, model.T_N_PAT_SERIES, 1)
        if new_study:
            _bump(patient, model.T_N_PAT_STUDIES, 1)
        modality = str(lv["SERIES"].get(model.T_MODALITY, ("CS", ""))[1])  # CS: always text
        _add_to_set(study, model.T_MODALITIES_IN_STUDY, "CS", modality)
        _add_to_set(study, model.T_SOP_CLASSES_IN_STUDY, "UI", inst.sop_class_uid)
        self.save("PATIENT", pkey, patient)
        self.save("STUDY", study_key, study)
        self.save("SERIES", series_key, series)

    # -- delete -----------------------------------------------------------------------------
    def delete_instance(self, sop_uid: str) -> dict | None:
        """Remove one instance from the index; returns its old record (None if unknown)."""
        sop = sop_uid.encode()
        inst = self.load("IMAGE", sop)
        if inst is None:
            return None
        series_key = inst[T_PARENT][1].encode()
        study_key = inst[T_STUDY][1].encode()
        pkey = inst[T_PATIENT][1].encode("utf-8")
        self.save("IMAGE", sop, None)
        self._headers.pop(sop, None)
        self._loaded_headers.pop(sop, None)
        self.txn.delete(sop, db=self.index.db("header"))
        self.remove_child("SERIES", series_key, sop)
        series = self.load("SERIES", series_key)
        study = self.load("STUDY", study_key)
        patient = self.load("PATIENT", pkey)
        _bump(series, model.T_N_SERIES_INSTANCES, -1)
        _bump(study, model.T_N_STUDY_INSTANCES, -1)
        _bump(patient, model.T_N_PAT_INSTANCES, -1)
        if _count(series, model.T_N_SERIES_INSTANCES) == 0:
            self.save("SERIES", series_key, None)
            self.remove_child("STUDY", study_key, series_key)
            _bump(study, model.T_N_STUDY_SERIES, -1)
            _bump(patient, model.T_N_PAT_SERIES, -1)
        if _count(study, model.T_N_STUDY_INSTANCES) == 0:
            self.save("STUDY", study_key, None)
            self.remove_child("PATIENT", pkey, study_key)
            _bump(patient, model.T_N_PAT_STUDIES, -1)
            if patient is not None and _count(patient, model.T_N_PAT_STUDIES) > 0:
                self._restore_patient_values(pkey, patient)
        elif study is not None:  # always: a study that is not there counts no instances
            self._recompute_study_sets(study_key, study)
        if _count(patient, model.T_N_PAT_STUDIES) == 0:
            self.save("PATIENT", pkey, None)
        return inst

    def _restore_patient_values(self, pkey: bytes, patient: dict) -> None:
        """After a study goes, the patient takes the values of its latest remaining study."""
        loaded = [self.load("STUDY", k) for k in self.children("PATIENT", pkey)]
        studies = [st for st in loaded if st is not None]
        if not studies:
            return
        latest = max(studies, key=lambda st: int(st.get(T_SEQ, (INTERNAL_VR, "0"))[1]))
        fields = {t: v for t, v in latest.items() if t in model.PATIENT_TAGS}
        _replace_level_fields(patient, fields, model.COMPUTED["PATIENT"])

    def _recompute_study_sets(self, study_key: bytes, study: dict) -> None:
        modalities, classes = set(), set()
        for series_key in self.children("STUDY", study_key):
            series = self.load("SERIES", series_key)
            if series is None:
                continue
            mod = series.get(model.T_MODALITY, ("CS", ""))[1]
            if mod:
                modalities.add(mod)
            for sop in self.children("SERIES", series_key):
                inst = self.load("IMAGE", sop)
                if inst is not None:
                    cls = inst.get(model.T_SOP_CLASS, ("UI", ""))[1]
                    if cls:
                        classes.add(cls)
        study[model.T_MODALITIES_IN_STUDY] = ("CS", "\\".join(sorted(modalities)))
        study[model.T_SOP_CLASSES_IN_STUDY] = ("UI", "\\".join(sorted(classes)))


def _replace_level_fields(rec: dict, fields: dict, computed: frozenset) -> None:
    keep = {t: v for t, v in rec.items() if is_internal(t) or t in computed}
    rec.clear()
    rec.update(fields)
    rec.update(keep)


def _count(rec: dict | None, tag: int) -> int:
    if rec is None or tag not in rec:
        return 0
    return int(rec[tag][1] or 0)


def _bump(rec: dict | None, tag: int, delta: int) -> None:
    if rec is None:
        return
    rec[tag] = ("IS", str(_count(rec, tag) + delta))


def _add_to_set(rec: dict, tag: int, vr: str, value: str) -> None:
    if not value:
        return
    current = rec.get(tag, (vr, ""))[1]
    values = set(current.split("\\")) if current else set()
    if value not in values:
        values.add(value)
        rec[tag] = (vr, "\\".join(sorted(values)))
    elif tag not in rec:
        rec[tag] = (vr, value)


def header_bytes(txn, index, sop_uid: str) -> bytes | None:
    key = sop_uid.encode()
    raw = txn.get(key, db=index.db("instance"))
    return compression.instance_header(txn, index.db("meta"), index.db("header"), key, raw)


__all__ = [
    "Writer",
    "T_PARENT",
    "T_SIZE",
    "T_CHECKSUM",
    "T_STUDY",
    "T_PATIENT",
    "is_internal",
    "header_bytes",
    "patient_key",
]
