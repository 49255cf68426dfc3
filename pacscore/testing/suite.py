"""The fixed query suite of ``pacscore bench`` and of the scale harness (benchmarks/run.py).

``QUERY_SUITE`` holds identifiers with ``{placeholders}``; ``resolve_suite(arc)`` fills them with
values of the archive itself (a patient, a study, a series picked at fixed positions), so the
suite fits whatever data the archive holds: generated, real, or names in any script.
"""

from __future__ import annotations

__all__ = ["QUERY_SUITE", "resolve_suite"]

#: (name, identifier, level, options); identifiers may hold {placeholders} (see resolve_suite)
QUERY_SUITE: list[tuple[str, dict, str, dict]] = [
    ("exact PatientID", {"PatientID": "{patient_id}", "PatientName": "", "StudyDate": ""}, "STUDY", {}),
    ("PatientName prefix", {"PatientName": "{name_group}{name_prefix}*", "PatientID": ""}, "STUDY", {}),
    ("PatientName infix", {"PatientName": "{name_group}*{name_infix}*", "PatientID": ""}, "STUDY", {}),
    ("PatientName ? wildcard", {"PatientName": "{name_group}{name_qmark}", "PatientID": ""}, "STUDY", {}),
    ("StudyDate single", {"StudyDate": "{study_date}", "PatientName": ""}, "STUDY", {}),
    ("StudyDate closed range", {"StudyDate": "{year}0101-{year}0331", "PatientName": ""}, "STUDY", {}),
    ("StudyDate open range", {"StudyDate": "{late_year}0601-", "PatientName": ""}, "STUDY", {}),
    (
        "StudyDate+StudyTime combined",
        {"StudyDate": "{year}0101-{year}1231", "StudyTime": "080000-120000", "PatientName": ""},
        "STUDY",
        {"combined_datetime": True},
    ),
    ("ModalitiesInStudy", {"ModalitiesInStudy": "{modality}", "PatientID": ""}, "STUDY", {}),
    ("StudyInstanceUID list", {"StudyInstanceUID": "{study_uids}", "PatientID": ""}, "STUDY", {}),
    ("AccessionNumber", {"AccessionNumber": "{accession}", "PatientID": ""}, "STUDY", {}),
    (
        "SeriesDescription wildcard",
        {"SeriesDescription": "*{series_word}*", "Modality": ""},
        "SERIES",
        {"relational": True},
    ),
    (
        "instances of one series",
        {
            "StudyInstanceUID": "{study_uid}",
            "SeriesInstanceUID": "{series_uid}",
            "SOPInstanceUID": "",
            "InstanceNumber": "",
        },
        "IMAGE",
        {},
    ),
    (
        "broad: all studies since 2005",
        {
            "StudyDate": "20050101-",
            "PatientName": "",
            "PatientID": "",
            "ModalitiesInStudy": "",
            "NumberOfStudyRelatedInstances": "",
        },
        "STUDY",
        {},
    ),
    ("StudyTime range", {"StudyTime": "-0800", "PatientName": ""}, "STUDY", {}),
    (
        "all studies",
        {
            "PatientName": "",
            "PatientID": "",
            "StudyDate": "",
            "StudyTime": "",
            "AccessionNumber": "",
            "StudyDescription": "",
            "ModalitiesInStudy": "",
            "NumberOfStudyRelatedInstances": "",
        },
        "STUDY",
        {},
    ),
]


def _family(name: str | None) -> tuple[int, str]:
    """The first non-empty component group of a PN value and its family name component.

    A PN key without ``=`` is matched against the Alphabetic group only, a key with ``=``
    group by group (docs/matching.md, PS3.4 C.2.2.2.1.1), so the keys built from this name
    start with as many ``=`` as the group's index (``{name_group}``).
    """
    for index, group in enumerate((name or "").split("=")):
        family = group.split("^")[0].strip()
        if family:
            return index, family
    return 0, ""


def _pick_study(studies: list[tuple[bytes, bytes]]) -> bytes:
    """The study whose values fill the suite: one with a plain ASCII name and an accession number
    when there is one (what the published figures were measured with), else one whose name has a
    family name of three characters or more in any script, else any study."""
    from ..index import codec

    def name(record: bytes) -> str:
        return codec.get_value(record, 0x00100010) or ""

    tiers = (
        lambda r: name(r).isascii() and "^" in name(r) and bool(codec.get_value(r, 0x00080050)),
        lambda r: len(_family(name(r))[1]) >= 3 and bool(codec.get_value(r, 0x00080050)),
        lambda r: len(_family(name(r))[1]) >= 3,
        lambda r: True,
    )
    for usable in tiers:
        chosen = [record for _, record in studies if usable(record)]
        if chosen:
            return chosen[len(chosen) // 3]
    raise ValueError("the archive holds no study: the suite takes its values from the archive's data")


def resolve_suite(arc, suite=QUERY_SUITE) -> list[tuple[str, dict, str, dict]]:
    """The suite with its placeholders filled from the archive's own values."""
    from ..index import codec, snapshot
    from ..index.layout import T_PARENT

    def records(level: str) -> list[tuple[bytes, bytes]]:
        with snapshot.read(arc.index) as snap:
            return [(bytes(k), bytes(v)) for k, v in snap.records(level)]

    studies = records("STUDY")
    pick = _pick_study(studies)
    group, family = _family(codec.get_value(pick, 0x00100010))
    family = family or "?"  # no study has a name: the name keys stay valid keys
    date = codec.get_value(pick, 0x00080020) or ""
    # no study has a date: any year makes valid range keys
    years = sorted({(codec.get_value(v, 0x00080020) or "")[:4] for _, v in studies} - {""}) or ["2000"]
    series = records("SERIES")
    skey, srec = series[len(series) // 2]
    descs = [codec.get_value(v, 0x0008103E) or "" for _, v in series]
    word = next((w for d in descs for w in d.split() if len(w) >= 4 and w.isascii()), "CHEST")
    modality = codec.get_value(srec, 0x00080060) or "CT"
    values = {
        "patient_id": codec.get_value(pick, 0x00100020) or "",
        "name_group": "=" * group,  # empty leading groups put the pattern on the name's own group
        "name_prefix": family[:3],
        "name_infix": family[1:4].lower(),
        "name_qmark": family[0] + "?" + family[2:] + "^*",
        "study_date": date,
        "year": years[len(years) // 2],
        "late_year": years[-2] if len(years) > 1 else years[-1],
        "modality": modality,
        "study_uids": "\\".join(k.decode() for k, _ in studies[:: max(1, len(studies) // 20)][:20]),
        "accession": codec.get_value(pick, 0x00080050) or "",
        "series_word": word,
        "study_uid": codec.get_value(srec, T_PARENT),
        "series_uid": skey.decode(),
    }
    return [
        (name, {k: v.format(**values) if isinstance(v, str) else v for k, v in ident.items()}, level, dict(opts))
        for name, ident, level, opts in suite
    ]
