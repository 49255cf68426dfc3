"""Server CPU per C-FIND match spent building and encoding the response identifiers.

    python -m benchmarks.find_encode [--instances N ...] [--keep DIR] [--min-time S] [--profile]

Issue #17 aims at 20 us of server CPU per returned study; pynetdicom's per-message cost aside,
what is left per match is ``dimse_encode.encoded_find``: the query's row fetch, the result
builder's fields, and ``encode_fields`` (docs/benchmarks-wire.md). For each archive size this
builds an archive with benchmarks.run's generator, then, in a child process per implementation
(compiled, and pure with PACSCORE_PURE=1), times ``list(encoded_find(...))`` for a few queries of
the suite, Explicit VR Little Endian, with Retrieve AE Title added as the DIMSE adapter adds it,
and reports microseconds per match. The broad query is also split into its steps, each timed on
its own in one read transaction: matches (the executor's row fetch); ``ResultBuilder.fields``
on those matches and the encoding of those fields (``encode_row``, the path of a row the plan
leaves out); the rows built from the records by the row plan (``EncodePlan``, what
``encoded_find`` does per match). ``--profile`` prints cProfile's top
functions of the broad query in each mode.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from benchmarks import run

__all__ = ["QUERIES", "OPTIONS", "measure", "main"]

#: the suite's queries timed here (the broad one is also split into steps)
QUERIES = ("broad: all studies since 2005", "all studies", "exact PatientID", "SeriesDescription wildcard")
BROAD = QUERIES[0]
#: matching options of every query, as benchmarks/wire.py's SCP sets them
OPTIONS = {"relational": True, "combined_datetime": True}
#: what the adapter adds to each response (dimse_encode.encoded_results)
DEFAULTS = ((0x00080054, "AE", "PACSCORE"),)
EXPLICIT = "1.2.840.10008.1.2.1"


def _best(fn, min_time: float) -> float:
    """The fastest of the runs of ``fn`` (seconds), after one warm-up, for at least ``min_time``."""
    fn()
    best, start, runs = float("inf"), time.perf_counter(), 0
    while runs < 3 or time.perf_counter() - start < min_time:
        t0 = time.process_time()
        fn()
        best = min(best, time.process_time() - t0)
        runs += 1
    return best


def _steps(arc, ident: dict, level: str, opts: dict, min_time: float) -> dict:
    """The broad query's steps, us per match: row fetch; the row from ``ResultBuilder.fields``
    (fields, then encode); the row from the records through the plan (what encoded_find does)."""
    from pacscore.adapters.dimse_encode import EncodingBuilder
    from pacscore.query.execute import Executor

    query = arc._query(ident, level, "STUDY", opts)
    builder = EncodingBuilder(query, True, DEFAULTS)
    with arc.index.read() as txn, Executor(arc.index, txn, query) as executor:
        matches = list(executor.matches())
        n = max(len(matches), 1)

        def fetch():
            with Executor(arc.index, txn, query) as ex:
                list(ex.matches())

        fields = [builder.fields(m) for m in matches]
        out = {
            "fetch_us": _best(fetch, min_time) / n * 1e6,
            "fields_us": _best(lambda: [builder.fields(m) for m in matches], min_time) / n * 1e6,
            "encode_us": _best(lambda: [builder._encode(f) for f in fields], min_time) / n * 1e6,
            "plan_us": _best(lambda: [builder(m) for m in matches], min_time) / n * 1e6,
        }
    return {k: round(v, 2) for k, v in out.items()}


def measure(folder: Path, min_time: float, profile: bool = False) -> dict:
    """us per match of ``encoded_find`` for QUERIES on the archive in ``folder``, this process's
    implementation; the broad query's steps."""
    import gc

    import pacscore
    from pacscore.adapters.dimse_encode import encoded_find
    from pacscore.testing.suite import resolve_suite

    out: dict = {"implementation": pacscore.IMPLEMENTATION, "queries": []}
    with pacscore.open(folder) as arc:
        suite = {name: (ident, level, opts) for name, ident, level, opts in resolve_suite(arc)}
        for name in QUERIES:
            ident, level, opts = suite[name]
            opts = {**opts, **OPTIONS}

            def find(ident=ident, level=level, opts=opts):
                return list(encoded_find(arc, ident, level, "STUDY", opts, EXPLICIT, DEFAULTS))

            matches = len(find())
            gc.collect()
            seconds = _best(find, min_time)
            row = {"name": name, "level": level, "matches": matches}
            row["us_per_match"] = round(seconds / max(matches, 1) * 1e6, 2)
            out["queries"].append(row)
            if name == BROAD:
                out["broad_steps"] = _steps(arc, ident, level, opts, min_time)
                if profile:
                    out["profile"] = _profile(find)
    return out


