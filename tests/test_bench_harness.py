"""The scale harness (benchmarks/run.py) on a small archive: the suite resolves its keys from the
archive, and ``--option`` applies matching options to every query of it."""

import pytest

from benchmarks import run


@pytest.fixture(scope="module")
def small_archive(tmp_path_factory):
    folder = tmp_path_factory.mktemp("bench") / "archive"
    info = run.build(folder, 300, seed=3, workers=1)
    assert info["instances"] == 300
    return folder


def test_suite_runs_and_options_reach_every_query(small_archive):
    default = run.run_suite(small_archive, min_time=0.01)
    strict = run.run_suite(small_archive, min_time=0.01, options={"empty_record_matches": False})
    assert [q["name"] for q in default["queries"]] == [name for name, *_ in run.QUERY_SUITE]
    assert strict["options"] == {"empty_record_matches": False}
    for d, s in zip(default["queries"], strict["queries"]):
        assert s["options"]["empty_record_matches"] is False
        assert s["matches"] <= d["matches"], d["name"]  # empty values no longer match any key
    by_name = {q["name"]: q for q in default["queries"]}
    assert by_name["exact PatientID"]["matches"] >= 1
    assert by_name["StudyInstanceUID list"]["plan"]["plan"] == "unique"


def test_option_parsing():
    assert run._parse_options(["empty_record_matches=false", "local_timezone=+0100", "relational=TRUE"]) == {
        "empty_record_matches": False,
        "local_timezone": "+0100",
        "relational": True,
    }
    with pytest.raises(SystemExit, match="NAME=VALUE"):
        run._parse_options(["empty_record_matches"])
