"""Which implementation of each twin is live: the compiled extension or the pure-Python code.

Every module with a compiled twin asks here (msgpack's pattern, in one place): ``compiled(name)``
gives the extension module ``pacscore._ext.<name>``, or None when ``PACSCORE_PURE=1`` forces the
pure twins or the extension is not built (an install with ``PACSCORE_NO_EXT=1``, or a checkout
without a compiler). ``state()`` reports each twin truthfully, for ``pacscore.IMPLEMENTATION``
and bug reports.
"""

from __future__ import annotations

import importlib
import os
from types import ModuleType

#: extension module -> the pure-Python twin it accelerates
TWINS: dict[str, str] = {
    "_records": "pacscore.index.records (record codec, JSON rows: pacscore.query.json_rows)",
    "_match": "pacscore.query.reference through pacscore.query.fast (kernels), pacscore.query.temporal (TM/DT)",
    "_ranges": "pacscore.query.ranges (index range walks)",
    "_walk": "pacscore.ingest._walk_problem (element walk of a file)",
    "_header": "pacscore.ingest's pydicom path (header reader)",
    "_dimse_encode": "pacscore.adapters.dimse_encode (encode_fields, encode_row: C-FIND identifiers as bytes)",
}

FORCED_PURE = os.environ.get("PACSCORE_PURE") == "1"

_loaded: dict[str, ModuleType | None] = {}
_errors: dict[str, str] = {}


def compiled(name: str) -> ModuleType | None:
    """The compiled twin ``pacscore._ext.<name>``, or None when the pure twin must serve."""
    if name not in TWINS:
        raise KeyError(f"no compiled twin named {name!r} (known: {', '.join(TWINS)})")
    if name not in _loaded:
        module = None
        if not FORCED_PURE:
            try:
                module = importlib.import_module(f"pacscore._ext.{name}")
            except ImportError as exc:
                _errors[name] = str(exc)
        _loaded[name] = module
    return _loaded[name]


def state() -> dict[str, str]:
    """Each twin's state: "cython", "pure (forced by PACSCORE_PURE=1)" or "pure (not built: ...)"."""
    out = {}
    for name in TWINS:
        if compiled(name) is not None:
            out[name] = "cython"
        elif FORCED_PURE:
            out[name] = "pure (forced by PACSCORE_PURE=1)"
        else:
            out[name] = f"pure (not built: {_errors.get(name, 'unknown')})"
    return out


def summary() -> str:
    """ "cython" when every twin is compiled, "pure" when none is, else "mixed"."""
    states = {s == "cython" for s in state().values()}
    return "cython" if states == {True} else "pure" if states == {False} else "mixed"
