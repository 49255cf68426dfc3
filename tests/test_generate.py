"""The synthetic data set generator: deterministic, valid Part 10, consistent hierarchy, realistic."""

from __future__ import annotations

import hashlib
import io
import re
import shutil
import subprocess
import sys
import warnings
from collections import Counter, defaultdict
from pathlib import Path

import pydicom
import pytest
from pydicom.charset import convert_encodings
from pydicom.uid import ExplicitVRLittleEndian
from pydicom.valuerep import PersonName

from pacscore.testing.generate import (
    MODALITY_SOP_CLASSES,
    NON_ASCII_NAMES,
    OPTIONAL_KEYWORDS,
    GeneratorConfig,
    count_instances,
    generate_bytes,
    generate_datasets,
    generate_records,
    write_files,
)

ROOT = Path(__file__).resolve().parents[1]
UID = re.compile(r"(0|[1-9][0-9]*)(\.(0|[1-9][0-9]*))*")
STUDY_KEYS = (
    "StudyDate",
    "StudyTime",
    "AccessionNumber",
    "StudyDescription",
    "StudyID",
    "ReferringPhysicianName",
    "PatientName",
    "PatientID",
    "PatientBirthDate",
    "PatientSex",
)


def parse(data: bytes) -> pydicom.Dataset:
    return pydicom.dcmread(io.BytesIO(data), force=False)


def digest(config: GeneratorConfig) -> str:
    h = hashlib.sha256()
    for uid, data in generate_bytes(config):
        h.update(uid.encode())
        h.update(data)
    return h.hexdigest()


def test_same_seed_same_bytes_different_seed_different():
    config = GeneratorConfig(patients=15, seed=7)
    first, second = list(generate_bytes(config)), list(generate_bytes(GeneratorConfig(patients=15, seed=7)))
    assert first == second
    other = list(generate_bytes(GeneratorConfig(patients=15, seed=8)))
    assert first != other
    assert not {uid for uid, _ in first} & {uid for uid, _ in other}


def test_deterministic_across_processes_and_hash_seeds():
    code = (
        "import hashlib, sys; from pacscore.testing.generate import GeneratorConfig, generate_bytes\n"
        "h = hashlib.sha256()\n"
        "for uid, data in generate_bytes(GeneratorConfig(patients=6, seed=3)): "
        "h.update(uid.encode()); h.update(data)\n"
        "print(h.hexdigest())"
    )
    out = subprocess.run(
        [sys.executable, "-c", code],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
        env={"PYTHONHASHSEED": "12345", "PATH": ""},
    ).stdout.strip()
    assert out == digest(GeneratorConfig(patients=6, seed=3))


def test_more_patients_extend_fewer():
    small = list(generate_bytes(GeneratorConfig(patients=4, seed=2)))
    large = list(generate_bytes(GeneratorConfig(patients=9, seed=2)))
    assert large[: len(small)] == small


@pytest.mark.parametrize(
    "config",
    [
        GeneratorConfig(patients=0),
        GeneratorConfig(patients=25, seed=1),
        GeneratorConfig(patients=10, studies_per_patient=(2, 2), series_per_study=(3, 3), instances_per_series=(4, 4)),
        GeneratorConfig(patients=12, seed=9, instances_per_series=(5, 40)),
    ],
)
def test_count_instances_matches(config):
    assert count_instances(config) == sum(1 for _ in generate_bytes(config))


def test_fixed_shape_counts():
    config = GeneratorConfig(
        patients=3, studies_per_patient=(2, 2), series_per_study=(1, 1), instances_per_series=(5, 5), seed=4
    )
    records = list(generate_records(config))
    assert len({r.patient_id for r in records}) == 3
    assert len({r.study_uid for r in records}) == 6
    per_series = Counter(r.series_uid for r in records)
    assert all(n in (1, 5) for n in per_series.values())  # SR/DOC series hold one instance


def test_every_instance_is_valid_part10_with_a_consistent_hierarchy():
    config = GeneratorConfig(patients=40, seed=11, non_ascii_fraction=0.5)
    series_study, study_patient, study_attrs, sops = {}, {}, defaultdict(set), set()
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no value pydicom would complain about
        for record in generate_records(config):
            assert record.data[128:132] == b"DICM"
            ds = parse(record.data)
            for element in ds.iterall():
                element.value
            assert ds.file_meta.TransferSyntaxUID == ExplicitVRLittleEndian
            assert ds.file_meta.MediaStorageSOPInstanceUID == ds.SOPInstanceUID == record.sop_uid
            assert ds.file_meta.MediaStorageSOPClassUID == ds.SOPClassUID
            assert ds.StudyInstanceUID == record.study_uid and ds.SeriesInstanceUID == record.series_uid
            assert ds.PatientID == record.patient_id
            for uid in (
                ds.SOPInstanceUID,
                ds.SeriesInstanceUID,
                ds.StudyInstanceUID,
                ds.file_meta.ImplementationClassUID,
            ):
                assert len(uid) <= 64 and UID.fullmatch(uid)
            assert record.sop_uid not in sops
            sops.add(record.sop_uid)
            assert series_study.setdefault(ds.SeriesInstanceUID, ds.StudyInstanceUID) == ds.StudyInstanceUID
            assert study_patient.setdefault(ds.StudyInstanceUID, ds.PatientID) == ds.PatientID
            study_attrs[ds.StudyInstanceUID].add(tuple(str(ds.get(k, "<absent>")) for k in STUDY_KEYS))
    assert all(len(values) == 1 for values in study_attrs.values()), "study attributes differ between instances"
    assert len(study_patient) > 40 and len(series_study) > len(study_patient)


