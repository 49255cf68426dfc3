"""A short run of benchmarks/load.py: concurrent C-FIND (and QIDO-RS when the DICOMweb adapter
works) with a C-STORE stream; nothing acknowledged is lost and every stored data set is the
bytes that were sent. The long run and its figures: docs/reliability.md."""

from __future__ import annotations

import logging

from benchmarks import load


def test_short_load_loses_nothing(tmp_path):
    logging.getLogger("pynetdicom").setLevel(logging.CRITICAL)
    result = load.run(
        tmp_path / "a",
        seconds=6,
        find_clients=3,
        qido_clients=2,
        store_clients=2,
        prefill=64,
        max_ops=5000,
        check_sample=20,
    )
    # which client saw what: the whole result dict is too long for pytest to show in full
    samples = {k: result[k]["error_samples"] for k in ("c_find", "c_store", "qido") if k in result}
    assert result["hung_clients"] == 0
    assert result["c_store"]["ops"] > 10 and result["c_find"]["ops"] > 10, result
    assert result["c_find"]["errors"] == 0 and result["c_store"]["errors"] == 0, samples
    if result["dicomweb"]:
        assert result["qido"]["ops"] > 5 and result["qido"]["errors"] == 0, samples
    assert result["acknowledged"] == result["c_store"]["ops"]
    assert result["lost"] == 0 and result["mismatched"] == 0 and result["not_found_over_dimse"] == 0, result
    assert result["verify_ok"]
    assert result["instances_after"] == 64 + result["acknowledged"]
