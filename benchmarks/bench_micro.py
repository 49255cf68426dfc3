"""Micro benchmarks of the hot paths, pure and compiled side by side (pytest-benchmark).

    pytest benchmarks/bench_micro.py                       # measure
    pytest benchmarks/bench_micro.py --benchmark-disable   # run once each, as plain tests

Each benchmark also asserts its answer, so a plain run checks the paths agree. Compiled cases
are skipped when the extension is not built (or PACSCORE_PURE=1).
"""

from __future__ import annotations

import os

import pytest

from pacscore.index import records as pure_records
from pacscore.query import fast
from pacscore.query.conditions import compile_condition
from pacscore.query.options import MatchOptions
from pacscore.query.reference import WildcardPattern

try:
    if os.environ.get("PACSCORE_PURE") == "1":
        raise ImportError
    from pacscore._ext import _match, _records
except ImportError:
    _match = _records = None

needs_ext = pytest.mark.skipif(_records is None, reason="the Cython extension is not built (or PACSCORE_PURE=1)")
CODECS = [pytest.param(pure_records, id="pure"), pytest.param(_records, id="cython", marks=needs_ext)]

T_NAME, T_ID, T_DATE, T_MODS, T_DESC = 0x00100010, 0x00100020, 0x00080020, 0x00080061, 0x00081030
STUDY = {
    0x00080005: ("CS", "ISO_IR 192"),
    T_DATE: ("DA", "20170412"),
    0x00080030: ("TM", "101112"),
    0x00080050: ("SH", "ACC00042"),
    T_MODS: ("CS", "CT\\PT"),
    T_DESC: ("LO", "PET-CT WHOLE BODY"),
    T_NAME: ("PN", "Smith^John^^^"),
    T_ID: ("LO", "PID000042"),
    0x00100030: ("DA", "19600101"),
    0x0020000D: ("UI", "1.2.826.0.1.3680043.8.498.1234567890"),
    0x00201206: ("IS", "3"),
    0x00201208: ("IS", "412"),
    0xFFFF0001: ("IN", "PID000042\x00"),
    0x00081032: ("SQ", [{"CodeValue": "A", "CodeMeaning": "B"}]),
}
RAW = pure_records.encode(STUDY)
#: a level of 2000 records for the scan benchmarks, one in 20 a match for "*ohn*"
LEVEL = [
    pure_records.encode({**STUDY, T_NAME: ("PN", "Smith^John" if i % 20 == 0 else f"Doe^Jane{i}")}) for i in range(2000)
]


@pytest.mark.parametrize("codec", CODECS)
def test_get_value_one_field(benchmark, codec):
    assert benchmark(codec.get_value, RAW, T_NAME) == "Smith^John^^^"


@pytest.mark.parametrize("codec", CODECS)
def test_decode_record(benchmark, codec):
    assert benchmark(codec.decode, RAW) == pure_records.decode(RAW)


@pytest.mark.parametrize("codec", CODECS)
def test_encode_record(benchmark, codec):
    assert benchmark(codec.encode, STUDY) == RAW


def test_wildcard_reference(benchmark):
    pattern = WildcardPattern("*o?n*")
    assert benchmark(pattern.match, "Smith^John")


@needs_ext
def test_wildcard_kernel(benchmark):
    assert benchmark(_match.wildcard_match, "*o?n*", "Smith^John")


def _scan_reference(cond, codec):
    tag = cond.tags[0]
    test = cond.test
    get_value = codec.get_value
    return sum(1 for rec in LEVEL if test(get_value(rec, tag)))


@pytest.mark.parametrize("codec", CODECS)
def test_scan_2000_records_reference_matcher(benchmark, codec):
    """What Executor.test costs today per record: get_value + the reference test."""
    cond = compile_condition("PatientName", T_NAME, "PN", "*ohn*", MatchOptions())
    assert benchmark(_scan_reference, cond, codec) == 100


@needs_ext
def test_scan_2000_records_fused_kernel(benchmark):
    """The same scan with the accelerated record test (fast.record_tester)."""
    cond = compile_condition("PatientName", T_NAME, "PN", "*ohn*", MatchOptions())
    test = fast.accelerate(cond, MatchOptions()).test_record
    assert benchmark(lambda: sum(1 for rec in LEVEL if test(rec))) == 100


@needs_ext
def test_exact_set_membership_kernel(benchmark):
    cond = compile_condition("ModalitiesInStudy", T_MODS, "CS", "MR\\PT", MatchOptions())
    test = fast.accelerate(cond, MatchOptions())
    assert benchmark(test.test_record, RAW)


#: the same level with a StudyTime each: one in 20 before 08:00 (a match for "-0800")
TIMED = [pure_records.encode({**STUDY, 0x00080030: ("TM", "0715" if i % 20 == 0 else "1030")}) for i in range(2000)]


@pytest.mark.parametrize("codec", CODECS)
def test_time_range_2000_records_reference_matcher(benchmark, codec):
    """A StudyTime range through get_value + the reference test (the pure twin's path)."""
    cond = compile_condition("StudyTime", 0x00080030, "TM", "-0800", MatchOptions())
    assert benchmark(lambda: sum(1 for rec in TIMED if cond.test(codec.get_value(rec, 0x00080030)))) == 100


@needs_ext
def test_time_range_2000_records_kernel(benchmark):
    """The same with the compiled TM range kernel (FieldTest tm_range), read in place."""
    cond = compile_condition("StudyTime", 0x00080030, "TM", "-0800", MatchOptions())
    test = fast.accelerate(cond, MatchOptions()).test_record
    assert benchmark(lambda: sum(1 for rec in TIMED if test(rec))) == 100
