"""C-STORE over the wire: DCMTK's storescu sending small instances to pacscore, Orthanc,
dcmqrscp and pynetdicom's qrscp (the C-STORE part of ``python -m benchmarks.wire``).

For each SCP and each run, a fresh empty store: pacscore (``python -m benchmarks.wire serve``
on a new archive), Orthanc (a new storage folder), dcmqrscp (a new storage area and index),
qrscp (a new database and storage directory). Then ``--store-instances`` generated instances
(benchmarks.run.write_sample: about 1.4 KiB each) go to it by storescu, Nagle off on both ends:

- one association: one storescu process sending every file;
- four associations: four storescu processes at once, a quarter of the files each.

instances/s = instances / wall time of the batch (every storescu process, start to exit);
median of ``--store-runs`` runs, SCPs interleaved run by run. After each batch the server is
stopped and what it holds is counted (pacscore: the archive opened afterwards, ``stats()``; Orthanc: REST
``/statistics`` before stopping; dcmqrscp: the files of its storage area; qrscp: the files of
its storage directory and the rows of its instance table); any count other than the number
sent, or a storescu that failed (the SCP refused a store), is reported loudly (stderr, a ✗ in
the table, ``problems`` in the JSON, exit status 1 of ``benchmarks.wire``) and the run goes on:
dcmqrscp, for one, refuses and loses stores when four associations write at once.
``FSYNC`` says what each SCP has made durable when it answers Success.

Two yardsticks run beside them (benchmarks/null_scp.py), keeping nothing and so never counted:
``floor`` answers every C-STORE at once (storescu's own share), ``floor-sync`` first writes
each data set to one preallocated file and fdatasyncs it (one sync per acknowledged instance,
the least any durable SCP must do).
"""

from __future__ import annotations

import shutil
import statistics
import sys
import time
from pathlib import Path

from benchmarks import run, wire
from benchmarks.orthanc_peer import OrthancServer

CALLING_AE = "STORESCU"
ASSOCIATIONS = (1, 4)
#: what each SCP has made durable when it acknowledges a C-STORE (from each one's code or docs)
FSYNC = {
    "pacscore": "yes: blob synced, then the index commit (LMDB, synced), before Success (pacscore/archive.py)",
    "orthanc": 'the file yes: "SyncStorageArea" (fsync of each file written to the storage area) defaults to '
    "true since Orthanc 1.7.4 and is left so (strace: one fdatasync per instance); the other syncs "
    "seen (its SQLite index, presumably) are a few, not one per instance",
    "dcmqrscp": "no: no fsync or fdatasync at all (strace -f of dcmqrscp during a storescu run, DCMTK 3.6.7)",
    "qrscp": "the file no (pydicom save_as, no fsync); its SQLite database commits once per instance "
    "(SQLite syncs a commit by default)",
    "floor": "nothing (a yardstick: answers at once, keeps nothing)",
    "floor-sync": "each data set, fdatasynced in one preallocated file "
    "(a yardstick: one sync per instance, nothing else)",
}
#: the yardsticks of benchmarks/null_scp.py: what they hold is not counted
YARDSTICKS = ("floor", "floor-sync")


class StoreTarget:
    """One SCP of the C-STORE part: started on a fresh empty store, then counted."""

    def __init__(self, name: str, folder: Path) -> None:
        self.name, self.folder = name, folder
        folder.mkdir(parents=True)
        self.child: wire.Child | None = None
        self.orthanc: OrthancServer | None = None
        if name == "pacscore":
            import pacscore

            pacscore.open(folder / "archive").close()
            self.child = wire.start_pacscore(folder / "archive", folder, fastpath=True)
        elif name == "orthanc":
            self.orthanc = OrthancServer(
                folder, calling_aes=(CALLING_AE,), dicomweb=False, nodelay=True, dicom_port=wire.PORTS["orthanc"]
            )
        elif name == "dcmqrscp":
            self.child = wire.start_dcmqrscp([], folder)
        elif name == "qrscp":
            self.child = wire.start_qrscp(folder)
        elif name in YARDSTICKS:
            command = [sys.executable, "-m", "benchmarks.null_scp", str(wire.PORTS[name])]
            if name == "floor-sync":
                command += ["--sync-to", str(folder / "log.bin")]
            self.child = wire.Child(name, command, folder, wire.PORTS[name])
        else:
            raise ValueError(name)

    def stop_and_count(self) -> int | None:
        """Stop the server and return how many instances it holds (None for a yardstick)."""
        if self.orthanc is not None:
            try:
                count = int(self.orthanc.get("/statistics")["CountInstances"])
            finally:
                self.orthanc.stop()
            return count
        assert self.child is not None
        self.child.stop()
        if self.name in YARDSTICKS:
            return None
        if self.name == "pacscore":
            import pacscore

            with pacscore.open(self.folder / "archive") as arc:
                return int(arc.stats()["instances"])
        if self.name == "dcmqrscp":
            return sum(1 for p in (self.folder / "dcmqrscp-db").iterdir() if p.name != "index.dat")
        return min(wire.qrscp_count(self.folder))  # an instance counts when both file and row are there

    def abandon(self) -> None:
        """Stop the server after a failure (no count)."""
        if self.orthanc is not None:
            self.orthanc.stop()
        elif self.child is not None:
            self.child.stop()


