"""Public Hypothesis strategies for people who build (or test) a PACS.

Valid values of the matched VRs, matching keys per rule of PS3.4 C.2.2.2, query identifiers
for every level and information model, and whole synthetic studies as pydicom Datasets::

    from hypothesis import given
    from pacscore.testing import strategies as ps

    @given(ps.values("DT"))                       # every precision, with and without offset
    def test_my_parser(value): ...

    @given(ps.matching_keys("PN", rule="wildcard"))
    def test_my_matcher(key): ...

    @given(ps.studies())                          # a list of pydicom Datasets, one study
    def test_store(instances): ...

Every value strategy produces values that ``pacscore.values`` parses (DA/TM/DT, IS/DS, PN
with at most 3 groups of 5 components) and that fit the VR's length limit; text values never
hold ``\\``, ``*``, ``?``, control characters or leading/trailing spaces, so a key built from a
stored value means what it says. Every key strategy produces keys ``pacscore.match`` accepts.

Importing this module needs only ``hypothesis`` and ``pydicom`` (not pytest): import it by its
full path, ``pacscore.testing.strategies``.
"""

from __future__ import annotations

import datetime as _dt
from collections.abc import Callable
from contextlib import contextmanager

from hypothesis import strategies as st
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.uid import UID, ExplicitVRLittleEndian

from ..values import parse_temporal, split_range

__all__ = [
    "VALUE_VRS",
    "RULES",
    "SCRIPTS",
    "LEVELS",
    "MODELS",
    "LEVEL_ATTRIBUTES",
    "SOP_CLASSES",
    "values",
    "dates",
    "times",
    "datetimes",
    "utc_offsets",
    "person_names",
    "uids",
    "code_strings",
    "long_strings",
    "short_strings",
    "ae_titles",
    "integer_strings",
    "decimal_strings",
    "single_keys",
    "wildcard_keys",
    "range_keys",
    "uid_list_keys",
    "universal_keys",
    "multi_value_keys",
    "sequence_keys",
    "matching_keys",
    "rules_for",
    "identifiers",
    "studies",
    "data_sets",
    "draw_seeded",
]

#: The VRs ``values`` knows.
VALUE_VRS = ("DA", "TM", "DT", "PN", "UI", "CS", "LO", "SH", "AE", "IS", "DS")
#: Matching rules of PS3.4 C.2.2.2 the key strategies cover.
RULES = ("single", "wildcard", "range", "uid_list", "universal", "multi_value", "sequence")
LEVELS = ("PATIENT", "STUDY", "SERIES", "IMAGE")
MODELS = ("PATIENT", "STUDY")  # Patient Root, Study Root

# ---------------------------------------------------------------- characters

_ASCII_UPPER = "ABCDEFGHIJKLMNOPQRSTUVWXYZ"
_ASCII_LOWER = _ASCII_UPPER.lower()
#: Alphabets of person name components, per script.
SCRIPTS: dict[str, str] = {
    "latin": _ASCII_UPPER + _ASCII_LOWER,
    "latin-accented": "ÀÁÂÄÅÇÈÉÊËÌÍÎÏÑÒÓÔÖØÙÚÛÜÝàáâäåçèéêëìíîïñòóôöøùúûüýßÆæŒœ",
    "greek": "ΑΒΓΔΕΖΗΘΙΚΛΜΝΞΟΠΡΣΤΥΦΧΨΩαβγδεζηθικλμνξοπρστυφχψω",
    "cyrillic": "АБВГДЕЖЗИЙКЛМНОПРСТУФХЦЧШЩЭЮЯабвгдежзийклмнопрстуфхцчшщэюя",
    "hebrew": "אבגדהוזחטיכלמנסעפצקרשת",
    "cjk": "山田太郎花子中村李王張陳林佐藤鈴木高橋",
    "hangul": "김이박최정강조윤장임한오서신권황안송홍",
    "kana": "やまだたろうはなこヤマダタロウハナコ",
}
_TEXT = _ASCII_UPPER + _ASCII_LOWER + "0123456789 .,-_()/&+#'" + "ÄÖÜäöüéèàçñß" + "ЖИЯαβΩ中文字"
_CS = _ASCII_UPPER + "0123456789_ "


