"""What a C-MOVE or C-GET identifier designates: its unique keys, and nothing else.

A retrieve identifier names entities by their unique keys (PS3.4 C.4.2.1.4.1, C.4.3.1.3.1);
it is not a query. Matching it like a C-FIND would let empty stored values match any key
(C.2.2.1.2) and let an empty or wild-card key match everything, so a C-MOVE with a PatientID
nobody has would send every study whose PatientID is empty. Here the identifier is checked
and the instances are looked up by UID:

- the unique key of the retrieve level must be present, non-empty, without wild cards; a UID
  key may hold a list of UIDs (List of UID Matching, C.2.2.2.2);
- hierarchical retrieve (C.4.2.2.1, C.4.3.2): the unique keys of the levels above must be
  present too, one value each; relational-retrieve (negotiated; the extended behaviour of
  C.4.2.2 and C.4.3.2): they may be left out, and when given they are checked the same way;
- every given unique key must agree: a series is sent only if it belongs to the given study;
- any other key is ignored (it neither widens nor narrows what is sent), except that an
  IssuerOfPatientID qualifies the PatientID, since pacscore keeps patients apart by both.

A key that breaks these rules raises QueryError naming it (the adapter answers A900).
"""

from __future__ import annotations

from dataclasses import dataclass

from pydicom.dataset import Dataset
from pydicom.multival import MultiValue

from ..errors import QueryError
from ..model import MODELS

#: the level's unique key, as keyword (PS3.4 C.6.1.1, C.6.2.1)
UNIQUE_KEYWORD = {
    "PATIENT": "PatientID",
    "STUDY": "StudyInstanceUID",
    "SERIES": "SeriesInstanceUID",
    "IMAGE": "SOPInstanceUID",
}
#: Archive.instances argument of each level
INSTANCES_ARG = {"PATIENT": "patient", "STUDY": "study", "SERIES": "series", "IMAGE": "instance"}
WILDCARDS = ("*", "?")


@dataclass(frozen=True)
class RetrieveScope:
    """The entities a retrieve designates: ``targets`` at ``level``, inside ``above``."""

    level: str
    targets: tuple[str, ...]
    #: unique keys of the levels above that were given: keyword -> the one value
    above: dict
    issuer: str | None = None


def _values(ident: Dataset, keyword: str) -> list[str] | None:
    """The values of an identifier attribute as strings; None when it is absent."""
    if keyword not in ident:
        return None
    value = ident[keyword].value
    if value is None:
        return []
    if isinstance(value, (MultiValue, list, tuple)):
        items = [str(v) for v in value]
    else:
        items = str(value).split("\\")
    items = [v.strip(" \x00") for v in items]
    return [] if items == [""] else items


def _checked(keyword: str, values: list[str] | None, *, many: bool, why: str) -> list[str]:
    if values is None:
        raise QueryError(keyword, f"missing: {why}")
    if not values:
        raise QueryError(keyword, "empty: a retrieve needs a unique key value")
    if any(not v for v in values):
        raise QueryError(keyword, "an empty value in the UID list")
    if any(w in v for v in values for w in WILDCARDS):
        raise QueryError(keyword, "no wild cards in a retrieve's unique keys")
    if len(values) > 1 and not many:
        raise QueryError(keyword, "one value only (UID lists only at the retrieve level)")
    return values


def retrieve_scope(ident: Dataset, level: str, model: str, *, relational: bool = False) -> RetrieveScope:
    """Check a C-MOVE / C-GET identifier and return what it designates (raises QueryError)."""
    levels = MODELS[model]
    if level not in levels:
        raise QueryError("QueryRetrieveLevel", f"{level} is not a level of this model ({', '.join(levels)})")
    keyword = UNIQUE_KEYWORD[level]
    targets = _checked(
        keyword, _values(ident, keyword), many=level != "PATIENT", why=f"the unique key of a {level} retrieve"
    )
    above: dict[str, str] = {}
    for upper in levels[: levels.index(level)]:
        kw = UNIQUE_KEYWORD[upper]
        values = _values(ident, kw)
        if relational and not values:
            continue  # relational-retrieve: the levels above may be left out (C.4.2.2, C.4.3.2)
        (above[kw],) = _checked(kw, values, many=False, why="needed unless relational-retrieve")
    issuer = None
    if "PatientID" in above or level == "PATIENT":
        given = _values(ident, "IssuerOfPatientID")
        if given:
            (issuer,) = _checked("IssuerOfPatientID", given, many=False, why="")
    return RetrieveScope(level, tuple(dict.fromkeys(targets)), above, issuer)


def select_instances(archive, scope: RetrieveScope) -> list:
    """The InstanceRefs of a scope, looked up by UID (never by matching), in archive order."""
    refs = archive.instances(**{INSTANCES_ARG[scope.level]: list(scope.targets)})
    study = scope.above.get("StudyInstanceUID")
    series = scope.above.get("SeriesInstanceUID")
    patient = scope.above.get("PatientID")
    out = []
    for ref in refs:
        if study is not None and ref.study_instance_uid != study:
            continue
        if series is not None and ref.series_instance_uid != series:
            continue
        pid, _, issuer = (ref.patient_key or "").partition("\x00")
        if patient is not None and pid != patient:
            continue
        if scope.issuer is not None and issuer != scope.issuer:
            continue
        out.append(ref)
    return out


__all__ = ["RetrieveScope", "retrieve_scope", "select_instances", "UNIQUE_KEYWORD", "INSTANCES_ARG"]
