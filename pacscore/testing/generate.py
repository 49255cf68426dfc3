"""A seeded generator of realistic synthetic PACS content, fast enough for a million instances.

Why it exists: the archive's throughput and its query semantics are only tested honestly on
content that looks like a real PACS -- names in several scripts with their Specific Character
Set, empty and absent optional values, multi-valued attributes, a realistic modality mix with
the matching SOP classes -- and at a scale that pydicom's own writer cannot reach quickly. It
ships in the package (not only in the repository's benchmarks/) because ``pacscore bench
--generate`` uses it wherever pacscore is installed; it needs pydicom only.

How it is fast: every instance is Explicit VR Little Endian Part 10. For each series the
elements that do not change between its instances (patient, study, series and most image
attributes) are encoded once into a template of byte chunks; an instance only encodes its few
own elements (SOP Instance UID, Instance Number, Content Time, position, pixel data) and joins
the chunks. Text is encoded by pydicom's own charset code (once per patient/study/series), so
the bytes are what pydicom itself would write.

How it is deterministic: each patient has its own random streams, seeded from the
configuration and the patient's index (string seeds go through SHA-512, so PYTHONHASHSEED
does not matter). The *structure* stream (how many studies, series, instances; which modality)
is separate from the *values* stream, so :func:`count_instances` replays only the structure.
UIDs are ``2.25.<128-bit hash>`` of the configuration and the entity's position. A larger
``patients`` with the same other settings yields the smaller data set as its prefix.
"""

from __future__ import annotations

import datetime as _dt
import functools
import hashlib
import io
import itertools
import random
import struct
import warnings
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import NamedTuple

import pydicom
from pydicom import uid as _uids
from pydicom.charset import convert_encodings, encode_string
from pydicom.datadict import dictionary_VR, tag_for_keyword
from pydicom.valuerep import PersonName

__all__ = [
    "GeneratorConfig",
    "generate_datasets",
    "generate_bytes",
    "generate_records",
    "write_files",
    "count_instances",
    "config_for",
    "first_instances",
    "Record",
    "MODALITY_SOP_CLASSES",
    "OPTIONAL_KEYWORDS",
    "NON_ASCII_NAMES",
]


@dataclass
class GeneratorConfig:
    """What to generate. Ranges are inclusive ``(low, high)``; see the module docstring."""

    patients: int
    studies_per_patient: tuple[int, int] = (1, 3)
    series_per_study: tuple[int, int] = (1, 4)
    instances_per_series: tuple[int, int] = (1, 10)
    seed: int = 0
    start_year: int = 2005
    end_year: int = 2025
    non_ascii_fraction: float = 0.15
    empty_fraction: float = 0.03  # fraction of optional values left empty or absent

    def __post_init__(self) -> None:
        if self.patients < 0:
            raise ValueError("patients must be >= 0")
        for name in ("studies_per_patient", "series_per_study", "instances_per_series"):
            low, high = getattr(self, name)
            if not 1 <= low <= high:
                raise ValueError(f"{name} must be (low, high) with 1 <= low <= high, not {(low, high)}")
        if not 1900 < self.start_year <= self.end_year <= 9999:
            raise ValueError("need 1900 < start_year <= end_year <= 9999")
        for name in ("non_ascii_fraction", "empty_fraction"):
            if not 0.0 <= getattr(self, name) <= 1.0:
                raise ValueError(f"{name} must be within [0, 1]")

    def _structure_key(self) -> str:
        return f"{self.seed}|{self.studies_per_patient}|{self.series_per_study}|{self.instances_per_series}"

    def _values_key(self) -> str:
        return (
            f"{self._structure_key()}|{self.start_year}|{self.end_year}|"
            f"{self.non_ascii_fraction!r}|{self.empty_fraction!r}"
        )


class Record(NamedTuple):
    """One generated instance with the UIDs of its place in the hierarchy."""

    patient_id: str
    study_uid: str
    series_uid: str
    sop_uid: str
    data: bytes


# --------------------------------------------------------------------------------------------
# The modality mix and its SOP classes
# --------------------------------------------------------------------------------------------

#: The SOP Class each generated Modality is written with (DOC is the Encapsulated PDF).
MODALITY_SOP_CLASSES: dict[str, str] = {
    "CT": _uids.CTImageStorage,
    "MR": _uids.MRImageStorage,
    "US": _uids.UltrasoundImageStorage,
    "CR": _uids.ComputedRadiographyImageStorage,
    "DX": _uids.DigitalXRayImageStorageForPresentation,
    "MG": _uids.DigitalMammographyXRayImageStorageForPresentation,
    "PT": _uids.PositronEmissionTomographyImageStorage,
    "NM": _uids.NuclearMedicineImageStorage,
    "XA": _uids.XRayAngiographicImageStorage,
    "OT": _uids.SecondaryCaptureImageStorage,
    "ES": _uids.VLEndoscopicImageStorage,
    "SR": _uids.BasicTextSRStorage,
    "DOC": _uids.EncapsulatedPDFStorage,
}
_NO_PIXELS = frozenset({"SR", "DOC"})
_CROSS_SECTIONAL = frozenset({"CT", "MR", "PT"})

# Study-level modality weights, roughly a general hospital's mix.
_PRIMARY = ("CT", "MR", "DX", "CR", "US", "MG", "PT", "NM", "XA", "ES", "OT", "SR", "DOC")
_PRIMARY_CUM = tuple(itertools.accumulate((22, 16, 13, 8, 12, 6, 3, 3, 3, 4, 3, 3, 3)))

#: Optional (Type 2/3) attributes that ``empty_fraction`` may leave empty or absent.
OPTIONAL_KEYWORDS: tuple[str, ...] = (
    "PatientName",
    "PatientBirthDate",
    "PatientSex",
    "PatientAge",
    "PatientWeight",
    "StudyDate",
    "StudyTime",
    "AccessionNumber",
    "ReferringPhysicianName",
    "StudyDescription",
    "StudyID",
    "InstitutionName",
    "SeriesDate",
    "SeriesTime",
    "SeriesDescription",
    "BodyPartExamined",
    "SeriesNumber",
    "Manufacturer",
    "StationName",
    "OperatorsName",
    "ProtocolName",
)

