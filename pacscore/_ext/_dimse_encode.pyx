# cython: language_level=3, boundscheck=False, wraparound=False, cdivision=True
"""C-FIND response identifiers as bytes, compiled: the exact twin of the encoding functions of
pacscore/adapters/dimse_encode.py (``encode_fields`` and ``encode_row``).

Byte-identical data sets in Implicit or Explicit VR Little Endian (PS3.5 7.1), and Unencodable
for the same fields (tests/test_dimse_encode_compiled.py). The values are written from the
str objects' own bytes into one buffer: no intermediate bytes per field, no struct calls, the
DS and IS checks of PS3.5 6.2 done on the characters. Binary VRs and AT, rare in a response,
run the pure twin's Python code here.
"""
import struct

from cpython.bytes cimport PyBytes_FromStringAndSize
from cpython.mem cimport PyMem_Free, PyMem_Malloc, PyMem_Realloc
from libc.stdint cimport uint8_t, uint32_t
from libc.string cimport memcpy

cdef extern from "Python.h":
    bint PyUnicode_IS_ASCII(object op)
    void* PyUnicode_DATA(object op)
    Py_ssize_t PyUnicode_GET_LENGTH(object op)
    bytes PyUnicode_AsUTF8String(object op)
    char* PyBytes_AS_STRING(object op)
    Py_ssize_t PyBytes_GET_SIZE(object op)

_pack = struct.pack
_struct_error = struct.error
_BINARY = {"US": "<H", "SS": "<h", "UL": "<L", "SL": "<l", "UV": "<Q", "SV": "<q", "FL": "<f", "FD": "<d"}

# what a VR (its two ASCII letters as one code) asks of the encoder
cdef enum:
    K_TEXT = 0      # ASCII text
    K_CHARSET = 1   # text of the Specific Character Set (UTF-8)
    K_DS = 2
    K_IS = 3
    K_UI = 4        # ASCII, padded with NUL
    K_BINARY = 5
    K_AT = 6
    K_REFUSED = 7   # bulk data and sequences: the Dataset way
    MAX_SHORT = 0xFFFF
    # at most this many fields are ordered here; more go through a dict and sorted()
    MAX_FIELDS = 256

cdef uint8_t _KIND[65536]
cdef bint _LONG[65536]


cdef inline int _code2(str s):
    cdef Py_UCS4 a = s[0], b = s[1]
    return (<int>a << 8) | <int>b


cdef void _init():
    cdef int i
    for i in range(65536):
        _KIND[i] = K_TEXT
        _LONG[i] = False
    for vr in ("SH", "LO", "ST", "LT", "UC", "UT", "PN"):
        _KIND[_code2(vr)] = K_CHARSET
    for vr in _BINARY:
        _KIND[_code2(vr)] = K_BINARY
    for vr in ("OB", "OD", "OF", "OL", "OV", "OW", "UN", "SQ"):
        _KIND[_code2(vr)] = K_REFUSED
    _KIND[_code2("DS")] = K_DS
    _KIND[_code2("IS")] = K_IS
    _KIND[_code2("UI")] = K_UI
    _KIND[_code2("AT")] = K_AT
    for vr in ("OB", "OD", "OF", "OL", "OV", "OW", "SQ", "SV", "UC", "UN", "UR", "UT", "UV"):
        _LONG[_code2(vr)] = True


_init()


def _unencodable(message):
    """The pure module's exception (imported when first needed: that module imports this one)."""
    from pacscore.adapters.dimse_encode import Unencodable

    return Unencodable(message)


# ---- the output buffer ------------------------------------------------------------------------
cdef struct Buf:
    char* data
    Py_ssize_t size
    Py_ssize_t cap


cdef int _reserve(Buf* b, Py_ssize_t more) except -1:
    cdef Py_ssize_t cap = b.cap
    cdef char* grown
    if b.size + more <= cap:
        return 0
    while cap < b.size + more:
        cap = cap * 2 if cap else 256
    grown = <char*>PyMem_Realloc(b.data, cap)
    if grown == NULL:
        raise MemoryError()
    b.data, b.cap = grown, cap
    return 0


cdef inline void _u16(char* p, uint32_t v) noexcept:
    p[0] = <char>(v & 0xFF)
    p[1] = <char>((v >> 8) & 0xFF)


cdef inline void _u32(char* p, uint32_t v) noexcept:
    _u16(p, v & 0xFFFF)
    _u16(p + 2, v >> 16)


# ---- PS3.5 6.2 number strings, as dimse_encode's _DS and _IS patterns match them --------------
cdef inline Py_ssize_t _digits(const char* s, Py_ssize_t i, Py_ssize_t n) noexcept:
    while i < n and c'0' <= s[i] <= c'9':
        i += 1
    return i


