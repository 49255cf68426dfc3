"""Distributed ingest against local ingest on this machine: the same generated files stored by
``store_many(workers=N)`` and by ``store_many(executor=Client(LocalCluster(N workers)))``.

    python -m benchmarks.dask_ingest --instances 5000 --workers 2 [--chunks 32,128] [--repeat 2] [--json out.json]

Each repeat stores the files once locally and once through Dask per chunk size (sources per
Dask task), alternately, into fresh archives, in one cluster: on a shared machine the load moves
between runs, so compare within a repeat. Both use file blobs on the local disk, so the
difference is the work split (Dask's scheduling, the rows travelling back to the writer, the
blob put on the worker), not the store. On one machine Dask adds overhead and no cores; the
figure that matters for a cluster is the writer's ceiling (benchmarks/writer_ceiling.py)
against what one worker core parses.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

import pacscore
from pacscore import distributed
from pacscore.testing.generate import config_for, write_files


def _timed(folder: Path, files: Path, **options) -> tuple[int, float]:
    with pacscore.open(folder) as arc:
        start = time.perf_counter()
        report = arc.store_many(files, **options)
        seconds = time.perf_counter() - start
    if report.rejected:
        raise RuntimeError(f"generated instances rejected: {report.rejected[:3]}")
    return len(report.stored), seconds


def run(instances: int, workers: int, chunks: list[int], repeat: int = 1) -> dict:
    from dask.distributed import Client, LocalCluster

    default_chunk = distributed.CHUNK
    with tempfile.TemporaryDirectory(prefix="pacscore-dask-") as tmp:
        files = Path(tmp) / "files"
        written = write_files(config_for(instances), files)  # whole patients: a few more than asked
        result: dict = {"instances": written, "workers": workers, "runs": []}
        with (
            LocalCluster(n_workers=workers, threads_per_worker=1, dashboard_address=":0") as cluster,
            Client(cluster) as client,
        ):
            client.run(lambda: __import__("pacscore.distributed"))  # imports are not the figure
            n = 0
            try:
                for r in range(repeat):
                    stored, seconds = _timed(Path(tmp) / f"local{r}", files, workers=workers)
                    row = {"repeat": r + 1, "local_per_second": round(stored / seconds)}
                    for chunk in chunks:
                        distributed.CHUNK = chunk
                        n += 1
                        stored, seconds = _timed(Path(tmp) / f"dask{n}", files, executor=client)
                        row[f"dask_chunk_{chunk}_per_second"] = round(stored / seconds)
                    result["runs"].append(row)
            finally:
                distributed.CHUNK = default_chunk
    return result


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--instances", type=int, default=5000)
    p.add_argument("--workers", type=int, default=2)
    p.add_argument(
        "--chunks", default=str(distributed.CHUNK), help="sources per Dask task, comma-separated sizes to compare"
    )
    p.add_argument("--repeat", type=int, default=1)
    p.add_argument("--json", default=None, help="also write the result here")
    args = p.parse_args(argv)
    result = run(args.instances, args.workers, [int(c) for c in args.chunks.split(",")], args.repeat)
    text = json.dumps(result, indent=1)
    print(text)
    if args.json:
        Path(args.json).write_text(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
