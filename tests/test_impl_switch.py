"""One module (pacscore/_impl.py) chooses compiled or pure code for every twin and says so truthfully."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from pacscore import _impl


def _state(env_extra: dict, prelude: str = "") -> dict:
    code = (
        f"import sys\n{prelude}\nimport json, pacscore, pacscore._impl as i\n"
        "from pacscore.index import codec\nfrom pacscore.query import fast, ranges\nfrom pacscore import ingest\n"
        "print(json.dumps({'summary': pacscore.IMPLEMENTATION, 'state': i.state(), 'codec': codec.IMPLEMENTATION,"
        " 'fast': fast.LIVE, 'walk_pure': ingest._walk is ingest._walk_problem,"
        " 'ranges_pure': ranges.walk is ranges.walk_range_pure}))"
    )
    env = {k: v for k, v in os.environ.items() if k != "PACSCORE_PURE"}
    out = subprocess.run(
        [sys.executable, "-c", code], env={**env, **env_extra}, capture_output=True, text=True, check=True
    )
    return json.loads(out.stdout)


def test_forced_pure_makes_every_twin_pure():
    got = _state({"PACSCORE_PURE": "1"})
    assert got["summary"] == "pure" and got["codec"] == "pure" and got["fast"] is False
    assert got["walk_pure"] and got["ranges_pure"]
    assert set(got["state"]) == set(_impl.TWINS)
    assert all(s == "pure (forced by PACSCORE_PURE=1)" for s in got["state"].values())


def test_compiled_when_built():
    if any(_impl.compiled(n) is None for n in _impl.TWINS) or _impl.FORCED_PURE:
        pytest.skip("the extensions are not all built, or pure mode is forced")
    got = _state({})
    assert got["summary"] == "cython" and got["codec"] == "cython" and got["fast"] is True
    assert not got["walk_pure"] and not got["ranges_pure"]
    assert all(s == "cython" for s in got["state"].values())


def test_one_missing_extension_is_reported_and_its_twin_is_pure():
    got = _state({}, prelude="sys.modules['pacscore._ext._walk'] = None  # as if it were not built")
    assert got["state"]["_walk"].startswith("pure (not built:")
    assert got["walk_pure"]
    if not _impl.FORCED_PURE and _impl.compiled("_records") is not None:
        assert got["summary"] == "mixed"


def test_an_unknown_twin_is_a_clear_error():
    with pytest.raises(KeyError, match="_nope"):
        _impl.compiled("_nope")
