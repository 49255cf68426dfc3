"""Throughput benchmark of any C-FIND SCP, QIDO-RS endpoint or archive folder.

    pacscore bench ./archive --compare dimse://PACSCORE@127.0.0.1:11112 --clients 4 --duration 10

Runs the fixed query suite of pacscore.testing.suite (``QUERY_SUITE``, its placeholders filled
by ``resolve_suite`` from an archive holding the same data as the targets; benchmarks/run.py
runs it too) with N concurrent
clients, each with its own connection (association, HTTP client), round-robin over the suite,
for ``--duration`` seconds or ``--repeat`` passes. Reports latency percentiles (p50/p95/p99),
queries/s, errors, per query and in all; with ``--compare`` both targets in one run and the
ratios second/first.

The suite needs values that exist in the data: by default they come from the first target
when it is an archive folder, or from ``--data ARCHIVE`` (the archive the remote target
serves, or one holding the same instances). ``--generate N`` instead builds N instances with
pacscore.testing.generate, stores them into a temporary archive and through every target.
"""

from __future__ import annotations

import json
import statistics
import sys
import threading
import time

from .targets import TargetError, acquire_archive, open_target, release_archive

__all__ = ["load_suite", "bench_target", "run_bench", "table", "add_arguments", "main"]


def load_suite(archive):
    """QUERY_SUITE resolved against ``archive``."""
    from .suite import resolve_suite

    return resolve_suite(archive)


def _pct(sorted_ms: list[float], p: float) -> float | None:
    if not sorted_ms:
        return None
    return round(sorted_ms[min(len(sorted_ms) - 1, round(p / 100 * (len(sorted_ms) - 1)))], 3)


def _summary(ms: list[float], errors: int, seconds: float) -> dict:
    s = sorted(ms)
    return {
        "queries": len(s),
        "errors": errors,
        "p50_ms": _pct(s, 50),
        "p95_ms": _pct(s, 95),
        "p99_ms": _pct(s, 99),
        "mean_ms": round(statistics.fmean(s), 3) if s else None,
        "qps": round(len(s) / seconds, 1) if seconds else None,
    }