# (StudyDescription, BodyPartExamined, series descriptions) per primary modality.
_STUDIES: dict[str, tuple[tuple[str, str, tuple[str, ...]], ...]] = {
    "CT": (
        ("CT CHEST W/O CONTRAST", "CHEST", ("SCOUT", "AXIAL 5MM", "AXIAL 1.25MM LUNG", "CORONAL MPR 3MM")),
        ("CT ABDOMEN PELVIS W CONTRAST", "ABDOMEN", ("SCOUT", "PORTAL VENOUS 5MM", "CORONAL 3MM", "DELAYED")),
        ("CT HEAD W/O CONTRAST", "HEAD", ("SCOUT", "AXIAL 5MM BRAIN", "AXIAL BONE")),
        ("CTA CHEST PE PROTOCOL", "CHEST", ("SCOUT", "CTA 1MM", "MIP AXIAL")),
        ("CT LUMBAR SPINE", "LSPINE", ("SCOUT", "SAG BONE", "AXIAL 2MM")),
    ),
    "MR": (
        ("MR BRAIN", "BRAIN", ("T1 SAG", "T2 AX", "FLAIR AX", "DWI", "ADC", "SWI")),
        ("MR BRAIN W/WO CONTRAST", "BRAIN", ("T1 AX PRE", "T2 FLAIR", "T1 AX POST", "T1 MPRAGE POST")),
        ("MR KNEE LEFT", "KNEE", ("PD FS COR", "PD SAG", "T1 COR", "T2 FS AX")),
        ("MR LUMBAR SPINE", "LSPINE", ("T2 SAG", "T1 SAG", "STIR SAG", "T2 AX")),
        ("MR PROSTATE MULTIPARAMETRIC", "PROSTATE", ("T2 TSE AX", "DWI b1400", "ADC", "DCE")),
        ("MRA HEAD", "HEAD", ("TOF 3D", "MIP")),
    ),
    "US": (
        ("US ABDOMEN COMPLETE", "ABDOMEN", ("LIVER", "KIDNEYS", "GALLBLADDER")),
        ("US THYROID", "NECK", ("THYROID",)),
        ("US OB 2ND TRIMESTER", "PELVIS", ("BIOMETRY", "ANATOMY")),
        ("US RENAL", "KIDNEY", ("RIGHT KIDNEY", "LEFT KIDNEY")),
    ),
    "CR": (
        ("XR CHEST 2 VIEWS", "CHEST", ("PA", "LATERAL")),
        ("XR HAND LEFT 3 VIEWS", "HAND", ("PA", "OBLIQUE", "LATERAL")),
        ("XR SKULL", "SKULL", ("AP", "LATERAL")),
    ),
    "DX": (
        ("DX CHEST PA", "CHEST", ("PA",)),
        ("DX KNEE RIGHT 2 VIEWS", "KNEE", ("AP", "LATERAL")),
        ("DX PELVIS AP", "PELVIS", ("AP",)),
        ("DX ANKLE LEFT 3 VIEWS", "ANKLE", ("AP", "MORTISE", "LATERAL")),
    ),
    "MG": (
        ("MAMMO SCREENING BILATERAL", "BREAST", ("R CC", "L CC", "R MLO", "L MLO")),
        ("MG DIAGNOSTIC LEFT", "BREAST", ("L CC", "L MLO", "L SPOT")),
    ),
    "PT": (
        ("PET/CT WHOLE BODY FDG", "WHOLEBODY", ("PET WB AC", "CT AC", "PET WB NAC", "CT DIAGNOSTIC")),
        ("PET/CT BRAIN FDG", "BRAIN", ("PET BRAIN", "CT AC")),
    ),
    "NM": (
        ("NM BONE SCAN WHOLE BODY", "WHOLEBODY", ("ANT", "POST")),
        ("NM THYROID SCAN", "THYROID", ("ANT", "PINHOLE")),
        ("NM MYOCARDIAL PERFUSION", "HEART", ("STRESS", "REST")),
    ),
    "XA": (
        ("XA CORONARY ANGIOGRAPHY", "HEART", ("LAO 30", "RAO 30", "LV GRAM")),
        ("XA CEREBRAL ANGIOGRAM", "HEAD", ("ICA RIGHT", "ICA LEFT", "VERTEBRAL")),
    ),
    "ES": (
        ("COLONOSCOPY", "COLON", ("CECUM", "TRANSVERSE", "SIGMOID")),
        ("UPPER GI ENDOSCOPY", "STOMACH", ("ESOPHAGUS", "STOMACH", "DUODENUM")),
        ("BRONCHOSCOPY", "LUNG", ("TRACHEA", "RIGHT MAIN BRONCHUS")),
    ),
    "OT": (("OUTSIDE IMAGES", "", ("SCREEN CAPTURE", "KEY IMAGES")),),
    "SR": (("RADIOLOGY REPORT", "", ("REPORT",)),),
    "DOC": (("SCANNED DOCUMENTS", "", ("REQUISITION", "CONSENT FORM")),),
}
# Descriptions of the extra series a study may carry beside its primary modality.
_EXTRA_SERIES = {
    "SR": ("REPORT", "Structured Report"),
    "DOC": ("REQUISITION SCAN", "PDF REPORT"),
    "OT": ("DOSE REPORT", "KEY IMAGES", "SCREEN SAVE"),
}

# Localised study descriptions (used for some patients whose names are in that script).
_LOCAL_STUDIES: dict[str, dict[str, tuple[str, ...]]] = {
    "latin": {
        "CT": ("CT THORAX NATIV", "TC TÓRAX SIN CONTRASTE"),
        "MR": ("MRT SCHÄDEL", "IRM CÉRÉBRALE"),
        "CR": ("RÖNTGEN THORAX PA",),
        "DX": ("RÖNTGEN KNIE RECHTS",),
        "US": ("ÉCHOGRAPHIE ABDOMINALE", "SONOGRAFIE ABDOMEN"),
    },
    "greek": {"CT": ("ΑΞΟΝΙΚΗ ΘΩΡΑΚΟΣ",), "MR": ("ΜΑΓΝΗΤΙΚΗ ΕΓΚΕΦΑΛΟΥ",)},
    "cyrillic": {
        "CT": ("КТ ОРГАНОВ ГРУДНОЙ КЛЕТКИ",),
        "MR": ("МРТ ГОЛОВНОГО МОЗГА",),
        "DX": ("РЕНТГЕНОГРАФИЯ ГРУДНОЙ КЛЕТКИ",),
    },
    "japanese": {"CT": ("胸部単純CT",), "MR": ("頭部MRI",), "US": ("腹部超音波",)},
    "korean": {"CT": ("흉부 CT",), "MR": ("뇌 MRI",)},
    "chinese": {"CT": ("胸部CT平扫",), "MR": ("头颅MRI",), "US": ("腹部超声",)},
}
_LOCAL_IMPRESSION = {
    "latin": "Kein pathologischer Befund. Übrige Strukturen unauffällig.",
    "greek": "Χωρίς παθολογικά ευρήματα.",
    "cyrillic": "Патологических изменений не выявлено.",
    "japanese": "異常所見なし。",
    "korean": "특이 소견 없음.",
    "chinese": "未见明显异常。",
}
_INSTITUTIONS = {
    "ascii": ("GENERAL HOSPITAL", "St. Mary's Medical Center", "CITY IMAGING CENTER", "Radiology Associates"),
    "latin": ("Universitätsklinikum Nord", "Hôpital Saint-Louis", "Hospital São João"),
    "greek": ("Νοσοκομείο Ευαγγελισμός",),
    "cyrillic": ("Городская больница №1",),
    "japanese": ("東京中央病院",),
    "korean": ("서울중앙병원",),
    "chinese": ("北京协和医院",),
}
_EQUIPMENT = {
    "CT": (
        ("SIEMENS", "SOMATOM Definition AS"),
        ("GE MEDICAL SYSTEMS", "LightSpeed VCT"),
        ("Philips", "Brilliance 64"),
        ("TOSHIBA", "Aquilion ONE"),
    ),
    "MR": (
        ("SIEMENS", "MAGNETOM Skyra"),
        ("GE MEDICAL SYSTEMS", "SIGNA Premier"),
        ("Philips Medical Systems", "Ingenia"),
    ),
    "US": (("GE Healthcare", "LOGIQ E9"), ("Philips", "EPIQ 7")),
    "CR": (("FUJIFILM Corporation", "FCR PROFECT"), ("Carestream Health", "DirectView CR 975")),
    "DX": (("Agfa", "DX-D 600"), ("SIEMENS", "Ysio Max")),
    "MG": (("HOLOGIC, Inc.", "Selenia Dimensions"), ("GE HEALTHCARE", "Senographe Pristina")),
    "PT": (("SIEMENS", "Biograph mCT"), ("GE MEDICAL SYSTEMS", "Discovery MI")),
    "NM": (("SIEMENS NM", "Symbia T2"), ("GE MEDICAL SYSTEMS", "Infinia")),
    "XA": (("Philips Medical Systems", "Allura Xper FD20"), ("SIEMENS", "AXIOM-Artis")),
    "ES": (("OLYMPUS", "EVIS EXERA III"), ("PENTAX Medical", "EPK-i7010")),
    "OT": (("PACSCORE", "Secondary Capture"),),
    "SR": (("PACSCORE", "Reporting"),),
    "DOC": (("PACSCORE", "Document Scanner"),),
}
_IMAGE_TYPES = {
    "CT": ("ORIGINAL\\PRIMARY\\AXIAL", "DERIVED\\SECONDARY\\REFORMATTED", "ORIGINAL\\PRIMARY\\LOCALIZER"),
    "MR": ("ORIGINAL\\PRIMARY\\M\\ND", "ORIGINAL\\PRIMARY\\M\\NORM\\DIS2D", "DERIVED\\PRIMARY\\DIFFUSION\\ADC"),
    "PT": ("ORIGINAL\\PRIMARY",),
    "NM": ("ORIGINAL\\PRIMARY\\STATIC\\EMISSION",),
    "US": ("ORIGINAL\\PRIMARY\\ABDOMINAL", "DERIVED\\PRIMARY"),
    "CR": ("ORIGINAL\\PRIMARY",),
    "DX": ("ORIGINAL\\PRIMARY",),
    "MG": ("ORIGINAL\\PRIMARY",),
    "XA": ("ORIGINAL\\PRIMARY\\SINGLE PLANE",),
    "ES": ("ORIGINAL\\PRIMARY",),
    "OT": ("DERIVED\\SECONDARY",),
}

