# cython: language_level=3, boundscheck=False, wraparound=False, cdivision=True
"""C-FIND response identifiers as bytes, compiled: the exact twin of the encoding functions of
pacscore/adapters/dimse_encode.py (``encode_fields``, ``encode_row``, ``EncodePlan``).

Byte-identical data sets in Implicit or Explicit VR Little Endian (PS3.5 7.1), and Unencodable
for the same fields (tests/test_dimse_encode_compiled.py). The values are written from the
str objects' own bytes into one buffer: no intermediate bytes per field, no struct calls, the
DS and IS checks of PS3.5 6.2 done on the characters. Binary VRs and AT, rare in a response,
run the pure twin's Python code here. ``EncodePlan`` goes one step further and writes a row from
the stored UTF-8 bytes of its records, without a str, tuple or list per field.
"""
import struct
from json import loads as _json_loads

from cpython.buffer cimport PyBUF_SIMPLE, PyBuffer_Release, PyObject_GetBuffer
from cpython.bytes cimport PyBytes_FromStringAndSize
from cpython.unicode cimport PyUnicode_DecodeUTF8
from cpython.mem cimport PyMem_Free, PyMem_Malloc, PyMem_Realloc
from libc.stdint cimport uint8_t, uint32_t
from libc.string cimport memcpy

from pacscore._ext._layout cimport find_field

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


# ---- rows straight from the stored records ---------------------------------------------------------
cdef enum:
    SPEC_CONSTANT = 0  # pacscore.query.kinds.SpecKind
    SPEC_UNIQUE = 1
    SPEC_KEY = 2
    SLOT_CONSTANT = 0  # an element encoded once, when the plan is made
    SLOT_UNIQUE = 1
    SLOT_KEY = 2
    CODE_SQ = (83 << 8) | 81
    CODE_UN = (85 << 8) | 78
    CODE_IN = (73 << 8) | 78
    CODE_LO = (76 << 8) | 79


cdef int _vr_code(object vr) except -1:
    if type(vr) is not str or len(vr) != 2 or not PyUnicode_IS_ASCII(vr):
        raise ValueError(f"VR {vr!r}")
    return _code2(vr)


cdef inline int _sent(int code) noexcept:
    """The VR an element goes out with: an unknown one (IN, UN) as LO, as on the Dataset path."""
    return CODE_LO if code == CODE_IN or code == CODE_UN else code


