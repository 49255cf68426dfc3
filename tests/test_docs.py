"""The documentation works as written, for a user of the built package: every ```python block
and every `pacscore ...` command (```sh and ```console blocks) of README.md and docs/*.md runs
against the wheel (wheel_env.py) installed in a fresh virtual environment outside the repository.

A page's blocks run in order, in a working folder of their own that holds small generated data:
``ct.dcm`` (study 1.2.3, series 1.2.3.4, instance 1.2.3.4.5), ``image.dcm`` and ``x.dcm`` (other
instances), ``incoming/`` (generated studies and a copy of ``ct.dcm``) and ``folder/``
(generated studies). A page's Python blocks share one namespace, as a reader's session would.

In a console block with prompts the lines starting with ``$ `` are the commands (the rest is
output), and ``$ echo $?`` gives the exit status the command before it must have (0 otherwise).
``pacscore serve`` runs in the background until the page is done; its port is swapped for a free
one in that command and the page's later ones, and the next command waits until the server
accepts connections. Other commands (pip, make, python -m benchmarks...) set up or work on the
repository and are not run here. Under ``PACSCORE_PURE=1`` (the suite's second run) the
examples run on the wheel's pure-Python twins.

A block that cannot run on its own (it needs an S3 endpoint, a remote PACS, a package of yours)
has ``<!-- not run: the reason -->`` on the line before its fence; the reason must be given.
"""

from __future__ import annotations

import json
import os
import re
import signal
import socket
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

import pytest

from .factories import make_instance, to_bytes
from .wheel_env import ROOT, UserEnv, built_dist, one

pytestmark = pytest.mark.slow

PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
FENCE = re.compile(r"^```(\w*)\s*$")
NOT_RUN = re.compile(r"^<!--\s*not run:\s*(?P<reason>.*?)\s*-->\s*$")
SERVER_READY_SECONDS = 60  # a deadline for a failure message, not a measurement


@dataclass
class Block:
    page: Path
    line: int  # of the opening fence, 1-based
    lang: str
    text: str
    not_run: str | None  # the reason given in the marker

    @property
    def where(self) -> str:
        return f"{_page_id(self.page)}:{self.line}"


def _page_id(page: Path) -> str:
    return str(page.relative_to(ROOT)) if page.is_relative_to(ROOT) else page.name


def blocks(page: Path) -> list[Block]:
    """The fenced blocks of a page, each with the not-run reason of the marker before it."""
    lines = page.read_text(encoding="utf-8").splitlines()
    found, i = [], 0
    while i < len(lines):
        opening = FENCE.match(lines[i])
        if not opening:
            i += 1
            continue
        end = next(j for j in range(i + 1, len(lines)) if lines[j].startswith("```"))
        before = next((lines[j] for j in range(i - 1, -1, -1) if lines[j].strip()), "")
        marker = NOT_RUN.match(before.strip())
        found.append(
            Block(
                page,
                i + 1,
                opening.group(1),
                "\n".join(lines[i + 1 : end]) + "\n",
                marker.group("reason") if marker else None,
            )
        )
        i = end + 1
    return found


@dataclass
class Command:
    line: str
    where: str
    expect: int = 0


def commands(block: Block) -> list[Command]:
    """The `pacscore` commands of a sh or console block, with the exit status each must have."""
    out: list[Command] = []
    prompted = block.lang == "console" and any(line.startswith("$ ") for line in block.text.splitlines())
    for offset, raw in enumerate(block.text.splitlines(), start=1):
        line = raw.strip()
        if prompted:  # the rest is output
            if not line.startswith("$ "):
                continue
            line = line[2:].strip()
        status = re.fullmatch(r"echo \$\?\s*", line)
        if status and out:
            following = block.text.splitlines()[offset : offset + 1]
            out[-1].expect = int(following[0].strip())
            continue
        line = _without_comment(line)
        if line.split(" ", 1)[0] == "pacscore":
            out.append(Command(line, f"{_page_id(block.page)}:{block.line + offset}"))
    return out


def _without_comment(line: str) -> str:
    """The command without a trailing ``# comment`` (a ``#`` after a blank, outside quotes)."""
    quote = None
    for i, char in enumerate(line):
        if quote:
            quote = None if char == quote else quote
        elif char in "'\"":
            quote = char
        elif char == "#" and i and line[i - 1].isspace():
            return line[:i].rstrip()
    return line


