"""What storing reports back: one instance's outcome, a batch's report, a moved instance, and
the reference to a stored instance that a retrieve sends (the public result types)."""

from __future__ import annotations

from dataclasses import dataclass, field

from .index.layout import T_PARENT, T_PATIENT, T_STUDY


@dataclass(frozen=True)
class Move:
    """A replacement that placed an instance under another patient, study or series: a
    correction a modality sent, or two instances that share a SOP Instance UID by mistake;
    either way someone should look, so it is reported and logged."""

    sop_instance_uid: str
    from_patient: str  # patient keys: PatientID, NUL, IssuerOfPatientID (as InstanceRef.patient_key)
    from_study: str
    from_series: str
    to_patient: str
    to_study: str
    to_series: str

    def __str__(self) -> str:
        return self._describe(phi=True)

    def log_message(self) -> str:
        """What the log says: UIDs only (a patient ID is PHI; the report has it)."""
        return self._describe(phi=False)

    def _describe(self, phi: bool) -> str:
        changes = [f"study {self.from_study!r} -> {self.to_study!r}"] if self.from_study != self.to_study else []
        if self.from_series != self.to_series:
            changes.append(f"series {self.from_series!r} -> {self.to_series!r}")
        if self.from_patient != self.to_patient:
            changes.insert(
                0,
                f"patient {_patient_label(self.from_patient)!r} -> {_patient_label(self.to_patient)!r}"
                if phi
                else "to another patient",
            )
        return f"instance {self.sop_instance_uid} moved: {', '.join(changes)}"


def _patient_label(key: str) -> str:
    pid, _, issuer = key.partition("\x00")
    return f"{pid} (issuer {issuer})" if issuer else pid


@dataclass(frozen=True)
class StoreResult:
    sop_instance_uid: str
    status: str  # "stored", "duplicate", "replaced", "kept"
    moved: Move | None = None  # set when a replacement moved the instance to another entity


@dataclass
class IngestReport:
    stored: list[str] = field(default_factory=list)
    duplicates: list[str] = field(default_factory=list)
    replaced: list[str] = field(default_factory=list)
    rejected: list[tuple[str, str]] = field(default_factory=list)
    #: instances already stored with other content, left as they were (on_conflict="keep")
    kept: list[str] = field(default_factory=list)
    #: replacements (also in ``replaced``) that moved an instance to another patient, study or series
    moved: list[Move] = field(default_factory=list)

    def __str__(self) -> str:
        return (
            f"stored {len(self.stored)}, replaced {len(self.replaced)}, duplicates {len(self.duplicates)}, "
            f"kept {len(self.kept)}, moved {len(self.moved)}, rejected {len(self.rejected)}"
        )


@dataclass(frozen=True)
class InstanceRef:
    sop_instance_uid: str
    sop_class_uid: str
    transfer_syntax_uid: str
    study_instance_uid: str
    series_instance_uid: str
    patient_key: str
    size: int
    instance_number: int | None = None


def move_between(sop_uid: str, old: dict | None, new: dict) -> Move | None:
    """The Move of a replacement whose old and new records sit under different entities (the
    new record's, as the writer placed it: a known series keeps its study)."""
    if old is None:
        return None
    where = [rec[tag][1] for rec in (old, new) for tag in (T_PATIENT, T_STUDY, T_PARENT)]
    if where[:3] == where[3:]:
        return None
    return Move(sop_uid, *where)


__all__ = ["Move", "StoreResult", "IngestReport", "InstanceRef", "move_between"]