cdef class EncodePlan:
    """``dimse_encode.EncodePlanPure`` compiled: the row plan of a query (the specs of
    pacscore/query/json_rows.py) with what the adapter adds, read once; ``row(recs)`` writes one
    response's data set from the stored UTF-8 bytes of its records, with no str or tuple per
    field. It raises Unencodable for every row the pure plan would not encode, and also for a
    few it leaves to the caller's Dataset path (a sequence, bytes that are not strict UTF-8, a
    malformed record): the caller then builds that row from ``ResultBuilder.fields``."""
    cdef Py_ssize_t n
    cdef int* kinds
    cdef uint32_t* tags     # the element's tag
    cdef uint32_t* reads    # the tag read from the record (a pointer field for some unique keys)
    cdef int* codes         # UNIQUE: the VR it goes out with; KEY: the key's VR
    cdef Py_ssize_t* index  # which of the records
    cdef list constants     # per slot: a SLOT_CONSTANT's encoded element, else None
    cdef list defaults      # per slot: the encoded default for an empty value, else None
    cdef bint explicit
    cdef Py_ssize_t width

    def __cinit__(self, tuple specs, bint explicit, defaults=(), overrides=()):
        cdef Py_ssize_t i
        self.explicit = explicit
        slots = {}
        for spec in specs:
            tag = int(spec[1], 16)
            if not 0 <= tag <= 0xFFFFFFFF or tag in slots:
                raise ValueError(f"tag {spec[1]} twice or out of range")
            if spec[0] == SPEC_CONSTANT:
                slots[tag] = [SLOT_CONSTANT, 0, 0, 0, _encode([(tag, spec[2], spec[3])], explicit), None, spec[3]]
            elif spec[0] == SPEC_UNIQUE or spec[0] == SPEC_KEY:
                _, _, rec_index, read, vr = spec
                if type(read) is not int or not 0 <= read <= 0xFFFFFFFF or type(rec_index) is not int or rec_index < 0:
                    raise ValueError(f"spec {spec!r}")
                kind = SLOT_UNIQUE if spec[0] == SPEC_UNIQUE else SLOT_KEY
                slots[tag] = [kind, read, _vr_code(vr), rec_index, None, None, None]
            else:
                raise ValueError("a spec built by a callable")
        added = [f[0] for f in defaults] + [f[0] for f in overrides]
        if len(set(added)) != len(added):
            raise ValueError("a tag added twice")
        for tag, vr, value in overrides:  # always sent
            slots[tag] = [SLOT_CONSTANT, 0, 0, 0, _encode([(tag, vr, value)], explicit), None, value]
        for tag, vr, value in defaults:  # sent where the row has no value for the tag
            encoded = _encode([(tag, vr, value)], explicit)
            slot = slots.get(tag)
            if slot is None or (slot[0] == SLOT_CONSTANT and slot[6] in ("", None, [])):
                slots[tag] = [SLOT_CONSTANT, 0, 0, 0, encoded, None, value]
            elif slot[0] != SLOT_CONSTANT:
                slot[5] = encoded
        ordered = sorted(slots.items())
        self.n = len(ordered)
        self.kinds = <int*>PyMem_Malloc(max(self.n, 1) * sizeof(int))
        self.tags = <uint32_t*>PyMem_Malloc(max(self.n, 1) * sizeof(uint32_t))
        self.reads = <uint32_t*>PyMem_Malloc(max(self.n, 1) * sizeof(uint32_t))
        self.codes = <int*>PyMem_Malloc(max(self.n, 1) * sizeof(int))
        self.index = <Py_ssize_t*>PyMem_Malloc(max(self.n, 1) * sizeof(Py_ssize_t))
        if not (self.kinds and self.tags and self.reads and self.codes and self.index):
            raise MemoryError()
        self.constants, self.defaults, self.width = [], [], 0
        for i in range(self.n):
            tag, slot = ordered[i]
            self.tags[i], self.kinds[i], self.reads[i], self.codes[i], self.index[i] = tag, slot[0], slot[1], slot[2], slot[3]
            self.constants.append(slot[4])
            self.defaults.append(slot[5])
            if slot[0] != SLOT_CONSTANT:
                self.width = max(self.width, slot[3] + 1)

    def __dealloc__(self):
        PyMem_Free(self.kinds)
        PyMem_Free(self.tags)
        PyMem_Free(self.reads)
        PyMem_Free(self.codes)
        PyMem_Free(self.index)

    def row(self, tuple recs):
        """One response's data set; ``recs[i]`` is the raw record of level i or None."""
        cdef Buf b
        cdef Py_ssize_t i
        if len(recs) < self.width:
            raise ValueError(f"{len(recs)} records, the plan reads {self.width}")
        b.data, b.size, b.cap = NULL, 0, 0
        try:
            for i in range(self.n):
                if self.kinds[i] == SLOT_CONSTANT:
                    _append(&b, self.constants[i])
                else:
                    self._field(&b, i, recs[self.index[i]])
            return PyBytes_FromStringAndSize(b.data, b.size)
        finally:
            PyMem_Free(b.data)

    cdef int _field(self, Buf* b, Py_ssize_t i, object rec) except -1:
        cdef Py_buffer view
        cdef const uint8_t* ptr
        cdef Py_ssize_t size, start = 0, end = 0
        cdef const uint8_t* vr = NULL
        cdef int found = 0, code
        cdef bint held = False
        try:
            if rec is not None:
                if type(rec) is bytes:
                    ptr, size = <const uint8_t*>PyBytes_AS_STRING(rec), PyBytes_GET_SIZE(rec)
                else:
                    PyObject_GetBuffer(rec, &view, PyBUF_SIMPLE)
                    held = True
                    ptr, size = <const uint8_t*>view.buf, view.len
                found = find_field(ptr, size, self.reads[i], &start, &end, &vr)
                if found < 0:
                    raise _unencodable("a malformed record")
            if found == 0 or end == start:  # no value: the default, or an empty element
                default = self.defaults[i]
                if default is not None:
                    _append(b, default)
                    return 0
                code = self.codes[i]
                if found and self.kinds[i] == SLOT_KEY:
                    code = _stored_vr(code, vr)
                if code == CODE_SQ:
                    raise _unencodable("a sequence")
                return _from_bytes(b, self.tags[i], _sent(code), NULL, 0, self.explicit)
            if vr[0] == 83 and vr[1] == 81:  # SQ: its items are JSON in the record
                return self._sequence(b, i, PyBytes_FromStringAndSize(<const char*>ptr + start, end - start))
            code = self.codes[i]
            if self.kinds[i] == SLOT_KEY:
                code = _stored_vr(code, vr)
            return _from_bytes(b, self.tags[i], _sent(code), ptr + start, end - start, self.explicit)
        finally:
            if held:
                PyBuffer_Release(&view)


    cdef int _sequence(self, Buf* b, Py_ssize_t i, bytes raw) except -1:
        """A field stored as a sequence, as the pure plan has it: a key keeps it (a row with a
        sequence goes the Dataset way), a unique key takes its value (``value or ""``); an
        empty one gives way to the default."""
        value = _json_loads(raw)
        if self.kinds[i] == SLOT_UNIQUE:
            value = value or ""
        if value in ("", None, []) and self.defaults[i] is not None:
            return _append(b, self.defaults[i])
        code = self.codes[i]
        if self.kinds[i] == SLOT_KEY or code == CODE_SQ:
            raise _unencodable("a sequence")
        return _element(b, self.tags[i], chr(code >> 8) + chr(code & 0xFF), value, self.explicit)


