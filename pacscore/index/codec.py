"""The record codec in use: the compiled one when built, else the pure-Python twin.

``PACSCORE_PURE=1`` forces the pure-Python twin (records.py); both give identical answers,
which tests/test_impl_parity.py checks on generated records.
"""
from __future__ import annotations

import os

from . import records as pure

if os.environ.get("PACSCORE_PURE") == "1":
    impl = pure
else:
    try:
        from .._ext import _records as impl  # type: ignore[no-redef]
    except ImportError:
        impl = pure

encode = impl.encode
decode = impl.decode
get = impl.get
get_value = impl.get_value
IMPLEMENTATION = "pure" if impl is pure else "cython"
