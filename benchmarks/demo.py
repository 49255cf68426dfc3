"""``make demo``: build a sample archive from real and generated DICOM and query it.

    python -m benchmarks.demo --archive demo-archive [--patients 200]

Gathers the real files pydicom and pydicom-data ship and a seeded generated data set, ingests
them with a progress bar, then prints a few queries as tables.
"""

from __future__ import annotations

import argparse
import shutil
import sys
import time
from pathlib import Path

import pacscore
from pacscore.cli import format_table

from .sample_data import gather

QUERIES = [
    (
        "Patients whose name starts with 'Doe' (wildcard, case-insensitive)",
        "STUDY",
        {"PatientName": "doe*", "PatientID": "", "StudyDate": "", "ModalitiesInStudy": "", "StudyDescription": ""},
        {},
    ),
    (
        "Studies from 2015 to 2017 (date range)",
        "STUDY",
        {
            "StudyDate": "20150101-20171231",
            "PatientName": "",
            "ModalitiesInStudy": "",
            "NumberOfStudyRelatedInstances": "",
        },
        {},
    ),
    (
        "Studies with a CT or MR series (ModalitiesInStudy)",
        "STUDY",
        {"ModalitiesInStudy": "CT\\MR", "PatientName": "", "StudyDate": "", "StudyDescription": ""},
        {},
    ),
    (
        "Names with an ideographic group (PN wildcard per component group)",
        "STUDY",
        {"PatientName": "*=?*", "PatientID": ""},
        {},
    ),
    (
        "MR series anywhere (relational SERIES query)",
        "SERIES",
        {"Modality": "MR", "SeriesDescription": "", "NumberOfSeriesRelatedInstances": ""},
        {"relational": True},
    ),
]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--archive", default="demo-archive")
    parser.add_argument("--data", default="demo-data")
    parser.add_argument("--patients", type=int, default=200)
    parser.add_argument("--limit", type=int, default=8, help="rows shown per query")
    args = parser.parse_args(argv)

    archive, data = Path(args.archive), Path(args.data)
    for folder in (archive, data):
        if folder.exists():
            shutil.rmtree(folder)
    counts = gather(data, generated_patients=args.patients, seed=1)
    print(f"gathered {counts} into {data}/")
    start = time.perf_counter()
    with pacscore.open(archive) as arc:
        report = arc.store_many(data, progress=True)
        took = time.perf_counter() - start
        print(f"\ningested in {took:.1f} s: {report}")
        for path, reason in report.rejected[:5]:
            print(f"  rejected {Path(path).name}: {reason}")
        if len(report.rejected) > 5:
            print(f"  ... and {len(report.rejected) - 5} more")
        stats = arc.stats()
        print(
            f"archive: {stats['patients']} patients, {stats['studies']} studies, {stats['series']} series, "
            f"{stats['instances']} instances ({pacscore.IMPLEMENTATION} matcher)\n"
        )
        for title, level, identifier, options in QUERIES:
            t0 = time.perf_counter()
            total = arc.count(identifier, level=level, **options)
            rows = list(arc.find(identifier, level=level, format="dict", **options))
            ms = (time.perf_counter() - t0) * 1000
            matched = [k for k, v in identifier.items() if v]
            # rows with no value for a matched key match too (PS3.4 C.2.2.1.2); show the others first
            unknown = [r for r in rows if any(not r.get(k) for k in matched)]
            known = [r for r in rows if all(r.get(k) for k in matched)]
            keys = " ".join(f"{k}={v}" for k, v in identifier.items() if v)
            print(
                f"== {title}\n   {level}: {keys}   ({total} matches in {ms:.1f} ms; "
                f"{len(unknown)} of them have no value for a matched key, which matches by PS3.4 C.2.2.1.2)"
            )
            shown = (known + unknown)[: args.limit]
            print(format_table(shown))
            if total > len(shown):
                print(f"... {total - len(shown)} more")
            print()
    return 0


if __name__ == "__main__":
    sys.exit(main())