def _no_edge_spaces(s: str) -> bool:
    return s == s.strip(" ")


def _text(alphabet: str, min_size: int, max_size: int) -> st.SearchStrategy[str]:
    return (
        st.text(alphabet, min_size=min_size, max_size=max_size)
        .filter(_no_edge_spaces)
        .filter(lambda s: len(s) >= min_size)
    )


# ---------------------------------------------------------------- values per VR


def dates(min_year: int = 1900, max_year: int = 2099) -> st.SearchStrategy[str]:
    """DA values ``YYYYMMDD``."""
    return st.dates(_dt.date(min_year, 1, 1), _dt.date(max_year, 12, 31)).map(lambda d: d.strftime("%Y%m%d"))


@st.composite
def times(draw, precision: int | None = None) -> str:
    """TM values of every precision: ``HH``, ``HHMM``, ``HHMMSS``, ``HHMMSS.F`` to ``.FFFFFF``
    (``precision`` 1..4 fixes one)."""
    p = draw(st.integers(1, 4)) if precision is None else precision
    text = f"{draw(st.integers(0, 23)):02d}"
    if p >= 2:
        text += f"{draw(st.integers(0, 59)):02d}"
    if p >= 3:
        text += f"{draw(st.integers(0, 59)):02d}"
    if p >= 4:
        digits = draw(st.integers(1, 6))
        text += "." + str(draw(st.integers(0, 10**digits - 1))).zfill(digits)
    return text


def utc_offsets() -> st.SearchStrategy[str]:
    """UTC offsets ``&HHMM`` from -1200 to +1400 (the minutes real zones use)."""
    return (
        st.tuples(st.integers(-12, 14), st.sampled_from([0, 30, 45]))
        .filter(lambda t: not (t[0] in (-12, 14) and t[1]))
        .map(lambda t: f"{'-' if t[0] < 0 else '+'}{abs(t[0]):02d}{t[1]:02d}")
    )


@st.composite
def datetimes(draw, min_year: int = 1900, max_year: int = 2099, offset: bool | None = None) -> str:
    """DT values of every precision (year to microseconds), with a UTC offset or without
    (``offset`` True/False forces one)."""
    d = draw(st.dates(_dt.date(min_year, 1, 1), _dt.date(max_year, 12, 31)))
    p = draw(st.integers(1, 7))  # YYYY, MM, DD, HH, MM, SS, .F
    text = f"{d.year:04d}"
    if p >= 2:
        text += f"{d.month:02d}"
    if p >= 3:
        text += f"{d.day:02d}"
    if p >= 4:
        text += draw(times(precision=p - 3))
    with_offset = draw(st.booleans()) if offset is None else offset
    if with_offset:
        text += draw(utc_offsets())
    return text


@st.composite
def person_names(draw, scripts: tuple[str, ...] | None = None, groups: int | None = None) -> str:
    """PN values: 1-5 components (family, given, middle, prefix, suffix; inner ones may be
    empty) in 1-3 component groups (Alphabetic, Ideographic, Phonetic) written in ``scripts``
    (default: all of SCRIPTS; the Alphabetic group is Latin when there are several groups)."""
    names = list(SCRIPTS) if scripts is None else list(scripts)
    n_groups = draw(st.integers(1, 3)) if groups is None else groups
    out = []
    for g in range(n_groups):
        script = "latin" if (g == 0 and n_groups > 1 and "latin" in names) else draw(st.sampled_from(names))
        alphabet = SCRIPTS[script]
        n = draw(st.integers(1, 5))
        comps = [draw(st.text(alphabet, min_size=0 if 0 < i < n - 1 else 1, max_size=10)) for i in range(n)]
        out.append("^".join(comps))
    while len(out) > 1 and not out[-1]:
        out.pop()
    return "=".join(out)


@st.composite
def uids(draw, root: str | None = None, max_length: int = 64) -> str:
    """UIDs: dot-separated numeric components without leading zeros, at most ``max_length``
    (64) characters."""
    prefix = root or draw(st.sampled_from(["1.2.826.0.1.3680043.9", "2.25", "1.3.6.1.4.1.5962", "1.2.840.99"]))
    parts = draw(st.lists(st.integers(0, 10**12), min_size=1, max_size=6))
    uid = prefix
    for p in parts:
        if len(uid) + 1 + len(str(p)) > max_length:
            break
        uid += f".{p}"
    return uid if uid != prefix else f"{prefix}.1"


