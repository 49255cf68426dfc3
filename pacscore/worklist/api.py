"""``Archive.worklist``: the Modality Worklist kept in the archive (PS3.4 Annex K).

>>> key = arc.worklist.add(item)            # a pydicom Dataset or a DICOM JSON dict
>>> [ds.PatientName for ds in arc.worklist.find({
...     "PatientName": "",
...     "ScheduledProcedureStepSequence": [{"Modality": "CT", "ScheduledStationAETitle": "CT01",
...                                         "ScheduledProcedureStepStartDate": "20260101-"}]})]
>>> arc.worklist.set_step_status(study_uid, "SPS1", "IN PROGRESS")
>>> arc.worklist.remove(key)

Items live in the archive's LMDB environment (worklist/store.py); each write is one write
transaction, so a reader sees an item whole or not at all.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import TYPE_CHECKING, Any

from pydicom.dataset import Dataset

from ..errors import NotFound, QueryError
from . import items as forms
from . import match, response
from .errors import DuplicateItem, WorklistError
from .store import STEP, WorklistStore

if TYPE_CHECKING:
    from ..archive import Archive

FORMATS = ("dataset", "json")


class Worklist:
    """The worklist items of one archive: add, add_many, get, remove, find, set_step_status."""

    def __init__(self, archive: Archive) -> None:
        self._archive = archive
        self._store = WorklistStore(archive.index)

    # -- writing ----------------------------------------------------------------------------
    def add(self, item: Dataset | dict, *, replace: bool = False) -> str:
        """Add one item (a pydicom Dataset or a DICOM JSON dict); returns its key,
        ``StudyInstanceUID:ScheduledProcedureStepID``.

        The item needs PatientID, StudyInstanceUID and a Scheduled Procedure Step Sequence of
        exactly one item holding ScheduledProcedureStepID, Modality and
        ScheduledProcedureStepStartDate; dates, times and the step status must be valid.
        Otherwise WorklistError names the attribute and nothing is written. An item whose key is
        already there raises DuplicateItem, unless ``replace`` (then it replaces that item).
        A step without a status is stored as SCHEDULED."""
        return self.add_many([item], replace=replace)[0]

    def add_many(self, items: Iterable[Dataset | dict], *, replace: bool = False) -> list[str]:
        """Add several items in one write transaction: all of them, or none when one is refused
        (WorklistError naming it by its position, or DuplicateItem). Returns their keys, in order.
        Two items of one call with the same key are refused as well, whatever ``replace``."""
        checked: list[tuple[str, dict]] = []
        given = list(items)
        for n, item in enumerate(given):
            try:
                data = forms.to_json(item)
            except WorklistError as exc:
                if len(given) == 1:
                    raise
                raise WorklistError(
                    f"item {n}: {exc.attribute}" if exc.attribute else f"item {n}", exc.reason
                ) from None
            step = forms.step_of(data)
            status = f"{forms.T_STEP_STATUS:08X}"
            if not forms.text_of(step.get(status)):
                step[status] = {"vr": "CS", "Value": ["SCHEDULED"]}
            checked.append((forms.item_key(data), data))
        seen: set[str] = set()
        for key, _ in checked:
            if key in seen:
                raise DuplicateItem(key, "given twice in one call")
            seen.add(key)
        self._archive._check_writable("add a worklist item")
        if not checked:
            return []
        dbs = self._store.databases(create=True)

        def apply(txn) -> None:
            for key, data in checked:
                if not replace and txn.get(key.encode(), db=dbs[0]) is not None:
                    raise DuplicateItem(
                        key, "a worklist item with this key exists (add it with replace=True to replace it)"
                    )
                self._store.put(txn, dbs, key, data)

        self._archive._write_txn(apply)  # an exception aborts the transaction: nothing is added
        return [key for key, _ in checked]

    def remove(self, key: str) -> None:
        """Remove the item ``key``; NotFound when there is none."""
        self._archive._check_writable("remove a worklist item")
        dbs = self._store.databases()
        if dbs is None or not self._archive._write_txn(lambda txn: self._store.delete(txn, dbs, key)):
            raise NotFound(f"no worklist item {key!r}")

    def set_step_status(self, study_instance_uid: str | None, scheduled_procedure_step_id: str, status: str) -> bool:
        """Set the Scheduled Procedure Step Status of the step ``scheduled_procedure_step_id``
        of the study ``study_instance_uid`` (of every item with that step ID when None, as
        for an MPPS that names the step but not its study); False when there is no such item.
        ``status`` is one of forms.STATUSES, else WorklistError.

        A worklist query can then filter on it (``ScheduledProcedureStepStatus``)."""
        if status not in forms.STATUSES:
            raise WorklistError("ScheduledProcedureStepStatus", f"{status!r} is not one of {', '.join(forms.STATUSES)}")
        self._archive._check_writable("change a worklist item")
        dbs = self._store.databases()
        if dbs is None:
            return False

        def apply(txn) -> bool:
            if study_instance_uid is not None:
                keys = [f"{study_instance_uid}:{scheduled_procedure_step_id}".encode()]
            else:
                keys = sorted(self._store.exact(txn, dbs, STEP, forms.T_STEP_ID, [scheduled_procedure_step_id]))
            changed = False
            for raw_key in keys:
                key = raw_key.decode()
                data = self._store.get(txn, dbs, key)
                if data is None:
                    continue
                step = forms.step_of(data)
                if forms.text_of(step.get(f"{forms.T_STEP_ID:08X}")) != scheduled_procedure_step_id:
                    continue
                step[f"{forms.T_STEP_STATUS:08X}"] = {"vr": "CS", "Value": [status]}
                self._store.put(txn, dbs, key, data)
                changed = True
            return changed

        return bool(self._archive._write_txn(apply))

    # -- reading ----------------------------------------------------------------------------
    def get(self, key: str, *, format: str = "dataset") -> Dataset | dict:
        """The stored item ``key`` (a pydicom Dataset, or DICOM JSON with ``format="json"``);
        NotFound when there is none."""
        _check_format(format)
        dbs = self._store.databases()
        data = None
        if dbs is not None:
            with self._archive.index.read() as txn:
                data = self._store.get(txn, dbs, key)
        if data is None:
            raise NotFound(f"no worklist item {key!r}")
        return _render(data, format)

    def keys(self) -> list[str]:
        """The keys of every item, in key order."""
        return [key for key, _ in self._items()]

    def __len__(self) -> int:
        dbs = self._store.databases()
        if dbs is None:
            return 0
        with self._archive.index.read() as txn:
            return int(txn.stat(dbs[0])["entries"])

    def __contains__(self, key: object) -> bool:
        dbs = self._store.databases()
        if dbs is None or not isinstance(key, str):
            return False
        with self._archive.index.read() as txn:
            return txn.get(key.encode(), db=dbs[0]) is not None

    def _items(self) -> list[tuple[str, dict]]:
        dbs = self._store.databases()
        if dbs is None:
            return []
        with self._archive.index.read() as txn:
            return list(self._store.scan(txn, dbs))

    def find(self, identifier: object, *, format: str = "dataset", limit: int | None = None, **options: Any) -> list:
        """The response identifiers of the items matching a Modality Worklist identifier
        (PS3.4 K.2.2), in key order: the requested keys of each, zero length when unknown.

        ``identifier`` is a pydicom Dataset, a dict keyword or tag -> value (a sequence key is
        a list holding one item dict), or DICOM JSON. Matching follows docs/matching.md except
        that an item whose value is zero length or absent never matches a key that is not
        universal (K.2.2.1.1.1). ``options`` are the matching options of docs/matching.md §6;
        ``invalid_keys`` defaults to ``"error"`` here, so a bad date raises QueryError."""
        _check_format(format)
        if limit is not None and (not isinstance(limit, int) or limit < 0):
            raise QueryError("limit", "must be a non-negative integer")
        options.setdefault("invalid_keys", "error")
        query = match.build(identifier, self._archive.options.replace(**options))
        return [_render(r, format) for r in self.iter_find(query, limit)]

    def iter_find(self, query: match.WorklistQuery, limit: int | None = None) -> Iterator[dict]:
        """The DICOM JSON responses of a compiled query, in key order (the DIMSE adapter reads
        them one by one, to honour C-FIND-CANCEL between them)."""
        dbs = self._store.databases()
        if dbs is None or limit == 0:
            return
        found = 0
        with self._archive.index.read() as txn:
            candidates = query.candidates(txn, dbs)
            if candidates is None:
                pairs: Iterator[tuple[str, dict]] = self._store.scan(txn, dbs)
            else:
                pairs = (
                    (k.decode(), d)
                    for k in sorted(candidates)
                    if (d := self._store.get(txn, dbs, k.decode())) is not None
                )
            rows = []
            for _key, data in pairs:
                steps = (data.get(f"{forms.SPS:08X}") or {}).get("Value") or []
                hits = query.matches(forms.fields(data), [forms.fields(step) for step in steps])
                if hits is None:
                    continue
                rows.append(response.build(query, data, hits))
                found += 1
                if limit is not None and found >= limit:
                    break
        yield from rows


def _check_format(fmt: str) -> None:
    if fmt not in FORMATS:
        raise QueryError("format", f"unknown result format {fmt!r} (use one of {FORMATS})")


def _render(data: dict, fmt: str) -> Dataset | dict:
    return Dataset.from_json(data) if fmt == "dataset" else data