cdef inline int _stored_vr(int key_code, const uint8_t* vr) noexcept:
    """json_rows.out_vr: the stored VR when the key's is UN or they agree, else the key's."""
    cdef int stored = (<int>vr[0] << 8) | vr[1]
    return stored if key_code == CODE_UN or stored == CODE_SQ else key_code


cdef int _append(Buf* b, bytes element) except -1:
    cdef Py_ssize_t n = PyBytes_GET_SIZE(element)
    _reserve(b, n)
    memcpy(b.data + b.size, PyBytes_AS_STRING(element), n)
    b.size += n
    return 0


cdef int _from_bytes(Buf* b, uint32_t tag, int code, const uint8_t* p, Py_ssize_t n, bint explicit) except -1:
    """One element whose value is stored UTF-8 text (what encode_fields makes of it decoded)."""
    cdef int kind = _KIND[code]
    cdef Py_ssize_t i
    cdef bint ascii = True
    cdef char pad_char = c' '
    cdef bytes owned
    vr = chr(code >> 8) + chr(code & 0xFF) if n else None
    if n == 0:
        return _write(b, tag, <char>(code >> 8), <char>(code & 0xFF), _LONG[code], NULL, 0, False, pad_char,
                      explicit, vr)
    if kind == K_REFUSED:
        raise _unencodable(f"{vr} value")
    if kind == K_BINARY or kind == K_AT:
        try:
            value = PyUnicode_DecodeUTF8(<const char*>p, n, NULL)
        except UnicodeDecodeError:
            raise _unencodable(f"{vr} value not UTF-8")
        owned = _binary_value(vr, value) if kind == K_BINARY else _at_value(value)
        return _write(b, tag, <char>(code >> 8), <char>(code & 0xFF), _LONG[code], PyBytes_AS_STRING(owned),
                      PyBytes_GET_SIZE(owned), False, pad_char, explicit, vr)
    for i in range(n):
        if p[i] >= 0x80:
            ascii = False
            break
    if ascii:
        if (kind == K_DS or kind == K_IS) and not _numbers_ok(<const char*>p, n, kind == K_DS):
            raise _unencodable(f"{vr} value pydicom would re-format")
        if kind == K_UI:
            pad_char = 0
    elif kind == K_CHARSET:
        try:  # strict UTF-8 (no lone surrogates), which is what the pure twin can encode
            PyUnicode_DecodeUTF8(<const char*>p, n, NULL)
        except UnicodeDecodeError:
            raise _unencodable(f"{vr} value not UTF-8")
    else:
        raise _unencodable(f"{vr} value outside ASCII")
    return _write(b, tag, <char>(code >> 8), <char>(code & 0xFF), _LONG[code], <const char*>p, n, n & 1, pad_char,
                  explicit, vr)
