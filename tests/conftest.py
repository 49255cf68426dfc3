"""Shared fixtures and the Hypothesis profiles (HYPOTHESIS_PROFILE=dev|ci|long)."""
from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import HealthCheck, settings

import pacscore

settings.register_profile("dev", max_examples=60, deadline=None)
settings.register_profile(
    "ci", max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow], derandomize=True
)
settings.register_profile("long", max_examples=2000, deadline=None, suppress_health_check=[HealthCheck.too_slow])
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci" if os.environ.get("CI") else "dev"))


@pytest.fixture
def arc(tmp_path: Path) -> Iterator[pacscore.Archive]:
    """An empty archive of the test's own (``tmp_path / "arc"``), closed after the test."""
    with pacscore.open(tmp_path / "arc") as archive:
        yield archive
