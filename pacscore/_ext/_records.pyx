# cython: language_level=3, boundscheck=False, wraparound=False, cdivision=True
"""The record codec, compiled: the exact twin of pacscore/index/records.py.

Same layout, byte-identical encodings, the same answers (tests/test_impl_parity.py). ``get``
and ``get_value`` read the fixed-width table straight from the buffer (bytes or any object
with the buffer protocol, e.g. an LMDB zero-copy memoryview) and build a Python object only
for the field asked for. """
import json
import struct

from cpython.buffer cimport PyBUF_SIMPLE, PyBuffer_Release, PyObject_GetBuffer
from cpython.bytes cimport PyBytes_AS_STRING, PyBytes_FromStringAndSize, PyBytes_GET_SIZE
from cpython.unicode cimport PyUnicode_DecodeASCII, PyUnicode_DecodeUTF8, PyUnicode_READ_CHAR
from libc.stdint cimport uint8_t, uint16_t, uint32_t
from cpython.mem cimport PyMem_Free, PyMem_Malloc
from libc.string cimport memcpy

from pacscore._ext._layout cimport ENTRY, HEAD, find_field, put_u32le as _put_u32, u16le as _u16, u32le as _u32

cdef extern from "Python.h":
    void PyObject_GC_UnTrack(void* op)
    int PyObject_GC_IsTracked(object op)
    dict _PyDict_NewPresized(Py_ssize_t minused)

VERSION = 1


# the VR strings of a scan repeat: keep one str per VR (indexed by its two bytes) instead of
# decoding two bytes each time
cdef list _VR_STRS = [None] * 65536


cdef object _vr_str(const uint8_t* vr):
    cdef Py_ssize_t i = (<Py_ssize_t>vr[0] << 8) | vr[1]
    cached = _VR_STRS[i]
    if cached is None:
        cached = PyUnicode_DecodeASCII(<const char*>vr, 2, NULL)
        _VR_STRS[i] = cached
    return cached


cdef object _value(const uint8_t* vr, const uint8_t* p, Py_ssize_t length):
    if vr[0] == b'S' and vr[1] == b'Q':
        return json.loads(PyBytes_FromStringAndSize(<const char*>p, length))
    return PyUnicode_DecodeUTF8(<const char*>p, length, "surrogatepass")


cdef class _View:
    """A pointer and length for bytes or any buffer, released when dropped."""
    cdef Py_buffer view
    cdef bint held
    cdef const uint8_t* ptr
    cdef Py_ssize_t size

    def __cinit__(self, obj):
        self.held = False
        if type(obj) is bytes:
            self.ptr = <const uint8_t*>PyBytes_AS_STRING(obj)
            self.size = PyBytes_GET_SIZE(obj)
        else:
            PyObject_GetBuffer(obj, &self.view, PyBUF_SIMPLE)
            self.held = True
            self.ptr = <const uint8_t*>self.view.buf
            self.size = self.view.len

    def __dealloc__(self):
        if self.held:
            PyBuffer_Release(&self.view)


cdef _View _pointer(object buf, const uint8_t** ptr, Py_ssize_t* size):
    """Point ``ptr``/``size`` at the bytes of ``buf`` (bytes or any buffer); the returned view,
    None for bytes, keeps a buffer alive: hold it while reading."""
    cdef _View v
    if type(buf) is bytes:
        ptr[0] = <const uint8_t*>PyBytes_AS_STRING(buf)
        size[0] = PyBytes_GET_SIZE(buf)
        return None
    v = _View(buf)
    ptr[0] = v.ptr
    size[0] = v.size
    return v


cdef tuple _get(const uint8_t* buf, Py_ssize_t size, object tag):
    cdef Py_ssize_t start = 0, end = 0
    cdef const uint8_t* vr = NULL
    cdef int found
    if not 0 <= tag <= 0xFFFFFFFF:
        return None  # no stored tag can equal it
    found = find_field(buf, size, <uint32_t>tag, &start, &end, &vr)
    if found < 0:
        raise struct.error("record is truncated or malformed")
    if found == 0:
        return None
    return (_vr_str(vr), _value(vr, buf + start, end - start))


