"""Conversion for a peer produces data sets the peer can read (issue 16).

A JPEG 2000 image whose Icon Image Sequence holds encapsulated pixel data, retrieved by a peer
that accepts only native transfer syntaxes, was sent with the top level decoded and the icon
still encapsulated; DCMTK's getscu could not write it ("PixelData larger (4294967295) than
remaining bytes"). Every encapsulated Pixel Data, nested ones included, is now decoded (or its
sequence removed), and every converted data set is checked in the transfer syntax it is sent in.
"""

from __future__ import annotations

import logging
import re
from collections import defaultdict
from pathlib import Path

import numpy as np
import pydicom
import pytest
from pydicom.dataset import Dataset
from pydicom.encaps import encapsulate
from pydicom.sequence import Sequence
from pydicom.uid import ExplicitVRBigEndian, ExplicitVRLittleEndian, ImplicitVRLittleEndian

import pacscore
from pacscore.adapters import dimse
from pacscore.adapters.dimse_convert import ConversionError, check_encoding, prepare_for_peer

from .dimse_helpers import dcmtk, pydicom_test_files, run
from .expected_warnings import REAL_FILE_VALUES, TRUNCATED, VR_MISMATCH

HAVE_GETSCU = dcmtk("getscu") is not None
ICON_KEYS = (
    "SamplesPerPixel",
    "PhotometricInterpretation",
    "Rows",
    "Columns",
    "BitsAllocated",
    "BitsStored",
    "HighBit",
    "PixelRepresentation",
)
NATIVE = (ExplicitVRLittleEndian, ImplicitVRLittleEndian, ExplicitVRBigEndian)


def icon_from(path: Path) -> Dataset:
    """An icon item carrying the (encapsulated) pixel data of a bundled JPEG 2000 file."""
    src = pydicom.dcmread(path)
    icon = Dataset()
    for keyword in ICON_KEYS:
        setattr(icon, keyword, getattr(src, keyword))
    icon["PixelData"] = src["PixelData"]
    return icon


def j2k_with_icon(tmp_path: Path, *, icon: Dataset | None = None, nested_in: str | None = None) -> Path:
    """pydicom's JPEG2000.dcm with an Icon Image Sequence (inside ``nested_in`` items if given)."""
    ds = pydicom.dcmread(pydicom_test_files() / "JPEG2000.dcm")
    icon = icon if icon is not None else icon_from(pydicom_test_files() / "MR_small_jp2klossless.dcm")
    if nested_in:
        item = Dataset()
        item.ReferencedSOPInstanceUID = ds.SOPInstanceUID
        item.IconImageSequence = Sequence([icon])
        setattr(ds, nested_in, Sequence([item]))
    else:
        ds.IconImageSequence = Sequence([icon])
    path = tmp_path / "j2k_icon.dcm"
    ds.save_as(path)
    return path


def undefined_lengths(ds: Dataset) -> list[str]:
    out = []
    for elem in ds:
        if elem.VR == "SQ":
            for item in elem.value:
                out += [f"{elem.keyword}.{name}" for name in undefined_lengths(item)]
        elif elem.is_undefined_length:
            out.append(elem.keyword)
    return out


def icon_pixels() -> np.ndarray:
    return pydicom.dcmread(pydicom_test_files() / "MR_small_jp2klossless.dcm").pixel_array


# ---- the conversion itself ----------------------------------------------------------------------
@pytest.mark.parametrize("accepted", NATIVE, ids=lambda ts: ts.name)
def test_nested_icon_is_decoded_with_the_image(tmp_path, accepted):
    path = j2k_with_icon(tmp_path)
    ds, how = prepare_for_peer(path.read_bytes(), pydicom.uid.JPEG2000, [accepted])
    assert how == "decompress"
    assert ds.file_meta.TransferSyntaxUID == accepted or accepted == ImplicitVRLittleEndian  # pynetdicom's part
    assert undefined_lengths(ds) == []
    original = pydicom.dcmread(path)
    assert (ds.pixel_array == original.pixel_array).all()
    icon = ds.IconImageSequence[0]
    icon.file_meta = ds.file_meta  # pixel_array reads the transfer syntax there
    assert (icon.pixel_array == icon_pixels()).all()


def test_icon_two_sequences_deep_is_decoded(tmp_path):
    path = j2k_with_icon(tmp_path, nested_in="ReferencedImageSequence")
    ds, _ = prepare_for_peer(path.read_bytes(), pydicom.uid.JPEG2000, [ExplicitVRLittleEndian])
    assert undefined_lengths(ds) == []
    icon = ds.ReferencedImageSequence[0].IconImageSequence[0]
    icon.file_meta = ds.file_meta
    assert (icon.pixel_array == icon_pixels()).all()