# --------------------------------------------------------------------------------------------
# Names in several scripts
# --------------------------------------------------------------------------------------------

_ASCII_FAMILY = (
    "DOE",
    "SMITH",
    "JOHNSON",
    "WILLIAMS",
    "BROWN",
    "JONES",
    "GARCIA",
    "MILLER",
    "DAVIS",
    "RODRIGUEZ",
    "MARTINEZ",
    "LOPEZ",
    "WILSON",
    "ANDERSON",
    "THOMAS",
    "TAYLOR",
    "MOORE",
    "JACKSON",
    "MARTIN",
    "LEE",
    "THOMPSON",
    "WHITE",
    "HARRIS",
    "CLARK",
    "LEWIS",
    "WALKER",
    "YOUNG",
    "ALLEN",
    "O'BRIEN",
    "MCDONALD",
    "VAN DER BERG",
    "NGUYEN",
    "PATEL",
    "KHAN",
    "SCHMIDT",
    "ROSSI",
    "JANSSEN",
    "NOVAK",
    "SMITH-JONES",
)
_ASCII_GIVEN = (
    "JOHN",
    "JANE",
    "MARY",
    "ROBERT",
    "PATRICIA",
    "MICHAEL",
    "LINDA",
    "DAVID",
    "ELIZABETH",
    "JAMES",
    "JENNIFER",
    "WILLIAM",
    "SUSAN",
    "RICHARD",
    "SARAH",
    "KAREN",
    "DANIEL",
    "NANCY",
    "PAUL",
    "LISA",
    "MARK",
    "EMMA",
    "OLIVER",
    "SOPHIA",
    "LIAM",
    "AVA",
    "NOAH",
    "MIA",
    "LUCAS",
)
_LATIN_FAMILY = (
    "Müller",
    "Gonçalves",
    "Ødegård",
    "Sørensen",
    "Núñez",
    "Fernández",
    "Lefèvre",
    "Björk",
    "Jäger",
    "Østergaard",
    "Pérez",
    "Weiß",
    "Nováková",
    "Dvořák",
    "Łukasiewicz",
    "Kovačević",
    "Šimić",
    "Ångström",
)
_LATIN_GIVEN = (
    "Jürgen",
    "João",
    "Åse",
    "Bjørn",
    "José",
    "María",
    "Hélène",
    "Märta",
    "Zoë",
    "François",
    "Ólafur",
    "Antonín",
    "Paweł",
    "Ivana",
    "Søren",
    "Inês",
    "Günther",
    "Agnès",
)
# (native, romanised) pairs; the romanised form makes a first (alphabetic) component group.
_GREEK_FAMILY = (
    ("Παπαδόπουλος", "Papadopoulos"),
    ("Νικολάου", "Nikolaou"),
    ("Γεωργίου", "Georgiou"),
    ("Κωνσταντίνου", "Konstantinou"),
    ("Οικονόμου", "Oikonomou"),
    ("Δημητρίου", "Dimitriou"),
)
_GREEK_GIVEN = (
    ("Γιώργος", "Giorgos"),
    ("Ελένη", "Eleni"),
    ("Δημήτρης", "Dimitris"),
    ("Μαρία", "Maria"),
    ("Νίκος", "Nikos"),
    ("Σοφία", "Sofia"),
)
_CYRILLIC_FAMILY = (
    ("Иванов", "Ivanov"),
    ("Петрова", "Petrova"),
    ("Смирнов", "Smirnov"),
    ("Кузнецова", "Kuznetsova"),
    ("Попов", "Popov"),
    ("Соколова", "Sokolova"),
    ("Шевченко", "Shevchenko"),
)
_CYRILLIC_GIVEN = (
    ("Сергей", "Sergei"),
    ("Анна", "Anna"),
    ("Дмитрий", "Dmitrii"),
    ("Ольга", "Olga"),
    ("Алексей", "Aleksei"),
    ("Наталья", "Natalia"),
)
# (romaji, kanji, hiragana): PN groups alphabetic=ideographic=phonetic, as in PS3.5 H.3.
_JAPANESE_FAMILY = (
    ("Yamada", "山田", "やまだ"),
    ("Tanaka", "田中", "たなか"),
    ("Suzuki", "鈴木", "すずき"),
    ("Sato", "佐藤", "さとう"),
    ("Takahashi", "高橋", "たかはし"),
    ("Watanabe", "渡辺", "わたなべ"),
    ("Ito", "伊藤", "いとう"),
    ("Nakamura", "中村", "なかむら"),
)
_JAPANESE_GIVEN = (
    ("Tarou", "太郎", "たろう"),
    ("Hanako", "花子", "はなこ"),
    ("Ichiro", "一郎", "いちろう"),
    ("Yuki", "由紀", "ゆき"),
    ("Kenji", "健二", "けんじ"),
    ("Akiko", "明子", "あきこ"),
    ("Hiroshi", "博", "ひろし"),
)
# (romanised, hanja, hangul): PS3.5 I.2 style.
_KOREAN_FAMILY = (
    ("Hong", "洪", "홍"),
    ("Kim", "金", "김"),
    ("Lee", "李", "이"),
    ("Park", "朴", "박"),
    ("Choi", "崔", "최"),
    ("Jung", "鄭", "정"),
)
_KOREAN_GIVEN = (
    ("Gildong", "吉洞", "길동"),
    ("Minsu", "敏洙", "민수"),
    ("Jiyeon", "智娟", "지연"),
    ("Hyejin", "惠珍", "혜진"),
    ("Sujin", "秀珍", "수진"),
)
# (pinyin, hanzi): PS3.5 J style (the phonetic group left out).
_CHINESE_FAMILY = (
    ("Wang", "王"),
    ("Li", "李"),
    ("Zhang", "张"),
    ("Liu", "刘"),
    ("Chen", "陈"),
    ("Yang", "杨"),
    ("Zhao", "赵"),
    ("Huang", "黄"),
)
_CHINESE_GIVEN = (
    ("XiaoDong", "小东"),
    ("Na", "娜"),
    ("Wei", "伟"),
    ("Yang", "洋"),
    ("Jing", "静"),
    ("Min", "敏"),
    ("Lei", "磊"),
    ("Fang", "芳"),
)

