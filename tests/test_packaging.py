"""What a user of the built package gets: commands whose extra is missing say what to install,
pacscore.testing loads without pytest, one version source, and (slow) a wheel built from this
tree, installed in a fresh virtual environment outside the repository, runs the tutorials."""

from __future__ import annotations

import importlib.abc
import importlib.util
import os
import subprocess
import sys
import tarfile
import tomllib
import zipfile
from pathlib import Path

import pytest

import pacscore
from pacscore.cli import build_parser, main

from .wheel_env import built_dist, one

ROOT = Path(__file__).resolve().parents[1]


# ---------------------------------------------------------------- cli._optional


@pytest.mark.parametrize(
    "blocked, argv, extra",
    [
        (["pynetdicom"], ["serve", "dimse", "--archive", "ARC", "--port", "11112"], "dimse"),
        (["starlette", "uvicorn"], ["serve", "web", "--archive", "ARC", "--help"], "web"),
        (["hypothesis"], ["conformance", "ARC", "--queries", "10"], "conformance"),
    ],
)
def test_a_command_whose_extra_is_missing_says_what_to_install(blocked, argv, extra, tmp_path, monkeypatch, capsys):
    folder = tmp_path / "arc"
    with pacscore.open(folder) as arc:
        arc.store(_instance())
    for name in blocked:  # None in sys.modules: the package is not installed, for importlib
        monkeypatch.setitem(sys.modules, name, None)
    argv = [str(folder) if a == "ARC" else a for a in argv]
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert all(name in err for name in blocked), err
    assert f'pip install "pacscore[{extra}]"' in err
    with pacscore.open(folder) as arc:  # the command touched nothing
        assert arc.stats()["instances"] == 1


@pytest.mark.parametrize(
    "blocked, argv, extra",
    [
        ("pynetdicom", ["bench", "dimse://PACS@127.0.0.1:9", "--data", "ARC", "--repeat", "1"], "dimse"),
        ("httpx", ["conformance", "http://127.0.0.1:9/dicomweb", "--queries", "7"], "web"),
    ],
)
def test_a_remote_target_without_its_client_package_says_what_to_install(
    blocked, argv, extra, tmp_path, monkeypatch, capsys
):
    folder = tmp_path / "arc"
    with pacscore.open(folder) as arc:
        arc.store(_instance())
    monkeypatch.setitem(sys.modules, blocked, None)
    assert main([str(folder) if a == "ARC" else a for a in argv]) == 2
    err = capsys.readouterr().err
    assert blocked in err and f'pip install "pacscore[{extra}]"' in err
    with pacscore.open(folder) as arc:
        assert arc.stats()["instances"] == 1


def test_the_missing_command_is_still_listed(monkeypatch, capsys):
    monkeypatch.setitem(sys.modules, "hypothesis", None)
    with pytest.raises(SystemExit):
        main(["--help"])
    out = capsys.readouterr().out
    assert "conformance" in out and "pacscore[conformance]" in out
    assert "bench" in out


class _FailingImport(importlib.abc.MetaPathFinder, importlib.abc.Loader):
    """Makes one module's import raise ``error``, as a bug in that module would."""

    def __init__(self, name: str, error: ImportError) -> None:
        self.name, self.error = name, error

    def find_spec(self, fullname, path, target=None):
        return importlib.util.spec_from_loader(fullname, self) if fullname == self.name else None

    def create_module(self, spec):
        return None

    def exec_module(self, module):
        raise self.error


@pytest.mark.parametrize(
    "error",
    [
        ImportError("cannot import name 'DimseConfig' from 'pacscore.adapters.dimse_service'"),
        ModuleNotFoundError("No module named 'pacscore.adapters.dimse_gone'", name="pacscore.adapters.dimse_gone"),
    ],
)
def test_an_import_error_in_pacscore_itself_is_not_a_missing_extra(error, monkeypatch):
    monkeypatch.delitem(sys.modules, "pacscore.adapters.dimse", raising=False)
    monkeypatch.setattr(sys, "meta_path", [_FailingImport("pacscore.adapters.dimse", error), *sys.meta_path])
    with pytest.raises(ImportError) as caught:
        build_parser()
    assert caught.value is error


def test_pacscore_testing_needs_neither_pytest_nor_hypothesis_for_bench(tmp_path):
    folder = tmp_path / "arc"
    with pacscore.open(folder) as arc:
        arc.store(_instance())
    code = (
        "import sys\n"
        "for name in ('pytest', '_pytest', 'hypothesis'): sys.modules[name] = None\n"
        "import pacscore.testing, pacscore.testing.suite, pacscore.testing.generate\n"
        "from pacscore.cli import main\n"
        f"assert main(['bench', {str(folder)!r}, '--repeat', '1']) == 0\n"
        "try:\n"
        "    pacscore.testing.BlobStoreTests\n"
        "except ModuleNotFoundError as exc:\n"
        "    print('BlobStoreTests needs', exc.name)\n"
    )
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")])}
    proc = subprocess.run(
        [sys.executable, "-c", code], cwd=tmp_path, env=env, capture_output=True, text=True, check=False
    )
    assert proc.returncode == 0, proc.stderr
    assert "errors 0" in proc.stdout
    assert "BlobStoreTests needs pytest" in proc.stdout


# ---------------------------------------------------------------- metadata


def test_the_version_has_one_source():
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())
    assert "version" not in project["project"] and "version" in project["project"]["dynamic"]
    assert project["tool"]["setuptools"]["dynamic"]["version"] == {"attr": "pacscore.__version__"}