def get(buf, tag):
    """One field ``(vr, value)`` or None when the record lacks it (binary search)."""
    cdef _View v
    if type(buf) is bytes:
        return _get(<const uint8_t*>PyBytes_AS_STRING(buf), PyBytes_GET_SIZE(buf), tag)
    v = _View(buf)
    return _get(v.ptr, v.size, tag)


def get_value(buf, tag):
    """The value of one field, or None when absent."""
    cdef Py_ssize_t start = 0, end = 0
    cdef const uint8_t* vr = NULL
    cdef const uint8_t* ptr
    cdef Py_ssize_t size
    cdef int found
    cdef _View v = _pointer(buf, &ptr, &size)
    if not 0 <= tag <= 0xFFFFFFFF:
        return None
    found = find_field(ptr, size, <uint32_t>tag, &start, &end, &vr)
    if found < 0:
        raise struct.error("record is truncated or malformed")
    if found == 0:
        return None
    return _value(vr, ptr + start, end - start)


def decode(buf):
    """Every field of a record as ``{tag: (vr, value)}``."""
    cdef _View v = _View(buf)
    cdef const uint8_t* p = v.ptr
    cdef Py_ssize_t n, i, base, start = 0, end
    cdef const uint8_t* entry
    cdef dict out = {}
    if v.size < HEAD:
        raise struct.error("record is truncated")
    if p[0] != VERSION:
        raise ValueError(f"unknown record version {p[0]}")
    n = _u16(p + 1)
    base = HEAD + n * ENTRY
    if base > v.size:
        raise struct.error("record table is truncated")
    for i in range(n):
        entry = p + HEAD + i * ENTRY
        end = _u32(entry + 6)
        if start > end or base + end > v.size:
            raise struct.error("record payload is truncated")
        out[_u32(entry)] = (_vr_str(entry + 4), _value(entry + 4, p + base + start, end - start))
        start = end
    return out


def encode(fields):
    """Encode ``{tag: (vr, value)}``; value is a str, or for SQ a list of item dicts."""
    cdef Py_ssize_t n = len(fields), i = 0, total = 0, length
    cdef list raws = []
    cdef list tags = sorted(fields)
    cdef bytes vrb, raw, out
    cdef uint8_t* p
    cdef uint8_t* q
    cdef uint8_t* entry
    if n > 0xFFFF:
        raise struct.error("ushort format requires 0 <= number <= 65535")
    for tag in tags:
        if not 0 <= tag <= 0xFFFFFFFF:
            raise struct.error("argument out of range")
        vr, value = fields[tag]
        if vr == "SQ":
            raw = json.dumps(value, ensure_ascii=False, separators=(",", ":")).encode("utf-8")
        else:
            raw = value.encode("utf-8", "surrogatepass")
        vrb = vr.encode("ascii")
        total += len(raw)
        if total > 0xFFFFFFFF:
            raise struct.error("argument out of range")
        raws.append((tag, vrb, raw))
    out = PyBytes_FromStringAndSize(NULL, HEAD + n * ENTRY + total)
    p = <uint8_t*>PyBytes_AS_STRING(out)
    p[0] = VERSION
    p[1] = n & 0xFF
    p[2] = (n >> 8) & 0xFF
    q = p + HEAD + n * ENTRY
    total = 0
    for tag, vrb, raw in raws:
        length = len(raw)
        memcpy(q + total, PyBytes_AS_STRING(raw), length)
        total += length
        entry = p + HEAD + i * ENTRY
        _put_u32(entry, <uint32_t>tag)
        # struct's "2s": truncate to two bytes or pad with NULs
        entry[4] = vrb[0] if len(vrb) > 0 else 0
        entry[5] = vrb[1] if len(vrb) > 1 else 0
        _put_u32(entry + 6, <uint32_t>total)
        i += 1
    return out


# ---------------------------------------------------------------- DICOM JSON rows
# The compiled twin of pacscore/query/json_rows.py: one response row built from raw record
# bytes. Text attributes are split on their UTF-8 bytes ('\\' and '=' never occur inside a
# multi-byte sequence) and only the pieces become str objects; numbers, sequences and anything
# unusual go through the Python ``attribute`` (results.json_attribute), as in the pure twin.

