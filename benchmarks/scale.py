"""Index size at scale: where the bytes of the LMDB index go, per database, per instance.

    python -m benchmarks.scale --instances 100000 --archive /tmp/scale [--chunk 10000]
                               [--compact] [--baseline] [--out DIR] [--keep]
    python -m benchmarks.scale --measure ARCHIVE        # only the size figures of an archive

Generates ``--instances`` instances (pacscore.testing.generate, in memory, no files), stores
them ``--chunk`` at a time with ``store_many`` and times each chunk, so that the ingest rate of
the first and of the last chunk can be compared (an index whose writes slow down as it grows
shows here). Then, per named LMDB database, the figures ``mdb_stat`` prints (entries, branch,
leaf and overflow pages) with the bytes of its keys and values and the fill of its leaf pages,
and the index's used bytes per instance; with ``--compact`` the same again after
``Archive.compact()``. Last, the latency of each query of the fixed suite
(pacscore.testing.suite). Writes ``scale.json`` and ``scale.md`` into ``--out``.
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import shutil
import sys
import time
import warnings
from pathlib import Path

import lmdb

from benchmarks.run import summarise, time_query
from pacscore.index.layout import DB_NAMES, MAX_DBS
from pacscore.testing.generate import config_for, generate_records
from pacscore.testing.suite import resolve_suite

__all__ = ["database_sizes", "ingest", "suite_latency", "main"]


def database_sizes(archive: Path, payload: bool = True) -> dict:
    """Per named database: entries, pages, overflow pages, key and value bytes, leaf fill; and
    the whole index's used bytes (last page number + 1 times the page size)."""
    env = lmdb.open(str(archive / "index"), readonly=True, lock=False, max_dbs=MAX_DBS)
    try:
        psize = env.stat()["psize"]
        used = (env.info()["last_pgno"] + 1) * psize
        out: dict = {"page_size": psize, "used_bytes": used, "databases": {}}
        with env.begin() as txn:
            for name in DB_NAMES:
                try:
                    db = env.open_db(name.encode(), txn=txn, create=False)
                except lmdb.Error:
                    continue
                st = txn.stat(db)
                pages = st["branch_pages"] + st["leaf_pages"] + st["overflow_pages"]
                row = {
                    "entries": st["entries"],
                    "branch_pages": st["branch_pages"],
                    "leaf_pages": st["leaf_pages"],
                    "overflow_pages": st["overflow_pages"],
                    "bytes": pages * psize,
                }
                if payload:
                    keys = values = 0
                    for k, v in txn.cursor(db=db).iternext(keys=True, values=True):
                        keys += len(k)
                        values += len(v)
                    row["key_bytes"], row["value_bytes"] = keys, values
                    inline = (st["leaf_pages"] * psize) or 1
                    # what leaf pages hold: keys, and the values not moved to overflow pages
                    row["leaf_fill"] = round(min(1.0, (keys + (values if not st["overflow_pages"] else 0)) / inline), 3)
                out["databases"][name] = row
    finally:
        env.close()
    return out


def per_instance(sizes: dict, instances: int) -> dict:
    """Bytes per instance of the whole index and of each database."""
    n = max(instances, 1)
    return {
        "total": round(sizes["used_bytes"] / n, 1),
        **{name: round(row["bytes"] / n, 1) for name, row in sizes["databases"].items()},
    }


def ingest(archive: Path, instances: int, chunk: int, seed: int = 1, workers: int | None = None) -> dict:
    """Store ``instances`` generated instances ``chunk`` at a time; the rate of each chunk."""
    import pacscore

    warnings.filterwarnings("ignore", module="pydicom")
    records = itertools.islice(generate_records(config_for(instances, seed)), instances)
    rates = []
    stored = 0
    t_all = time.perf_counter()
    with pacscore.open(archive) as arc:
        while True:
            data = [r.data for r in itertools.islice(records, chunk)]
            if not data:
                break
            t0 = time.perf_counter()
            report = arc.store_many(data, workers=workers)
            seconds = time.perf_counter() - t0
            if report.rejected:
                raise RuntimeError(f"the archive refused generated instances: {report.rejected[:3]}")
            stored += len(report.stored)
            rates.append(round(len(data) / seconds, 1))
            print(f"  {stored} stored, {rates[-1]}/s", file=sys.stderr, flush=True)
    return {
        "instances": stored,
        "chunk": chunk,
        "seconds": round(time.perf_counter() - t_all, 1),
        "rate_per_chunk": rates,
        "first_chunk_per_s": rates[0] if rates else None,
        "last_chunk_per_s": rates[-1] if rates else None,
    }