# Non-ASCII scripts and their relative weights among non-ASCII patients.
_SCRIPTS = ("latin", "greek", "cyrillic", "japanese", "korean", "chinese")
_SCRIPT_CUM = (30, 40, 55, 75, 87, 100)
# Specific Character Set choices per script: (values, weight).
_CHARSETS: dict[str, tuple[tuple[tuple[str, ...] | None, int], ...]] = {
    "ascii": ((None, 70), (("ISO_IR 100",), 20), (("ISO_IR 192",), 10)),
    "latin": ((("ISO_IR 100",), 70), (("ISO_IR 192",), 30)),
    "greek": ((("ISO_IR 126",), 60), (("ISO_IR 192",), 40)),
    "cyrillic": ((("ISO_IR 144",), 60), (("ISO_IR 192",), 40)),
    "japanese": ((("ISO 2022 IR 6", "ISO 2022 IR 87"), 50), (("", "ISO 2022 IR 87"), 20), (("ISO_IR 192",), 30)),
    "korean": ((("", "ISO 2022 IR 149"), 60), (("ISO_IR 192",), 40)),
    "chinese": ((("GB18030",), 60), (("ISO_IR 192",), 40)),
}


def _person_name(rng: random.Random, script: str) -> str:
    """A PN value in ``script``; ASCII names vary in case and in their optional components."""
    if script == "ascii":
        name = f"{rng.choice(_ASCII_FAMILY)}^{rng.choice(_ASCII_GIVEN)}"
        r = rng.random()
        if r < 0.15:
            name += f"^{rng.choice('ABCDEFGHJKLMNPRSTW')}"
        elif r < 0.18:
            name += rng.choice(("^^^JR", "^^DR.^", "^^^III"))
        return name.title() if rng.random() < 0.3 else name
    if script == "latin":
        name = f"{rng.choice(_LATIN_FAMILY)}^{rng.choice(_LATIN_GIVEN)}"
        return name.upper() if rng.random() < 0.2 else name
    if script in ("greek", "cyrillic"):
        fam, giv = (_GREEK_FAMILY, _GREEK_GIVEN) if script == "greek" else (_CYRILLIC_FAMILY, _CYRILLIC_GIVEN)
        (f_native, f_latin), (g_native, g_latin) = rng.choice(fam), rng.choice(giv)
        if rng.random() < 0.25:
            return f"{f_latin}^{g_latin}={f_native}^{g_native}"
        return f"{f_native}^{g_native}"
    if script == "chinese":
        (f_latin, f_han), (g_latin, g_han) = rng.choice(_CHINESE_FAMILY), rng.choice(_CHINESE_GIVEN)
        return f"{f_latin}^{g_latin}={f_han}^{g_han}"
    families, givens = (_JAPANESE_FAMILY, _JAPANESE_GIVEN) if script == "japanese" else (_KOREAN_FAMILY, _KOREAN_GIVEN)
    (f_latin, f_ideo, f_phon), (g_latin, g_ideo, g_phon) = rng.choice(families), rng.choice(givens)
    return f"{f_latin}^{g_latin}={f_ideo}^{g_ideo}={f_phon}^{g_phon}"


def _non_ascii_names() -> frozenset[str]:
    names: set[str] = set()
    for f in _LATIN_FAMILY:
        for g in _LATIN_GIVEN:
            names.update((f"{f}^{g}", f"{f}^{g}".upper()))
    for fam, giv in ((_GREEK_FAMILY, _GREEK_GIVEN), (_CYRILLIC_FAMILY, _CYRILLIC_GIVEN)):
        for f_native, f_latin in fam:
            for g_native, g_latin in giv:
                names.update((f"{f_native}^{g_native}", f"{f_latin}^{g_latin}={f_native}^{g_native}"))
    for f_latin, f_han in _CHINESE_FAMILY:
        for g_latin, g_han in _CHINESE_GIVEN:
            names.add(f"{f_latin}^{g_latin}={f_han}^{g_han}")
    for families, givens in ((_JAPANESE_FAMILY, _JAPANESE_GIVEN), (_KOREAN_FAMILY, _KOREAN_GIVEN)):
        for family in families:
            for given in givens:
                names.add(f"{family[0]}^{given[0]}={family[1]}^{given[1]}={family[2]}^{given[2]}")
    return frozenset(names)


#: Every non-ASCII PatientName the generator can produce (for round-trip tests).
NON_ASCII_NAMES: frozenset[str] = _non_ascii_names()

# --------------------------------------------------------------------------------------------
# Explicit VR Little Endian encoding
# --------------------------------------------------------------------------------------------

_SHORT = struct.Struct("<HH2sH")
_LONG = struct.Struct("<HH2s2xI")
_LONG_VRS = frozenset({"OB", "OD", "OF", "OL", "OV", "OW", "SQ", "SV", "UC", "UN", "UR", "UT", "UV"})
_NUL_PADDED = frozenset({"UI", "OB", "UN"})
_CHARSET_VRS = frozenset({"SH", "LO", "ST", "LT", "UT", "UC", "PN"})
_ITEM = struct.Struct("<HHI")


def _element(tag: int, vr: str, value: bytes) -> bytes:
    """One encoded data element, padded to even length as PS3.5 7.1 requires."""
    if len(value) & 1:
        value += b"\0" if vr in _NUL_PADDED else b" "
    if vr in _LONG_VRS:
        return _LONG.pack(tag >> 16, tag & 0xFFFF, vr.encode(), len(value)) + value
    if len(value) > 0xFFFF:
        raise ValueError(f"value of {tag:08X} too long for VR {vr}")
    return _SHORT.pack(tag >> 16, tag & 0xFFFF, vr.encode(), len(value)) + value


def _sequence(tag: int, items: Sequence[dict[int, bytes]]) -> bytes:
    """A sequence of defined-length items, each a dict of encoded elements."""
    body = []
    for item in items:
        content = b"".join(item[t] for t in sorted(item))
        body.append(_ITEM.pack(0xFFFE, 0xE000, len(content)) + content)
    return _element(tag, "SQ", b"".join(body))


@functools.cache
def _kw(keyword: str) -> tuple[int, str]:
    """(tag, VR) of a keyword from pydicom's dictionary, so no tag is typed by hand."""
    tag = tag_for_keyword(keyword)
    if tag is None:
        raise KeyError(keyword)
    return tag, dictionary_VR(tag)


_SOP_INSTANCE_UID = _kw("SOPInstanceUID")[0]
_INSTANCE_NUMBER = _kw("InstanceNumber")[0]
_CONTENT_TIME = _kw("ContentTime")[0]
_IMAGE_POSITION = _kw("ImagePositionPatient")[0]
_SLICE_LOCATION = _kw("SliceLocation")[0]
_PIXEL_DATA = _kw("PixelData")[0]


class _Template:
    """A series' constant elements as joined byte chunks, with holes for per-instance ones."""

    __slots__ = ("parts", "slots")

    def __init__(self, elements: dict[int, bytes], slot_tags: Sequence[int]) -> None:
        self.parts: list[bytes] = []
        self.slots: list[tuple[int, int]] = []
        run: list[bytes] = []
        for tag in sorted(set(elements) | set(slot_tags)):
            if tag in slot_tags:
                if run:
                    self.parts.append(b"".join(run))
                    run = []
                self.slots.append((tag, len(self.parts)))
                self.parts.append(b"")
            else:
                run.append(elements[tag])
        if run:
            self.parts.append(b"".join(run))

    def render(self, values: dict[int, bytes]) -> bytes:
        parts = self.parts.copy()
        for tag, index in self.slots:
            parts[index] = values[tag]
        return b"".join(parts)