def batch(target: str, files: list[str], associations: int) -> tuple[float, list[str]]:
    """Seconds for ``associations`` storescu processes at once to send ``files`` between them,
    and the complaints of those that failed (a refused store makes storescu exit non-zero)."""
    chunks = [files[i::associations] for i in range(associations)]
    t0 = time.perf_counter()
    procs = [wire.storescu(target, chunk, CALLING_AE) for chunk in chunks]
    outputs = [proc.communicate(timeout=1800)[0] for proc in procs]
    spent = time.perf_counter() - t0
    failed = [
        f"storescu exit {proc.returncode}: " + out.decode(errors="replace").strip()[-300:]
        for proc, out in zip(procs, outputs, strict=True)
        if proc.returncode != 0
    ]
    return spent, failed


def available(options: dict[str, bool]) -> list[str]:
    """The SCPs this machine can run (pacscore always), in table order."""
    names = ["pacscore"]
    if shutil.which("Orthanc"):
        names.append("orthanc")
    if options.get("dcmqrscp", True) and shutil.which("dcmqrscp"):
        names.append("dcmqrscp")
    if options.get("qrscp", True):
        why = wire.qrscp_missing()
        if why is None:
            names.append("qrscp")
        else:
            print(f"wire: pynetdicom's qrscp left out of C-STORE: {why}", file=sys.stderr)
    return names + list(YARDSTICKS)


def measure(folder: Path, instances: int, seed: int, runs: int, options: dict[str, bool]) -> dict:
    """Every SCP × one and four associations × ``runs``, each on a fresh empty store."""
    files = [str(p) for p in run.write_sample(folder / "files", instances, seed)]
    sizes = [Path(f).stat().st_size for f in files]
    names = available(options)
    seconds: dict[str, dict[int, list[float]]] = {n: {a: [] for a in ASSOCIATIONS} for n in names}
    problems: dict[str, dict[str, list[str]]] = {}
    for i in range(runs):
        for name in names:  # interleaved
            for assocs in ASSOCIATIONS:
                target = StoreTarget(name, folder / f"{name}-{assocs}-{i}")
                try:
                    spent, failed = batch(name, files, assocs)
                except BaseException:
                    target.abandon()
                    raise
                held = target.stop_and_count()
                if failed or (held is not None and held != len(files)):  # loud, and kept in the table
                    what = f"held {held} of {len(files)}" + (f", {len(failed)} storescu failed" if failed else "")
                    print(f"wire: {name}, {assocs} association(s): {what}", *failed, sep="\n  ", file=sys.stderr)
                    problems.setdefault(name, {}).setdefault(str(assocs), []).append(what)
                seconds[name][assocs].append(spent)
                shutil.rmtree(target.folder, ignore_errors=True)
    n_files = len(files)
    rates = {n: {str(a): round(n_files / statistics.median(v), 1) for a, v in p.items()} for n, p in seconds.items()}
    return {
        "instances": len(files),
        "mean_bytes": round(statistics.mean(sizes)),
        "runs": runs,
        "targets": names,
        "seconds": {n: {str(a): [round(s, 3) for s in v] for a, v in per.items()} for n, per in seconds.items()},
        "instances_per_s": rates,
        "fsync": {n: FSYNC[n] for n in names},
        "problems": problems,
    }


def markdown(result: dict) -> list[str]:
    """The C-STORE table and the durability notes."""
    names = result["targets"]
    per_s = result["instances_per_s"]
    lines = [
        f"C-STORE: storescu (DCMTK) of {result['instances']} generated instances (mean {result['mean_bytes']} "
        f"bytes), Nagle off on both ends, a fresh empty store per run, median of {result['runs']}; "
        f"{result.get('machine', '')}",
        "",
        "| C-STORE, instances/s | " + " | ".join(names) + " | pacscore / Orthanc |",
        "|---|" + "---:|" * (len(names) + 1),
    ]
    for assocs in ASSOCIATIONS:
        key = str(assocs)
        label = "one association (one storescu)" if assocs == 1 else f"{assocs} associations (storescu × {assocs})"
        pac, orth = per_s["pacscore"][key], per_s.get("orthanc", {}).get(key)
        ratio = str(round(pac / orth, 2)) if orth else ""
        cells = [str(per_s[n][key]) + _marked(result["problems"].get(n, {}).get(key)) for n in names]
        lines.append(f"| {label} | " + " | ".join(cells) + f" | {ratio} |")
    if result["problems"]:
        lines += [
            "",
            "✗: in these runs the SCP refused stores (storescu failed) or held fewer instances than it "
            "acknowledged; the rate still divides every instance sent by the wall time.",
        ]
    lines += ["", "Durable when Success is sent:"]
    lines += [f"- {n}: {note}" for n, note in result["fsync"].items()]
    return lines


def _marked(problems: list[str] | None) -> str:
    return f" ✗ ({'; '.join(problems)})" if problems else ""