def test_an_icon_that_cannot_be_decoded_is_removed_and_named(tmp_path):
    icon = icon_from(pydicom_test_files() / "MR_small_jp2klossless.dcm")
    icon.PixelData = encapsulate([b"not a JPEG 2000 code stream"])
    icon["PixelData"].is_undefined_length = True
    path = j2k_with_icon(tmp_path, icon=icon)
    ds, how = prepare_for_peer(path.read_bytes(), pydicom.uid.JPEG2000, [ExplicitVRLittleEndian])
    assert how == "decompress without IconImageSequence"
    assert "IconImageSequence" not in ds and undefined_lengths(ds) == []
    assert (ds.pixel_array == pydicom.dcmread(path).pixel_array).all()  # the image itself is intact


def test_check_encoding_refuses_what_the_old_conversion_sent(tmp_path):
    ds = pydicom.dcmread(j2k_with_icon(tmp_path))
    ds.decompress(generate_instance_uid=False)  # what the adapter did before: the top level only
    with pytest.raises(ConversionError, match=r"IconImageSequence\.PixelData: encapsulated value"):
        check_encoding(ds, ExplicitVRLittleEndian)
    check_encoding(pydicom.dcmread(j2k_with_icon(tmp_path)), pydicom.uid.JPEG2000)  # fine as it is stored


# ---- with DCMTK's getscu ------------------------------------------------------------------------
def serve(arc, **config):
    return dimse.serve(arc, "PACSCORE", 0, block=False, log_phi=True, **config)


def getscu(port: int, studies: list[str], out: Path):
    out.mkdir(exist_ok=True)
    return run(
        [
            "getscu",
            "-S",
            "-aet",
            "GETSCU",
            "-aec",
            "PACSCORE",
            "-od",
            str(out),
            "-k",
            "QueryRetrieveLevel=STUDY",
            "-k",
            "StudyInstanceUID=" + "\\".join(studies),
            "127.0.0.1",
            str(port),
        ],
        timeout=300,
    )


@pytest.mark.interop
@pytest.mark.skipif(not HAVE_GETSCU, reason="DCMTK getscu is not on PATH")
def test_getscu_writes_a_jpeg2000_image_with_a_nested_icon(tmp_path):
    path = j2k_with_icon(tmp_path)
    with pacscore.open(tmp_path / "arc") as arc:
        arc.store(path)
        server = serve(arc)
        try:
            proc = getscu(server.server_address[1], [pydicom.dcmread(path).StudyInstanceUID], tmp_path / "out")
        finally:
            server.shutdown()
    assert proc.returncode == 0, proc.stderr
    assert "larger" not in proc.stderr, proc.stderr
    (got,) = list((tmp_path / "out").iterdir())
    ds = pydicom.dcmread(got)
    assert ds.file_meta.TransferSyntaxUID in NATIVE and undefined_lengths(ds) == []
    icon = ds.IconImageSequence[0]
    icon.file_meta = ds.file_meta
    assert (icon.pixel_array == icon_pixels()).all()
    assert (ds.pixel_array == pydicom.dcmread(path).pixel_array).all()


def real_files() -> list[Path]:
    """Every file pydicom's wheel and the pydicom-data package ship (no download is attempted)."""
    roots = [pydicom_test_files(), pydicom_test_files().parent / "palettes"]
    try:
        import data_store  # the pydicom-data package

        roots.append(Path(data_store.__file__).parent / "data")
    except ImportError:
        pass
    skip = {".txt", ".json", ".gz", ".icc", ".dump", ".md", ".py", ".pyc"}
    return sorted(
        p
        for root in roots
        if root.is_dir()
        for p in root.rglob("*")
        if p.is_file() and p.suffix.lower() not in skip and "__pycache__" not in p.parts
    )


def rounds(files: list[Path]) -> list[list[tuple[Path, str, str]]]:
    """Files grouped so that no group holds a SOP Instance UID twice (many share one)."""
    out: list[list] = []
    taken: dict[int, set] = defaultdict(set)
    for path in files:
        try:
            head = pydicom.dcmread(path, stop_before_pixels=True, force=True)
            sop, study = str(head.SOPInstanceUID), str(head.StudyInstanceUID)
        except Exception:
            continue  # not DICOM, or no UIDs: the archive would refuse it anyway
        i = 0
        while sop in taken[i]:
            i += 1
        taken[i].add(sop)
        if i == len(out):
            out.append([])
        out[i].append((path, sop, study))
    return out


