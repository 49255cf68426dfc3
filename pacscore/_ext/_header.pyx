# cython: language_level=3, boundscheck=False, wraparound=False, cdivision=True
"""The data set of one instance read straight from its bytes, compiled: what
pacscore.ingest's reference path gets from pydicom's dcmread and element conversion, without a
pydicom object per element. Ingest reads every element of every instance it stores, and
dcmread was most of its cost.

It reads little endian data sets only (explicit or implicit VR) and declines (returns None)
whatever it is not sure to read exactly as the reference does: an unknown VR, an undefined
length other than a sequence's, a sequence item with its own character set, an element past
the bulk threshold, a value that overruns its container. The caller then takes the reference
path, so a declined instance is stored exactly as before. tests/test_header_parity.py compares
the two on real files, generated instances and Hypothesis data sets."""
from cpython.bytes cimport PyBytes_AS_STRING, PyBytes_GET_SIZE, PyBytes_FromStringAndSize
from cpython.dict cimport PyDict_GetItem, PyDict_SetItem
from cpython.object cimport PyObject
from cpython.unicode cimport PyUnicode_DecodeASCII, PyUnicode_DecodeLatin1
from libc.stdint cimport int16_t, int32_t, int64_t, uint8_t, uint16_t, uint32_t, uint64_t
from libc.string cimport memcpy

cdef uint32_t UNDEFINED = 0xFFFFFFFF
cdef uint32_t ITEM = 0xFFFEE000
cdef uint32_t ITEM_END = 0xFFFEE00D
cdef uint32_t SEQUENCE_END = 0xFFFEE0DD
cdef uint32_t CHARSET = 0x00080005
cdef int MAX_DEPTH = 4  # as ingest.element_value: a sequence deeper than this is left out
cdef int MAX_NESTING = 64  # deeper nesting is left to the reference path (and the C stack is spared)

# what each VR's value becomes (ingest.element_value's raw-value rules)
cdef enum Kind:
    K_NONE = 0      # not a VR pydicom knows: decline
    K_ASCII = 1     # AE AS CS DA DS DT IS TM UI UR: latin-1, trailing spaces and NULs cut
    K_TEXT = 2      # LO PN SH UC: the character set's, trailing spaces and NULs cut
    K_PADDED = 3    # LT ST UT: the character set's, trailing spaces cut
    K_BINARY = 4    # OB OD OF OL OV OW UN: not indexed
    K_NUMBER = 5    # FD FL SL SS SV UL US UV
    K_AT = 6
    K_SEQUENCE = 7

cdef uint8_t _KIND[26 * 26]
cdef uint8_t _LONG[26 * 26]
cdef dict _VR_STR = {}  # VR code -> its (interned) str


cdef void _define(str vr, uint8_t kind, bint long_length):
    cdef int code = (ord(vr[0]) - 65) * 26 + (ord(vr[1]) - 65)
    _KIND[code] = kind
    _LONG[code] = long_length
    _VR_STR[code] = vr


cdef _init_tables():
    cdef int i
    for i in range(26 * 26):
        _KIND[i] = K_NONE
        _LONG[i] = 0
    for vr in ("AE", "AS", "CS", "DA", "DS", "DT", "IS", "TM", "UI"):
        _define(vr, K_ASCII, False)
    _define("UR", K_ASCII, True)
    for vr in ("LO", "PN", "SH"):
        _define(vr, K_TEXT, False)
    _define("UC", K_TEXT, True)
    _define("LT", K_PADDED, False)
    _define("ST", K_PADDED, False)
    _define("UT", K_PADDED, True)
    for vr in ("OB", "OD", "OF", "OL", "OV", "OW", "UN"):
        _define(vr, K_BINARY, True)
    for vr in ("FD", "FL", "SL", "SS", "UL", "US"):
        _define(vr, K_NUMBER, False)
    _define("SV", K_NUMBER, True)
    _define("UV", K_NUMBER, True)
    _define("AT", K_AT, False)
    _define("SQ", K_SEQUENCE, True)


_init_tables()
cdef int _UN_CODE = (ord("U") - 65) * 26 + (ord("N") - 65)
cdef dict _KEYWORD_CACHE = {}  # tag -> keyword, shared by every read
cdef dict _VR_CACHE = {}       # tag -> dictionary VR
cdef set _IDENTIFIERS = {0x00080016, 0x00080018, 0x0020000D, 0x0020000E, 0x00100020, 0x00100021}


