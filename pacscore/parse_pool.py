"""Parsing many sources for ``store_many``: folders walked in a stable order, headers parsed in
worker processes with a bounded number of chunks in flight, outcomes in input order, one bad
file never stopping the rest."""

from __future__ import annotations

import collections
import os
from collections.abc import Iterator
from concurrent.futures import ProcessPoolExecutor
from itertools import chain, islice
from pathlib import Path

from pydicom.dataset import Dataset

from . import ingest
from .errors import IngestError

#: what parsing one source gives: the instance, or (source, reason) when it was rejected
Outcome = ingest.ParsedInstance | tuple[str, str]


def expand_sources(sources) -> Iterator[object]:
    if isinstance(sources, (str, os.PathLike, bytes, Dataset)) or hasattr(sources, "read"):
        sources = [sources]
    for src in sources:
        if isinstance(src, (str, os.PathLike)) and Path(src).is_dir():
            for root, dirs, files in os.walk(os.fspath(src)):
                dirs.sort()
                for name in sorted(files):
                    yield os.path.join(root, name)
        else:
            yield src


def parse_one(src) -> Outcome:
    try:
        return ingest.parse(src)
    except IngestError as exc:
        return (str(exc.source), exc.reason)
    except Exception as exc:  # never let one bad file stop a batch
        return (str(src) if isinstance(src, (str, os.PathLike)) else "<input>", f"{type(exc).__name__}: {exc}")


#: instances per task sent to a parse process, and tasks in flight per process
PARSE_CHUNK = 64
PARSE_AHEAD = 4


def parse_chunk(chunk: list) -> list[Outcome]:
    return [parse_one(src) for src in chunk]


def parse_all(items: Iterator[object], workers: int | None) -> Iterator[Outcome]:
    """Parse ``items`` in order: in worker processes when there are enough of them (one pool for
    the whole input, a bounded number of chunks in flight), else in this process."""
    items = iter(items)
    head = list(islice(items, 64))
    if workers is None:
        workers = min(4, os.cpu_count() or 1) if len(head) >= 64 else 1
    if workers <= 1:
        for item in chain(head, items):
            yield parse_one(item)
        return
    import multiprocessing

    # fork: the workers only parse (they never touch the index, whose pid guard would reopen
    # it anyway) and it works from any caller, even a script without a __main__ guard
    methods = multiprocessing.get_all_start_methods()
    ctx = multiprocessing.get_context("fork" if "fork" in methods else "spawn")
    pending: collections.deque = collections.deque()
    stream = chain(head, items)
    with ProcessPoolExecutor(max_workers=workers, mp_context=ctx) as pool:
        while True:
            chunk = list(islice(stream, PARSE_CHUNK))
            if chunk:
                # paths and bytes travel cheaply to worker processes; Datasets and file objects
                # are parsed here, in their turn
                if all(isinstance(i, (str, os.PathLike, bytes, bytearray)) for i in chunk):
                    pending.append(pool.submit(parse_chunk, chunk))
                else:
                    pending.append(chunk)
            if pending and (not chunk or len(pending) >= workers * PARSE_AHEAD):
                task = pending.popleft()
                yield from (parse_chunk(task) if isinstance(task, list) else task.result())
            if not chunk and not pending:
                return


__all__ = ["expand_sources", "parse_one", "parse_all", "PARSE_CHUNK", "PARSE_AHEAD"]