def bench_target(
    text: str,
    suite,
    *,
    clients: int = 1,
    duration: float | None = None,
    repeat: int | None = None,
    calling_ae: str = "PACSCORE-BENCH",
) -> dict:
    """Run ``suite`` against ``text`` with ``clients`` threads; the summary dict."""
    if duration is None and repeat is None:
        repeat = 3
    base = open_target(text, calling_ae=calling_ae)
    targets = [base] + [base.clone() for _ in range(clients - 1)]
    per_query: dict[str, list[float]] = {name: [] for name, *_ in suite}
    errors: dict[str, int] = {name: 0 for name, *_ in suite}
    messages: list[str] = []
    lock = threading.Lock()
    matches: dict[str, int] = {}
    try:
        for name, ident, level, opts in suite:  # warm up once, serially; record matches
            try:
                matches[name] = len(base.find(level, dict(ident), **opts))
            except TargetError as exc:
                matches[name] = -1
                messages.append(f"{name}: {exc}")
        start = time.perf_counter()
        deadline = start + duration if duration else None

        def client(i: int) -> None:
            tgt = targets[i]
            n = i  # clients start at different queries
            passes = 0
            while True:
                if deadline is not None and time.perf_counter() >= deadline:
                    return
                name, ident, level, opts = suite[n % len(suite)]
                t0 = time.perf_counter()
                try:
                    tgt.find(level, dict(ident), **opts)
                    ok = True
                except (TargetError, OSError) as exc:
                    ok = False
                    err = str(exc)
                ms = (time.perf_counter() - t0) * 1000
                with lock:
                    if ok:
                        per_query[name].append(ms)
                    else:
                        errors[name] += 1
                        if len(messages) < 20:
                            messages.append(f"{name}: {err}")
                n += 1
                if (n - i) % len(suite) == 0:
                    passes += 1
                    if repeat is not None and passes >= repeat:
                        return

        threads = [threading.Thread(target=client, args=(i,), daemon=True) for i in range(clients)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        seconds = time.perf_counter() - start
    finally:
        for tgt in targets:
            tgt.close()
    every = [ms for v in per_query.values() for ms in v]
    return {
        "target": text,
        "clients": clients,
        "seconds": round(seconds, 3),
        **_summary(every, sum(errors.values()), seconds),
        "per_query": [
            {
                "name": name,
                "level": level,
                "matches": matches.get(name),
                **_summary(per_query[name], errors[name], seconds),
            }
            for name, _, level, _ in suite
        ],
        "error_messages": messages,
    }


def run_bench(
    targets: list[str],
    *,
    data: str | None = None,
    generate: int | None = None,
    seed: int = 1,
    clients: int = 1,
    duration: float | None = None,
    repeat: int | None = None,
    calling_ae: str = "PACSCORE-BENCH",
) -> dict:
    """Bench each of ``targets`` (the first is the baseline); adds ``ratios`` when there are two."""
    import tempfile

    import pacscore

    with tempfile.TemporaryDirectory(prefix="pacscore-bench-") as tmp:
        if generate:
            import io
            import itertools

            from pydicom import dcmread
            from pydicom.dataset import Dataset

            from .generate import config_for, generate_bytes

            blobs = [b for _, b in itertools.islice(generate_bytes(config_for(generate, seed)), generate)]
            data = tmp + "/data"
            with pacscore.open(data) as arc:
                arc.store_many(blobs, workers=1)
            datasets: list[Dataset] = [dcmread(io.BytesIO(b)) for b in blobs]
            for text in targets:
                t = open_target(text, calling_ae=calling_ae, create=True)
                try:
                    t.store(datasets)
                finally:
                    t.close()
        source = data or next((t for t in targets if not t.startswith(("dimse://", "http://", "https://"))), None)
        if source is None:
            raise ValueError("the suite needs an archive with the targets' data: give --data ARCHIVE or --generate N")
        arc, owned = acquire_archive(source)
        try:
            suite = load_suite(arc)
        finally:
            release_archive(arc, owned)
        results = [
            bench_target(t, suite, clients=clients, duration=duration, repeat=repeat, calling_ae=calling_ae)
            for t in targets
        ]
    out = {
        "suite_from": "generated" if generate else source,
        "clients": clients,
        "duration": duration,
        "repeat": repeat,
        "implementation": pacscore.IMPLEMENTATION,
        "results": results,
    }
    if len(results) == 2:
        a, b = results
        ratio = lambda x, y: round(y / x, 2) if x and y else None  # noqa: E731
        out["ratios"] = {
            "qps": ratio(a["qps"], b["qps"]),
            "p50": ratio(a["p50_ms"], b["p50_ms"]),
            "p95": ratio(a["p95_ms"], b["p95_ms"]),
            "p99": ratio(a["p99_ms"], b["p99_ms"]),
            "per_query_p50": {
                qa["name"]: ratio(qa["p50_ms"], qb["p50_ms"]) for qa, qb in zip(a["per_query"], b["per_query"])
            },
        }
    return out


def table(result: dict) -> str:
    """The result as readable text: one block per target, then the ratios."""
    lines = []
    for r in result["results"]:
        lines.append(
            f"{r['target']}: {r['clients']} client(s), {r['queries']} queries in {r['seconds']} s, "
            f"{r['qps']} q/s, p50 {r['p50_ms']} ms, p95 {r['p95_ms']} ms, p99 {r['p99_ms']} ms, "
            f"errors {r['errors']}"
        )
        rows = [("query", "level", "matches", "n", "p50 ms", "p95 ms", "p99 ms", "errors")]
        for q in r["per_query"]:
            rows.append(
                (
                    q["name"],
                    q["level"],
                    str(q["matches"]),
                    str(q["queries"]),
                    str(q["p50_ms"]),
                    str(q["p95_ms"]),
                    str(q["p99_ms"]),
                    str(q["errors"]),
                )
            )
        widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
        for n, row in enumerate(rows):
            cells = (c.ljust(w) if i < 2 else c.rjust(w) for i, (c, w) in enumerate(zip(row, widths)))
            lines.append("  " + "  ".join(cells))
            if n == 0:
                lines.append("  " + "  ".join("-" * w for w in widths))
        for m in r["error_messages"][:5]:
            lines.append(f"  error: {m}")
        lines.append("")
    if "ratios" in result:
        a, b = (r["target"] for r in result["results"])
        rt = result["ratios"]
        lines.append(f"ratios {b} / {a}: q/s {rt['qps']}, p50 {rt['p50']}, p95 {rt['p95']}, p99 {rt['p99']}")
        lines.append("  per query p50: " + ", ".join(f"{k} {v}" for k, v in rt["per_query_p50"].items()))
    return "\n".join(lines)


def add_arguments(p) -> None:
    p.add_argument("target", help="dimse://AE@host:port, http(s)://host:port/dicomweb or an archive folder")
    p.add_argument("--compare", metavar="TARGET2", help="a second target, benched in the same run")
    p.add_argument("--clients", type=int, default=1, help="concurrent clients (default 1)")
    g = p.add_mutually_exclusive_group()
    g.add_argument("--duration", type=float, help="seconds per target")
    g.add_argument("--repeat", type=int, help="passes over the suite per client (default 3)")
    p.add_argument("--data", metavar="ARCHIVE", help="archive with the targets' data, to fill the suite's values")
    p.add_argument(
        "--generate",
        type=int,
        metavar="N",
        help="generate N instances (pacscore.testing.generate) and store them through every target first",
    )
    p.add_argument("--seed", type=int, default=1, help="generator seed for --generate (default 1)")
    p.add_argument("--calling-ae", default="PACSCORE-BENCH", help="our AE title for DIMSE targets")
    p.add_argument("--json", action="store_true", help="print JSON")


def main(args) -> int:
    import warnings

    warnings.filterwarnings("ignore", module="pydicom")
    targets = [args.target] + ([args.compare] if args.compare else [])
    result = run_bench(
        targets,
        data=args.data,
        generate=args.generate,
        seed=args.seed,
        clients=max(1, args.clients),
        duration=args.duration,
        repeat=args.repeat,
        calling_ae=args.calling_ae,
    )
    if args.json:
        json.dump(result, sys.stdout, indent=1)
        print()
    else:
        print(table(result))
    # errors are reported; the run fails only when a target answered nothing at all
    return 1 if any(r["queries"] == 0 for r in result["results"]) else 0
