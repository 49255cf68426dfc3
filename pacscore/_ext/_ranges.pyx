# cython: language_level=3, boundscheck=False, wraparound=False, cdivision=True
"""The walk of a secondary index range (query/plan.py ``walk_range``), compiled: the same
answers as the pure twin ``pacscore.query.ranges.walk_range`` (tests/test_impl_parity.py), with
the keys compared where LMDB left them instead of copied to bytes first. A date range or a
prefix of a few hundred entries was a tenth of such a query."""
from cpython.buffer cimport PyBUF_SIMPLE, PyBuffer_Release, PyObject_GetBuffer
from cpython.bytes cimport PyBytes_AS_STRING, PyBytes_FromStringAndSize, PyBytes_GET_SIZE
from libc.stdint cimport uint8_t
from libc.string cimport memcmp


cdef inline int _compare(const uint8_t* a, Py_ssize_t an, const uint8_t* b, Py_ssize_t bn) noexcept nogil:
    """Byte order of a and b, as bytes compare (-1, 0, 1)."""
    cdef Py_ssize_t n = an if an < bn else bn
    cdef int c = memcmp(a, b, n) if n else 0
    if c:
        return -1 if c < 0 else 1
    return (an > bn) - (an < bn)


def walk_range(it, bytes head, bytes lo, object hi, bint prefix, set found, Py_ssize_t cap):
    """Add to ``found`` the values of the (key, value) pairs of ``it`` (a cursor walk from the
    range's first key) while the key is in the range: starts with ``lo`` when ``prefix``, else
    starts with ``head`` and is at most ``hi`` (bytes). Returns False as soon as ``found`` holds
    more than ``cap`` values (the caller then scans instead), else True."""
    cdef Py_buffer kb, vb
    cdef const uint8_t* lp = <const uint8_t*>PyBytes_AS_STRING(lo)
    cdef Py_ssize_t ln = PyBytes_GET_SIZE(lo)
    cdef const uint8_t* hp = <const uint8_t*>PyBytes_AS_STRING(head)
    cdef Py_ssize_t hn = PyBytes_GET_SIZE(head)
    cdef bytes hi_b = None if prefix else hi
    cdef const uint8_t* ip = NULL
    cdef Py_ssize_t inn = 0
    cdef bint stop
    if not prefix:
        ip = <const uint8_t*>PyBytes_AS_STRING(hi_b)
        inn = PyBytes_GET_SIZE(hi_b)
    for k, v in it:
        PyObject_GetBuffer(k, &kb, PyBUF_SIMPLE)
        try:
            if prefix:
                stop = kb.len < ln or memcmp(kb.buf, lp, ln) != 0
            else:
                stop = (kb.len < hn or memcmp(kb.buf, hp, hn) != 0
                        or _compare(<const uint8_t*>kb.buf, kb.len, ip, inn) > 0)
        finally:
            PyBuffer_Release(&kb)
        if stop:
            return True
        PyObject_GetBuffer(v, &vb, PyBUF_SIMPLE)
        try:
            found.add(PyBytes_FromStringAndSize(<const char*>vb.buf, vb.len))
        finally:
            PyBuffer_Release(&vb)
        if len(found) > cap:
            return False
    return True


def values_of(it):
    """``list(map(bytes, it))`` for an iterator of buffers (a cursor's duplicate values), with
    each buffer copied straight into its bytes object."""
    cdef Py_buffer vb
    cdef list out = []
    for v in it:
        if type(v) is bytes:
            out.append(v)
            continue
        PyObject_GetBuffer(v, &vb, PyBUF_SIMPLE)
        try:
            out.append(PyBytes_FromStringAndSize(<const char*>vb.buf, vb.len))
        finally:
            PyBuffer_Release(&vb)
    return out
