"""The Query/Retrieve information model as data (PS3.4 C.6; docs/matching.md §9).

Which attributes belong to which level decides where ingest files them and which keys a query
may use at each level. Patient Root has four levels; Study Root folds the patient attributes into
the study level; Patient/Study Only stops at STUDY.
"""

from __future__ import annotations

from pydicom.datadict import dictionary_VR, keyword_for_tag, tag_for_keyword

from .errors import QueryError

LEVELS = ("PATIENT", "STUDY", "SERIES", "IMAGE")

#: model name -> the levels it has, top down
MODELS: dict[str, tuple[str, ...]] = {
    "PATIENT": ("PATIENT", "STUDY", "SERIES", "IMAGE"),
    "STUDY": ("STUDY", "SERIES", "IMAGE"),
    "PATIENT_STUDY_ONLY": ("PATIENT", "STUDY"),
}
MODEL_ALIASES = {
    "PATIENT_ROOT": "PATIENT",
    "STUDY_ROOT": "STUDY",
    "P": "PATIENT",
    "S": "STUDY",
    "PATIENT": "PATIENT",
    "STUDY": "STUDY",
    "PATIENT_STUDY_ONLY": "PATIENT_STUDY_ONLY",
    "PATIENTSTUDYONLY": "PATIENT_STUDY_ONLY",
    "O": "PATIENT_STUDY_ONLY",
}

T_PATIENT_ID = 0x00100020
T_ISSUER = 0x00100021
T_PATIENT_NAME = 0x00100010
T_STUDY_UID = 0x0020000D
T_SERIES_UID = 0x0020000E
T_SOP_UID = 0x00080018
T_SOP_CLASS = 0x00080016
T_MODALITY = 0x00080060
T_QR_LEVEL = 0x00080052
T_CHARSET = 0x00080005
T_TZ = 0x00080201
T_INSTANCE_NUMBER = 0x00200013

#: the unique key of each level (PS3.4 C.6.1.1); the patient's is PatientID (+ Issuer in pacscore)
UNIQUE_KEY = {"PATIENT": T_PATIENT_ID, "STUDY": T_STUDY_UID, "SERIES": T_SERIES_UID, "IMAGE": T_SOP_UID}

#: attributes that are never match keys: Specific Character Set, Query/Retrieve Level and View,
#: Timezone Offset From UTC (PS3.4 C.2.2.2; docs/matching.md §2, step 1)
NEVER_MATCHED = frozenset({T_CHARSET, T_QR_LEVEL, 0x00080053, T_TZ})

PATIENT_KEYWORDS = (
    "PatientName",
    "PatientID",
    "IssuerOfPatientID",
    "IssuerOfPatientIDQualifiersSequence",
    "ReferencedPatientSequence",
    "PatientBirthDate",
    "PatientBirthTime",
    "PatientSex",
    "OtherPatientIDsSequence",
    "OtherPatientNames",
    "EthnicGroup",
    "PatientComments",
    "PatientBirthName",
    "PatientMotherBirthName",
    "PatientAddress",
    "PatientTelephoneNumbers",
    "PatientSpeciesDescription",
    "PatientBreedDescription",
    "ResponsiblePerson",
    "ResponsibleOrganization",
    "PatientIdentityRemoved",
    "DeidentificationMethod",
    "QualityControlSubject",
    "StrainDescription",
    "PatientReligiousPreference",
)
#: computed at the patient level (C.3.4)
PATIENT_COMPUTED = ("NumberOfPatientRelatedStudies", "NumberOfPatientRelatedSeries", "NumberOfPatientRelatedInstances")

