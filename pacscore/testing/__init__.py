"""Test kits for code built on pacscore (import needs pytest)."""
import pytest

# Plain asserts in the kit report their operands like a test file's own asserts do.
pytest.register_assert_rewrite("pacscore.testing.blobstore")

from .blobstore import BlobStoreTests  # noqa: E402

__all__ = ["BlobStoreTests"]