def code_strings(max_size: int = 16) -> st.SearchStrategy[str]:
    """CS values: upper case letters, digits, space and underscore."""
    return _text(_CS, 1, max_size)


def long_strings(max_size: int = 64) -> st.SearchStrategy[str]:
    """LO values (up to 64 characters, several scripts)."""
    return _text(_TEXT, 1, max_size)


def short_strings(max_size: int = 16) -> st.SearchStrategy[str]:
    """SH values (up to 16 characters)."""
    return _text(_TEXT, 1, max_size)


def ae_titles() -> st.SearchStrategy[str]:
    """AE titles: up to 16 ASCII characters, no backslash, no leading or trailing space."""
    return _text(_ASCII_UPPER + "0123456789_-. ", 1, 16)


def integer_strings() -> st.SearchStrategy[str]:
    """IS values: -2^31..2^31-1 written as DICOM allows (sign, leading zeros), at most 12 chars."""
    return (
        st.tuples(st.integers(-(2**31), 2**31 - 1), st.sampled_from(["", "+", "0", "00"]))
        .map(
            lambda t: str(t[0]) if t[0] < 0 or t[1] in ("",) else ("+" + str(t[0]) if t[1] == "+" else t[1] + str(t[0]))
        )
        .filter(lambda s: len(s) <= 12)
    )


def decimal_strings() -> st.SearchStrategy[str]:
    """DS values: fixed or exponent notation, at most 16 characters."""
    fixed = st.decimals(min_value=-(10**6), max_value=10**6, places=4, allow_nan=False, allow_infinity=False).map(str)
    expo = st.tuples(st.integers(-999, 999), st.integers(-30, 30)).map(lambda t: f"{t[0]}E{t[1]:+d}")
    return st.one_of(fixed, expo, st.integers(-999, 999).map(str)).filter(lambda s: len(s) <= 16)


_VALUE_STRATEGIES: dict[str, Callable[[], st.SearchStrategy[str]]] = {
    "DA": dates,
    "TM": times,
    "DT": datetimes,
    "PN": person_names,
    "UI": uids,
    "CS": code_strings,
    "LO": long_strings,
    "SH": short_strings,
    "AE": ae_titles,
    "IS": integer_strings,
    "DS": decimal_strings,
}


def values(vr: str) -> st.SearchStrategy[str]:
    """Valid values of ``vr`` (one of VALUE_VRS)."""
    try:
        return _VALUE_STRATEGIES[vr]()
    except KeyError:
        raise ValueError(f"no value strategy for VR {vr!r} (known: {', '.join(VALUE_VRS)})") from None


# ---------------------------------------------------------------- matching keys per rule


def _base(vr: str, stored: list[str] | None) -> st.SearchStrategy[str]:
    pool = [v for v in (stored or []) if v]
    return st.sampled_from(pool) if pool else values(vr)


def single_keys(vr: str, stored: list[str] | None = None) -> st.SearchStrategy[str]:
    """Single Value Matching keys (C.2.2.2.1): a valid value, drawn from ``stored`` when given
    (so keys hit); PN keys sometimes change case, temporal keys sometimes lose precision."""
    base = _base(vr, stored)
    if vr == "PN":
        return st.tuples(base, st.sampled_from(["same", "upper", "lower"])).map(
            lambda t: t[0] if t[1] == "same" else getattr(t[0], t[1])()
        )
    if vr == "DT":  # a '-' makes a DT key a range (C.2.2.2.5): no negative offsets here
        return _bounds(vr, stored).map(lambda v: v[:-5] if len(v) > 5 and v[-5] == "-" else v)
    if vr in ("DA", "TM"):
        return _bounds(vr, stored)
    return base


def _bounds(vr: str, stored: list[str] | None) -> st.SearchStrategy[str]:
    """Temporal values at their own or a coarser precision (range bounds may carry any offset)."""
    base = _base(vr, stored)
    return st.one_of(base, base.flatmap(lambda v: st.sampled_from(_truncations(vr, v))))