def test_the_extractor_reads_markers_statuses_and_comments(tmp_path):
    page = tmp_path / "page.md"
    page.write_text(
        "text\n\n<!-- not run: needs an S3 endpoint -->\n```python\nx = 1\n```\n"
        "```console\n$ pacscore find --archive a/ PatientName='A#B'   # the name\nout\n"
        "$ echo $?\n1\n$ pip install pacscore\n```\n```sh\npacscore stats --archive a/\nmake demo\n```\n"
    )
    page_blocks = blocks(page)
    assert [(b.lang, b.not_run) for b in page_blocks] == [
        ("python", "needs an S3 endpoint"),
        ("console", None),
        ("sh", None),
    ]
    found = [c for b in page_blocks[1:] for c in commands(b)]
    assert [(c.line, c.expect) for c in found] == [
        ("pacscore find --archive a/ PatientName='A#B'", 1),
        ("pacscore stats --archive a/", 0),
    ]


def test_a_served_port_is_swapped_only_where_it_is_a_whole_number():
    line = "pacscore bench dimse://A@127.0.0.1:11112 --port 11112 --repeat 111120"
    swapped = "pacscore bench dimse://A@127.0.0.1:40001 --port 40001 --repeat 111120"
    assert _with_ports(line, {"11112": "40001"}) == swapped


def test_every_not_run_marker_gives_a_reason():
    unexplained = [b.where for page in PAGES for b in blocks(page) if b.not_run is not None and not b.not_run]
    assert not unexplained


def test_the_api_reference_names_every_public_name_and_field():
    import dataclasses

    import pacscore
    from pacscore import errors
    from pacscore.maintenance import BackupReport, SideReport, VerifyReport
    from pacscore.reports import Move

    page = ROOT / "docs" / "api.md"
    code = " ".join(block.text for block in blocks(page))
    prose = re.sub(r"^```.*?^```", "", page.read_text(encoding="utf-8"), flags=re.DOTALL | re.MULTILINE)
    named = set(re.findall(r"[A-Za-z_][A-Za-z0-9_]*", code + " ".join(re.findall(r"`([^`]+)`", prose))))
    public = {name for name in dir(pacscore.Archive) if not name.startswith("_")}
    public |= set(pacscore.__all__) | {"restore", "ArchiveNotFound", "ConfigError"}
    for kind in (
        pacscore.StoreResult,
        pacscore.IngestReport,
        pacscore.InstanceRef,
        Move,
        VerifyReport,
        SideReport,
        BackupReport,
    ):
        public |= {field.name for field in dataclasses.fields(kind)}
    public |= {name for name in vars(VerifyReport) if isinstance(vars(VerifyReport)[name], property)}
    public |= {name for name in vars(errors) if isinstance(vars(errors)[name], type)}
    assert not sorted(public - named)


# ---------------------------------------------------------------- the data a page finds


def _write_data(folder: Path) -> None:
    from pacscore.testing.generate import GeneratorConfig, write_files

    folder.mkdir(parents=True, exist_ok=True)
    (folder / "ct.dcm").write_bytes(
        to_bytes(
            make_instance(sop="1.2.3.4.5", study="1.2.3", series="1.2.3.4", patient_id="P1", patient_name="SMITH^JOHN")
        )
    )
    (folder / "image.dcm").write_bytes(
        to_bytes(
            make_instance(sop="1.2.3.4.6", study="1.2.3", series="1.2.3.4", patient_id="P1", patient_name="SMITH^JOHN")
        )
    )
    (folder / "x.dcm").write_bytes(
        to_bytes(
            make_instance(sop="1.2.3.5.1", study="1.2.3", series="1.2.3.5", patient_id="P1", patient_name="SMITH^JOHN")
        )
    )
    small = {"studies_per_patient": (1, 2), "series_per_study": (1, 2), "instances_per_series": (1, 3)}
    write_files(GeneratorConfig(patients=4, seed=1, **small), folder / "incoming")
    (folder / "incoming" / "ct.dcm").write_bytes((folder / "ct.dcm").read_bytes())
    write_files(GeneratorConfig(patients=2, seed=2, **small), folder / "folder")


# ---------------------------------------------------------------- the user's environment