def _ui(value: str) -> bytes:
    return value.encode("ascii")


def _uid(*parts: object) -> str:
    """``2.25.<int>`` from a UUID-shaped (version 8, RFC 4122 variant) 128-bit hash of parts."""
    digest = hashlib.blake2b("/".join(map(str, parts)).encode(), digest_size=16).digest()
    value = int.from_bytes(digest, "big")
    value = (value & ~(0xF << 76)) | (0x8 << 76)
    value = (value & ~(0x3 << 62)) | (0x2 << 62)
    return f"2.25.{value}"


# "benchmarks.generate" is the module's first home: kept so the generated bytes do not change
_IMPLEMENTATION_CLASS_UID = _uid("pacscore", "benchmarks.generate", "implementation", 1)
_IMPLEMENTATION_VERSION = b"PACSCORE_GEN_1"
_PREAMBLE = b"\0" * 128 + b"DICM"


@functools.cache
def _meta_parts(sop_class: str) -> tuple[bytes, bytes]:
    """The file meta elements before and after (0002,0003) for one SOP class."""
    head = _element(0x00020001, "OB", b"\x00\x01") + _element(0x00020002, "UI", _ui(sop_class))
    tail = (
        _element(0x00020010, "UI", _ui(_uids.ExplicitVRLittleEndian))
        + _element(0x00020012, "UI", _ui(_IMPLEMENTATION_CLASS_UID))
        + _element(0x00020013, "SH", _IMPLEMENTATION_VERSION)
    )
    return head, tail


def _part10(sop_class: str, sop_uid_value: bytes, body: bytes) -> bytes:
    head, tail = _meta_parts(sop_class)
    uid_el = _element(0x00020003, "UI", sop_uid_value)
    group_length = len(head) + len(uid_el) + len(tail)
    return b"".join((_PREAMBLE, _element(0x00020000, "UL", struct.pack("<I", group_length)), head, uid_el, tail, body))


class _Writer:
    """Encodes values by keyword in one Specific Character Set and applies ``empty_fraction``."""

    def __init__(self, encodings: list[str], rng: random.Random, empty_fraction: float) -> None:
        self.encodings = encodings
        self.rng = rng
        self.empty_fraction = empty_fraction

    def encode(self, vr: str, value: str) -> bytes:
        if value.isascii():  # every supported character set has ASCII as its default
            return value.encode("ascii")
        if vr not in _CHARSET_VRS:
            raise ValueError(f"non-ASCII value {value!r} for VR {vr}")
        with warnings.catch_warnings():  # pydicom warns and substitutes; a generator must not
            warnings.simplefilter("error")
            if vr == "PN":
                return b"\\".join(PersonName(v).encode(self.encodings) for v in value.split("\\"))
            return encode_string(value, self.encodings)

    def encodable(self, vr: str, value: str) -> bool:
        try:
            self.encode(vr, value)
        except (UserWarning, ValueError, UnicodeError):
            return False
        return True

    def put(self, out: dict[int, bytes], keyword: str, value: str | bytes, vr: str | None = None) -> None:
        tag, dict_vr = _kw(keyword)
        vr = vr or dict_vr
        raw = value if isinstance(value, bytes) else self.encode(vr, value)
        out[tag] = _element(tag, vr, raw)

    def opt(self, out: dict[int, bytes], keyword: str, value: str, absent: bool = True) -> None:
        """Put ``value``, or with ``empty_fraction`` leave it empty (half) or absent (half)."""
        r = self.rng.random()
        if r < self.empty_fraction / 2 or (r < self.empty_fraction and not absent):
            self.put(out, keyword, "")
        elif r >= self.empty_fraction:
            self.put(out, keyword, value)

    def code(self, value: str, scheme: str, meaning: str) -> dict[int, bytes]:
        item: dict[int, bytes] = {}
        self.put(item, "CodeValue", value)
        self.put(item, "CodingSchemeDesignator", scheme)
        self.put(item, "CodeMeaning", meaning)
        return item


# --------------------------------------------------------------------------------------------
# Values: dates, times, numbers
# --------------------------------------------------------------------------------------------


def _da(ordinal: int) -> str:
    d = _dt.date.fromordinal(ordinal)
    return f"{d.year:04d}{d.month:02d}{d.day:02d}"


def _tm(seconds: float, style: int) -> str:
    """TM in one of the forms seen in practice: HHMMSS, HHMMSS.FFFFFF, HHMMSS.FFF, HHMM."""
    seconds %= 86400.0
    whole = int(seconds)
    h, rest = divmod(whole, 3600)
    m, s = divmod(rest, 60)
    if style == 0:
        return f"{h:02d}{m:02d}{s:02d}"
    if style == 3:
        return f"{h:02d}{m:02d}"
    digits = 6 if style == 1 else 3
    frac = min(int((seconds - whole) * 10**digits), 10**digits - 1)
    return f"{h:02d}{m:02d}{s:02d}.{frac:0{digits}d}"


_TIME_STYLE_CUM = (50, 80, 90, 100)


def _age(birth: int, at: int) -> str:
    days = at - birth
    if days >= 730:
        return f"{min(days * 100 // 36525, 999):03d}Y"
    if days >= 62:
        return f"{days * 12 // 365:03d}M"
    return f"{max(days, 0):03d}D"


def _patient_id(rng: random.Random, config: GeneratorConfig, index: int) -> str:
    """A unique ID per patient index in one of several real-world formats."""
    n = (index * 7_919_869 + config.seed * 104_729 + 1_234_567) % 100_000_000
    fmt = rng.choices(range(6), cum_weights=(35, 55, 70, 82, 94, 100))[0]
    if fmt == 0:
        return f"{n:08d}"
    if fmt == 1:
        return f"PID{n:08d}"
    if fmt == 2:
        return f"MRN-{n:08d}"
    if fmt == 3:
        return f"{rng.randint(1995, 2025)}-{n:08d}"
    if fmt == 4:
        return f"{rng.choice('ABCDEFGHKLMNPRSTXZ')}{rng.choice('ABCDEFGHKLMNPRSTXZ')}{n:08d}"
    return f"{n // 10000:04d} {n % 10000:04d}"


# --------------------------------------------------------------------------------------------
# Structure: how many of what (replayed by count_instances)
# --------------------------------------------------------------------------------------------


def _structure(config: GeneratorConfig, index: int) -> list[tuple[str, list[tuple[str, int]]]]:
    """[(primary modality, [(series modality, instance count), ...]), ...] for one patient."""
    rng = random.Random(f"pacscore.generate:structure:{config._structure_key()}:{index}")
    studies = []
    for _ in range(rng.randint(*config.studies_per_patient)):
        primary = rng.choices(_PRIMARY, cum_weights=_PRIMARY_CUM)[0]
        series = []
        for k in range(rng.randint(*config.series_per_study)):
            kind = primary
            if k and primary not in ("SR", "DOC", "OT"):
                r = rng.random()
                if r < 0.07:
                    kind = "SR"
                elif r < 0.11:
                    kind = "DOC"
                elif r < 0.16:
                    kind = "OT"
                elif primary == "PT" and k % 2:
                    kind = "CT"
            count = 1 if kind in _NO_PIXELS else rng.randint(*config.instances_per_series)
            series.append((kind, count))
        studies.append((primary, series))
    return studies