cdef inline bint _tail(const char* s, Py_ssize_t i, Py_ssize_t n) noexcept:
    """`` *$`` from i: spaces, then the end or one newline that ends the string (re's ``$``)."""
    while i < n and s[i] == c' ':
        i += 1
    return i == n or (i == n - 1 and s[i] == c'\n')


cdef bint _is_ds(const char* s, Py_ssize_t n) noexcept:
    cdef Py_ssize_t i = 0, j
    if n > 16:
        return False
    while i < n and s[i] == c' ':
        i += 1
    if i < n and (s[i] == c'+' or s[i] == c'-'):
        i += 1
    j = _digits(s, i, n)
    if j > i:  # \d+(\.\d*)?
        i = j
        if i < n and s[i] == c'.':
            i = _digits(s, i + 1, n)
    elif i < n and s[i] == c'.':  # \.\d+
        j = _digits(s, i + 1, n)
        if j == i + 1:
            return False
        i = j
    else:
        return False
    if i < n and (s[i] == c'e' or s[i] == c'E'):  # ([eE][+-]?\d+)?, else left to the tail
        j = i + 1
        if j < n and (s[j] == c'+' or s[j] == c'-'):
            j += 1
        if _digits(s, j, n) > j:
            i = _digits(s, j, n)
    return _tail(s, i, n)


cdef bint _is_is(const char* s, Py_ssize_t n) noexcept:
    cdef Py_ssize_t i = 0, j
    cdef long long value = 0
    cdef bint negative = False
    if n > 12:
        return False
    while i < n and s[i] == c' ':
        i += 1
    if i < n and (s[i] == c'+' or s[i] == c'-'):
        negative = s[i] == c'-'
        i += 1
    j = _digits(s, i, n)
    if j == i or not _tail(s, j, n):
        return False
    while i < j:
        value = value * 10 + (s[i] - c'0')
        i += 1
    if negative:
        value = -value
    return -2147483648 <= value < 2147483648


cdef bint _numbers_ok(const char* s, Py_ssize_t n, bint ds) noexcept:
    """Every backslash-separated value of a DS or IS string as pydicom keeps it unchanged."""
    cdef Py_ssize_t start = 0, i
    for i in range(n + 1):
        if i == n or s[i] == c'\\':
            if not (_is_ds(s + start, i - start) if ds else _is_is(s + start, i - start)):
                return False
            start = i + 1
    return True


# ---- values the pure twin's code writes ----------------------------------------------------------
def _binary_value(str vr, str value):
    parts = [v for v in value.split("\\") if v != ""]
    fmt = _BINARY[vr]
    try:
        if vr in ("FL", "FD"):
            return b"".join(_pack(fmt, float(v)) for v in parts)
        return b"".join(_pack(fmt, int(v)) for v in parts)
    except (ValueError, _struct_error) as exc:
        raise _unencodable(f"{vr} value {value!r}") from exc


def _at_value(str value):
    try:
        tags = [int(v, 16) for v in value.split("\\") if v]
        return b"".join(_pack("<HH", t >> 16, t & 0xFFFF) for t in tags)
    except (ValueError, _struct_error) as exc:
        raise _unencodable(f"AT value {value!r}") from exc


# ---- one element ---------------------------------------------------------------------------------
cdef int _element(Buf* b, object tag_obj, str vr, object value, bint explicit) except -1:
    cdef long long tag
    cdef int code = 0
    cdef int kind = K_TEXT
    cdef const char* data = NULL
    cdef Py_ssize_t n = 0, pad, head
    cdef bytes owned = None
    cdef bytes vr_bytes
    cdef char pad_char = c' ', v0 = 0, v1 = 0
    try:
        tag = tag_obj
    except OverflowError:
        raise _struct_error("tag out of range")
    if tag < 0 or tag > 0xFFFFFFFF:
        raise _struct_error("tag out of range")
    if vr == "IN" or vr == "UN":
        vr = "LO"  # as the Dataset path: an unknown VR goes out as LO
    if len(vr) == 2 and PyUnicode_IS_ASCII(vr):
        code = _code2(vr)
        kind = _KIND[code]
    # the value's bytes
    if value is None:
        pass
    elif not isinstance(value, str):
        if not value == "":
            raise _unencodable(f"{vr} value of type {type(value).__name__}")
    elif PyUnicode_GET_LENGTH(value) == 0:
        pass
    elif kind == K_BINARY:
        owned = _binary_value(vr, value)
    elif kind == K_AT:
        owned = _at_value(value)
    elif kind == K_REFUSED:
        raise _unencodable(f"{vr} value")
    elif PyUnicode_IS_ASCII(value):
        data = <const char*>PyUnicode_DATA(value)
        n = PyUnicode_GET_LENGTH(value)
        if (kind == K_DS or kind == K_IS) and not _numbers_ok(data, n, kind == K_DS):
            raise _unencodable(f"{vr} value pydicom would re-format")
        if kind == K_UI:
            pad_char = 0
    elif kind == K_CHARSET:
        owned = PyUnicode_AsUTF8String(value)
    else:
        raise _unencodable(f"{vr} value outside ASCII")
    if owned is not None:
        data, n = PyBytes_AS_STRING(owned), PyBytes_GET_SIZE(owned)
    if code:
        v0, v1 = <char>(code >> 8), <char>(code & 0xFF)
    elif explicit:  # struct's "2s": the VR's UTF-8, cut or NUL-padded to two bytes
        vr_bytes = (vr.encode() + b"\0\0")[:2]
        v0, v1 = vr_bytes[0], vr_bytes[1]
    pad = n & 1 if kind != K_BINARY and kind != K_AT else 0
    _write(b, <uint32_t>tag, v0, v1, code != 0 and _LONG[code], data, n, pad, pad_char, explicit, vr)
    return 0