def suite_latency(archive: Path, min_time: float = 0.4) -> list[dict]:
    """Median and p95 latency of each query of the fixed suite (JSON results)."""
    import pacscore

    out = []
    with pacscore.open(archive, readonly=True) as arc:
        for name, ident, level, opts in resolve_suite(arc):

            def query(ident=ident, level=level, opts=opts) -> list:
                return list(arc.find(ident, level=level, format="json", **opts))

            times, matches = time_query(query, min_time)
            out.append({"name": name, "level": level, "matches": len(matches), **summarise(times)})
    return out


def markdown(result: dict) -> str:
    kind = " (baseline: no compression)" if result.get("baseline") else ""
    lines = [f"instances {result['instances']}{kind}, {os.cpu_count()} cores", ""]
    if "ingest" in result:
        ing = result["ingest"]
        lines.append(
            f"ingest {ing['seconds']} s; chunk of {ing['chunk']}: first {ing['first_chunk_per_s']}/s, "
            f"last {ing['last_chunk_per_s']}/s"
        )
    for label in ("as_ingested", "compacted"):
        if label not in result:
            continue
        sizes, per = result[label], result[label + "_per_instance"]
        lines += [
            "",
            f"{label}: {sizes['used_bytes']} bytes used, {per['total']} bytes/instance",
            "",
            "| database | entries | leaf pages | overflow pages | bytes/instance | leaf fill |",
            "|---|---:|---:|---:|---:|---:|",
        ]
        for name, row in sizes["databases"].items():
            lines.append(
                f"| {name} | {row['entries']} | {row['leaf_pages']} | {row['overflow_pages']} | {per[name]} | "
                f"{row.get('leaf_fill', '')} |"
            )
    if result.get("suite"):
        lines += ["", "| query | level | matches | median ms | p95 ms |", "|---|---|---:|---:|---:|"]
        for q in result["suite"]:
            lines.append(f"| {q['name']} | {q['level']} | {q['matches']} | {q['median_ms']} | {q['p95_ms']} |")
    return "\n".join(lines) + "\n"


def _count(archive: Path) -> int:
    import pacscore

    with pacscore.open(archive, readonly=True) as arc:
        return arc.count({}, level="IMAGE", relational=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--instances", type=int, default=10_000)
    parser.add_argument("--chunk", type=int, default=10_000, help="instances per timed store_many call")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--workers", type=int, default=None, help="parse processes (store_many's default)")
    parser.add_argument("--archive", default="scale-archive", help="the archive folder (emptied first)")
    parser.add_argument("--keep", action="store_true", help="keep the archive afterwards")
    parser.add_argument("--compact", action="store_true", help="measure again after Archive.compact()")
    parser.add_argument("--no-suite", action="store_true", help="skip the query suite")
    parser.add_argument(
        "--baseline",
        action="store_true",
        help="never train a dictionary: the archive is written as before schema 7 (records and zlib headers)",
    )
    parser.add_argument("--min-time", type=float, default=0.4, help="seconds spent per query (after warm-up)")
    parser.add_argument("--out", default="scale-out")
    parser.add_argument("--measure", metavar="ARCHIVE", help="only print the size figures of an existing archive")
    args = parser.parse_args(argv)

    if args.measure:
        folder = Path(args.measure)
        sizes = database_sizes(folder)
        n = _count(folder)
        result = {"instances": n, "as_ingested": sizes, "as_ingested_per_instance": per_instance(sizes, n)}
        print(markdown(result))
        return 0

    if args.baseline:
        from pacscore.index import compression

        compression.TRAIN_AT = 1 << 62
    folder = Path(args.archive)
    if folder.exists():
        shutil.rmtree(folder)
    result: dict = {"instances": 0, "baseline": args.baseline}
    try:
        result["ingest"] = ingest(folder, args.instances, args.chunk, args.seed, args.workers)
        n = result["instances"] = result["ingest"]["instances"]
        result["as_ingested"] = database_sizes(folder)
        result["as_ingested_per_instance"] = per_instance(result["as_ingested"], n)
        if args.compact:
            import pacscore

            t0 = time.perf_counter()
            with pacscore.open(folder) as arc:
                arc.compact()
            result["compact_seconds"] = round(time.perf_counter() - t0, 1)
            result["compacted"] = database_sizes(folder)
            result["compacted_per_instance"] = per_instance(result["compacted"], n)
        if not args.no_suite:
            result["suite"] = suite_latency(folder, args.min_time)
    finally:
        if not args.keep and folder.exists():
            shutil.rmtree(folder)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "scale.json").write_text(json.dumps(result, indent=2))
    (out / "scale.md").write_text(markdown(result))
    print(markdown(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