def _truncations(vr: str, value: str) -> list[str]:
    """Shorter-precision forms of a temporal value that are still valid keys."""
    if vr == "DA":
        return [value]
    core, tail = value, ""
    if vr == "DT" and len(value) > 5 and value[-5] in "+-":
        core, tail = value[:-5], value[-5:]
    core = core.split(".")[0]
    cuts = [2, 4, 6] if vr == "TM" else [4, 6, 8, 10, 12, 14]
    out = [core[:c] + tail for c in cuts if c <= len(core)]
    return out or [value]


@st.composite
def wildcard_keys(draw, vr: str, stored: list[str] | None = None) -> str:
    """Wild Card Matching keys (C.2.2.2.4) for AE CS LO LT PN SH ST UC UR UT: a value (from
    ``stored`` when given) with characters replaced by '?' and runs by '*'; PN keys may
    change case. Never only '*' (that is universal matching)."""
    value = draw(_base(vr, stored))
    chars = list(value)
    out: list[str] = []
    i = 0
    while i < len(chars):
        action = draw(st.sampled_from(["keep", "keep", "keep", "?", "*"]))
        if action == "keep" or chars[i] in "^=":
            out.append(chars[i])
            i += 1
        elif action == "?":
            out.append("?")
            i += 1
        else:
            run = draw(st.integers(0, len(chars) - i))
            out.append("*")
            i += run
    if draw(st.booleans()):
        out.append("*")
    key = "".join(out)
    if "*" not in key and "?" not in key:
        key = key[:-1] + "?" if key else "?"
    if key.strip("*") == "":
        key = "?" + key
    if vr == "PN" and draw(st.booleans()):
        key = key.upper() if draw(st.booleans()) else key.lower()
    while "**" in key:
        key = key.replace("**", "*")
    return key


def _floor(vr: str, v: str) -> int:
    return parse_temporal(vr, v)[0]


def _valid_range(vr: str, key: str) -> bool:
    try:
        split_range(vr, key)
    except ValueError:
        return False
    return True


@st.composite
def range_keys(draw, vr: str, stored: list[str] | None = None, form: str | None = None) -> str:
    """Range Matching keys (C.2.2.2.5) of DA, TM, DT: ``form`` is "closed" (``v1-v2``),
    "open_start" (``-v2``), "open_end" (``v1-``) or None (any). Bounds come from ``stored``
    when given (at any precision) and are never reversed."""
    form = form or draw(st.sampled_from(["closed", "open_start", "open_end"]))
    a = draw(_bounds(vr, stored))
    if form == "open_end":
        key = f"{a}-"
    elif form == "open_start":
        key = f"-{a}"
    else:
        b = draw(_bounds(vr, stored))
        if _floor(vr, b) < _floor(vr, a):
            a, b = b, a
        key = f"{a}-{b}"
    if not _valid_range(vr, key):  # a DT split that is ambiguous with negative offsets
        key = f"{a}-" if form != "open_start" else f"-{a}"
        if not _valid_range(vr, key):
            key = "-"
    return key


def uid_list_keys(stored: list[str] | None = None, max_size: int = 5) -> st.SearchStrategy[str]:
    """List of UID Matching keys (C.2.2.2.2): 2 to ``max_size`` UIDs joined by '\\' (some from
    ``stored`` when given)."""
    one = st.one_of(_base("UI", stored), uids()) if stored else uids()
    return st.lists(one, min_size=2, max_size=max_size, unique=True).map("\\".join)


def universal_keys(vr: str) -> st.SearchStrategy[str]:
    """Keys that match everything (C.2.2.2.3): zero length, '*' for wild card VRs, '-' for
    DA/TM/DT ranges."""
    options = [""]
    if vr in ("AE", "CS", "LO", "LT", "PN", "SH", "ST", "UC", "UR", "UT"):
        options += ["*", "**"]
    if vr in ("DA", "TM", "DT"):
        options.append("-")
    return st.sampled_from(options)


def multi_value_keys(vr: str, stored: list[str] | None = None) -> st.SearchStrategy[str]:
    """Multi-valued keys (C.2.2.2.8 without negotiation: OR per docs/matching.md §2): 2-3 single
    values joined by '\\'."""
    return st.lists(single_keys(vr, stored), min_size=2, max_size=3).map("\\".join)