cdef int _write(Buf* b, uint32_t tag, char v0, char v1, bint long_vr, const char* data, Py_ssize_t n, bint pad,
                char pad_char, bint explicit, object vr) except -1:
    """One element: its header (PS3.5 7.1.2, 7.1.3), ``n`` bytes of ``data``, one pad byte."""
    cdef Py_ssize_t length = n + pad, head
    cdef char* p
    if not explicit:
        head = 8
    elif long_vr:
        head = 12
    else:
        if length > MAX_SHORT:
            raise _unencodable(f"{vr} value longer than {MAX_SHORT} bytes")
        head = 8
    if length > 0xFFFFFFFF:
        raise _struct_error("value too long")
    _reserve(b, head + length)
    p = b.data + b.size
    _u16(p, tag >> 16)
    _u16(p + 2, tag & 0xFFFF)
    if not explicit:
        _u32(p + 4, <uint32_t>length)
    else:
        p[4], p[5] = v0, v1
        if head == 12:
            _u16(p + 6, 0)
            _u32(p + 8, <uint32_t>length)
        else:
            _u16(p + 6, <uint32_t>length)
    if n:
        memcpy(p + head, data, n)
    if pad:
        p[head + n] = pad_char
    b.size += head + length
    return 0


# ---- data sets ---------------------------------------------------------------------------------
cdef list _ordered(list fields):
    """The fields in tag order, one per tag (the last one given, as Dataset.add keeps it)."""
    cdef Py_ssize_t n = len(fields), i, j
    cdef long long prev = -1, t
    cdef bint increasing = True
    cdef long long keys[MAX_FIELDS]
    cdef Py_ssize_t order[MAX_FIELDS]
    if n > MAX_FIELDS:
        return _by_tag(fields)
    for i in range(n):
        try:
            t = fields[i][0]
        except (OverflowError, TypeError):
            return _by_tag(fields)  # not a 64-bit integer: the element refuses it as pure does
        keys[i] = t
        if t <= prev:
            increasing = False
        prev = t
    if increasing:
        return fields
    for i in range(n):  # a stable insertion sort: a row comes nearly ordered
        t = keys[i]
        j = i
        while j > 0 and keys[j - 1] > t:
            keys[j] = keys[j - 1]
            order[j] = order[j - 1]
            j -= 1
        keys[j] = t
        order[j] = i
    out = []
    for i in range(n):
        if i + 1 < n and keys[i + 1] == keys[i]:
            continue  # a later field of the same tag follows
        out.append(fields[order[i]])
    return out


cdef list _by_tag(list fields):
    by_tag = {f[0]: f for f in fields}
    return [by_tag[tag] for tag in sorted(by_tag)]


cdef bytes _encode(list fields, bint explicit):
    cdef Buf b
    b.data, b.size, b.cap = NULL, 0, 0
    try:
        for f in _ordered(fields):
            tag, vr, value = f
            _element(&b, tag, vr, value, explicit)
        return PyBytes_FromStringAndSize(b.data, b.size)
    finally:
        PyMem_Free(b.data)


def encode_fields(fields, bint explicit):
    """``dimse_encode.encode_fields``: the data set of (tag, VR, value) fields."""
    return _encode(fields if type(fields) is list else list(fields), explicit)


def encode_row(fields, bint explicit, defaults=(), overrides=()):
    """``dimse_encode.encode_row``: one response's data set, with what the adapter adds."""
    if type(fields) is not list:
        fields = list(fields)
    if defaults or overrides:
        kept = {f[0] for f in fields if f[2] not in ("", None, [])}
        added = [f for f in defaults if f[0] not in kept] + list(overrides)
        if added:
            replaced = {f[0] for f in added}
            fields = [f for f in fields if f[0] not in replaced] + added
    for f in fields:
        if f[1] == "SQ":
            raise _unencodable("a sequence")
    return _encode(fields, explicit)