def test_modalities_sop_classes_and_pixels():
    config = GeneratorConfig(patients=200, seed=5, instances_per_series=(1, 2))
    seen = Counter()
    for i, (_, data) in enumerate(generate_bytes(config)):
        ds = parse(data)
        seen[ds.Modality] += 1
        assert ds.SOPClassUID == MODALITY_SOP_CLASSES[ds.Modality]
        if ds.Modality in ("SR", "DOC"):
            assert "PixelData" not in ds
            if ds.Modality == "DOC":
                assert (
                    ds.EncapsulatedDocument.startswith(b"%PDF-")
                    and ds.MIMETypeOfEncapsulatedDocument == "application/pdf"
                )
            else:
                assert ds.ContentSequence[0].ValueType == "TEXT"
        else:
            assert len(ds.ImageType) >= 2
            expected = ds.Rows * ds.Columns * ds.SamplesPerPixel * ds.BitsAllocated // 8
            assert len(ds.PixelData) == expected
            if i % 20 == 0:
                assert ds.pixel_array.shape[:2] == (ds.Rows, ds.Columns)
    assert set(seen) == set(MODALITY_SOP_CLASSES)
    assert seen["CT"] > seen["NM"] and seen["MR"] > seen["XA"]


def test_non_ascii_names_round_trip_with_their_character_set():
    config = GeneratorConfig(
        patients=250,
        seed=13,
        non_ascii_fraction=1.0,
        empty_fraction=0.0,
        studies_per_patient=(1, 1),
        series_per_study=(1, 1),
        instances_per_series=(1, 1),
    )
    charsets = Counter()
    for _, data in generate_bytes(config):
        ds = parse(data)
        raw = ds.get_item("PatientName").value
        charset = ds.get("SpecificCharacterSet")
        name = str(ds.PatientName)
        assert name in NON_ASCII_NAMES and not name.isascii()
        assert PersonName(name).encode(convert_encodings(charset)) == raw.rstrip(b" ")
        charsets[charset if isinstance(charset, str) else "\\".join(charset)] += 1
    assert {
        "ISO_IR 100",
        "ISO_IR 126",
        "ISO_IR 144",
        "ISO_IR 192",
        "GB18030",
        "ISO 2022 IR 6\\ISO 2022 IR 87",
        "\\ISO 2022 IR 149",
    } <= set(charsets)


def test_ascii_and_non_ascii_mix():
    datasets = list(
        generate_datasets(GeneratorConfig(patients=80, seed=21, non_ascii_fraction=0.3, instances_per_series=(1, 1)))
    )
    names = {str(ds.PatientName) for ds in datasets}
    assert any(n.isascii() and n for n in names) and any(not n.isascii() for n in names)
    assert all(isinstance(ds, pydicom.Dataset) and ds.file_meta.TransferSyntaxUID for ds in datasets)
    assert any(ds.get("IssuerOfPatientID") for ds in datasets)
    assert any("." in ds.get("StudyTime", "") for ds in datasets) and any(
        len(ds.get("StudyTime", "")) == 6 for ds in datasets
    )


def test_empty_fraction_leaves_values_empty_or_absent():
    def states(fraction):
        result = Counter()
        for _, data in generate_bytes(
            GeneratorConfig(patients=60, seed=3, empty_fraction=fraction, instances_per_series=(1, 1))
        ):
            ds = parse(data)
            for keyword in OPTIONAL_KEYWORDS:
                if keyword not in ds:
                    result["absent", keyword] += 1
                elif ds[keyword].value in ("", None):
                    result["empty", keyword] += 1
        return result

    none = states(0.0)
    always = ("PatientName", "StudyDate", "AccessionNumber", "ReferringPhysicianName", "StudyDescription")
    assert not [k for k in none if k[1] in always]
    assert not [k for k in none if k[0] == "empty"]
    many = states(0.4)
    assert sum(n for (state, _), n in many.items() if state == "empty") > 50
    assert sum(n for (state, _), n in many.items() if state == "absent") > 50


def test_write_files_layout(tmp_path):
    config = GeneratorConfig(patients=4, seed=6)
    assert write_files(config, tmp_path) == count_instances(config)
    files = sorted(tmp_path.rglob("*.dcm"))
    assert len(files) == count_instances(config)
    for path in files[:20]:
        ds = pydicom.dcmread(path, stop_before_pixels=True)
        assert path.relative_to(tmp_path).parts == (
            ds.StudyInstanceUID,
            ds.SeriesInstanceUID,
            f"{ds.SOPInstanceUID}.dcm",
        )


@pytest.mark.skipif(not shutil.which("dcmftest") or not shutil.which("dcmdump"), reason="DCMTK not installed")
def test_dcmtk_accepts_the_files(tmp_path):
    write_files(GeneratorConfig(patients=8, seed=2, non_ascii_fraction=0.5), tmp_path)
    files = [str(p) for p in sorted(tmp_path.rglob("*.dcm"))]
    out = subprocess.run(["dcmftest", *files], capture_output=True, text=True).stdout
    assert out.count("yes:") == len(files)
    for path in files[:40]:
        result = subprocess.run(["dcmdump", "-q", "+E", path], capture_output=True, text=True)
        assert result.returncode == 0 and not result.stderr


@pytest.mark.parametrize(
    "kwargs",
    [
        {"patients": -1},
        {"patients": 1, "studies_per_patient": (0, 2)},
        {"patients": 1, "series_per_study": (3, 2)},
        {"patients": 1, "start_year": 2020, "end_year": 2010},
        {"patients": 1, "empty_fraction": 1.5},
    ],
)
def test_bad_configs_are_rejected(kwargs):
    with pytest.raises(ValueError):
        GeneratorConfig(**kwargs)
