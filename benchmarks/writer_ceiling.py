"""The single-writer ceiling: index rows (instances) per second that the one LMDB writer commits
when nothing else is its work -- no reading, no parsing, no blob writes.

Distributed ingest (pacscore/distributed.py) moves reading, parsing, checksumming and blob puts
to Dask workers; what stays in the client is the index writer, and LMDB allows one. Its rate is
the ceiling of ingest however many workers there are. This script measures it on the writer's
real code path: generated instances are parsed first (untimed; the parse rate of this one
process is measured too, since it is what one worker core adds), their bytes dropped, then each
batch is journaled and indexed exactly as distributed ingest does (``Archive._store_parsed``
with a journal token), and the commit rate is timed per batch.

    python -m benchmarks.writer_ceiling --instances 100000 [--batch 500] [--archive DIR] [--json out.json]

Prints JSON: parse rate (instances/s, one process), writer rate overall and over the first and
last tenth of the batches (does it hold as the index grows?), index bytes per instance, and how
fast a compacting copy of the index (what a backup, and so a read replica, starts from) runs.
"""

from __future__ import annotations

import argparse
import dataclasses
import itertools
import json
import sys
import tempfile
import time
from pathlib import Path

import pacscore
from pacscore import ingest
from pacscore.archive import _blob_key
from pacscore.index import pending
from pacscore.testing.generate import config_for, generate_bytes


def parsed_instances(instances: int, seed: int = 1) -> tuple[list[ingest.ParsedInstance], float]:
    """``instances`` generated instances parsed as a worker would, bytes dropped; and the parse
    rate (instances per second of this process, reading from memory)."""
    out = []
    parse_time = 0.0
    for _name, data in itertools.islice(generate_bytes(config_for(instances, seed)), instances):
        start = time.perf_counter()
        parsed = ingest.parse_bytes(data)
        parse_time += time.perf_counter() - start
        out.append(dataclasses.replace(parsed, data=b"", size=len(data)))
    return out, len(out) / parse_time if parse_time else 0.0


def page_stats(arc: pacscore.Archive) -> dict:
    """Per named database: entries and LMDB pages (branch pages are what every lookup walks, so
    what must stay in memory for a point query to cost at most one read from disk)."""
    from pacscore.index.layout import DB_NAMES

    out = {}
    with arc.index.read() as txn:
        for name in DB_NAMES:
            try:
                st = txn.stat(arc.index.db(name))
            except KeyError:
                continue
            out[name] = {k: st[k] for k in ("entries", "depth", "branch_pages", "leaf_pages", "overflow_pages")}
        out["page_size"] = arc.index.env.stat()["psize"]
    return out


def run(instances: int, batch: int = 500, folder: str | Path | None = None, seed: int = 1) -> dict:
    items, parse_rate = parsed_instances(instances, seed)
    tmp = None
    if folder is None:
        tmp = tempfile.TemporaryDirectory(prefix="pacscore-writer-")
        folder = Path(tmp.name) / "arc"
    rates = []
    try:
        # memory blobs: nothing is written there on this path (the workers put the blobs)
        with pacscore.open(folder, blobs="memory://") as arc:
            meta = arc.index.db("meta")
            start = time.perf_counter()
            for offset in range(0, len(items), batch):
                chunk = items[offset : offset + batch]
                t0 = time.perf_counter()
                token = pending.new_token()
                keys = [_blob_key(p) for p in chunk]
                arc._write_txn(lambda txn, token=token, keys=keys: pending.record(txn, meta, token, keys))
                report = arc._store_parsed(chunk, journaled=token)
                pending.forget(token)
                rates.append(len(chunk) / (time.perf_counter() - t0))
                if report.rejected:
                    raise RuntimeError(f"generated instances rejected: {report.rejected[:3]}")
            total = time.perf_counter() - start
            stats = arc.stats()
            pages = page_stats(arc)
            # what refreshing a read replica from a backup costs: the index is copied whole
            # (LMDB's compacting copy, as Archive.backup does)
            with tempfile.TemporaryDirectory(prefix="pacscore-copy-") as copy:
                t0 = time.perf_counter()
                arc.index.env.copy(copy, compact=True)
                copy_seconds = time.perf_counter() - t0
                copy_bytes = (Path(copy) / "data.mdb").stat().st_size
    finally:
        if tmp is not None:
            tmp.cleanup()
    tenth = max(1, len(rates) // 10)
    return {
        "instances": len(items),
        "batch": batch,
        "parse_per_second_one_process": round(parse_rate),
        "writer_seconds": round(total, 2),
        "writer_instances_per_second": round(len(items) / total),
        "writer_first_tenth_per_second": round(sum(rates[:tenth]) / tenth),
        "writer_last_tenth_per_second": round(sum(rates[-tenth:]) / tenth),
        "index_bytes": stats["index_bytes"],
        "index_bytes_per_instance": round(stats["index_bytes"] / max(1, stats["instances"])),
        "snapshot_copy_bytes": copy_bytes,
        "snapshot_copy_mb_per_second": round(copy_bytes / 1e6 / copy_seconds, 1),
        "pages": pages,
        "implementation": pacscore.IMPLEMENTATION,
    }


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--instances", type=int, default=100_000)
    p.add_argument("--batch", type=int, default=500, help="instances per write transaction (store_many's default)")
    p.add_argument("--archive", default=None, help="archive folder (default: a temporary one)")
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--json", default=None, help="also write the result here")
    args = p.parse_args(argv)
    result = run(args.instances, args.batch, args.archive, args.seed)
    text = json.dumps(result, indent=1)
    print(text)
    if args.json:
        Path(args.json).write_text(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
