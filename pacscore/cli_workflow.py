"""The ``pacscore workflow`` commands: the performed procedure steps and the storage commitment
reports an archive keeps (docs/workflow.md).

    pacscore workflow mpps --archive DIR [--status COMPLETED] [--json]
    pacscore workflow pending --archive DIR [--json]
    pacscore workflow retry --archive DIR --peer AE=HOST:PORT... [--ae PACSCORE]

``retry`` sends the pending storage commitment reports on new associations to their
requesters (the same delivery as ``serve dimse``; a running server retries on its own every
``commitment_retry_interval`` seconds). It exits 1 while some stay pending.
"""

from __future__ import annotations

import json
import sys


def _open(args, readonly: bool = False):
    from .cli import open_for

    return open_for(args, readonly=readonly)


def _table(rows: list[list[str]]) -> None:
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    for row in rows:
        print("  ".join(cell.ljust(w) for cell, w in zip(row, widths)).rstrip())


def cmd_mpps(args) -> int:
    """The performed procedure steps (all, or those with ``--status``)."""
    with _open(args, readonly=True) as arc:
        steps = arc.mpps.list(status=args.status)
        if args.json:
            print(json.dumps([{"SOPInstanceUID": s.sop_instance_uid, **s.attributes} for s in steps], indent=1))
            return 0
        rows = [["SOPInstanceUID", "Status", "Station", "Start", "Modality", "Scheduled steps", "Updated"]]
        for step in steps:
            ds = step.dataset
            start = f"{ds.get('PerformedProcedureStepStartDate', '')} {ds.get('PerformedProcedureStepStartTime', '')}"
            scheduled = ",".join(step_id for _study, step_id in step.scheduled_steps) or "-"
            station = str(ds.get("PerformedStationAETitle", ""))
            modality = str(ds.get("Modality", ""))
            rows.append([step.sop_instance_uid, step.status, station, start.strip(), modality, scheduled, step.updated])
        _table(rows)
        print(f"{len(steps)} step(s)", file=sys.stderr)
    return 0


def cmd_pending(args) -> int:
    """The storage commitment reports not yet delivered."""
    with _open(args, readonly=True) as arc:
        reports = arc.commitments.pending()
        if args.json:
            print(
                json.dumps(
                    [
                        {
                            "transaction_uid": r.transaction_uid,
                            "requester": r.requester,
                            "created": r.created,
                            "instances": len(r.references),
                            "checked": r.result is not None,
                            "attempts": r.attempts,
                            "last_error": r.last_error,
                        }
                        for r in reports
                    ],
                    indent=1,
                )
            )
            return 0
        rows = [["TransactionUID", "Requester", "Instances", "Created", "Attempts", "Last error"]]
        for r in reports:
            rows.append(
                [r.transaction_uid, r.requester, str(len(r.references)), r.created, str(r.attempts), r.last_error or ""]
            )
        _table(rows)
        print(f"{len(reports)} report(s) pending", file=sys.stderr)
    return 0


def cmd_retry(args) -> int:
    """Deliver the pending reports to the peers given; 1 while some stay pending."""
    try:
        from .adapters.dimse_commitment import CommitmentService
    except ImportError:
        print("pacscore workflow retry: needs pynetdicom (pip install 'pacscore[dimse]')", file=sys.stderr)
        return 2
    with _open(args) as arc:
        service = CommitmentService(arc, dict(args.peer), retry_interval=None)
        delivered = service.deliver_pending()
        left = arc.commitments.pending()
    print(f"{delivered} report(s) delivered, {len(left)} pending")
    for r in left:
        print(f"  {r.transaction_uid} for {r.requester}: {r.last_error or 'not tried'}", file=sys.stderr)
    return 1 if left else 0


def add_workflow_cli(sub, archive_arg) -> None:
    """Register ``workflow`` and its commands on the ``pacscore`` subparsers."""
    from .cli_serve import _move_dest

    wf = sub.add_parser(
        "workflow",
        help="performed procedure steps (MPPS) and pending storage commitment reports",
        description=(__doc__ or "").split("\n\n")[0],
    )
    wf_sub = wf.add_subparsers(dest="workflow_command", required=True)

    p = wf_sub.add_parser("mpps", help="list the performed procedure steps")
    archive_arg(p)
    p.add_argument("--status", choices=("IN PROGRESS", "COMPLETED", "DISCONTINUED"), default=None)
    p.add_argument("--json", action="store_true", help="DICOM JSON of each step (with its SOPInstanceUID)")
    p.set_defaults(func=cmd_mpps)

    p = wf_sub.add_parser("pending", help="list the storage commitment reports not yet delivered")
    archive_arg(p)
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_pending)

    p = wf_sub.add_parser("retry", help="deliver the pending storage commitment reports on new associations")
    archive_arg(p)
    p.add_argument(
        "--peer",
        action="append",
        default=[],
        type=_move_dest,
        metavar="AE=HOST:PORT",
        help="where the reports of AE go (repeatable; as serve dimse --commitment-peer)",
    )
    p.set_defaults(func=cmd_retry)
