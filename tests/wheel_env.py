"""The built package as a user gets it, shared by the test modules that need it: an sdist and a
wheel built once per test session from this tree, and fresh virtual environments outside the
repository with that wheel installed (nothing of the repository importable)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

_built: dict[str, Path] = {}  # one build per session, whichever module asks first


def built_dist(tmp_path_factory) -> Path:
    """The folder holding an sdist and a wheel built from this tree as pip would (isolated build
    environment); built on the first call of the session, then reused."""
    if "dist" not in _built:
        out = tmp_path_factory.mktemp("dist")
        env = {k: v for k, v in os.environ.items() if k not in ("PACSCORE_NO_EXT", "PYTHONPATH")}
        # python -m build: the "build" package of the test extra
        proc = subprocess.run(
            [sys.executable, "-m", "build", "--outdir", str(out), str(ROOT)],
            capture_output=True,
            text=True,
            env=env,
            check=False,
        )
        log = proc.stdout + proc.stderr
        assert proc.returncode == 0, log[-4000:]
        assert "Deprecat" not in log, [line for line in log.splitlines() if "eprecat" in line]
        _built["dist"] = out
    return _built["dist"]


def one(folder: Path, pattern: str) -> Path:
    (found,) = folder.glob(pattern)
    return found


class UserEnv:
    """A fresh virtual environment in ``home/venv`` and a working folder ``home/work``; commands
    run with the venv's bin first on PATH, no PYTHONPATH, and a minimal environment."""

    def __init__(self, home: Path) -> None:
        self.home = home
        self.venv = home / "venv"
        self.bin = self.venv / "bin"
        self.work = home / "work"
        self.work.mkdir(parents=True, exist_ok=True)
        subprocess.run([sys.executable, "-m", "venv", str(self.venv)], check=True)
        self.env = {
            "PATH": f"{self.bin}{os.pathsep}{os.environ['PATH']}",
            "HOME": os.environ.get("HOME", str(home)),
            "LANG": "C.UTF-8",
        }

    def install(self, requirement: str) -> None:
        self.run(str(self.bin / "python"), "-m", "pip", "install", "--quiet", requirement)

    def run(self, *argv: str, expect: int = 0, cwd: Path | None = None) -> subprocess.CompletedProcess:
        proc = subprocess.run(
            list(argv), cwd=cwd or self.work, env=self.env, capture_output=True, text=True, check=False
        )
        assert proc.returncode == expect, (argv, proc.stdout[-3000:], proc.stderr[-3000:])
        return proc
