"""UIDs that are not digits and dots (PS3.5 9.1): kept by default (uid_policy="lenient"),
refused with uid_policy="strict", never used raw in a blob key, counted in stats. The threat
model and the key scheme are in docs/security.md."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest

import pacscore
from pacscore import IngestError, ingest
from pacscore.archive import _blob_key
from pacscore.blobs.base import is_valid_key

from .expected_warnings import BAD_UIDS, LONG_LO
from .factories import make_instance, s3_prefix_for, s3_url, to_bytes

#: every test here stores or reads UIDs that are not conformant, on purpose
pytestmark = BAD_UIDS


def _pydicom_data_folder() -> Path:
    """pydicom-data's files (the data_store package), listed without its network manager."""
    import importlib.util

    spec = importlib.util.find_spec("data_store")
    if spec is None or not spec.submodule_search_locations:
        pytest.skip("pydicom-data is not installed")
    return Path(next(iter(spec.submodule_search_locations))) / "data"


HASH_UID_FILE = "bad_sequence.dcm"  # its SOP Instance UID is a 64-character hex hash

#: UIDs real senders and hostile ones produce; each must get a safe key in every store
ODD_UIDS = [
    "dccc9599087131742838cc1162a630fea87ba9bf61ac09bfda90d4adfa5ddaed",
    "a/b",
    "..",
    "1.2 3",
    "1.2.\u00fc",
    "1." + "2" * 100,
    "1.2.3\x00x",
    "./-_",
    "1.2.03",
]


def test_a_real_file_with_a_hash_as_uid_is_stored_and_reads_back(tmp_path):
    path = _pydicom_data_folder() / HASH_UID_FILE
    data = path.read_bytes()
    with pacscore.open(tmp_path / "a") as arc:
        result = arc.store(path)
        assert result.status == "stored" and not ingest.is_conformant_uid(result.sop_instance_uid)
        assert arc.get(result.sop_instance_uid) == data
        assert arc.stats()["nonconformant_uids"]["SOPInstanceUID"] == 1


def test_uid_policy_strict_refuses_it_naming_the_attribute_and_stores_nothing(tmp_path):
    path = _pydicom_data_folder() / HASH_UID_FILE
    with pacscore.open(tmp_path / "a", uid_policy="strict") as arc:
        assert arc.uid_policy == "strict"
        with pytest.raises(IngestError, match=r"invalid SOPInstanceUID 'dccc.*uid_policy='strict'"):
            arc.store(path)
        report = arc.store_many([path], workers=1)  # parsed leniently, refused by the archive
        assert report.stored == [] and len(report.rejected) == 1
        assert report.rejected[0][0] == str(path) and "SOPInstanceUID" in report.rejected[0][1]
        assert arc.count({}, level="IMAGE", relational=True) == 0 and list(arc.blobs.keys()) == []


def test_uid_policy_is_checked_and_belongs_to_the_handle(tmp_path):
    with pytest.raises(ValueError, match="uid_policy"):
        pacscore.open(tmp_path / "a", uid_policy="loose")
    with pacscore.open(tmp_path / "a", uid_policy="strict") as arc:
        arc.store(make_instance(sop="1.2.3.4"))
    with pacscore.open(tmp_path / "a") as arc:  # not persisted: the next handle is lenient
        assert arc.uid_policy == "lenient"
        assert arc.store(make_instance(sop="x.y")).status == "stored"
    with pytest.raises(ValueError, match="uid_policy"):
        ingest.parse(to_bytes(make_instance(sop="1.2")), uid_policy="")


def test_conformant_uids_keep_todays_blob_key(tmp_path):
    """Existing archives hold keys of this shape in their records: it must not change."""
    data = to_bytes(make_instance(sop="1.2.840.99.7"))
    parsed = ingest.parse(data)
    assert _blob_key(parsed) == f"1.2.840.99.7_{ingest.checksum(data)[:16]}"
    with pacscore.open(tmp_path / "a") as arc:
        arc.store(data)
        assert list(arc.blobs.keys()) == [f"1.2.840.99.7_{ingest.checksum(data)[:16]}"]


@pytest.mark.parametrize("uid", ODD_UIDS)
def test_odd_uids_give_distinct_safe_keys(uid):
    data = to_bytes(make_instance(sop=uid))
    key = _blob_key(ingest.parse(data))
    assert is_valid_key(key)
    digest = hashlib.blake2b(uid.encode(), digest_size=16).hexdigest()
    assert ingest.is_conformant_uid(uid) == (digest not in key)
    if not ingest.is_conformant_uid(uid):
        assert key.startswith("u-") and key.endswith(f"-{digest}_{ingest.checksum(data)[:16]}")


STORES = ["file", "memory://", "lmdb://", "mirror:file:m|memory://", "s3"]