def count_instances(config: GeneratorConfig) -> int:
    """How many instances the configuration generates, from the structure stream alone."""
    return sum(n for p in range(config.patients) for _, series in _structure(config, p) for _, n in series)


# --------------------------------------------------------------------------------------------
# Patients, studies, series
# --------------------------------------------------------------------------------------------


@dataclass
class _Patient:
    patient_id: str
    script: str
    writer: _Writer
    elements: dict[int, bytes]
    birth: int


def _make_patient(
    config: GeneratorConfig,
    rng: random.Random,
    index: int,
    plan: list[tuple[str, list[tuple[str, int]]]],
    first_study: int,
) -> _Patient:
    script = "ascii"
    if rng.random() < config.non_ascii_fraction:
        script = rng.choices(_SCRIPTS, cum_weights=_SCRIPT_CUM)[0]
    name = _person_name(rng, script)
    choices = _CHARSETS[script]
    charset = rng.choices([c for c, _ in choices], weights=[w for _, w in choices])[0]
    if charset == ("ISO_IR 100",) and not _latin1(name):
        charset = ("ISO_IR 192",)
    encodings = convert_encodings(list(charset) if charset else None)
    w = _Writer(encodings, rng, config.empty_fraction)
    out: dict[int, bytes] = {}
    if charset:
        w.put(out, "SpecificCharacterSet", "\\".join(charset))
    if rng.random() < config.empty_fraction / 2:
        w.put(out, "PatientName", "")
    else:
        w.put(out, "PatientName", name)
    patient_id = _patient_id(rng, config, index)
    w.put(out, "PatientID", patient_id)
    if rng.random() < 0.35:
        w.put(out, "IssuerOfPatientID", rng.choice(("HOSP_A", "RIS", "MPI", "CLINIC-NORTH", "UKE")))
    age_years = rng.triangular(0.0, 95.0, 62.0)
    birth = max(first_study - int(age_years * 365.25) - rng.randint(0, 364), _dt.date(1900, 1, 1).toordinal())
    w.opt(out, "PatientBirthDate", _da(birth))
    sex = "F" if any(primary == "MG" for primary, _ in plan) else rng.choices("MFO", cum_weights=(48, 98, 100))[0]
    w.opt(out, "PatientSex", sex)
    return _Patient(patient_id, script, w, out, birth)


def _latin1(text: str) -> bool:
    try:
        text.encode("latin-1")
    except UnicodeEncodeError:
        return False
    return True


@dataclass
class _Study:
    uid: str
    date: int
    time: float
    time_style: int
    catalog: tuple[str, str, tuple[str, ...]]
    elements: dict[int, bytes]


def _make_study(patient: _Patient, primary: str, date: int, uid: str) -> _Study:
    w, rng = patient.writer, patient.writer.rng
    catalog = rng.choice(_STUDIES[primary])
    time_style = rng.choices(range(4), cum_weights=_TIME_STYLE_CUM)[0]
    hour = rng.choices((rng.uniform(7, 19), rng.uniform(0, 24)), cum_weights=(85, 100))[0]
    start = hour * 3600.0
    out: dict[int, bytes] = {}
    w.put(out, "StudyInstanceUID", _ui(uid))
    w.opt(out, "StudyDate", _da(date), absent=False)
    w.opt(out, "StudyTime", _tm(start, time_style), absent=False)
    year = _dt.date.fromordinal(date).year
    accession = rng.choice(
        (
            f"A{year}{rng.randrange(10**6):06d}",
            f"{rng.randrange(10**10):010d}",
            f"ACC-{rng.randrange(10**7)}",
            f"RAD{year % 100:02d}{rng.randrange(10**5):05d}",
        )
    )
    w.opt(out, "AccessionNumber", accession, absent=False)
    description = catalog[0]
    local = _LOCAL_STUDIES.get(patient.script, {}).get(primary)
    if local and rng.random() < 0.4:
        description = rng.choice(local)
    w.opt(out, "StudyDescription", description)
    w.opt(out, "StudyID", str(rng.randint(1, 99999)), absent=False)
    physician = _person_name(rng, patient.script if rng.random() < 0.7 else "ascii")
    if not w.encodable("PN", physician):  # e.g. a Czech name under ISO_IR 100
        physician = _person_name(rng, "ascii")
    w.opt(out, "ReferringPhysicianName", physician, absent=False)
    w.opt(out, "PatientAge", _age(patient.birth, date))
    w.opt(out, "PatientWeight", f"{rng.uniform(45, 120):.1f}")
    institutions = _INSTITUTIONS["ascii"]
    if patient.script != "ascii" and rng.random() < 0.5:
        institutions = _INSTITUTIONS[patient.script]
    w.opt(out, "InstitutionName", rng.choice(institutions))
    return _Study(uid, date, start, time_style, catalog, out)


@dataclass
class _Series:
    uid: str
    modality: str
    template: _Template
    time: float
    time_style: int
    time_step: float
    position: tuple[float, float, float, float] | None  # x, y, first z, z step
    pixels: tuple[str, bytes, int] | None  # VR, base pixel bytes, bytes per sample


def _make_series(patient: _Patient, study: _Study, modality: str, number: int, uid: str) -> _Series:
    w, rng = patient.writer, patient.writer.rng
    out: dict[int, bytes] = {}
    w.put(out, "SOPClassUID", _ui(MODALITY_SOP_CLASSES[modality]))
    w.put(out, "Modality", modality)
    w.put(out, "SeriesInstanceUID", _ui(uid))
    w.opt(out, "SeriesNumber", str(number if rng.random() < 0.9 else number * 100 + 1), absent=False)
    primary_descriptions = study.catalog[2]
    if modality in _EXTRA_SERIES and study.catalog[0] not in (
        "RADIOLOGY REPORT",
        "SCANNED DOCUMENTS",
        "OUTSIDE IMAGES",
    ):
        description = rng.choice(_EXTRA_SERIES[modality])
    else:
        description = primary_descriptions[(number - 1) % len(primary_descriptions)]
    w.opt(out, "SeriesDescription", description)
    if study.catalog[1]:
        w.opt(out, "BodyPartExamined", study.catalog[1])
    series_time = study.time + (number - 1) * rng.uniform(60, 600)
    w.opt(out, "SeriesDate", _da(study.date))
    w.opt(out, "SeriesTime", _tm(series_time, study.time_style))
    manufacturer, model = rng.choice(_EQUIPMENT[modality])
    w.opt(out, "Manufacturer", manufacturer, absent=False)
    w.put(out, "ManufacturerModelName", model)
    w.opt(out, "StationName", f"{modality}{rng.randint(1, 9)}{rng.choice(('', '_ER', 'OC', '-NORTH'))}")
    operators = _person_name(rng, "ascii")
    if rng.random() < 0.3:
        operators += "\\" + _person_name(rng, "ascii")
    w.opt(out, "OperatorsName", operators)
    if modality not in _NO_PIXELS:
        w.opt(out, "ProtocolName", f"{study.catalog[1] or modality} {description}"[:64])
    w.put(out, "ContentDate", _da(study.date))
    if modality in ("DOC", "OT"):  # the SC Equipment module
        w.put(out, "ConversionType", "WSD" if modality == "OT" else "SD")
    slots = [_SOP_INSTANCE_UID, _INSTANCE_NUMBER, _CONTENT_TIME]
    position = pixels = None
    if modality == "SR":
        _sr_content(w, out, patient.script, study.catalog[0])
    elif modality == "DOC":
        _pdf_content(w, out, description)
    else:
        pixels = _image_content(w, out, modality, description)
        slots.append(_PIXEL_DATA)
        if modality in _CROSS_SECTIONAL:
            position = _geometry(w, out, modality, uid)
            slots += [_IMAGE_POSITION, _SLICE_LOCATION]
    step = rng.choice((0.25, 0.5, 1.0, 2.0, 7.5))
    template = _Template({**patient.elements, **study.elements, **out}, slots)
    return _Series(uid, modality, template, series_time + 30, study.time_style, step, position, pixels)


