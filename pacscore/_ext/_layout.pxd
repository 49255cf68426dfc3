# cython: language_level=3
"""The byte layouts the compiled modules share, declared once (inline: no module of its own).

A record (pacscore/index/records.py): ``u8 version, u16 n``, then ``n`` entries ``u32 tag,
2-byte VR, u32 end`` sorted by tag, then the values; a value runs from the previous entry's end
(0 for the first) to its own, relative to the end of the table. All integers little endian.

A scan segment entry (pacscore/index/segments.py): ``u16 key length, u32 record length``, the
key, the record.
"""
from libc.stdint cimport uint8_t, uint16_t, uint32_t

cdef enum:
    HEAD = 3          # record: u8 version, u16 n
    ENTRY = 10        # record table entry: u32 tag, 2s vr, u32 end
    SEGMENT_HEAD = 6  # segment entry: u16 key length, u32 record length


cdef inline uint32_t u32le(const uint8_t* p) noexcept nogil:
    return <uint32_t>p[0] | (<uint32_t>p[1] << 8) | (<uint32_t>p[2] << 16) | (<uint32_t>p[3] << 24)


cdef inline uint16_t u16le(const uint8_t* p) noexcept nogil:
    return <uint16_t>(p[0] | (p[1] << 8))


cdef inline void put_u32le(uint8_t* p, uint32_t v) noexcept nogil:
    p[0] = v & 0xFF
    p[1] = (v >> 8) & 0xFF
    p[2] = (v >> 16) & 0xFF
    p[3] = (v >> 24) & 0xFF


cdef inline int find_field(const uint8_t* buf, Py_ssize_t size, uint32_t tag,
                           Py_ssize_t* start, Py_ssize_t* end, const uint8_t** vr) noexcept nogil:
    """Locate one field of a record by binary search: 1 found (``start``/``end`` absolute
    offsets, ``vr`` its two VR bytes), 0 absent, -1 malformed."""
    cdef Py_ssize_t n, lo, hi, mid, base, s, e
    cdef uint32_t t
    cdef const uint8_t* entry
    if size < HEAD:
        return -1
    n = u16le(buf + 1)
    base = HEAD + n * ENTRY
    if base > size:
        return -1
    lo = 0
    hi = n - 1
    while lo <= hi:
        mid = (lo + hi) >> 1
        entry = buf + HEAD + mid * ENTRY
        t = u32le(entry)
        if t == tag:
            e = u32le(entry + 6)
            s = u32le(entry - 4) if mid else 0
            if s > e or base + e > size:
                return -1
            start[0] = base + s
            end[0] = base + e
            vr[0] = entry + 4
            return 1
        if t < tag:
            lo = mid + 1
        else:
            hi = mid - 1
    return 0