@pytest.fixture(scope="module")
def user(tmp_path_factory) -> UserEnv:
    """A fresh venv outside the repository with the wheel and every extra (every command works)."""
    wheel = one(built_dist(tmp_path_factory), "*.whl")
    env = UserEnv(tmp_path_factory.mktemp("docs-user"))
    env.install(f"{wheel}[all]")
    if os.environ.get("PACSCORE_PURE") == "1":  # the suite's second run: the docs on the pure twins
        env.env["PACSCORE_PURE"] = "1"
    where = env.run("python", "-c", "import pacscore; print(pacscore.__file__, pacscore.IMPLEMENTATION)").stdout
    assert str(env.venv) in where and str(ROOT) not in where
    assert where.split()[1] == ("pure" if env.env.get("PACSCORE_PURE") else "cython")
    return env


RUNNER = """\
import json, sys, traceback
namespace = {"__name__": "__main__"}
for where, code in json.load(open(sys.argv[1])):
    try:
        exec(compile(code, where, "exec"), namespace)
    except BaseException:
        print(f"the block at {where} failed:", file=sys.stderr)
        traceback.print_exc()
        sys.exit(1)
"""


PYTHON_PAGES = [p for p in PAGES if any(b.lang == "python" and b.not_run is None for b in blocks(p))]
COMMAND_PAGES = [p for p in PAGES if any(commands(b) for b in blocks(p) if b.not_run is None)]


@pytest.mark.parametrize("page", PYTHON_PAGES, ids=_page_id)
def test_the_python_examples_run(page, user, tmp_path):
    work = tmp_path / "work"
    _write_data(work)
    runnable = [(b.where, b.text) for b in blocks(page) if b.lang == "python" and b.not_run is None]
    script = tmp_path / "blocks.json"
    script.write_text(json.dumps(runnable))
    runner = tmp_path / "run_blocks.py"
    runner.write_text(RUNNER)
    user.run("python", str(runner), str(script), cwd=work)


@pytest.mark.parametrize("page", COMMAND_PAGES, ids=_page_id)
def test_the_commands_run(page, user, tmp_path):
    work = tmp_path / "work"
    _write_data(work)
    servers: list[subprocess.Popen] = []
    ports: dict[str, str] = {}
    try:
        for block in blocks(page):
            if block.not_run is not None:
                continue
            for command in commands(block):
                line = _with_ports(command.line, ports)
                if line.split()[:2] == ["pacscore", "serve"]:
                    servers.append(_serve(user, line, work, ports, command.where))
                    continue
                proc = subprocess.run(
                    line, shell=True, cwd=work, env=user.env, capture_output=True, text=True, check=False
                )
                assert proc.returncode == command.expect, (
                    command.where,
                    line,
                    proc.stdout[-3000:],
                    proc.stderr[-3000:],
                )
    finally:
        for server in servers:
            _stop(server)


def _with_ports(line: str, ports: dict[str, str]) -> str:
    for written, free in ports.items():
        line = re.sub(rf"(?<!\d){written}(?!\d)", free, line)
    return line


def _serve(user: UserEnv, line: str, work: Path, ports: dict[str, str], where: str) -> subprocess.Popen:
    """Start a `pacscore serve` command on a free loopback port; return once it accepts."""
    line = line.removesuffix("&").strip()
    written = re.search(r"--port\s+(\d+)", line)
    assert written, (where, "a serve command needs --port for the test to find it")
    ports[written.group(1)] = str(_free_port())
    line = _with_ports(line, {written.group(1): ports[written.group(1)]})
    server = subprocess.Popen(
        line,
        shell=True,
        cwd=work,
        env=user.env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    port = int(ports[written.group(1)])
    deadline = time.monotonic() + SERVER_READY_SECONDS
    while time.monotonic() < deadline:
        if server.poll() is not None:
            out, err = server.communicate()
            pytest.fail(f"{where}: {line} exited with {server.returncode}: {out[-2000:]} {err[-2000:]}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1):
                return server
        except OSError:
            time.sleep(0.05)
    _stop(server)
    pytest.fail(f"{where}: {line} did not accept connections on port {port}")


def _stop(server: subprocess.Popen) -> None:
    """SIGTERM to the server's process group (the shell and pacscore), then reap it."""
    if server.poll() is None:
        os.killpg(server.pid, signal.SIGTERM)
    server.communicate()


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]
