"""`pacscore conformance` and `pacscore bench` (pacscore.testing.conformance / bench / cli)."""

from __future__ import annotations

import argparse
import json

import pytest

import pacscore
from pacscore.adapters import dimse
from pacscore.testing import cli as testing_cli
from pacscore.testing.conformance import run_conformance
from pacscore.testing.targets import use_archive


def run_cli(argv: list[str], capsys) -> tuple[int, str]:
    parser = argparse.ArgumentParser()
    sub = parser.add_subparsers()
    testing_cli.add_bench_cli(sub)
    testing_cli.add_conformance_cli(sub)
    args = parser.parse_args(argv)
    rc = args.func(args)
    return rc, capsys.readouterr().out


@pytest.fixture
def served(tmp_path):
    """An archive served over DIMSE on 127.0.0.1 (free port); yields (folder, dimse URL)."""
    with pacscore.open(tmp_path / "arc") as arc:
        use_archive(arc)
        server = dimse.serve(arc, "PACSCORE", 0, "127.0.0.1", block=False)
        try:
            yield str(tmp_path / "arc"), f"dimse://PACSCORE@127.0.0.1:{server.server_address[1]}"
        finally:
            server.shutdown()


def test_archive_folder_conforms(tmp_path, capsys):
    rc, out = run_cli(["conformance", str(tmp_path / "a"), "--seed", "1", "--queries", "210", "--json"], capsys)
    report = json.loads(out)
    assert rc == 0, report["groups"]
    assert report["deviations"] == 0 and report["queries"] >= 210 and report["stored"] > 0
    assert set(report["queries_per_rule"]) == {
        "single",
        "wildcard",
        "range",
        "uid_list",
        "universal",
        "multi_value",
        "combined",
    }


def test_no_store_reuses_the_same_seeded_data(tmp_path):
    first = run_conformance(str(tmp_path / "a"), seed=4, queries=14)
    again = run_conformance(str(tmp_path / "a"), seed=4, queries=70, store=False)
    assert first.ok and again.ok and again.stored == 0


def test_a_wrong_expectation_is_reported_with_a_small_example(tmp_path, capsys):
    # the archive compares names case-insensitively; told to expect "sensitive", the runner
    # must find PN deviations, shrink them, and exit 1
    rc, out = run_cli(
        [
            "conformance",
            str(tmp_path / "a"),
            "--seed",
            "2",
            "--queries",
            "120",
            "--rules",
            "wildcard",
            "--levels",
            "STUDY",
            "--pn-case",
            "sensitive",
        ],
        capsys,
    )
    assert rc == 1
    assert "wildcard" in out and "Name=" in out and "group(s) of deviations" in out


def test_dimse_adapter_conforms(served, capsys):
    _, url = served
    rc, out = run_cli(["conformance", url, "--seed", "3", "--queries", "56", "--calling-ae", "CONFTEST"], capsys)
    assert rc == 0, out
    assert "no deviation" in out


def test_bench_archive_and_dimse_in_one_invocation(served, capsys):
    folder, url = served
    # --generate stores benchmarks.generate data through both targets (here the same archive)
    rc, out = run_cli(
        ["bench", folder, "--compare", url, "--generate", "120", "--clients", "2", "--repeat", "1", "--json"], capsys
    )
    result = json.loads(out)
    assert rc == 0
    first, second = result["results"]
    assert first["target"] == folder and second["target"] == url
    assert first["queries"] >= 2 * 13 and first["errors"] == 0
    # the relational SERIES query of the suite is asked for by extended negotiation over DIMSE
    assert second["queries"] >= 2 * 13 and second["errors"] == 0, second["error_messages"]
    assert [q["matches"] for q in first["per_query"]] == [q["matches"] for q in second["per_query"]]
    assert second["queries"] > 0 and second["p50_ms"] > 0 and second["p99_ms"] >= second["p50_ms"]
    assert {q["name"] for q in first["per_query"]} >= {"exact PatientID", "StudyDate closed range"}
    assert result["ratios"]["p50"] is not None
    # the table form
    rc, out = run_cli(["bench", folder, "--data", folder, "--repeat", "1"], capsys)
    assert rc == 0 and "p95 ms" in out and "q/s" in out
