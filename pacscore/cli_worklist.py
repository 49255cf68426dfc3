"""The ``pacscore worklist`` commands: add items from files, list (or search) them, remove them.

    pacscore worklist add --archive DIR FILE...        # DCMTK/Orthanc .wl files or DICOM JSON
    pacscore worklist list --archive DIR [Keyword=value ...] [--json]
    pacscore worklist remove --archive DIR KEY...

A ``.wl`` file is a DICOM data set with or without the Part-10 header (DCMTK's ``dump2dcm``
writes either; Orthanc's worklist folder holds the same files). A ``.json`` file holds one
item in the DICOM JSON model (PS3.18 F.2) or a list of them.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pydicom
from pydicom.errors import InvalidDicomError

from .errors import NotFound
from .worklist import WorklistError, items, match

#: the columns of ``worklist list``: (heading, attribute of the item, attribute of its step)
COLUMNS = (
    ("KEY", None, None),
    ("PatientID", "PatientID", None),
    ("PatientName", "PatientName", None),
    ("Modality", None, "Modality"),
    ("Station", None, "ScheduledStationAETitle"),
    ("Date", None, "ScheduledProcedureStepStartDate"),
    ("Time", None, "ScheduledProcedureStepStartTime"),
    ("Status", None, "ScheduledProcedureStepStatus"),
)


def read_items(path: str | Path) -> list[object]:
    """The items one file holds: a DICOM JSON file (``.json``, one item or a list) or a DICOM
    data set, with or without the Part-10 header; WorklistError names a file that is neither."""
    path = Path(path)
    if path.suffix.lower() == ".json":
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except (UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise WorklistError(None, f"not JSON: {exc}") from None
        loaded = data if isinstance(data, list) else [data]
        if not loaded or not all(isinstance(item, dict) for item in loaded):
            raise WorklistError(None, "a worklist JSON file holds one DICOM JSON object or a list of them")
        return loaded
    with open(path, "rb") as f:
        head = f.read(132)
    if head[128:132] != b"DICM" and not _starts_like_a_data_set(head):
        raise WorklistError(None, "not a DICOM file: no Part-10 header, and it does not start like a data set")
    try:
        return [pydicom.dcmread(path, force=True)]
    except (InvalidDicomError, EOFError, ValueError, TypeError, KeyError) as exc:
        raise WorklistError(None, f"not a DICOM data set: {type(exc).__name__}: {exc}") from None


def _starts_like_a_data_set(head: bytes) -> bool:
    """Whether bytes without a Part-10 header start like a raw little endian data set of a
    worklist item: its elements are sorted, and it holds PatientID (0010,0020), so its first
    tag is of an even group from 0008 to 0010 (0002 when a file meta group was kept)."""
    if len(head) < 8:
        return False
    group = int.from_bytes(head[:2], "little")
    return group % 2 == 0 and 0x0002 <= group <= 0x0010


def cmd_add(args) -> int:
    """Exit 0 when every item was added, 1 when some were refused (each named with its
    reason; nothing of a refused item is written), 2 on an error."""
    refused = 0
    with _open(args) as arc:
        for path in args.files:
            try:
                loaded = read_items(path)
            except (WorklistError, OSError) as exc:
                print(f"refused {path}: {exc}")
                refused += 1
                continue
            for n, item in enumerate(loaded):
                where = path if len(loaded) == 1 else f"{path}[{n}]"
                try:
                    key = arc.worklist.add(item, replace=args.replace)
                except WorklistError as exc:
                    print(f"refused {where}: {exc}")
                    refused += 1
                    continue
                print(f"added {key} from {where}")
    return 1 if refused else 0


def cmd_list(args) -> int:
    """The items (all, or those the filters match), as a table or as DICOM JSON."""
    from .cli import parse_keys

    identifier = parse_keys(args.keys)
    with _open(args, readonly=True) as arc:
        keys = arc.worklist.keys()
        if identifier:
            chosen = {items.item_key(d) for d in arc.worklist.find(match.keyed_identifier(identifier), format="json")}
            keys = [key for key in keys if key in chosen]
        if args.json:
            stored = [arc.worklist.get(key, format="json") for key in keys]
            print(json.dumps(stored, indent=1, ensure_ascii=False))
            return 0
        rows = [[heading for heading, _, _ in COLUMNS]]
        for key in keys:
            ds = arc.worklist.get(key)
            step = ds.ScheduledProcedureStepSequence[0]
            rows.append([key, *(str(_value(ds, step, top, in_step)) for _, top, in_step in COLUMNS[1:])])
        widths = [max(len(row[i]) for row in rows) for i in range(len(COLUMNS))]
        for row in rows:
            print("  ".join(cell.ljust(w) for cell, w in zip(row, widths)).rstrip())
        print(f"{len(rows) - 1} item(s)", file=sys.stderr)
    return 0


def _value(ds, step, top: str | None, in_step: str | None) -> object:
    source, name = (ds, top) if top is not None else (step, in_step)
    return source.get(name, "") if name else ""


def cmd_remove(args) -> int:
    missing = 0
    with _open(args) as arc:
        for key in args.keys:
            try:
                arc.worklist.remove(key)
            except NotFound as exc:
                print(f"pacscore worklist remove: {exc}", file=sys.stderr)
                missing += 1
                continue
            print(f"removed {key}")
    return 2 if missing else 0


def _open(args, readonly: bool = False):
    from .cli import open_for

    return open_for(args, readonly=readonly)


def add_worklist_cli(sub, archive_arg) -> None:
    """Register ``worklist`` and its commands on the ``pacscore`` subparsers."""
    wl = sub.add_parser(
        "worklist",
        help="manage the Modality Worklist served by `serve dimse` (add, list, remove)",
        description=(__doc__ or "").split("\n\n")[0],
    )
    wl_sub = wl.add_subparsers(dest="worklist_command", required=True)

    p = wl_sub.add_parser("add", help="add items from .wl (DICOM) or .json (DICOM JSON) files")
    archive_arg(p)
    p.add_argument("files", nargs="+", metavar="FILE")
    p.add_argument("--replace", action="store_true", help="replace an item of the same key (default: refuse it)")
    p.set_defaults(func=cmd_add)

    p = wl_sub.add_parser(
        "list",
        help="list the items, or those matching Keyword=value filters",
        description="Filters use the worklist matching rules (docs/matching.md); the scheduled step's "
        "attributes are named by their own keyword: Modality=CT ScheduledProcedureStepStartDate=20260101-",
    )
    archive_arg(p)
    p.add_argument("keys", nargs="*", metavar="Keyword=value")
    p.add_argument("--json", action="store_true", help="DICOM JSON output (the matching items, or all)")
    p.set_defaults(func=cmd_list)

    p = wl_sub.add_parser("remove", help="remove items by key (StudyInstanceUID:ScheduledProcedureStepID)")
    archive_arg(p)
    p.add_argument("keys", nargs="+", metavar="KEY")
    p.set_defaults(func=cmd_remove)
