"""Build the optional Cython extensions.

The pure-Python twins in pacscore/ always work; the extensions only make the hot paths fast.
PACSCORE_NO_EXT=1 skips them (an install that never needs a compiler), like msgpack does.
"""
import glob
import os

from setuptools import setup

ext_modules = []
if os.environ.get("PACSCORE_NO_EXT") != "1":
    sources = sorted(glob.glob("pacscore/_ext/*.pyx"))
    if sources:
        from Cython.Build import cythonize
        from setuptools import Extension

        exts = [
            Extension(
                "pacscore._ext." + os.path.splitext(os.path.basename(src))[0],
                [src],
                extra_compile_args=["-O3"],
            )
            for src in sources
        ]
        ext_modules = cythonize(
            exts,
            language_level=3,
            compiler_directives={"boundscheck": False, "wraparound": False, "cdivision": True},
        )

setup(ext_modules=ext_modules)
