"""The File Meta Information written for a received C-STORE data set (adapters/dimse_file_meta.py)
is byte for byte what pynetdicom's create_file_meta + encode_file_meta write, for any values."""

from __future__ import annotations

import warnings

import pydicom
import pytest
from hypothesis import given
from hypothesis import strategies as st
from pydicom.uid import UID
from pynetdicom.dsutils import create_file_meta, encode_file_meta

from pacscore.adapters import dimse_file_meta
from pacscore.adapters.dimse_file_meta import file_meta_bytes, part10


def _pynetdicom(sop_class: str, sop_instance: str, syntax: str, ae: str) -> bytes:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        meta = create_file_meta(
            sop_class_uid=UID(sop_class), sop_instance_uid=UID(sop_instance), transfer_syntax=UID(syntax)
        )
        if ae:
            meta.SourceApplicationEntityTitle = ae
        return encode_file_meta(meta)


_uid_like = st.from_regex(r"[0-9]{1,8}(\.[0-9]{1,12}){0,8}", fullmatch=True)
uids = st.one_of(_uid_like, st.text("0123456789.", min_size=1, max_size=70), st.text(max_size=20))
titles = st.one_of(
    st.just(""), st.text(st.characters(min_codepoint=0x20, max_codepoint=0x7E), max_size=18), st.text(max_size=6)
)
syntaxes = st.sampled_from(
    ["1.2.840.10008.1.2", "1.2.840.10008.1.2.1", "1.2.840.10008.1.2.4.50", "1.2.840.10008.1.2.1.99"]
)


@given(uids, uids, st.one_of(syntaxes, uids), titles)
def test_the_header_is_the_one_pynetdicom_writes(sop_class, sop_instance, syntax, ae):
    ae = ae.strip()  # the service strips the calling AE title as sent (padded to 16 bytes)
    assert _outcome(file_meta_bytes, sop_class, sop_instance, syntax, ae) == _outcome(
        _pynetdicom, sop_class, sop_instance, syntax, ae
    )


def _outcome(fn, *args) -> object:
    """The bytes, or the type of error (values pydicom cannot write at all fail the same way)."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return fn(*args)
    except Exception as exc:
        return type(exc)


@pytest.mark.parametrize("ae", ["STORESCU", "A", "AB CD", "ABCDEFGHIJKLMNOP", ""])
@pytest.mark.parametrize("sop_instance", ["1.2.3", "1.2.34", "2.25." + "9" * 59])
def test_ordinary_values_never_go_through_pydicom(monkeypatch, ae, sop_instance):
    """The fast path is the one taken for what clients send (the property above would pass if
    every call fell back)."""

    def refuse(*_args):
        raise AssertionError("went through pydicom")

    expected = _pynetdicom("1.2.840.10008.5.1.4.1.1.2", sop_instance, "1.2.840.10008.1.2", ae)
    monkeypatch.setattr(dimse_file_meta, "_through_pydicom", refuse)
    assert file_meta_bytes("1.2.840.10008.5.1.4.1.1.2", sop_instance, "1.2.840.10008.1.2", ae) == expected


def test_a_part10_file_reads_back_with_its_header(tmp_path):
    data = part10("1.2.840.10008.5.1.4.1.1.7", "1.2.3.4.5", "1.2.840.10008.1.2", "MODALITY1", b"")
    path = tmp_path / "x.dcm"
    path.write_bytes(data)
    ds = pydicom.dcmread(path)
    assert ds.file_meta.MediaStorageSOPClassUID == "1.2.840.10008.5.1.4.1.1.7"
    assert ds.file_meta.MediaStorageSOPInstanceUID == "1.2.3.4.5"
    assert ds.file_meta.TransferSyntaxUID == "1.2.840.10008.1.2"
    assert ds.file_meta.SourceApplicationEntityTitle == "MODALITY1"