@pytest.mark.parametrize("store", STORES)
def test_every_blob_store_keeps_odd_uids(tmp_path, store, request):
    blobs = None if store == "file" else store
    if store == "s3":
        blobs = s3_url(request.getfixturevalue("s3_endpoint"), s3_prefix_for(tmp_path))
    with pacscore.open(tmp_path / "a", blobs=blobs) as arc:
        sent = {}
        for i, uid in enumerate(ODD_UIDS):
            data = to_bytes(make_instance(sop=uid, series=f"1.2.3.{i}"))
            assert arc.store(data).status == "stored"
            sent[ingest.uid_value(uid)] = data
        for uid, data in sent.items():
            assert arc.get(uid) == data
        assert len(set(arc.blobs.keys())) == len(ODD_UIDS)
        assert arc.verify().ok
        for uid in sent:
            assert arc.delete(instance=uid) == 1
        assert list(arc.blobs.keys()) == []


@pytest.mark.parametrize("keyword", ["SOPInstanceUID", "StudyInstanceUID", "SeriesInstanceUID"])
def test_a_uid_too_long_for_the_index_is_refused_naming_it(tmp_path, keyword):
    """LMDB keys (and duplicate values) are at most 511 bytes; the index keeps 256 per UID."""
    uids = {"sop": "1.2.3.4", "study": "1.2.7", "series": "1.2.7.1"}  # apart from 9.9's
    arg = {"SOPInstanceUID": "sop", "StudyInstanceUID": "study", "SeriesInstanceUID": "series"}[keyword]
    with pacscore.open(tmp_path / "a") as arc:
        arc.store(make_instance(sop="9.9"))
        with pytest.raises(IngestError, match=f"invalid {keyword} .*257 bytes, longer than the 256"):
            arc.store(make_instance(**{**uids, arg: "1." + "3" * 255}))
        assert arc.count({}, level="IMAGE", relational=True) == 1 and len(list(arc.blobs.keys())) == 1
        # the longest the index keeps is stored and found (the old rule refused anything over 64)
        data = to_bytes(make_instance(**{**uids, arg: "1." + "3" * 254}))
        assert arc.store(data).status == "stored"
        sop = "1." + "3" * 254 if arg == "sop" else "1.2.3.4"
        assert arc.get(sop) == data
        assert (
            len(
                arc.instances(
                    **{
                        "sop": {"instance": sop},
                        "study": {"study": "1." + "3" * 254},
                        "series": {"series": "1." + "3" * 254},
                    }[arg]
                )
            )
            == 1
        )


def test_a_long_non_ascii_uid_is_measured_in_utf8_bytes(tmp_path):
    uid = "\u00fc" * 129  # 129 characters, 258 bytes in UTF-8 (latin-1 decoded: one byte each on the wire)
    with pacscore.open(tmp_path / "a") as arc:
        with pytest.raises(IngestError, match="258 bytes"):
            arc.store(to_bytes(make_instance(sop=uid)))
        assert list(arc.blobs.keys()) == []


def test_stats_count_the_entities_with_nonconformant_uids(tmp_path):
    with pacscore.open(tmp_path / "a") as arc:
        arc.store(make_instance(sop="1.2.3.4"))
        arc.store(make_instance(sop="x.1", study="study-x", series="series-x"))
        arc.store(make_instance(sop="x.2", study="study-x", series="1.2.3.9"))
        assert arc.stats()["nonconformant_uids"] == {"SOPInstanceUID": 2, "SeriesInstanceUID": 1, "StudyInstanceUID": 1}
        arc.delete(study="study-x")
        assert arc.stats()["nonconformant_uids"] == {"SOPInstanceUID": 0, "SeriesInstanceUID": 0, "StudyInstanceUID": 0}


def test_uids_are_stripped_as_lookups_strip_them(tmp_path):
    # the white space written as bytes: pydicom would strip it from a value it is given
    data = to_bytes(make_instance(sop="1.2.5")).replace(b"1.2.5\x00", b"\t1.2.5")
    assert b"\t1.2.5" in data
    with pacscore.open(tmp_path / "a") as arc:
        assert arc.store(data).sop_instance_uid == "1.2.5"
        assert arc.get("1.2.5") == data and arc.get("\t1.2.5\n") == data
        assert list(arc.blobs.keys()) == [f"1.2.5_{ingest.checksum(data)[:16]}"]


@LONG_LO
def test_a_patient_key_too_long_for_the_index_is_an_ingest_error(tmp_path):
    """Not a UID, but an LMDB key all the same: the old code failed at commit with a
    StorageError (which the DIMSE adapter answers as "out of resources", inviting a retry)."""
    with pacscore.open(tmp_path / "a") as arc:
        with pytest.raises(IngestError, match="PatientID and IssuerOfPatientID are 601 bytes"):
            arc.store(make_instance(sop="1.2.3", patient_id="P" * 600))
        assert arc.stats()["instances"] == 0 and list(arc.blobs.keys()) == []
        assert arc.store(make_instance(sop="1.2.3", patient_id="P" * 499)).status == "stored"
