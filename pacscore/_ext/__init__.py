"""Compiled twins of the hot paths (Cython); see pacscore/index/codec.py."""