@pytest.mark.interop
@pytest.mark.skipif(not HAVE_GETSCU, reason="DCMTK getscu is not on PATH")
@REAL_FILE_VALUES
@VR_MISMATCH
@TRUNCATED  # one real file is cut short on purpose
def test_getscu_over_every_real_file_gets_readable_native_data_sets(tmp_path, caplog):
    """Each stored instance either arrives and reads back whole in a native transfer syntax,
    or fails as a sub-operation for a reason the SCP logs (no decoder, no context)."""
    caplog.set_level(logging.WARNING, logger="pacscore.dimse")
    groups = rounds(real_files())
    assert groups and sum(len(g) for g in groups) > 100
    received = stored_total = 0
    for n, group in enumerate(groups):
        out = tmp_path / f"out{n}"
        with pacscore.open(tmp_path / f"arc{n}") as arc:
            stored = [(p, sop, study) for p, sop, study in group if _stored(arc, p)]
            stored_total += len(stored)
            if not stored:
                continue
            server = serve(arc)
            try:
                proc = getscu(server.server_address[1], sorted({s for _, _, s in stored}), out)
            finally:
                server.shutdown()
        assert "larger" not in proc.stderr, proc.stderr
        arrived = {}
        for path in out.iterdir():
            ds = pydicom.dcmread(path)
            assert ds.file_meta.TransferSyntaxUID in NATIVE, path.name
            assert undefined_lengths(ds) == [], path.name
            arrived[str(ds.SOPInstanceUID)] = ds
        log = "\n".join(r.getMessage() for r in caplog.records)
        for source, sop, _ in stored:
            if sop in arrived:
                continue
            reasons = re.findall(rf"cannot send {re.escape(sop)}: (.*)", log)
            assert reasons, f"{source.name} neither arrived nor was reported"
            assert re.match(r"cannot decompress|the peer accepted|the stored data set does not parse", reasons[0]), (
                source.name,
                reasons,
            )
        received += len(arrived)
    assert received >= stored_total // 2, (received, stored_total)


def _stored(arc, path: Path) -> bool:
    try:
        arc.store(path)
        return True
    except pacscore.PacsError:
        return False


@pytest.mark.parametrize(
    "accepted", [[pydicom.uid.JPEG2000, ExplicitVRLittleEndian], [ExplicitVRLittleEndian]], ids=["as-is", "decompress"]
)
@TRUNCATED
def test_a_stored_instance_that_no_longer_parses_counts_as_failed(tmp_path, accepted):
    """pydicom reads a truncated file back as an empty Dataset, which pynetdicom skipped without
    counting it: a C-GET of one instance sent as it is stored answered success with nothing
    completed or failed."""
    from pynetdicom import AE, build_role, evt
    from pynetdicom.sop_class import StudyRootQueryRetrieveInformationModelGet

    whole = (pydicom_test_files() / "JPEG2000.dcm").read_bytes()
    head = pydicom.dcmread(pydicom_test_files() / "JPEG2000.dcm", stop_before_pixels=True)
    with pacscore.open(tmp_path / "arc") as arc:
        assert whole.endswith(b"\xfe\xff\xdd\xe0\x00\x00\x00\x00")
        arc.store(whole[:-8])  # the encapsulated pixel data lacks its delimiter (a cut-short file)
        server = serve(arc)
        try:
            ae = AE("PYGET")
            ae.add_requested_context(StudyRootQueryRetrieveInformationModelGet)
            ae.add_requested_context(head.SOPClassUID, accepted)
            assoc = ae.associate(
                "127.0.0.1",
                server.server_address[1],
                ae_title="PACSCORE",
                ext_neg=[build_role(head.SOPClassUID, scp_role=True)],
                evt_handlers=[(evt.EVT_C_STORE, lambda e: 0x0000)],
            )
            query = Dataset()
            query.QueryRetrieveLevel = "STUDY"
            query.StudyInstanceUID = head.StudyInstanceUID
            try:
                final, ident = list(assoc.send_c_get(query, StudyRootQueryRetrieveInformationModelGet))[-1]
            finally:
                assoc.release()
        finally:
            server.shutdown()
    assert final.Status == 0xA702 or final.Status == 0xB000, final
    assert final.NumberOfFailedSuboperations == 1 and final.NumberOfCompletedSuboperations == 0
    assert ident.FailedSOPInstanceUIDList == head.SOPInstanceUID
