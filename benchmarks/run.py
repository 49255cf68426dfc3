"""The scale harness: build an archive from the generator, ingest it, run a fixed query suite.

    python -m benchmarks.run --instances 20000 [--out DIR] [--pure-ratio] [--keep DIR]

Measures ingest (instances/s), and per query of ``QUERY_SUITE``: median and p95 latency,
queries/s, matches, the plan (``Archive.explain``); then index bytes per instance and peak
RSS. With ``--pure-ratio`` the suite runs again in a subprocess with PACSCORE_PURE=1 on the
same archive and each query gets the ratio pure/compiled. Writes ``results.json`` and
``results.md`` into ``--out`` (default bench-out/). ``--suite-only ARCHIVE [--option NAME=VALUE]``
reruns the suite on a kept archive, with matching options added to every query (for example
``empty_record_matches=false``, where empty values match no key, as in Orthanc).

``QUERY_SUITE`` and ``resolve_suite(arc)``, which fills its placeholders with values of the
archive itself, live in pacscore.testing.suite (``pacscore bench`` runs the same suite, also
outside a checkout); the data come from pacscore.testing.generate. benchmarks/peers.py runs the
same suite elsewhere.
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from pacscore.testing.generate import config_for, generate_records
from pacscore.testing.suite import QUERY_SUITE, resolve_suite

__all__ = [
    "QUERY_SUITE",
    "resolve_suite",
    "write_sample",
    "build",
    "time_query",
    "summarise",
    "run_suite",
    "index_size",
    "markdown",
    "main",
]

# ---------------------------------------------------------------- building the archive


def write_sample(dest: Path, instances: int, seed: int = 1) -> list[Path]:
    """Write the first ``instances`` generated instances as files under ``dest``
    (``<study>/<series>/<sop>.dcm``); returns their paths in the order they were made."""
    made: set[Path] = set()
    paths = []
    for record in itertools.islice(generate_records(config_for(instances, seed)), instances):
        directory = dest / record.study_uid / record.series_uid
        if directory not in made:
            directory.mkdir(parents=True, exist_ok=True)
            made.add(directory)
        path = directory / f"{record.sop_uid}.dcm"
        path.write_bytes(record.data)
        paths.append(path)
    return paths


def build(
    folder: Path, instances: int, seed: int = 1, batch: int = 1000, workers: int | None = None, keep_files: bool = False
) -> dict:
    """Write ``instances`` generated instances as files beside ``folder``, then ingest that
    folder with one store_many call (``workers`` parse processes; None: store_many's default,
    one per core up to 4; 1: in this process). Only the ingest is timed. With ``keep_files``
    the files stay (``"files"`` in the answer: their paths) for a peer to load the same."""
    import shutil
    import warnings

    import pacscore

    warnings.filterwarnings("ignore", module="pydicom")
    files = folder.with_name(folder.name + "-files")
    t0 = time.perf_counter()
    paths = write_sample(files, instances, seed)
    os.sync()  # the files are on disk before the clock starts: ingest's own syncs flush only its writes
    t1 = time.perf_counter()
    with pacscore.open(folder) as arc:
        report = arc.store_many(files, workers=workers, batch_size=batch)
    t2 = time.perf_counter()
    if report.rejected:
        raise RuntimeError(f"the archive refused generated instances: {report.rejected[:3]}")
    stored = len(report.stored)
    if not keep_files:
        shutil.rmtree(files)
    return {
        "instances": stored,
        "files": [str(p) for p in paths] if keep_files else len(paths),
        "patients": config_for(instances, seed).patients,
        "seed": seed,
        "workers": workers or "default",
        "source": "files",
        "ingest_seconds": round(t2 - t1, 2),
        "ingest_per_s": round(stored / (t2 - t1), 1) if t2 > t1 else None,
        "generate_seconds": round(t1 - t0, 2),
    }


# ---------------------------------------------------------------- running the suite


def time_query(fn, min_time: float = 0.4, min_runs: int = 5, max_runs: int = 200) -> tuple[list[float], object]:
    """Run ``fn`` once to warm up, then until ``min_time`` has passed; the per-run seconds."""
    result = fn()
    times: list[float] = []
    start = time.perf_counter()
    while len(times) < max_runs and (len(times) < min_runs or time.perf_counter() - start < min_time):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return times, result


def summarise(times: list[float]) -> dict:
    times = sorted(times)
    p95 = times[min(len(times) - 1, round(0.95 * (len(times) - 1)))]
    median = statistics.median(times)
    return {
        "median_ms": round(median * 1000, 3),
        "p95_ms": round(p95 * 1000, 3),
        "qps": round(1 / median, 1) if median else None,
        "runs": len(times),
    }


def run_suite(folder: Path, min_time: float = 0.4, options: dict | None = None) -> dict:
    """The suite on an archive; ``options`` (matching options) are added to every query."""
    import pacscore

    out = {"implementation": pacscore.IMPLEMENTATION, "queries": [], "options": options or {}}
    with pacscore.open(folder) as arc:
        for name, ident, level, opts in resolve_suite(arc):
            opts = {**opts, **(options or {})}
            times, matches = time_query(lambda: list(arc.find(ident, level=level, format="json", **opts)), min_time)
            out["queries"].append(
                {
                    "name": name,
                    "level": level,
                    "identifier": ident,
                    "options": opts,
                    "matches": len(matches),
                    "plan": arc.explain(ident, level=level, **opts),
                    **summarise(times),
                }
            )
    out["peak_rss_mb"] = round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)
    return out


def index_size(folder: Path) -> dict:
    import lmdb

    env = lmdb.open(str(folder / "index"), readonly=True, lock=False, max_dbs=64)
    try:
        used = (env.info()["last_pgno"] + 1) * env.stat()["psize"]
    finally:
        env.close()
    return {"index_used_bytes": used, "index_file_bytes": (folder / "index" / "data.mdb").stat().st_size}


def _parse_options(pairs: list[str]) -> dict:
    """``NAME=VALUE`` pairs as matching options: true/false become booleans."""
    out = {}
    for pair in pairs:
        name, sep, value = pair.partition("=")
        if not sep or not name:
            raise SystemExit(f"--option {pair!r}: write NAME=VALUE")
        out[name] = {"true": True, "false": False}.get(value.lower(), value)
    return out


def markdown(result: dict) -> str:
    b = result["build"]
    lines = [
        f"instances {b['instances']} ({b['patients']} patients, seed {b['seed']}), implementation "
        f"{result['suite']['implementation']}, {os.cpu_count()} cores",
        f"ingest {b['ingest_per_s']} instances/s; index {result['index_bytes_per_instance']} bytes/instance; "
        f"peak RSS {result['suite']['peak_rss_mb']} MB (query process)",
        "",
        "| query | level | matches | plan | median ms | p95 ms | q/s | pure/compiled |",
        "|---|---|---:|---|---:|---:|---:|---:|",
    ]
    for q in result["suite"]["queries"]:
        plan = q["plan"]["plan"] + (f" ({q['plan']['candidates']})" if q["plan"].get("candidates") is not None else "")
        ratio = q.get("pure_ratio")
        lines.append(
            f"| {q['name']} | {q['level']} | {q['matches']} | {plan} | {q['median_ms']} | {q['p95_ms']} | "
            f"{q['qps']} | {'' if ratio is None else ratio} |"
        )
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--instances", type=int, default=2000)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--out", default="bench-out")
    parser.add_argument("--keep", help="build the archive in this folder (kept) instead of a temporary one")
    parser.add_argument(
        "--workers",
        type=int,
        default=None,
        help="parse processes for ingest (default: store_many's, one per core up to 4)",
    )
    parser.add_argument("--pure-ratio", action="store_true", help="rerun the suite with PACSCORE_PURE=1")
    parser.add_argument("--min-time", type=float, default=0.4, help="seconds spent per query (after warm-up)")
    parser.add_argument(
        "--suite-only", metavar="ARCHIVE", help="only run the suite on an archive built before (--keep); prints JSON"
    )
    parser.add_argument(
        "--option",
        action="append",
        default=[],
        metavar="NAME=VALUE",
        help="with --suite-only: a matching option for every query, e.g. "
        "empty_record_matches=false (Orthanc's semantics: empty values match no key)",
    )
    args = parser.parse_args(argv)

    if args.suite_only:
        json.dump(run_suite(Path(args.suite_only), args.min_time, _parse_options(args.option)), sys.stdout)
        return 0
    if args.option:
        parser.error("--option goes with --suite-only")

    def child(extra_env=None) -> dict:
        cmd = [sys.executable, "-m", "benchmarks.run", "--suite-only", str(folder), "--min-time", str(args.min_time)]
        env = {**os.environ, **(extra_env or {})}
        return json.loads(subprocess.run(cmd, check=True, capture_output=True, text=True, env=env).stdout)

    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="pacscore-bench-") as tmp:
        folder = Path(args.keep) if args.keep else Path(tmp) / "archive"
        build_info = build(folder, args.instances, args.seed, workers=args.workers)
        print(f"ingested {build_info['instances']} instances at {build_info['ingest_per_s']}/s", file=sys.stderr)
        # the suite runs in a fresh process so that its peak RSS is the query path's own
        suite = child()
        if args.pure_ratio:
            pure = child({"PACSCORE_PURE": "1"})
            for q, p in zip(suite["queries"], pure["queries"]):
                assert q["matches"] == p["matches"], (q["name"], q["matches"], p["matches"])
                q["pure_median_ms"] = p["median_ms"]
                q["pure_ratio"] = round(p["median_ms"] / q["median_ms"], 2) if q["median_ms"] else None
        sizes = index_size(folder)
    result = {
        "build": build_info,
        "suite": suite,
        **sizes,
        "index_bytes_per_instance": round(sizes["index_used_bytes"] / max(build_info["instances"], 1), 1),
        "build_peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
        "cores": os.cpu_count(),
    }
    (out / "results.json").write_text(json.dumps(result, indent=2))
    (out / "results.md").write_text(markdown(result))
    print(markdown(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
