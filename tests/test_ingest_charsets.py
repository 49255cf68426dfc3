"""Ingest decodes text straight from the bytes; it must agree with pydicom's own decoding for
every attribute of every real and generated file (ISO 2022, GB18030, UTF-8, Latin-1, ...)."""

from __future__ import annotations

import io

import pydicom
import pytest

from benchmarks.sample_data import real_dicom_files
from pacscore import IngestError, ingest, values
from pacscore.testing.generate import GeneratorConfig, generate_bytes


def _datas():
    yield from ((p.name, p.read_bytes()) for p in real_dicom_files())
    yield from generate_bytes(GeneratorConfig(patients=40, seed=5, non_ascii_fraction=0.7))


def test_fast_conversion_equals_pydicom_conversion():
    checked = 0
    for name, data in _datas():
        try:
            parsed = ingest.parse_bytes(data, name)
        except IngestError:
            continue
        ds = pydicom.dcmread(io.BytesIO(data), stop_before_pixels=True, force=True)
        for fields in parsed.levels.values():
            for tag, (vr, value) in fields.items():
                if tag == 0x00080005 or vr == "SQ":
                    continue
                try:
                    ref = ingest.element_value(ds, tag)  # without a Charset: pydicom converts
                except Exception:
                    continue
                if ref is None:
                    continue
                if vr == "PN":  # pydicom drops trailing empty groups; the bytes keep them
                    assert values.normalize_pn(value) == values.normalize_pn(ref[1]), (name, hex(tag))
                else:
                    assert value == ref[1], (name, hex(tag))
                checked += 1
    assert checked > 10000


@pytest.mark.parametrize(
    "charset, name",
    [
        (["ISO 2022 IR 6", "ISO 2022 IR 87"], "Yamada^Tarou=山田^太郎=やまだ^たろう"),
        (["", "ISO 2022 IR 149"], "Hong^Gildong=洪^吉洞=홍^길동"),
        ("GB18030", "Wang^XiaoDong=王^小东"),
        ("ISO_IR 144", "Иванов^Иван"),
        ("ISO_IR 126", "Παπαδόπουλος^Νίκος"),
        ("ISO_IR 192", "Ødegård^Åse"),
    ],
)
def test_names_are_indexed_as_unicode(charset, name):
    from .factories import make_instance, to_bytes

    parsed = ingest.parse_bytes(to_bytes(make_instance(sop="1.2.3.4", patient_name=name, charset=charset)))
    assert parsed.levels["PATIENT"][0x00100010] == ("PN", name)