cdef enum:
    SPEC_CONSTANT = 0
    SPEC_UNIQUE = 1
    SPEC_KEY = 2
    SPEC_CALL = 3

cdef frozenset _PY_VRS = frozenset({"SQ", "IS", "SS", "SL", "US", "UL", "SV", "UV", "DS", "FL", "FD"})
cdef frozenset _WHOLE_VRS = frozenset({"LT", "ST", "UT", "UR"})
cdef tuple _PN_GROUPS = ("Alphabetic", "Ideographic", "Phonetic")
cdef bint _NUMBER_OR_SQ[65536]  # VR code -> in _PY_VRS
cdef bint _WHOLE[65536]         # VR code -> in _WHOLE_VRS
for _vr in _PY_VRS:
    _NUMBER_OR_SQ[(ord(_vr[0]) << 8) | ord(_vr[1])] = True
for _vr in _WHOLE_VRS:
    _WHOLE[(ord(_vr[0]) << 8) | ord(_vr[1])] = True


cdef inline object _piece(const uint8_t* p, Py_ssize_t n):
    return PyUnicode_DecodeUTF8(<const char*>p, n, "surrogatepass")


cdef bint _plain_integers(const uint8_t* p, Py_ssize_t n) noexcept:
    """Only digits, signs, spaces and backslashes: the pieces strip and parse as results._number
    does without Unicode white space to care about."""
    cdef Py_ssize_t i
    for i in range(n):
        if not (48 <= p[i] <= 57 or p[i] == 43 or p[i] == 45 or p[i] == 32 or p[i] == 92):
            return False
    return True


cdef list _integers(const uint8_t* p, Py_ssize_t n):
    """IS values as results._number(piece, int) gives them: None when blank, the int, or the
    stripped text when it is no integer (``+-3``)."""
    cdef list values = []
    cdef Py_ssize_t s = 0, e, a, b
    while s <= n:
        e = s
        while e < n and p[e] != 92:
            e += 1
        a = s
        b = e
        while a < b and p[a] == 32:
            a += 1
        while b > a and p[b - 1] == 32:
            b -= 1
        if a == b:
            values.append(None)
        else:
            text = _piece(p + a, b - a)
            try:
                values.append(int(text))
            except ValueError:
                values.append(text)
        s = e + 1
    return values


cdef object _pn_value(const uint8_t* p, Py_ssize_t n):
    """One PN value: None when empty, else {group name: text} for its non-empty groups."""
    cdef dict obj
    cdef Py_ssize_t s = 0, e, g = 0
    if n == 0:
        return None
    obj = {}
    while s <= n and g < 3:
        e = s
        while e < n and p[e] != 61:  # '='
            e += 1
        if e > s:
            obj[_PN_GROUPS[g]] = _piece(p + s, e - s)
        g += 1
        s = e + 1
    return obj


cdef inline dict _untracked(str vr, list values):
    """``{"vr": vr, "Value": values}`` left out of the cyclic GC, like the list (which holds only
    strings, numbers, None and string-only dicts).

    A broad query makes tens of thousands of these, none of them ever part of a cycle; as
    tracked containers each collection walks them all (a fifth of a 4,036-row answer). CPython
    untracks such dicts by itself, and re-tracks a dict when a container is put in it; a list
    stays untracked, so a cycle a caller builds through a Value list is never collected."""
    cdef dict d
    PyObject_GC_UnTrack(<void*>values)
    d = {"vr": vr, "Value": values}
    PyObject_GC_UnTrack(<void*>d)
    return d


cdef inline int _code(str vr):
    """A two-letter VR as one int (-1 for anything else): compared without string compares."""
    cdef Py_UCS4 a, b
    if len(vr) != 2:
        return -1
    a = PyUnicode_READ_CHAR(vr, 0)
    b = PyUnicode_READ_CHAR(vr, 1)
    if a > 255 or b > 255:
        return -1
    return (<int>a << 8) | <int>b


cdef enum:
    C_IN = (73 << 8) | 78
    C_IS = (73 << 8) | 83
    C_PN = (80 << 8) | 78
    C_UN = (85 << 8) | 78


