"""The record codec in use: the compiled one when built, else the pure-Python twin.

``PACSCORE_PURE=1`` forces the pure-Python twin (records.py); both give identical answers,
which tests/test_impl_parity.py checks on generated records.
"""

from __future__ import annotations

from .. import _impl
from . import records as pure

impl = _impl.compiled("_records") or pure

encode = impl.encode
decode = impl.decode
get = impl.get
get_value = impl.get_value
IMPLEMENTATION = "pure" if impl is pure else "cython"