cdef inline uint32_t _u16(const uint8_t* p) noexcept nogil:
    return p[0] | (<uint32_t>p[1] << 8)


cdef inline uint32_t _u32(const uint8_t* p) noexcept nogil:
    return p[0] | (<uint32_t>p[1] << 8) | (<uint32_t>p[2] << 16) | (<uint32_t>p[3] << 24)


cdef inline bint _upper(uint8_t c) noexcept nogil:
    return 65 <= c <= 90


cdef inline object _cached(dict cache, object fn, uint32_t tag):
    """``fn(tag)``, computed once per tag."""
    cdef object value = cache.get(tag)
    if value is None:
        value = fn(tag)
        cache[tag] = value
    return value


class Declined(Exception):
    """Raised inside the reader when the reference path has to read this instance."""


cdef class _Reader:
    cdef const uint8_t* p
    cdef Py_ssize_t n
    cdef bint implicit
    cdef object cs               # ingest.Charset of the data set
    cdef int ascii_fast          # 1: ASCII bytes decode as ASCII; 2: unless they hold ESC; 0: never
    cdef bint text_seen          # a text value was decoded (the character set may not change after)
    cdef object vr_of            # tag -> dictionary VR (implicit VR data sets)
    cdef object keyword_of       # tag -> keyword (sequence items are keyword dicts)
    cdef dict vr_cache
    cdef dict keyword_cache

    # -- element headers ------------------------------------------------------------------
    cdef int _vr_code(self, uint32_t tag, Py_ssize_t pos) except -2:
        """The VR code of the element at ``pos`` (explicit VR) or of ``tag`` (implicit VR)."""
        cdef uint8_t a, b
        cdef object vr
        if not self.implicit:
            a = self.p[pos + 4]
            b = self.p[pos + 5]
            if not (_upper(a) and _upper(b)) or _KIND[(a - 65) * 26 + (b - 65)] == K_NONE:
                raise Declined("unknown VR")
            return (a - 65) * 26 + (b - 65)
        vr = self._known_vr(tag)
        if len(vr) != 2 or not (_upper(ord(vr[0])) and _upper(ord(vr[1]))):
            raise Declined("no dictionary VR")
        return (ord(vr[0]) - 65) * 26 + (ord(vr[1]) - 65)

    cdef Py_ssize_t header(self, uint32_t tag, Py_ssize_t pos, int* code, uint32_t* length) except -1:
        """Where the value of the element at ``pos`` starts; its VR code and length (explicit VR
        long-length VRs have two reserved bytes and four of length)."""
        code[0] = self._vr_code(tag, pos)
        if self.implicit:
            length[0] = _u32(self.p + pos + 4)
            return pos + 8
        if _LONG[code[0]]:
            if pos + 12 > self.n:
                raise Declined("element header cut short")
            length[0] = _u32(self.p + pos + 8)
            return pos + 12
        length[0] = _u16(self.p + pos + 6)
        return pos + 8

    cdef str keyword(self, uint32_t tag):
        return _cached(self.keyword_cache, self.keyword_of, tag)

    # -- values -----------------------------------------------------------------------------
    cdef object text(self, Py_ssize_t start, Py_ssize_t length, int kind, int code):
        """A text value as ingest.element_value decodes it."""
        cdef const uint8_t* v = self.p + start
        cdef Py_ssize_t i, end = length
        cdef bint ascii = True, esc = False
        cdef object value
        if kind == K_ASCII:
            while end > 0 and (v[end - 1] == 32 or v[end - 1] == 0):
                end -= 1
            return PyUnicode_DecodeLatin1(<const char*>v, end, NULL)
        self.text_seen = True
        for i in range(length):
            if v[i] >= 128:
                ascii = False
                break
            if v[i] == 27:
                esc = True
        if ascii and (self.ascii_fast == 1 or (self.ascii_fast == 2 and not esc)):
            if kind == K_PADDED:
                while end > 0 and v[end - 1] == 32:
                    end -= 1
            else:
                while end > 0 and (v[end - 1] == 32 or v[end - 1] == 0):
                    end -= 1
            return PyUnicode_DecodeASCII(<const char*>v, end, NULL)
        value = self.cs.decode(PyBytes_FromStringAndSize(<const char*>v, length), _VR_STR[code])
        return value.rstrip(" ") if kind == K_PADDED else value.rstrip(" \x00")

    cdef object number(self, Py_ssize_t start, Py_ssize_t length, int code):
        """Numbers joined by backslashes, ints as str() and floats as repr() (ingest._num)."""
        cdef const uint8_t* v = self.p + start
        cdef str vr = _VR_STR[code]
        cdef Py_ssize_t size, i, count
        cdef uint16_t u16
        cdef uint32_t u32
        cdef uint64_t u64
        cdef float f32
        cdef double f64
        cdef list parts
        size = 8 if vr in ("FD", "SV", "UV") else (4 if vr in ("FL", "SL", "UL") else 2)
        if length % size:
            return None
        count = length // size
        parts = []
        for i in range(count):
            if size == 2:
                u16 = <uint16_t>_u16(v + 2 * i)
                parts.append(str(<int16_t>u16) if vr == "SS" else str(u16))
            elif size == 4:
                u32 = _u32(v + 4 * i)
                if vr == "FL":
                    memcpy(&f32, &u32, 4)
                    parts.append(repr(<double>f32))
                elif vr == "SL":
                    parts.append(str(<int32_t>u32))
                else:
                    parts.append(str(u32))
            else:
                u64 = <uint64_t>_u32(v + 8 * i) | (<uint64_t>_u32(v + 8 * i + 4) << 32)
                if vr == "FD":
                    memcpy(&f64, &u64, 8)
                    parts.append(repr(f64))
                elif vr == "SV":
                    parts.append(str(<int64_t>u64))
                else:
                    parts.append(str(u64))
        return parts[0] if count == 1 else "\\".join(parts)

    cdef object tags(self, Py_ssize_t start, Py_ssize_t length):
        cdef const uint8_t* v = self.p + start
        cdef Py_ssize_t i
        if length % 4:
            raise Declined("AT value not a multiple of 4 bytes")
        return "\\".join(["%08X" % ((_u16(v + 4 * i) << 16) | _u16(v + 4 * i + 2)) for i in range(length // 4)])

    cdef object value(self, uint32_t tag, int code, Py_ssize_t start, Py_ssize_t length):
        """``(vr, value)`` of a defined-length element other than a sequence, or None."""
        cdef int kind = _KIND[code]
        cdef object v
        if kind == K_BINARY:
            if code == _UN_CODE and not self.implicit and self._known_vr(tag) != "UN":
                raise Declined("a known attribute sent as UN")
            return None
        if length == 0:
            return (_VR_STR[code], "")
        if kind == K_ASCII or kind == K_TEXT or kind == K_PADDED:
            return (_VR_STR[code], self.text(start, length, kind, code))
        if kind == K_NUMBER:
            v = self.number(start, length, code)
            return None if v is None else (_VR_STR[code], v)
        if kind == K_AT:
            return ("AT", self.tags(start, length))
        raise Declined("unexpected VR")

    cdef str _known_vr(self, uint32_t tag):
        return _cached(self.vr_cache, self.vr_of, tag)

    # -- sequences ----------------------------------------------------------------------------
    cdef Py_ssize_t sequence(self, Py_ssize_t pos, uint32_t length, int depth, list items) except -1:
        """Read the items of a sequence whose value starts at ``pos``; returns where it ends.
        ``items`` (None: walk only) receives each item's keyword dict."""
        cdef Py_ssize_t end = -1 if length == UNDEFINED else pos + length
        cdef uint32_t tag, item_length
        cdef Py_ssize_t item_end
        cdef dict item
        if depth > MAX_NESTING:
            raise Declined("sequences nested too deeply")  # the reference refuses some of these
        if end > self.n:
            raise Declined("sequence overruns its container")
        while True:
            if end >= 0 and pos == end:
                return pos
            if pos + 8 > self.n or (end >= 0 and pos + 8 > end):
                raise Declined("sequence cut short")
            tag = (_u16(self.p + pos) << 16) | _u16(self.p + pos + 2)
            item_length = _u32(self.p + pos + 4)
            pos += 8
            if tag == SEQUENCE_END and end < 0:
                if item_length != 0:
                    raise Declined("sequence delimiter with a length")
                return pos
            if tag != ITEM:
                raise Declined("not an item in a sequence")
            item = {} if items is not None else None
            if item_length == UNDEFINED:
                pos = self.elements(pos, -1, depth, item, None)
            else:
                item_end = pos + item_length
                if item_end > self.n or (end >= 0 and item_end > end):
                    raise Declined("item overruns its sequence")
                pos = self.elements(pos, item_end, depth, item, None)
            if items is not None:
                items.append(item)

    cdef Py_ssize_t elements(self, Py_ssize_t pos, Py_ssize_t end, int depth, dict item,
                             list top) except -1:
        """Read the elements of a sequence item (``item``: keyword -> value; None: walk only)
        up to ``end`` (-1: up to its item delimiter); returns where the item ends."""
        cdef uint32_t tag, length
        cdef int code, kind
        cdef Py_ssize_t start
        cdef list sub
        cdef object converted
        while True:
            if end >= 0 and pos == end:
                return pos
            if pos + 8 > self.n or (end >= 0 and pos + 8 > end):
                raise Declined("item cut short")
            tag = (_u16(self.p + pos) << 16) | _u16(self.p + pos + 2)
            if tag >> 16 == 0xFFFE:
                if tag == ITEM_END and end < 0 and _u32(self.p + pos + 4) == 0:
                    return pos + 8
                raise Declined("delimiter inside an item")
            start = self.header(tag, pos, &code, &length)
            kind = _KIND[code]
            if tag == CHARSET:
                raise Declined("a sequence item with its own character set")
            if kind == K_SEQUENCE:
                sub = [] if (item is not None and depth <= MAX_DEPTH) else None
                pos = self.sequence(start, length, depth + 1, sub)
                if item is not None:
                    if sub is None:
                        item.pop(self.keyword(tag), None)
                    else:
                        item[self.keyword(tag)] = sub
                continue
            if length == UNDEFINED:
                raise Declined("undefined length outside a sequence")
            if start + length > self.n or (end >= 0 and start + length > end):
                raise Declined("value overruns its item")
            pos = start + length
            if item is not None:
                converted = self.value(tag, code, start, length)
                if converted is None:
                    item.pop(self.keyword(tag), None)
                else:
                    item[self.keyword(tag)] = converted[1]


def read_data_set(bytes data, Py_ssize_t pos, bint implicit, object charset, dict level_of,
                  frozenset skip, object vr_of, object keyword_of, Py_ssize_t bulk_threshold):
    """Read the data set of ``data`` from ``pos`` (after the file meta group).

    Returns None when the reference path must read it, else ``(levels, header_end, texts)``:
    four dicts (PATIENT, STUDY, SERIES, IMAGE) of tag -> (vr, value); where the pixel data
    element starts (the end of the data when there is none); the raw values of the top-level
    UI/LO identifiers (tag -> str, latin-1, not stripped) that ingest checks.

    ``charset(raw_or_None)`` makes the ingest.Charset of the data set; ``level_of`` maps a tag
    to its level's index (IMAGE when absent); ``skip`` holds the tags never taken from an
    instance; ``vr_of`` and ``keyword_of`` are the dictionary's.
    """
    cdef _Reader r = _Reader()
    r.p = <const uint8_t*>PyBytes_AS_STRING(data)
    r.n = PyBytes_GET_SIZE(data)
    r.implicit = implicit
    r.vr_of = vr_of
    r.keyword_of = keyword_of
    r.vr_cache = _VR_CACHE
    r.keyword_cache = _KEYWORD_CACHE
    r.cs = charset(None)
    r.ascii_fast = r.cs.ascii_fast
    if len(_KEYWORD_CACHE) > 65536 or len(_VR_CACHE) > 65536:  # private tags vary without end
        _KEYWORD_CACHE.clear()
        _VR_CACHE.clear()
    try:
        return _read_top(r, pos, charset, level_of, skip, bulk_threshold)
    except Declined:
        return None


cdef tuple _read_top(_Reader r, Py_ssize_t pos, object charset, dict level_of, frozenset skip,
                     Py_ssize_t bulk_threshold):
    cdef list levels = [{}, {}, {}, {}]
    cdef dict texts = {}
    cdef dict target
    cdef uint32_t tag, length
    cdef int code, kind
    cdef Py_ssize_t start, n = r.n
    cdef list items
    cdef object converted, key
    cdef PyObject* found
    if pos + 8 <= n and r.implicit and _upper(r.p[pos + 4]) and _upper(r.p[pos + 5]):
        raise Declined("implicit VR data set that looks explicit")  # pydicom would switch
    while pos < n:
        if pos + 8 > n:
            raise Declined("element header cut short")
        tag = (_u16(r.p + pos) << 16) | _u16(r.p + pos + 2)
        if tag == 0x7FE00010 or tag == 0x7FE00008 or tag == 0x7FE00009:
            if (not r.implicit and pos + 12 > n and _upper(r.p[pos + 4]) and _upper(r.p[pos + 5])
                    and _LONG[(r.p[pos + 4] - 65) * 26 + (r.p[pos + 5] - 65)]):
                raise Declined("pixel data element header cut short")  # pydicom fails reading it
            return levels, pos, texts
        if tag >> 16 == 0xFFFE or tag >> 16 == 0:
            raise Declined("delimiter or command element in the data set")
        start = r.header(tag, pos, &code, &length)
        kind = _KIND[code]
        key = tag
        if kind == K_SEQUENCE:
            wanted = tag >> 16 >= 8 and key not in skip
            items = [] if wanted else None
            pos = r.sequence(start, length, 1, items)
            if tag in _IDENTIFIERS:
                raise Declined("an identifier encoded as a sequence")
            if not wanted:
                continue
            converted = ("SQ", items)
        else:
            if length == UNDEFINED:
                raise Declined("undefined length outside a sequence")
            if start + length > n:
                raise Declined("value overruns the data")
            if length > bulk_threshold:
                raise Declined("bulk data in the header")
            pos = start + length
            if tag in _IDENTIFIERS:
                texts[key] = PyUnicode_DecodeLatin1(<const char*>(r.p + start), length, NULL)
            if tag == CHARSET:
                if r.text_seen:
                    raise Declined("character set after text")
                r.cs = charset(PyBytes_FromStringAndSize(<const char*>(r.p + start), length))
                r.ascii_fast = r.cs.ascii_fast
            if tag >> 16 < 8 or key in skip:
                continue
            converted = r.value(tag, code, start, length)
        found = PyDict_GetItem(level_of, key)
        target = levels[3] if found is NULL else levels[<object>found]
        if converted is None:
            target.pop(key, None)
        else:
            target[key] = converted
    return levels, n, texts


cdef str IMPLICIT_LE = "1.2.840.10008.1.2"
cdef set _DECLINED_SYNTAXES = {"1.2.840.10008.1.2.2", "1.2.840.10008.1.2.1.99"}  # big endian, deflated
cdef set _META_LONG_VRS = {"OB", "OW", "UN", "SQ", "UT", "UC", "UR"}  # as ingest._file_meta_end


def read_file(bytes data, object charset, dict level_of, frozenset skip, object vr_of,
              object keyword_of, Py_ssize_t bulk_threshold):
    """Read a Part-10 file: its file meta group (explicit VR little endian), then its data set
    with ``read_data_set``. Returns None when the reference path must read it, else
    ``(meta_end, transfer_syntax, levels, header_end, texts)``."""
    cdef const uint8_t* p = <const uint8_t*>PyBytes_AS_STRING(data)
    cdef Py_ssize_t n = PyBytes_GET_SIZE(data)
    cdef Py_ssize_t pos = 132, start
    cdef uint32_t length
    cdef uint8_t a, b
    cdef int code
    cdef object syntax = None
    cdef object got
    if n < 132 or p[128] != 68 or p[129] != 73 or p[130] != 67 or p[131] != 77:  # DICM
        return None
    while pos + 12 <= n and _u16(p + pos) == 2:
        a = p[pos + 4]
        b = p[pos + 5]
        if not (_upper(a) and _upper(b)) or _KIND[(a - 65) * 26 + (b - 65)] == K_NONE:
            return None
        code = (a - 65) * 26 + (b - 65)
        if _LONG[code]:
            if _VR_STR[code] not in _META_LONG_VRS:
                return None  # ingest._file_meta_end would read its length differently
            length = _u32(p + pos + 8)
            start = pos + 12
        else:
            length = _u16(p + pos + 6)
            start = pos + 8
        if length == UNDEFINED or start + length > n or _KIND[code] == K_SEQUENCE:
            return None
        if _u16(p + pos + 2) == 0x0010:
            syntax = PyUnicode_DecodeLatin1(<const char*>(p + start), length, NULL).rstrip(" \x00")
        pos = start + length
    if pos + 12 > n or not syntax or syntax in _DECLINED_SYNTAXES or syntax.strip("0123456789."):
        return None
    got = read_data_set(data, pos, syntax == IMPLICIT_LE, charset, level_of, skip, vr_of, keyword_of,
                        bulk_threshold)
    if got is None:
        return None
    return (pos, syntax) + got