def _profile(fn) -> str:
    import cProfile
    import io
    import pstats

    prof = cProfile.Profile()
    prof.enable()
    for _ in range(3):
        fn()
    prof.disable()
    text = io.StringIO()
    pstats.Stats(prof, stream=text).sort_stats("tottime").print_stats(14)
    return text.getvalue()


def _child(folder: Path, min_time: float, profile: bool, pure: bool) -> dict:
    cmd = [sys.executable, "-m", "benchmarks.find_encode", "--measure", str(folder), "--min-time", str(min_time)]
    env = {k: v for k, v in os.environ.items() if k != "PACSCORE_PURE"}
    if pure:
        env["PACSCORE_PURE"] = "1"
    done = subprocess.run(cmd + (["--profile"] if profile else []), check=True, capture_output=True, text=True, env=env)
    return json.loads(done.stdout)


def markdown(instances: int, compiled: dict, pure: dict) -> str:
    lines = [
        f"### {instances} instances ({compiled['implementation']} / {pure['implementation']})",
        "",
        "| query | level | matches | us/match compiled | us/match pure |",
        "|---|---|---:|---:|---:|",
    ]
    for c, p in zip(compiled["queries"], pure["queries"]):
        lines.append(f"| {c['name']} | {c['level']} | {c['matches']} | {c['us_per_match']} | {p['us_per_match']} |")
    lines += [
        "",
        "| broad query, us/match | row fetch | fields | encode (of fields) | row plan (records to bytes) |",
        "|---|---:|---:|---:|---:|",
    ]
    for label, r in (("compiled", compiled), ("pure", pure)):
        s = r["broad_steps"]
        lines.append(f"| {label} | {s['fetch_us']} | {s['fields_us']} | {s['encode_us']} | {s['plan_us']} |")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--instances", type=int, nargs="+", default=[1000, 20000])
    parser.add_argument("--keep", help="build the archive in this folder (kept; one size only)")
    parser.add_argument("--min-time", type=float, default=1.0, help="seconds spent per measurement")
    parser.add_argument("--profile", action="store_true", help="print cProfile's top functions of the broad query")
    parser.add_argument("--measure", metavar="ARCHIVE", help=argparse.SUPPRESS)  # the child's part
    args = parser.parse_args(argv)
    if args.measure:
        json.dump(measure(Path(args.measure), args.min_time, args.profile), sys.stdout)
        return 0
    if args.keep and len(args.instances) > 1:
        parser.error("--keep goes with one --instances value")
    for instances in args.instances:
        with tempfile.TemporaryDirectory(prefix="pacscore-find-encode-") as tmp:
            folder = Path(args.keep) if args.keep else Path(tmp) / "archive"
            if not (folder / "index").exists():
                run.build(folder, instances)
            compiled = _child(folder, args.min_time, args.profile, pure=False)
            pure = _child(folder, args.min_time, args.profile, pure=True)
        print(markdown(instances, compiled, pure))
        if args.profile:
            for label, r in (("compiled", compiled), ("pure", pure)):
                print(f"#### profile, broad query, {label}\n\n```\n{r['profile']}```\n")
        sys.stdout.flush()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
