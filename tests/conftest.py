"""Shared fixtures and the Hypothesis profiles (HYPOTHESIS_PROFILE=dev|ci|long)."""

from __future__ import annotations

import os
import select
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import HealthCheck, settings

import pacscore

from .factories import BUCKET

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


# -- an S3 wire-protocol server for the session ------------------------------------------

#: moto's server in a child process, on a port the server itself picks and then reports: no
#: free-port-then-bind race with other processes. The child ends on SIGTERM.
MOTO_SERVER = """
import threading
from moto.server import ThreadedMotoServer
server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
server.start()
print(server.get_host_and_port()[1], flush=True)
threading.Event().wait()
"""


@pytest.fixture(scope="session")
def s3_endpoint(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """moto's standalone server on 127.0.0.1, with one bucket; skipped if it cannot start."""
    pytest.importorskip("boto3")
    try:
        import moto.server  # noqa: F401
    except ImportError as exc:
        pytest.skip(f"moto[server] is not installed: {exc}")
    log = tmp_path_factory.mktemp("moto") / "server.log"
    with open(log, "wb") as out:
        proc = subprocess.Popen([sys.executable, "-c", MOTO_SERVER], stdout=subprocess.PIPE, stderr=out, text=True)
    try:
        # the port line comes once the socket listens; the deadline only bounds a child that hangs
        ready, _, _ = select.select([proc.stdout], [], [], 60)
        line = proc.stdout.readline().strip() if ready else ""
        if not line.isdigit():
            pytest.skip(f"moto server did not report its port (exit {proc.poll()}): {log.read_text()[-500:]}")
        endpoint = f"http://127.0.0.1:{line}"
        import boto3

        boto3.session.Session(aws_access_key_id="testing", aws_secret_access_key="testing-secret").client(
            "s3", endpoint_url=endpoint, region_name="us-east-1"
        ).create_bucket(Bucket=BUCKET)
        yield endpoint
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        proc.stdout.close()
