"""The data set generator, importable here for the benchmark scripts.

It lives in pacscore.testing.generate, installed with pacscore, so that ``pacscore bench
--generate`` works outside a checkout; this module only re-exports it.
"""

from pacscore.testing.generate import *
from pacscore.testing.generate import __all__  # noqa: F401 - the same public names
