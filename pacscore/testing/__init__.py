"""Test kits, strategies, the query suite and the data generator for code built on pacscore.

Nothing is imported up front: ``pacscore bench`` and ``pacscore conformance`` load their own
modules, which need no pytest (conformance needs Hypothesis: ``pacscore[conformance]``), and
``BlobStoreTests`` imports pytest only when asked for (``pacscore[testing]``).
"""

from __future__ import annotations

__all__ = ["BlobStoreTests"]


def __getattr__(name: str):
    if name == "BlobStoreTests":
        import pytest

        # plain asserts in the kit report their operands like a test file's own asserts do;
        # the rewrite applies only to a module registered before its first import
        pytest.register_assert_rewrite("pacscore.testing.blobstore")
        from .blobstore import BlobStoreTests

        return BlobStoreTests
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