STUDY_KEYWORDS = (
    "StudyDate",
    "StudyTime",
    "AccessionNumber",
    "IssuerOfAccessionNumberSequence",
    "StudyID",
    "StudyInstanceUID",
    "ReferringPhysicianName",
    "StudyDescription",
    "ProcedureCodeSequence",
    "NameOfPhysiciansReadingStudy",
    "AdmittingDiagnosesDescription",
    "ReferencedStudySequence",
    "PatientAge",
    "PatientSize",
    "PatientWeight",
    "Occupation",
    "AdditionalPatientHistory",
    "OtherStudyNumbers",
    "PhysiciansOfRecord",
    "RequestingPhysician",
    "RequestedProcedureDescription",
    "ReasonForTheRequestedProcedure",
    "StudyComments",
    "PatientSizeCodeSequence",
    "MedicalAlerts",
    "Allergies",
    "SmokingStatus",
    "PregnancyStatus",
    "LastMenstrualDate",
    "AdmissionID",
    "ConsultingPhysicianName",
    "RequestedProcedureID",
    "StudyStatusID",
)
STUDY_COMPUTED = (
    "ModalitiesInStudy",
    "SOPClassesInStudy",
    "NumberOfStudyRelatedSeries",
    "NumberOfStudyRelatedInstances",
)

SERIES_KEYWORDS = (
    "Modality",
    "SeriesNumber",
    "SeriesInstanceUID",
    "SeriesDescription",
    "SeriesDate",
    "SeriesTime",
    "BodyPartExamined",
    "ProtocolName",
    "Laterality",
    "PatientPosition",
    "OperatorsName",
    "PerformingPhysicianName",
    "PerformedProcedureStepStartDate",
    "PerformedProcedureStepStartTime",
    "PerformedProcedureStepID",
    "PerformedProcedureStepDescription",
    "RequestAttributesSequence",
    "FrameOfReferenceUID",
    "PositionReferenceIndicator",
    "Manufacturer",
    "ManufacturerModelName",
    "InstitutionName",
    "InstitutionAddress",
    "StationName",
    "InstitutionalDepartmentName",
    "DeviceSerialNumber",
    "SoftwareVersions",
    "SeriesDescriptionCodeSequence",
    "ReferencedPerformedProcedureStepSequence",
    "AnatomicalOrientationType",
    "SmallestPixelValueInSeries",
    "LargestPixelValueInSeries",
    "RelatedSeriesSequence",
    "SeriesType",
)
SERIES_COMPUTED = ("NumberOfSeriesRelatedInstances",)

IMAGE_COMPUTED = ("AvailableTransferSyntaxUID",)

#: the required and common optional keys of the IMAGE level kept in the instance record; other
#: image attributes are answered from the stored header
IMAGE_KEYWORDS = (
    "InstanceNumber",
    "SOPInstanceUID",
    "SOPClassUID",
    "RelatedGeneralSOPClassUID",
    "ConceptNameCodeSequence",
    "ContentTemplateSequence",
    "ContainerIdentifier",
    "SpecimenDescriptionSequence",
    "AlternateRepresentationSequence",
    "ContentDate",
    "ContentTime",
    "AcquisitionDate",
    "AcquisitionTime",
    "AcquisitionDateTime",
    "AcquisitionNumber",
    "ImageType",
    "Rows",
    "Columns",
    "BitsAllocated",
    "NumberOfFrames",
    "ImageComments",
    "InstanceCreationDate",
    "InstanceCreationTime",
    "CompletionFlag",
    "VerificationFlag",
    "DocumentTitle",
    "MIMETypeOfEncapsulatedDocument",
    "ReferencedSeriesSequence",
    "PresentationCreationDate",
    "ContentLabel",
    "ContentDescription",
    "ImageLaterality",
    "ViewPosition",
    "TimezoneOffsetFromUTC",
    "SpecificCharacterSet",
)


def _tags(keywords: tuple[str, ...]) -> tuple[int, ...]:
    out = []
    for kw in keywords:
        tag = tag_for_keyword(kw)
        if tag is None:
            raise AssertionError(f"unknown keyword in the model: {kw}")
        out.append(tag)
    return tuple(out)


def _tag(keyword: str) -> int:
    """The tag of a keyword the model names (an int, never None: the model's keywords all exist)."""
    return _tags((keyword,))[0]


