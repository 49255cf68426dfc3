"""Distributed ingest against local ingest on this machine: the same generated files stored by
``store_many(workers=N)`` and by ``store_many(executor=Client(LocalCluster(N workers)))``.

    python -m benchmarks.dask_ingest --instances 5000 --workers 2 [--json out.json]

Both archives use file blobs on the local disk, so the difference is the work split (Dask's
scheduling, the rows travelling back to the writer, the blob put on the worker), not the store.
On one machine Dask adds overhead and no cores; the figure that matters for a cluster is the
writer's ceiling (benchmarks/writer_ceiling.py) against what one worker core parses.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

import pacscore
from pacscore.testing.generate import config_for, write_files


def run(instances: int, workers: int) -> dict:
    from dask.distributed import Client, LocalCluster

    with tempfile.TemporaryDirectory(prefix="pacscore-dask-") as tmp:
        files = Path(tmp) / "files"
        write_files(config_for(instances), files)
        result: dict = {"instances": instances, "workers": workers}
        with pacscore.open(Path(tmp) / "local") as arc:
            start = time.perf_counter()
            report = arc.store_many(files, workers=workers)
            seconds = time.perf_counter() - start
        result["local_per_second"] = round(len(report.stored) / seconds)
        with (
            LocalCluster(n_workers=workers, threads_per_worker=1, dashboard_address=":0") as cluster,
            Client(cluster) as client,
            pacscore.open(Path(tmp) / "dask") as arc,
        ):
            start = time.perf_counter()
            report = arc.store_many(files, executor=client)
            seconds = time.perf_counter() - start
        result["dask_per_second"] = round(len(report.stored) / seconds)
        result["stored"] = len(report.stored)
        result["rejected"] = len(report.rejected)
    return result


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--instances", type=int, default=5000)
    p.add_argument("--workers", type=int, default=2)
    p.add_argument("--json", default=None, help="also write the result here")
    args = p.parse_args(argv)
    result = run(args.instances, args.workers)
    text = json.dumps(result, indent=1)
    print(text)
    if args.json:
        Path(args.json).write_text(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
