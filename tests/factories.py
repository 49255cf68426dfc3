"""Small DICOM instances built in the tests, the real files pydicom ships, and the URLs of the
session's S3 test server (the ``s3_endpoint`` fixture)."""

from __future__ import annotations

import hashlib
import io
from pathlib import Path

import pydicom
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.uid import ExplicitVRLittleEndian

CT_IMAGE = "1.2.840.10008.5.1.4.1.1.2"
MR_IMAGE = "1.2.840.10008.5.1.4.1.1.4"


def make_instance(
    *,
    sop: str,
    study: str = "1.2.3",
    series: str = "1.2.3.1",
    patient_id: str = "P1",
    patient_name: str = "Doe^John",
    modality: str = "CT",
    study_date: str = "20200115",
    study_time: str = "101500",
    instance_number: str = "1",
    sop_class: str = CT_IMAGE,
    charset: str | None = None,
    **extra,
) -> Dataset:
    """A minimal but valid instance; ``None`` for an attribute leaves it out."""
    ds = Dataset()
    values = {
        "SpecificCharacterSet": charset,
        "SOPClassUID": sop_class,
        "SOPInstanceUID": sop,
        "StudyInstanceUID": study,
        "SeriesInstanceUID": series,
        "PatientID": patient_id,
        "PatientName": patient_name,
        "Modality": modality,
        "StudyDate": study_date,
        "StudyTime": study_time,
        "InstanceNumber": instance_number,
        "SeriesNumber": "1",
        "AccessionNumber": "A" + study[-4:],
        "StudyID": "S1",
        **extra,
    }
    for keyword, value in values.items():
        if value is not None:
            setattr(ds, keyword, value)
    ds.file_meta = FileMetaDataset()
    ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds.file_meta.MediaStorageSOPClassUID = sop_class
    ds.file_meta.MediaStorageSOPInstanceUID = sop
    return ds


def to_bytes(ds: Dataset) -> bytes:
    buf = io.BytesIO()
    pydicom.dcmwrite(buf, ds, enforce_file_format=True)
    return buf.getvalue()


def pydicom_test_files() -> Path:
    import pydicom.data

    return Path(pydicom.data.__file__).parent / "test_files"


# -- the S3 test server (moto, the s3_endpoint fixture of conftest.py) --------------------------

BUCKET = "pacscore-test"
CREDENTIALS = "aws_access_key_id=testing&aws_secret_access_key=testing-secret"


def s3_url(endpoint: str, prefix: str, bucket: str = BUCKET) -> str:
    return f"s3://{bucket}/{prefix}?endpoint_url={endpoint}&region=us-east-1&{CREDENTIALS}"


def s3_prefix_for(tmp_path: Path) -> str:
    """One prefix per test, stable for the test's reopen: the bucket is shared by the session."""
    return "t" + hashlib.sha1(str(tmp_path).encode()).hexdigest()[:16]