def test_numpy_is_not_a_core_dependency():
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    assert not any(dep.startswith("numpy") for dep in project["dependencies"])
    extras = project["optional-dependencies"]
    assert any(dep.startswith("numpy") for dep in extras["dimse"])  # byte-order conversion
    assert any(dep.startswith("numpy") for dep in extras["web"])  # WADO-RS frames


def test_the_benchmark_scripts_use_the_package_code():
    from benchmarks import generate, run
    from pacscore.testing import generate as packaged
    from pacscore.testing import suite

    assert all(getattr(generate, name) is getattr(packaged, name) for name in packaged.__all__)
    assert run.QUERY_SUITE is suite.QUERY_SUITE and run.resolve_suite is suite.resolve_suite


# ---------------------------------------------------------------- the built package (slow)


@pytest.fixture(scope="module")
def dist(tmp_path_factory) -> Path:
    """An sdist and a wheel built from this tree as pip would (once per session: wheel_env.py)."""
    return built_dist(tmp_path_factory)


@pytest.mark.slow
def test_the_wheel_has_the_license_and_no_generated_c(dist):
    with zipfile.ZipFile(one(dist, "*.whl")) as wheel:
        names = wheel.namelist()
        metadata = wheel.read(next(n for n in names if n.endswith(".dist-info/METADATA"))).decode()
    assert not [n for n in names if n.endswith(".c")]
    assert any(n.endswith(".dist-info/licenses/LICENSE") for n in names)
    assert [n for n in names if n.startswith("pacscore/_ext/") and n.endswith(".so")]
    assert "pacscore/testing/generate.py" in names and "pacscore/testing/suite.py" in names
    assert f"\nVersion: {pacscore.__version__}\n" in metadata
    assert "\nLicense-Expression: MIT\n" in metadata
    with tarfile.open(one(dist, "*.tar.gz")) as tar:
        sdist = tar.getnames()
    assert [n for n in sdist if n.endswith(".pyx")] and not [n for n in sdist if n.endswith(".c")]
    assert any(n.endswith("/LICENSE") for n in sdist)


@pytest.mark.slow
def test_a_wheel_user_runs_ingest_bench_and_conformance(dist, tmp_path):
    """The tutorials as a user outside the repository runs them: first the bare package (bench
    works; conformance and serve say what to install; no numpy), then pacscore[all]."""
    wheel = one(dist, "*.whl")
    env_dir = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(env_dir)], check=True)
    bin_dir = env_dir / "bin"
    work = tmp_path / "work"
    work.mkdir()
    env = {
        "PATH": f"{bin_dir}{os.pathsep}{os.environ['PATH']}",
        "HOME": os.environ.get("HOME", str(tmp_path)),
        "LANG": "C.UTF-8",
    }  # no PYTHONPATH: nothing of the repository is importable

    def run(*argv: str, expect: int = 0) -> subprocess.CompletedProcess:
        proc = subprocess.run(list(argv), cwd=work, env=env, capture_output=True, text=True, check=False)
        assert proc.returncode == expect, (argv, proc.stdout[-3000:], proc.stderr[-3000:])
        return proc

    run(str(bin_dir / "python"), "-m", "pip", "install", "--quiet", str(wheel))
    where = run("python", "-c", "import pacscore; print(pacscore.__file__)").stdout
    assert str(env_dir) in where and str(ROOT) not in where
    assert "numpy" in run("python", "-c", "import numpy", expect=1).stderr
    count = run(
        "python",
        "-c",
        "from pacscore.testing.generate import GeneratorConfig, write_files\n"
        "print(write_files(GeneratorConfig(patients=4, seed=3), 'files'))",
    ).stdout
    assert f"stored {int(count)}," in run("pacscore", "ingest", "--archive", "arc", "-q", "files").stdout
    bench = run("pacscore", "bench", "arc", "--repeat", "1").stdout
    assert "arc: 1 client(s)" in bench and "errors 0" in bench and "PatientName prefix" in bench
    generated = run("pacscore", "bench", "barc", "--generate", "60", "--repeat", "1").stdout
    assert "barc: 1 client(s)" in generated and "errors 0" in generated
    missing = run("pacscore", "conformance", "conf", "--queries", "14", expect=2).stderr
    assert "hypothesis" in missing and 'pip install "pacscore[conformance]"' in missing
    assert 'pip install "pacscore[dimse]"' in run("pacscore", "serve", "dimse", "--archive", "arc", expect=2).stderr

    run(str(bin_dir / "python"), "-m", "pip", "install", "--quiet", f"{wheel}[all]")
    run("python", "-c", "import pynetdicom, starlette, uvicorn, httpx, numpy, boto3, tqdm, hypothesis")
    usage = run("pacscore", "--help").stdout
    assert all(command in usage for command in ("ingest", "bench", "conformance", "serve"))
    assert "needs pacscore[" not in usage
    assert "--port" in run("pacscore", "serve", "dimse", "--help").stdout
    conformance = run("pacscore", "conformance", "conf", "--seed", "1", "--queries", "28").stdout
    assert "no deviation from the reference matcher" in conformance
    versions = run(
        "python",
        "-c",
        "import importlib.metadata as m, pacscore\n"
        "print(m.version('pacscore'), pacscore.__version__, pacscore.IMPLEMENTATION)",
    )
    installed, declared, implementation = versions.stdout.split()
    assert installed == declared == pacscore.__version__ and implementation == "cython"


def _instance():
    from .factories import make_instance

    return make_instance(sop="1.2.3.1.1", study="1.2.3", series="1.2.3.1", patient_id="P1", patient_name="Doe^Jane")