#: item keywords and VRs of the Code Sequence Macro the sequence strategies use
CODE_ITEM_VRS = {"CodeValue": "SH", "CodingSchemeDesignator": "SH", "CodeMeaning": "LO"}


@st.composite
def sequence_keys(draw, item_vrs: dict[str, str] | None = None, stored_items: list[dict] | None = None) -> list[dict]:
    """Sequence Matching keys (C.2.2.2.6): a list of one item dict keyword -> key, each item
    key single, wild card or universal (pass ``item_vrs`` to ``pacscore.match``)."""
    item_vrs = item_vrs or CODE_ITEM_VRS
    item: dict[str, str] = {}
    for kw, vr in item_vrs.items():
        pool = [str(i.get(kw)) for i in (stored_items or []) if i.get(kw)]
        choice = draw(st.sampled_from(["single", "wildcard", "return"]))
        if choice == "single":
            item[kw] = draw(single_keys(vr, pool))
        elif choice == "wildcard" and vr in ("SH", "LO", "CS", "PN", "AE"):
            item[kw] = draw(wildcard_keys(vr, pool))
        else:
            item[kw] = ""
    return [item]


def rules_for(vr: str) -> tuple[str, ...]:
    """The matching rules that apply to keys of ``vr``."""
    out = ["single", "universal"]
    if vr in ("AE", "CS", "LO", "LT", "PN", "SH", "ST", "UC", "UR", "UT"):
        out.append("wildcard")
    if vr in ("DA", "TM", "DT"):
        out.append("range")
    if vr == "UI":
        out.append("uid_list")
    elif vr != "SQ":
        out.append("multi_value")
    if vr == "SQ":
        out = ["sequence", "universal"]
    return tuple(out)


def matching_keys(vr: str, rule: str | None = None, stored: list[str] | None = None) -> st.SearchStrategy:
    """Keys of ``vr`` for one ``rule`` of RULES (None: any rule that applies to the VR)."""
    if rule is None:
        return st.sampled_from(rules_for(vr)).flatmap(lambda r: matching_keys(vr, r, stored))
    if rule not in rules_for(vr):
        raise ValueError(f"rule {rule!r} does not apply to VR {vr} (it has {', '.join(rules_for(vr))})")
    return {
        "single": lambda: single_keys(vr, stored),
        "wildcard": lambda: wildcard_keys(vr, stored),
        "range": lambda: range_keys(vr, stored),
        "uid_list": lambda: uid_list_keys(stored),
        "universal": lambda: universal_keys(vr),
        "multi_value": lambda: multi_value_keys(vr, stored),
        "sequence": lambda: sequence_keys(),
    }[rule]()


# ---------------------------------------------------------------- identifiers

#: Matching keys per level (keyword -> VR) shared by Patient Root and Study Root; in Study
#: Root the patient's attributes belong to the STUDY level (PS3.4 C.6.2).
LEVEL_ATTRIBUTES: dict[str, dict[str, str]] = {
    "PATIENT": {"PatientName": "PN", "PatientID": "LO", "PatientBirthDate": "DA", "PatientSex": "CS"},
    "STUDY": {
        "StudyInstanceUID": "UI",
        "StudyDate": "DA",
        "StudyTime": "TM",
        "AccessionNumber": "SH",
        "StudyID": "SH",
        "StudyDescription": "LO",
        "ReferringPhysicianName": "PN",
        "ModalitiesInStudy": "CS",
    },
    "SERIES": {
        "SeriesInstanceUID": "UI",
        "Modality": "CS",
        "SeriesNumber": "IS",
        "SeriesDescription": "LO",
        "BodyPartExamined": "CS",
    },
    "IMAGE": {"SOPInstanceUID": "UI", "SOPClassUID": "UI", "InstanceNumber": "IS"},
}
UNIQUE_KEYS = {
    "PATIENT": "PatientID",
    "STUDY": "StudyInstanceUID",
    "SERIES": "SeriesInstanceUID",
    "IMAGE": "SOPInstanceUID",
}


def level_attributes(level: str, model: str = "STUDY") -> dict[str, str]:
    """keyword -> VR of the matching keys at ``level`` in ``model`` ("PATIENT" or "STUDY" root)."""
    attrs = dict(LEVEL_ATTRIBUTES[level])
    if model == "STUDY" and level == "STUDY":
        attrs = {**LEVEL_ATTRIBUTES["PATIENT"], **attrs}
    return attrs