def _image_content(w: _Writer, out: dict[int, bytes], modality: str, description: str) -> tuple[str, bytes, int]:
    """Image attributes and a tiny 8x8 pixel module; returns (VR, base pixel bytes, sample size)."""
    rng = w.rng
    image_types = _IMAGE_TYPES[modality]
    if modality == "CT" and description == "SCOUT":
        image_type = image_types[2]
    elif "MPR" in description or "CORONAL" in description or "MIP" in description:
        image_type = "DERIVED\\SECONDARY\\REFORMATTED"
    else:
        image_type = rng.choice(image_types[:2])
    w.put(out, "ImageType", image_type)
    w.put(out, "AcquisitionNumber", str(rng.randint(1, 5)))
    if modality in ("ES", "OT") or (modality == "US" and rng.random() < 0.5):
        layout = "rgb8"
    elif modality in ("US", "XA"):
        layout = "mono8"
    else:
        layout = "mono16"
    rows = cols = 8
    w.put(out, "Rows", struct.pack("<H", rows))
    w.put(out, "Columns", struct.pack("<H", cols))
    samples = 3 if layout == "rgb8" else 1
    bits = 16 if layout == "mono16" else 8
    stored = 12 if bits == 16 else 8
    w.put(out, "SamplesPerPixel", struct.pack("<H", samples))
    w.put(out, "PhotometricInterpretation", "RGB" if samples == 3 else "MONOCHROME2")
    if samples == 3:
        w.put(out, "PlanarConfiguration", struct.pack("<H", 0))
    w.put(out, "BitsAllocated", struct.pack("<H", bits))
    w.put(out, "BitsStored", struct.pack("<H", stored))
    w.put(out, "HighBit", struct.pack("<H", stored - 1))
    signed = modality == "CT" and rng.random() < 0.5  # vendors differ: signed HU or unsigned + offset
    w.put(out, "PixelRepresentation", struct.pack("<H", int(signed)))
    if modality == "CT":
        w.put(out, "KVP", rng.choice(("100", "120", "140")))
        w.put(out, "RescaleIntercept", "0" if signed else "-1024")
        w.put(out, "RescaleSlope", "1")
        w.put(out, "RescaleType", "HU")
        center, width = rng.choice(
            (("40", "400"), ("-600", "1500"), ("40\\-600", "400\\1500"), ("35\\700", "80\\3200"))
        )
        w.put(out, "WindowCenter", center)
        w.put(out, "WindowWidth", width)
    elif modality == "MR":
        w.put(out, "ScanningSequence", rng.choice(("SE", "GR", "SE\\IR", "EP")))
        w.put(out, "SequenceVariant", rng.choice(("SK\\SP", "SP\\OSP", "NONE")))
        w.put(out, "MagneticFieldStrength", rng.choice(("1.5", "3")))
        w.put(out, "EchoTime", f"{rng.uniform(2, 120):.2f}")
        w.put(out, "RepetitionTime", f"{rng.uniform(5, 9000):.1f}")
        w.put(out, "SoftwareVersions", rng.choice(("syngo MR E11", "VE11C\\SYNGO", "DV26.0_R03")))
    elif modality == "PT":
        w.put(out, "Units", "BQML")
        w.put(out, "DecayCorrection", "START")
        w.put(out, "CorrectedImage", "DECY\\ATTN\\SCAT\\DTIM")
    elif modality in ("CR", "DX", "MG"):
        view = description.split()[-1] if modality == "MG" else description
        w.put(out, "ViewPosition", {"PA": "PA", "AP": "AP", "LATERAL": "LL", "CC": "CC", "MLO": "MLO"}.get(view, ""))
        if modality == "MG":
            w.put(out, "ImageLaterality", "L" if description.startswith("L") else "R")
        if modality != "CR":
            w.put(out, "PresentationIntentType", "FOR PRESENTATION")
        w.put(out, "ImagerPixelSpacing", rng.choice(("0.1\\0.1", "0.139\\0.139", "0.143\\0.143")))
    elif modality == "XA":
        w.put(out, "KVP", str(rng.randint(60, 110)))
    if modality in ("CR", "DX", "MG", "XA", "NM", "US"):
        w.put(out, "PatientOrientation", rng.choice(("A\\F", "P\\F", "L\\F", "")))
    size = rows * cols * samples * bits // 8
    base = rng.randbytes(size)
    if bits == 16:  # keep values within Bits Stored
        mask = int.from_bytes(b"\xff\x0f" * (size // 2), "little")
        base = (int.from_bytes(base, "little") & mask).to_bytes(size, "little")
    return ("OW" if bits == 16 else "OB"), base, bits // 8


def _geometry(w: _Writer, out: dict[int, bytes], modality: str, series_uid: str) -> tuple[float, float, float, float]:
    rng = w.rng
    w.put(out, "FrameOfReferenceUID", _ui(_uid(series_uid, "frame-of-reference")))
    w.put(out, "PositionReferenceIndicator", "")
    w.put(out, "PatientPosition", rng.choice(("HFS", "HFS", "FFS", "HFP")))
    w.put(out, "ImageOrientationPatient", rng.choice(("1\\0\\0\\0\\1\\0", "0\\1\\0\\0\\0\\-1", "1\\0\\0\\0\\0\\-1")))
    spacing = rng.choice((0.488281, 0.703125, 0.9765625, 2.0 if modality == "PT" else 1.5))
    w.put(out, "PixelSpacing", f"{spacing:g}\\{spacing:g}")
    thickness = rng.choice((0.625, 1.25, 2.5, 3.0, 5.0))
    w.put(out, "SliceThickness", f"{thickness:g}")
    return (
        round(rng.uniform(-250, -150), 3),
        round(rng.uniform(-250, -150), 3),
        round(rng.uniform(-400, 100), 2),
        thickness if rng.random() < 0.5 else -thickness,
    )


def _sr_content(w: _Writer, out: dict[int, bytes], script: str, title: str) -> None:
    """A Basic Text SR report: a container of TEXT findings and an impression."""
    rng = w.rng
    impression = "No acute abnormality."
    if script in _LOCAL_IMPRESSION and rng.random() < 0.5:
        impression = _LOCAL_IMPRESSION[script]
    finding = rng.choice(
        (
            "Lungs are clear. No pleural effusion.",
            "Normal study for age.",
            "Mild degenerative changes. No fracture.",
            "Stable 4 mm nodule, right upper lobe.",
        )
    )
    w.put(out, "ValueType", "CONTAINER")
    tag = _kw("ConceptNameCodeSequence")[0]
    out[tag] = _sequence(tag, [w.code("11528-7", "LN", "Radiology Report")])
    w.put(out, "ContinuityOfContent", "SEPARATE")
    w.put(out, "CompletionFlag", rng.choice(("COMPLETE", "PARTIAL")))
    w.put(out, "VerificationFlag", "UNVERIFIED")
    for keyword in ("ReferencedPerformedProcedureStepSequence", "PerformedProcedureCodeSequence"):
        t = _kw(keyword)[0]
        out[t] = _sequence(t, [])
    items = []
    for code, meaning, text in (("121071", "Finding", finding), ("121073", "Impression", impression)):
        item: dict[int, bytes] = {}
        w.put(item, "RelationshipType", "CONTAINS")
        w.put(item, "ValueType", "TEXT")
        t = _kw("ConceptNameCodeSequence")[0]
        item[t] = _sequence(t, [w.code(code, "DCM", meaning)])
        w.put(item, "TextValue", text)
        items.append(item)
    t = _kw("ContentSequence")[0]
    out[t] = _sequence(t, items)


@functools.cache
def _tiny_pdf(title: str) -> bytes:
    """A one-page PDF with correct cross-reference offsets, so viewers open it."""
    text = title.replace("\\", "").replace("(", "").replace(")", "")
    stream = f"BT /F1 18 Tf 72 720 Td ({text}) Tj ET".encode("latin-1", "replace")
    objects = [
        b"<< /Type /Catalog /Pages 2 0 R >>",
        b"<< /Type /Pages /Kids [3 0 R] /Count 1 >>",
        b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] /Contents 4 0 R "
        b"/Resources << /Font << /F1 5 0 R >> >> >>",
        b"<< /Length %d >>\nstream\n%s\nendstream" % (len(stream), stream),
        b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>",
    ]
    pdf = bytearray(b"%PDF-1.4\n")
    offsets = []
    for number, body in enumerate(objects, 1):
        offsets.append(len(pdf))
        pdf += b"%d 0 obj\n%s\nendobj\n" % (number, body)
    xref = len(pdf)
    pdf += b"xref\n0 %d\n0000000000 65535 f \n" % (len(objects) + 1)
    pdf += b"".join(b"%010d 00000 n \n" % o for o in offsets)
    pdf += b"trailer\n<< /Size %d /Root 1 0 R >>\nstartxref\n%d\n%%%%EOF\n" % (len(objects) + 1, xref)
    return bytes(pdf)


def _pdf_content(w: _Writer, out: dict[int, bytes], title: str) -> None:
    pdf = _tiny_pdf(title)
    w.put(out, "BurnedInAnnotation", "YES")
    w.put(out, "DocumentTitle", title)
    tag = _kw("ConceptNameCodeSequence")[0]
    out[tag] = _sequence(tag, [w.code("18748-4", "LN", "Diagnostic imaging report")] if w.rng.random() < 0.5 else [])
    w.put(out, "AcquisitionDateTime", "")
    w.put(out, "MIMETypeOfEncapsulatedDocument", "application/pdf")
    w.put(out, "EncapsulatedDocument", pdf, vr="OB")
    w.put(out, "EncapsulatedDocumentLength", struct.pack("<I", len(pdf)))


# --------------------------------------------------------------------------------------------
# The public iterators
# --------------------------------------------------------------------------------------------


def generate_records(config: GeneratorConfig) -> Iterator[Record]:
    """Every instance as a :class:`Record` (UIDs of its hierarchy and its Part 10 bytes)."""
    key = config._values_key()
    first_day = _dt.date(config.start_year, 1, 1).toordinal()
    last_day = _dt.date(config.end_year, 12, 31).toordinal()
    for p in range(config.patients):
        plan = _structure(config, p)
        rng = random.Random(f"pacscore.generate:values:{key}:{p}")
        dates = sorted(rng.randint(first_day, last_day) for _ in plan)
        patient = _make_patient(config, rng, p, plan, dates[0])
        for s, ((primary, series_plan), date) in enumerate(zip(plan, dates)):
            study = _make_study(patient, primary, date, _uid(key, p, s))
            for k, (modality, count) in enumerate(series_plan):
                series = _make_series(patient, study, modality, k + 1, _uid(key, p, s, k))
                yield from _instances(series, patient.patient_id, study.uid, count)


def _instances(series: _Series, patient_id: str, study_uid: str, count: int) -> Iterator[Record]:
    """Fill the series template's holes for each instance and wrap it in Part 10."""
    sop_class = MODALITY_SOP_CLASSES[series.modality]
    render = series.template.render
    style = series.time_style
    position, pixels = series.position, series.pixels
    for i in range(count):
        sop_uid = _uid(series.uid, i)
        uid_value = sop_uid.encode()
        values = {
            _SOP_INSTANCE_UID: _element(_SOP_INSTANCE_UID, "UI", uid_value),
            _INSTANCE_NUMBER: _element(_INSTANCE_NUMBER, "IS", b"%d" % (i + 1)),
            _CONTENT_TIME: _element(_CONTENT_TIME, "TM", _tm(series.time + i * series.time_step, style).encode()),
        }
        if pixels is not None:
            vr, base, sample = pixels
            first = (i & 0x0FFF).to_bytes(2, "little") if sample == 2 else bytes((i & 0xFF,))
            values[_PIXEL_DATA] = _element(_PIXEL_DATA, vr, first + base[sample:])
        if position is not None:
            x, y, z0, dz = position
            z = b"%.2f" % (z0 + i * dz)
            values[_IMAGE_POSITION] = _element(_IMAGE_POSITION, "DS", b"%.3f\\%.3f\\%s" % (x, y, z))
            values[_SLICE_LOCATION] = _element(_SLICE_LOCATION, "DS", z)
        yield Record(patient_id, study_uid, series.uid, sop_uid, _part10(sop_class, uid_value, render(values)))


def generate_bytes(config: GeneratorConfig) -> Iterator[tuple[str, bytes]]:
    """(SOPInstanceUID, Part 10 bytes) for every instance -- the fast path."""
    for record in generate_records(config):
        yield record.sop_uid, record.data


def generate_datasets(config: GeneratorConfig) -> Iterator[pydicom.Dataset]:
    """Every instance as a pydicom Dataset with its file meta.

    The datasets are parsed from :func:`generate_bytes`, so the two views cannot disagree.
    """
    for _, data in generate_bytes(config):
        yield pydicom.dcmread(io.BytesIO(data))


def write_files(config: GeneratorConfig, folder: str | Path) -> int:
    """Write ``<folder>/<StudyUID>/<SeriesUID>/<SOPUID>.dcm`` for every instance; return the count."""
    folder = Path(folder)
    made: set[Path] = set()
    count = 0
    for record in generate_records(config):
        directory = folder / record.study_uid / record.series_uid
        if directory not in made:
            directory.mkdir(parents=True, exist_ok=True)
            made.add(directory)
        (directory / f"{record.sop_uid}.dcm").write_bytes(record.data)
        count += 1
    return count


def first_instances(instances: int, seed: int = 0) -> list[bytes]:
    """The Part-10 bytes of the first ``instances`` instances of a seeded data set: what the
    adapter benchmarks load (about ten instances per patient)."""
    gen = generate_bytes(GeneratorConfig(patients=max(1, instances // 10 + 1), seed=seed))
    return [data for _, data in itertools.islice(gen, instances)]


def config_for(instances: int, seed: int = 1) -> GeneratorConfig:
    """A configuration (default ranges) whose patient count is fitted to give about ``instances``
    instances, usually a few more: take the first ``instances`` of it."""
    patients = max(1, instances // 25)
    for _ in range(6):  # count_instances is cheap: adjust the patient count to the target
        n = count_instances(GeneratorConfig(patients=patients, seed=seed))
        if n >= instances:
            break
        patients = int(patients * instances / max(n, 1)) + 1
    return GeneratorConfig(patients=patients, seed=seed)
