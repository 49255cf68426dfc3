"""Paging of query results: matches to built rows, ``offset`` skipped and ``limit`` kept without
building a row for any other, in lists (a list costs the caller less than a generator
resumption per row)."""

from __future__ import annotations

from itertools import islice

from .results import RESULT_BATCH, gc_paused


def rows(executor, builder, limit: int | None, offset: int):
    """The results of one query in lists of at most RESULT_BATCH (see ``paged``)."""
    build_many = builder.own_record_rows
    batches = executor.own_record_batches() if build_many is not None else None
    if batches is None:  # rows from Match objects (ancestors read as needed)
        build, matches = builder.row, executor.matches()
        chunk = RESULT_BATCH if limit is None else max(1, min(RESULT_BATCH, offset + limit))
        batches = iter(lambda: list(islice(matches, chunk)), [])

        def build_many(part):
            return [build(m) for m in part]

    yield from paged(batches, build_many, limit, offset)


def paged(batches, build_many, limit: int | None, offset: int):
    """Results, in lists of RESULT_BATCH (the last one shorter), from lists of matches of any
    length (a scan segment may give a few, a candidate fetch a thousand): ``offset`` matches
    skipped and ``limit`` kept without building a result for any other. Results are built with
    the cyclic GC paused (thousands of fresh row containers otherwise trigger collection after
    collection: half the time of a broad query), never across a yield to the caller."""
    skip, left = offset, limit
    pending: list = []
    if left == 0:
        return
    step = RESULT_BATCH if left is None else min(RESULT_BATCH, left)
    for part in batches:
        if skip:
            taken = min(skip, len(part))
            part, skip = part[taken:], skip - taken
        pending += part
        while len(pending) >= step:
            part, pending = pending[:step], pending[step:]
            with gc_paused():
                rows = build_many(part)
            yield rows
            if left is not None:
                left -= step
                if left == 0:
                    return
                step = min(RESULT_BATCH, left)
    if pending:
        with gc_paused():
            rows = build_many(pending)
        yield rows


__all__ = ["rows", "paged"]
