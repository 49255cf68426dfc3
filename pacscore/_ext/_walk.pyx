# cython: language_level=3, boundscheck=False, wraparound=False, cdivision=True
"""The element walk of ingest's completeness check, compiled: the same answers as
pacscore.ingest._walk_problem (tests/test_impl_parity.py compares them), without a Python
object per element. Ingest walks every element after the header of every instance."""
from cpython.bytes cimport PyBytes_AS_STRING, PyBytes_GET_SIZE
from libc.stdint cimport uint8_t, uint32_t


cdef inline uint32_t _u16(const uint8_t* p, bint big) noexcept nogil:
    return ((<uint32_t>p[0] << 8) | p[1]) if big else (p[0] | (<uint32_t>p[1] << 8))


cdef inline uint32_t _u32(const uint8_t* p, bint big) noexcept nogil:
    if big:
        return (<uint32_t>p[0] << 24) | (<uint32_t>p[1] << 16) | (<uint32_t>p[2] << 8) | p[3]
    return p[0] | (<uint32_t>p[1] << 8) | (<uint32_t>p[2] << 16) | (<uint32_t>p[3] << 24)


cdef inline bint _long_vr(uint8_t a, uint8_t b) noexcept nogil:
    """OB OW OF OD OL OV SQ UN UC UR UT SV UV: a 4-byte length after two reserved bytes."""
    if a == 79:  # O
        return b == 66 or b == 87 or b == 70 or b == 68 or b == 76 or b == 86
    if a == 85:  # U
        return b == 78 or b == 67 or b == 82 or b == 84 or b == 86
    if a == 83:  # S
        return b == 81 or b == 86
    return False


def walk_problem(bytes data, Py_ssize_t pos, bint implicit, bint big):
    """None when every element from ``pos`` fits in ``data``; else ``("cut", offset)`` for an
    element header cut off, or ``("short", group, element, length, remaining)``."""
    cdef const uint8_t* p = <const uint8_t*>PyBytes_AS_STRING(data)
    cdef Py_ssize_t n = PyBytes_GET_SIZE(data)
    cdef uint32_t group, elem, length
    cdef uint8_t a, b
    if pos < 0:
        raise ValueError("negative start")
    while pos < n:
        if pos + 8 > n:
            return ("cut", pos)
        group = _u16(p + pos, big)
        elem = _u16(p + pos + 2, big)
        if group == 0xFFFE:  # item or delimiter in a sequence of undefined length
            length = _u32(p + pos + 4, big)
            pos += 8
            if elem == 0xE000 and length != 0xFFFFFFFF:
                pos += length
            continue
        a = p[pos + 4]
        b = p[pos + 5]
        if implicit or not (65 <= a <= 90 and 65 <= b <= 90):
            length = _u32(p + pos + 4, big)
            pos += 8
        elif _long_vr(a, b):
            if pos + 12 > n:
                return ("cut", pos)
            length = _u32(p + pos + 8, big)
            pos += 12
        else:
            length = _u16(p + pos + 6, big)
            pos += 8
        if length == 0xFFFFFFFF:
            continue
        if pos + <Py_ssize_t>length > n:
            return ("short", group, elem, length, n - pos)
        pos += length
    return None
