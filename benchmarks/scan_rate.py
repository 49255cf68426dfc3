"""Records per second of a level scan alone: ``count()`` of conditions that (almost) nothing
matches, with the planner's index plans switched off, so neither an index nor result building
hides the scan.

    python -m benchmarks.scan_rate ARCHIVE [--runs 15]
    PACSCORE_PURE=1 python -m benchmarks.scan_rate ARCHIVE --runs 3

Run it on an archive built with ``python -m benchmarks.run --keep ARCHIVE``; docs/benchmarks.md
("Third pass") has the figures.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import time

import pacscore
from pacscore.index.lmdb_index import LEVEL_DB
from pacscore.query import fast
from pacscore.query import plan as plan_module

#: (name, identifier, level, options): a wild card that matches only empty values, and the
#: combined date-time range of the query suite
SCANS = [
    ("STUDY, PatientName *zzzq*", {"PatientName": "*zzzq*"}, "STUDY", {}),
    (
        "STUDY, combined date+time",
        {"StudyDate": "20150101-20151231", "StudyTime": "080000-120000"},
        "STUDY",
        {"combined_datetime": True},
    ),
    ("SERIES, SeriesDescription *ZZZQ*", {"SeriesDescription": "*ZZZQ*"}, "SERIES", {"relational": True}),
]


@contextlib.contextmanager
def scans_only():
    """The planner without its secondary-index plans: every query here is a level scan (the
    combined date-time range could otherwise use the StudyDate index)."""
    saved = plan_module._index_plan
    plan_module._index_plan = lambda ex: None
    try:
        yield
    finally:
        plan_module._index_plan = saved


def measure(arc, runs: int) -> list[dict]:
    with scans_only():
        return _measure(arc, runs)


def _measure(arc, runs: int) -> list[dict]:
    out = []
    for name, identifier, level, options in SCANS:
        with arc.index.read() as txn:
            records = txn.stat(arc.index.db(LEVEL_DB[level]))["entries"]
        plan = arc.explain(identifier, level=level, **options)["plan"]
        matches = arc.count(identifier, level=level, **options)  # warm-up
        times = []
        for _ in range(runs):
            start = time.perf_counter()
            arc.count(identifier, level=level, **options)
            times.append(time.perf_counter() - start)
        median = sorted(times)[len(times) // 2]
        out.append(
            {
                "scan": name,
                "plan": plan,
                "records": records,
                "matches": matches,
                "median_ms": round(median * 1000, 3),
                "records_per_s": round(records / median) if median else None,
            }
        )
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("archive")
    parser.add_argument("--runs", type=int, default=15)
    args = parser.parse_args(argv)
    with pacscore.open(args.archive) as arc:
        rows = measure(arc, args.runs)
    impl = "cython" if fast.LIVE else "pure"
    print(json.dumps({"implementation": impl, "scans": rows}))
    for r in rows:
        print(
            f"{impl} | {r['scan']} | {r['plan']} | {r['records']} records | {r['matches']} matches | "
            f"{r['median_ms']} ms | {r['records_per_s'] / 1e6:.2f} M records/s"
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