@st.composite
def identifiers(draw, level: str | None = None, model: str | None = None) -> dict[str, str]:
    """C-FIND identifiers as dicts keyword -> key (with QueryRetrieveLevel) for ``level`` in
    ``model`` (Patient Root: PATIENT, STUDY, SERIES, IMAGE; Study Root has no PATIENT level): the
    unique keys of the levels above as single values (hierarchical search), one to three matching
    keys of any rule, a few return keys."""
    model = model or draw(st.sampled_from(MODELS))
    allowed = LEVELS if model == "PATIENT" else LEVELS[1:]
    level = level or draw(st.sampled_from(allowed))
    if level not in allowed:
        raise ValueError(f"level {level} does not exist in the {model} root model")
    ident: dict[str, str] = {"QueryRetrieveLevel": level}
    for above in allowed[: allowed.index(level)]:
        ident[UNIQUE_KEYS[above]] = draw(values("LO") if above == "PATIENT" else uids())
    attrs = level_attributes(level, model)
    chosen = draw(st.lists(st.sampled_from(sorted(attrs)), min_size=1, max_size=3, unique=True))
    for kw in chosen:
        ident[kw] = draw(matching_keys(attrs[kw]))
    for kw in draw(st.lists(st.sampled_from(sorted(attrs)), max_size=3, unique=True)):
        ident.setdefault(kw, "")
    ident.setdefault(UNIQUE_KEYS[level], "")
    return ident


# ---------------------------------------------------------------- synthetic studies

#: Modality -> SOP Class UID of the generated instances.
SOP_CLASSES = {
    "CT": "1.2.840.10008.5.1.4.1.1.2",
    "MR": "1.2.840.10008.5.1.4.1.1.4",
    "US": "1.2.840.10008.5.1.4.1.1.6.1",
    "CR": "1.2.840.10008.5.1.4.1.1.1",
    "OT": "1.2.840.10008.5.1.4.1.1.7",
}
_WORDS = ["CHEST", "HEAD", "ABDOMEN", "Knee left", "Thorax", "Schädel", "Контроль", "follow-up", "AXIAL 5mm", "T1 SAG"]
_BODY = ["CHEST", "HEAD", "ABDOMEN", "KNEE", "SPINE"]


def _instance(patient: dict, study: dict, series: dict, number: int, sop_uid: str) -> Dataset:
    ds = Dataset()
    ds.SpecificCharacterSet = "ISO_IR 192"
    ds.SOPClassUID = SOP_CLASSES[series["Modality"]]
    ds.SOPInstanceUID = sop_uid
    ds.InstanceNumber = str(number)
    for source in (patient, study, series):
        for kw, value in source.items():
            if kw.startswith("_") or value is None:
                continue  # absent
            setattr(ds, kw, value)
    ds.file_meta = FileMetaDataset()
    ds.file_meta.MediaStorageSOPClassUID = ds.SOPClassUID
    ds.file_meta.MediaStorageSOPInstanceUID = UID(sop_uid)
    ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds.file_meta.ImplementationClassUID = UID("1.2.826.0.1.3680043.9.7433.1.1")
    ds.preamble = b"\0" * 128
    return ds


def _maybe(draw, strategy, empty: float) -> object:
    """A value, "" (zero length) or None (absent), the latter two with probability ``empty``."""
    r = draw(st.integers(0, 999))
    if r < empty * 500:
        return ""
    if r < empty * 1000:
        return None
    return draw(strategy)


@st.composite
def _patient(draw, empty: float = 0.15) -> dict:
    return {
        "PatientName": _maybe(draw, person_names(groups=draw(st.sampled_from([1, 1, 1, 2, 3]))), empty),
        "PatientID": draw(_text(_ASCII_UPPER + "0123456789", 4, 12)),
        "PatientBirthDate": _maybe(draw, dates(1920, 2020), empty),
        "PatientSex": _maybe(draw, st.sampled_from(["M", "F", "O"]), empty),
    }