PATIENT_TAGS = frozenset(_tags(PATIENT_KEYWORDS))
STUDY_TAGS = frozenset(_tags(STUDY_KEYWORDS))
SERIES_TAGS = frozenset(_tags(SERIES_KEYWORDS))
COMPUTED = {
    "PATIENT": frozenset(_tags(PATIENT_COMPUTED)),
    "STUDY": frozenset(_tags(STUDY_COMPUTED)),
    "SERIES": frozenset(_tags(SERIES_COMPUTED)),
    "IMAGE": frozenset(_tags(IMAGE_COMPUTED)),
}
ALL_COMPUTED = frozenset().union(*COMPUTED.values())

T_MODALITIES_IN_STUDY = _tag("ModalitiesInStudy")
T_SOP_CLASSES_IN_STUDY = _tag("SOPClassesInStudy")
T_N_PAT_STUDIES = _tag("NumberOfPatientRelatedStudies")
T_N_PAT_SERIES = _tag("NumberOfPatientRelatedSeries")
T_N_PAT_INSTANCES = _tag("NumberOfPatientRelatedInstances")
T_N_STUDY_SERIES = _tag("NumberOfStudyRelatedSeries")
T_N_STUDY_INSTANCES = _tag("NumberOfStudyRelatedInstances")
T_N_SERIES_INSTANCES = _tag("NumberOfSeriesRelatedInstances")
T_AVAILABLE_TS = _tag("AvailableTransferSyntaxUID")


def storage_level(tag: int) -> str:
    """The entity level whose record keeps ``tag`` (anything unlisted lives with the instance)."""
    if tag in PATIENT_TAGS:
        return "PATIENT"
    if tag in STUDY_TAGS or tag in COMPUTED["STUDY"]:
        return "STUDY"
    if tag in SERIES_TAGS or tag in COMPUTED["SERIES"]:
        return "SERIES"
    if tag in COMPUTED["PATIENT"]:
        return "PATIENT"
    return "IMAGE"


def query_level(tag: int, model: str) -> str:
    """The level at which ``tag`` is a key in ``model`` (Study Root puts patient keys on STUDY)."""
    level = storage_level(tag)
    if level == "PATIENT" and model == "STUDY":
        return "STUDY" if tag not in COMPUTED["PATIENT"] else "PATIENT"
    return level


def normalise_model(model: str) -> str:
    key = str(model).upper().replace(" ", "_").replace("-", "_")
    if key not in MODEL_ALIASES:
        raise QueryError("model", f"unknown information model {model!r} (use PATIENT, STUDY or PATIENT_STUDY_ONLY)")
    return MODEL_ALIASES[key]


def normalise_level(level: str, model: str) -> str:
    name = str(level).strip().upper()
    if name == "INSTANCE":
        name = "IMAGE"
    if name not in MODELS[model]:
        raise QueryError(
            "QueryRetrieveLevel",
            f"unknown level {level!r} for the {model} root model (levels: {', '.join(MODELS[model])})",
        )
    return name


def vr_of(tag: int) -> str:
    """The dictionary VR of a public tag ('UN' for private or unknown tags)."""
    vr = _VRS.get(tag)
    if vr is not None:
        return vr
    try:
        vr = dictionary_VR(tag)
    except KeyError:
        return "UN"  # not kept: an application may add the tag to pydicom's dictionary later
    # ambiguous VRs ("US or SS", "OB or OW") resolve to the first; matching treats them alike
    vr = vr.split(" or ")[0]
    if len(_VRS) < 8192:
        _VRS[tag] = vr
    return vr


#: tag -> VR of the tags looked up so far (pydicom's lookup parses the tag each time)
_VRS: dict[int, str] = {}


def keyword_of(tag: int) -> str:
    """The dictionary keyword of ``tag``, or its 8 hex digits (cached like ``vr_of``: every
    query names its keys' keywords, and pydicom's lookup parses the tag each time)."""
    keyword = _KEYWORDS.get(tag)
    if keyword is None:
        keyword = keyword_for_tag(tag) or f"{tag:08X}"
        if len(_KEYWORDS) < 8192:
            _KEYWORDS[tag] = keyword
    return keyword


_KEYWORDS: dict[int, str] = {}
