"""One pynetdicom function with some of its global names bound to pacscore's replacements.

The fast path (dimse_fastpath, dimse_negotiation, dimse_encode) changes what a few of
pynetdicom's methods call without copying their code: the method's own code object runs with a
copy of its module's globals in which the named functions are replaced. Nothing of pynetdicom
is patched in place, and a pynetdicom whose method no longer calls a name by that name gets
None, so the caller keeps pynetdicom's own method (docs/benchmarks-wire.md says why).
"""

from __future__ import annotations

import types
from collections.abc import Callable
from typing import Any, cast


def rebound(method: Callable, module: types.ModuleType, **names: Any) -> Callable | None:
    """``method`` running with ``module``'s globals where each of ``names`` is replaced; None
    when the method does not use every one of those names as a global."""
    fn = cast(types.FunctionType, method)
    code = fn.__code__
    if not all(name in code.co_names for name in names):
        return None
    scope = dict(vars(module))
    scope.update(names)
    return types.FunctionType(code, scope, fn.__name__, fn.__defaults__, fn.__closure__)
