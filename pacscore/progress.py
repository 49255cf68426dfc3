"""An optional progress bar (tqdm when installed, else nothing): long jobs show where they are."""

from __future__ import annotations


def progress_bar(total: int | None, enabled: bool, **options):
    """A tqdm bar over ``total`` steps (None: not known in advance), or None when disabled or
    tqdm is missing."""
    if not enabled:
        return None
    try:
        from tqdm import tqdm
    except ImportError:
        return None
    return tqdm(total=total, **options)