@st.composite
def studies(
    draw, patient: dict | None = None, max_series: int = 3, max_instances: int = 3, empty: float = 0.15
) -> list[Dataset]:
    """One study as a list of pydicom Datasets (Part-10 ready: file_meta, ISO_IR 192): 1 to
    ``max_series`` series of 1 to ``max_instances`` instances, patient, study and series
    attributes of every matched VR, optional ones empty ("") or absent with probability ``empty``."""
    patient = patient or draw(_patient(empty))
    study_uid = draw(uids(root="1.2.826.0.1.3680043.9.7433.2", max_length=56))
    study = {
        "StudyInstanceUID": study_uid,
        "StudyDate": draw(dates(2000, 2030)),
        "StudyTime": _maybe(draw, times(), empty),
        "AccessionNumber": _maybe(draw, _text(_ASCII_UPPER + "0123456789", 3, 16), empty),
        "StudyID": _maybe(draw, _text("0123456789", 1, 8), empty),
        "StudyDescription": _maybe(draw, st.sampled_from(_WORDS) | long_strings(24), empty),
        "ReferringPhysicianName": _maybe(draw, person_names(scripts=("latin", "latin-accented"), groups=1), empty),
    }
    out = []
    n_series = draw(st.integers(1, max_series))
    for s in range(n_series):
        series_uid = f"{study_uid}.{s + 1}"
        series = {
            "SeriesInstanceUID": series_uid,
            "Modality": draw(st.sampled_from(sorted(SOP_CLASSES))),
            "SeriesNumber": str(s + 1),
            "SeriesDescription": _maybe(draw, st.sampled_from(_WORDS), empty),
            "BodyPartExamined": _maybe(draw, st.sampled_from(_BODY), empty),
        }
        for i in range(draw(st.integers(1, max_instances))):
            out.append(_instance(patient, study, series, i + 1, f"{series_uid}.{i + 1}"))
    return out


@st.composite
def data_sets(
    draw, patients: int = 5, studies_per_patient: tuple[int, int] = (1, 3), empty: float = 0.15
) -> list[Dataset]:
    """Several patients with several studies each, as one flat list of Datasets (unique UIDs)."""
    out: list[Dataset] = []
    seen: set[str] = set()
    ids: set[str] = set()
    for _ in range(patients):
        patient = draw(_patient(empty).filter(lambda p: p["PatientID"] not in ids))
        ids.add(patient["PatientID"])
        for _ in range(draw(st.integers(*studies_per_patient))):
            study = draw(studies(patient=patient, empty=empty))
            if study[0].StudyInstanceUID in seen:
                continue
            seen.add(study[0].StudyInstanceUID)
            out.extend(study)
    return out


@contextmanager
def seeded_generation():
    """Make a seeded Hypothesis run depend on its seed alone.

    Hypothesis (6.13x and later) also draws constants it finds in the *local* modules loaded in
    the process, so the same seed gave other queries depending on what the process had imported
    (seen: ``pacscore conformance`` inside a test session after the CLI tests). Inside this
    block that pool is empty. It is Hypothesis's private state: where it is not found, nothing
    is changed."""
    try:
        from hypothesis.internal.conjecture import providers

        constants = providers.Constants
        cache = providers.CONSTANTS_CACHE
        original = providers._get_local_constants
    except (ImportError, AttributeError):  # another Hypothesis: nothing to pin
        yield
        return
    empty = constants()
    cache.cache.clear()
    providers._get_local_constants = lambda: empty
    try:
        yield
    finally:
        providers._get_local_constants = original
        cache.cache.clear()


def draw_seeded(strategy: st.SearchStrategy, seed: int):
    """One example of ``strategy``, the same for the same ``seed`` (for fixtures and CLIs;
    ``strategy.example()`` is neither seeded nor meant for that)."""
    from hypothesis import HealthCheck, Phase, given, settings
    from hypothesis import seed as hseed

    box: list = []

    @hseed(seed)
    @settings(
        max_examples=1, database=None, phases=[Phase.generate], deadline=None, suppress_health_check=list(HealthCheck)
    )
    @given(strategy)
    def grab(x):
        if not box:
            box.append(x)

    with seeded_generation():
        grab()
    if not box:  # pragma: no cover - filters rejected everything
        raise RuntimeError("the strategy produced no example")
    return box[0]