cdef object _text_attribute(str vr, const uint8_t* p, Py_ssize_t n, object attribute):
    """json_attribute(vr, text) for a value given as UTF-8 bytes."""
    cdef list values
    cdef Py_ssize_t s, e
    cdef bint pn
    cdef int code = _code(vr)
    if code == C_IN:
        vr = "LO"
        code = _code(vr)
    if n == 0:
        return {"vr": vr}
    if code == C_IS and _plain_integers(p, n):
        return _untracked(vr, _integers(p, n))
    if _NUMBER_OR_SQ[code & 0xFFFF] if code >= 0 else vr in _PY_VRS:
        return attribute(vr, _piece(p, n))
    if _WHOLE[code & 0xFFFF] if code >= 0 else vr in _WHOLE_VRS:
        return _untracked(vr, [_piece(p, n)])
    pn = code == C_PN
    values = []
    s = 0
    while s <= n:
        e = s
        while e < n and p[e] != 92:  # '\\'
            e += 1
        if pn:
            values.append(_pn_value(p + s, e - s))
        else:
            values.append(_piece(p + s, e - s) if e > s else None)
        s = e + 1
    return _untracked(vr, values)


cdef object _field_at(int kind, str key_vr, int key_code, const uint8_t* ptr, Py_ssize_t size, bint has_rec,
                      long long t, object attribute):
    """The attribute of a UNIQUE or KEY spec read from a record already pointed at (``has_rec``
    false: no record, an empty attribute), for a tag already checked (``t`` < 0: not a valid
    tag, so never found)."""
    cdef Py_ssize_t start = 0, end = 0
    cdef const uint8_t* vr = NULL
    cdef int found = 0
    if has_rec and t >= 0:
        found = find_field(ptr, size, <uint32_t>t, &start, &end, &vr)
        if found < 0:
            raise struct.error("record is truncated or malformed")
    if found == 0:  # absent: an empty attribute (no Value), as json_attribute(vr, "") gives
        return _text_attribute(key_vr, NULL, 0, attribute)
    if vr[0] == 83 and vr[1] == 81:  # SQ
        value = _value(vr, ptr + start, end - start)
        if kind == SPEC_UNIQUE:
            return attribute(key_vr, value or "")
        return attribute("SQ", value)
    if kind == SPEC_KEY:
        if key_code == C_UN or key_code == ((<int>vr[0] << 8) | vr[1]):
            key_vr = _vr_str(vr)
    return _text_attribute(key_vr, ptr + start, end - start, attribute)


cdef dict _CONSTANTS = {}  # text -> {vr: tuple of str values} for constants of plain text


cdef object _constant_attribute(str vr, str text, object attribute):
    """A constant attribute, fresh for each row: the split values of plain text are kept, so
    a row only copies them into a new list."""
    cdef bytes raw
    by_vr = _CONSTANTS.get(text)
    plain = (<dict>by_vr).get(vr) if by_vr is not None else None
    if plain is not None:
        return _untracked(vr, list(<tuple>plain))
    raw = text.encode("utf-8", "surrogatepass")
    attr = _text_attribute(vr, <const uint8_t*>PyBytes_AS_STRING(raw), PyBytes_GET_SIZE(raw), attribute)
    if (type(attr) is dict and len(<dict>attr) == 2 and (<dict>attr).get("vr") == vr
            and type((<dict>attr).get("Value")) is list
            and all(type(v) is str for v in (<dict>attr)["Value"]) and len(_CONSTANTS) < 1024):
        _CONSTANTS.setdefault(text, {})[vr] = tuple((<dict>attr)["Value"])
    return attr


cdef class RowPlan:
    """The specs of a query's rows (pacscore/query/json_rows.py) read once, not once per row and
    attribute: tags and VR codes as C ints, the split values of plain constants as a tuple to
    copy. ``row`` builds the row of one match from its levels' records, ``rows`` the rows of a
    list of matches from their own records alone."""
    cdef Py_ssize_t n
    cdef int* kinds
    cdef long long* tags
    cdef int* codes
    cdef tuple specs
    cdef list plain   # per spec: the tuple of a plain constant's values, else None
    cdef object attribute

    def __cinit__(self, tuple specs, object attribute):
        cdef Py_ssize_t i
        cdef tuple spec
        self.n = len(specs)
        self.specs, self.attribute = specs, attribute
        self.plain = [None] * self.n
        self.kinds = <int*>PyMem_Malloc(max(self.n, 1) * sizeof(int))
        self.tags = <long long*>PyMem_Malloc(max(self.n, 1) * sizeof(long long))
        self.codes = <int*>PyMem_Malloc(max(self.n, 1) * sizeof(int))
        if self.kinds == NULL or self.tags == NULL or self.codes == NULL:
            raise MemoryError()
        for i in range(self.n):
            spec = specs[i]
            self.kinds[i] = spec[0]
            self.tags[i] = -1
            self.codes[i] = -1
            if self.kinds[i] == SPEC_CONSTANT:
                attr = _constant_attribute(spec[2], spec[3], attribute)
                if (type(attr) is dict and len(<dict>attr) == 2 and (<dict>attr).get("vr") == spec[2]
                        and type((<dict>attr).get("Value")) is list
                        and all(type(x) is str for x in (<dict>attr)["Value"])):
                    self.plain[i] = tuple((<dict>attr)["Value"])
            elif self.kinds[i] != SPEC_CALL:
                tag = spec[3]
                self.tags[i] = tag if isinstance(tag, int) and -1 <= tag <= 0xFFFFFFFF else -1
                self.codes[i] = _code(spec[4])

    def __dealloc__(self):
        PyMem_Free(self.kinds)
        PyMem_Free(self.tags)
        PyMem_Free(self.codes)

    cdef dict _row(self, tuple recs, object own, object match):
        """The records come from ``recs`` by each spec's index, or are all ``own`` when ``recs``
        is None (pointed at once for the whole row)."""
        cdef dict out = _PyDict_NewPresized(self.n)  # no resize while the row fills
        cdef const uint8_t* ptr = NULL
        cdef const uint8_t* fptr
        cdef Py_ssize_t size = 0, fsize
        cdef _View v = None
        cdef _View fv
        cdef Py_ssize_t i
        cdef int kind
        cdef tuple spec
        cdef bint tracked = False
        if recs is None and own is not None:
            v = _pointer(own, &ptr, &size)
        for i in range(self.n):
            spec = <tuple>self.specs[i]
            kind = self.kinds[i]
            if kind == SPEC_CONSTANT:
                plain = self.plain[i]
                if plain is not None:
                    attr = _untracked(spec[2], list(<tuple>plain))
                else:
                    attr = _constant_attribute(spec[2], spec[3], self.attribute)
            elif kind == SPEC_CALL:
                attr = spec[2](match)
                if attr is None:
                    continue
            elif recs is None:
                attr = _field_at(kind, spec[4], self.codes[i], ptr, size, own is not None, self.tags[i],
                                 self.attribute)
            else:
                rec = recs[spec[2]]
                fptr, fsize, fv = NULL, 0, None
                if rec is not None:
                    fv = _pointer(rec, &fptr, &fsize)
                attr = _field_at(kind, spec[4], self.codes[i], fptr, fsize, rec is not None, self.tags[i],
                                 self.attribute)
            tracked = tracked or PyObject_GC_IsTracked(attr)
            out[spec[1]] = attr
        if not tracked:
            PyObject_GC_UnTrack(<void*>out)  # it holds only untracked attributes (see _untracked)
        return out

    def row(self, tuple recs, match):
        """The row of one match; ``recs[i]`` is the raw record of level i or None."""
        return self._row(recs, None, match)

    def rows(self, list records):
        """The rows of matches whose every attribute comes from their own record (no CALL
        spec): one per raw record of ``records``, in one C loop."""
        cdef list out = []
        for rec in records:
            out.append(self._row(None, rec, None))
        return out


def json_row(tuple specs, tuple recs, match, attribute, get=None):
    """The response row for one match (see pacscore/query/json_rows.py); ``get`` is unused."""
    return RowPlan(specs, attribute).row(recs, match)


def json_rows(tuple specs, list records, attribute):
    """``RowPlan(specs, attribute).rows(records)``."""
    return RowPlan(specs, attribute).rows(records)
