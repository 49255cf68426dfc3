# cython: language_level=3, boundscheck=False, wraparound=False, cdivision=True
"""The matcher kernels, compiled: wild cards over code points and exact value sets, tested in
place on the UTF-8 bytes of a stored record.

Only the common cases live here (pacscore/query/fast.py decides which); every answer equals
the reference's (query/reference.py), which tests/test_impl_parity.py checks. Whatever the
kernels cannot settle on ASCII bytes (non-ASCII values need NFC and Unicode case folding, SQ
fields are JSON) goes to the reference test of the
condition, so the fast path only ever decides the easy records.
"""
from cpython.bytes cimport PyBytes_AS_STRING, PyBytes_FromStringAndSize, PyBytes_GET_SIZE
from cpython.mem cimport PyMem_Free, PyMem_Malloc
from cpython.unicode cimport PyUnicode_DATA, PyUnicode_DecodeUTF8, PyUnicode_GET_LENGTH, PyUnicode_KIND
from libc.stdint cimport int64_t, uint8_t, uint16_t, uint32_t
from libc.string cimport memchr, memcmp, memcpy

from pacscore._ext._layout cimport SEGMENT_HEAD, find_field as _find_field, u16le, u32le as _u32
from pacscore._ext._records import get_value as _get_value

cdef enum:
    MODE_EXACT = 0
    MODE_WILDCARD = 1
    MODE_PN_WILDCARD = 2
    MODE_DA_RANGE = 3
    MODE_TM_RANGE = 4
    MODE_DT_RANGE = 5


# ---------------------------------------------------------------- record fields

cdef bint _valid_da(const uint8_t* v, Py_ssize_t n) noexcept nogil:
    """Eight digits that name a real day of the proleptic Gregorian calendar (year 0001 on)."""
    cdef int i, year, month, day, last
    if n != 8:
        return False
    for i in range(8):
        if v[i] < 48 or v[i] > 57:
            return False
    year = (v[0] - 48) * 1000 + (v[1] - 48) * 100 + (v[2] - 48) * 10 + (v[3] - 48)
    month = (v[4] - 48) * 10 + (v[5] - 48)
    day = (v[6] - 48) * 10 + (v[7] - 48)
    if year < 1 or month < 1 or month > 12 or day < 1:
        return False
    if month == 2:
        last = 29 if (year % 4 == 0 and (year % 100 != 0 or year % 400 == 0)) else 28
    elif month == 4 or month == 6 or month == 9 or month == 11:
        last = 30
    else:
        last = 31
    return day <= last


# ---------------------------------------------------------------- wild cards

cdef inline uint32_t _read(int kind, const void* data, Py_ssize_t i) noexcept nogil:
    if kind == 1:
        return (<const uint8_t*>data)[i]
    if kind == 2:
        return (<const uint16_t*>data)[i]
    return (<const uint32_t*>data)[i]


cdef bint _wildcard(const Py_UCS4* pat, Py_ssize_t m, int kind, const void* data, Py_ssize_t n,
                    Py_ssize_t pad, bint lower) noexcept nogil:
    """Anchored match of ``pat`` ('*' any run, '?' one code point) against the text
    ``data[:n]`` followed by ``pad`` carets; ``lower`` lowers ASCII A-Z of the text.

    One pass with a single resumption point (the last '*'): a failed placement only moves the
    last star's span, so the cost is at most O(n * m) and never exponential, like the
    reference's leftmost placement of the parts between stars."""
    cdef Py_ssize_t i = 0, j = 0, star = -1, mark = 0, total = n + pad
    cdef uint32_t c, p
    while i < total:
        if j < m:
            p = pat[j]
            if p == 42:  # '*'
                star = j
                j += 1
                mark = i
                continue
            if p == 63:  # '?'
                i += 1
                j += 1
                continue
            c = _read(kind, data, i) if i < n else 94  # '^'
            if lower and 65 <= c <= 90:
                c += 32
            if p == c:
                i += 1
                j += 1
                continue
        if star < 0:
            return False
        j = star + 1
        mark += 1
        i = mark
    while j < m and pat[j] == 42:
        j += 1
    return j == m


cdef Py_UCS4* _ucs4(str text, Py_ssize_t* length) except NULL:
    cdef Py_ssize_t n = PyUnicode_GET_LENGTH(text), i
    cdef int kind = PyUnicode_KIND(text)
    cdef const void* data = PyUnicode_DATA(text)
    cdef Py_UCS4* out = <Py_UCS4*>PyMem_Malloc((n + 1) * sizeof(Py_UCS4))
    if out == NULL:
        raise MemoryError()
    for i in range(n):
        out[i] = _read(kind, data, i)
    length[0] = n
    return out


def wildcard_match(str pattern, str text):
    """Does ``text`` match the DICOM wild card ``pattern`` as given (code points, case-sensitive,
    no normalisation)? The kernel of WildcardPattern.match."""
    cdef Py_ssize_t m = 0
    cdef Py_UCS4* pat = _ucs4(pattern, &m)
    try:
        return _wildcard(pat, m, PyUnicode_KIND(text), PyUnicode_DATA(text), PyUnicode_GET_LENGTH(text), 0, False)
    finally:
        PyMem_Free(pat)


# ---------------------------------------------------------------- one condition on one field

cdef inline bint _is_pad(uint8_t c) noexcept nogil:
    return c == 32 or c == 0


# ---------------------------------------------------------------- non-ASCII text the kernels decide
#
# Latin, Greek and Cyrillic letters (below U+0530) that are their own NFC and never compose
# with what precedes them: text made only of these and ASCII is already NFC, so the kernels can
# match it as it is stored, folding case through a table built from values._fold_char (the
# reference's own fold). Combining marks, and every code point from U+0530 up, still go to the
# reference. tests/test_impl_parity.py checks the table's claims over every pair of code points.

DEF SAFE_LIMIT = 0x0530
cdef uint8_t _SAFE[SAFE_LIMIT]
cdef uint32_t _FOLD[SAFE_LIMIT]


def _build_tables():
    import unicodedata

    from pacscore.values import _fold_char

    cdef int cp
    for cp in range(SAFE_LIMIT):
        ch = chr(cp)
        folded = _fold_char(ch)
        _FOLD[cp] = ord(folded) if len(folded) == 1 else cp
        _SAFE[cp] = (cp >= 0x80 and not unicodedata.category(ch).startswith("M")
                     and unicodedata.combining(ch) == 0 and unicodedata.is_normalized("NFC", ch))

_build_tables()


def safe_code_points():
    """The code points (from U+0080) the kernels match without the reference, for the tests."""
    return [cp for cp in range(0x80, SAFE_LIMIT) if _SAFE[cp]]


cdef inline Py_ssize_t _safe_at(const uint8_t* p, Py_ssize_t n, Py_ssize_t i) noexcept nogil:
    """The byte length (2) of a safe code point's UTF-8 sequence starting at ``p[i]``, else 0."""
    cdef uint32_t cp
    if i + 1 >= n or p[i] < 0xC2 or p[i] > 0xDF or (p[i + 1] & 0xC0) != 0x80:
        return 0
    cp = ((<uint32_t>p[i] & 0x1F) << 6) | (p[i + 1] & 0x3F)
    return 2 if cp < SAFE_LIMIT and _SAFE[cp] else 0


cdef Py_ssize_t _decode(const uint8_t* p, Py_ssize_t n, uint32_t* out, bint fold) noexcept nogil:
    """UTF-8 of ASCII and safe code points into ``out`` (room for ``n``), folded when ``fold``;
    the number of code points, or -1 for anything else."""
    cdef Py_ssize_t i = 0, k = 0
    cdef uint32_t c
    while i < n:
        c = p[i]
        if c < 0x80:
            i += 1
        elif _safe_at(p, n, i):
            c = ((c & 0x1F) << 6) | (p[i + 1] & 0x3F)
            i += 2
        else:
            return -1
        out[k] = _FOLD[c] if fold else c
        k += 1
    return k


cdef inline bint _has_high(const uint8_t* p, Py_ssize_t n) noexcept nogil:
    cdef Py_ssize_t i
    for i in range(n):
        if p[i] >= 0x80:
            return True
    return False


# ---------------------------------------------------------------- dates and times

cdef enum:
    US_SECOND = 1000000

cdef int64_t US_DAY = <int64_t>86400 * US_SECOND


cdef inline int _digits(const uint8_t* p, Py_ssize_t n) noexcept nogil:
    """The value of n ASCII digits, or -1."""
    cdef int v = 0
    cdef Py_ssize_t i
    for i in range(n):
        if p[i] < 48 or p[i] > 57:
            return -1
        v = v * 10 + (p[i] - 48)
    return v


cdef inline void _first_value(const uint8_t* p, Py_ssize_t n, Py_ssize_t* a, Py_ssize_t* b) noexcept nogil:
    """The first value of a field, spaces and NULs stripped at both ends (conditions._first)."""
    cdef Py_ssize_t e = 0
    while e < n and p[e] != 92:
        e += 1
    a[0] = 0
    while a[0] < e and (p[a[0]] == 32 or p[a[0]] == 0):
        a[0] += 1
    while e > a[0] and (p[e - 1] == 32 or p[e - 1] == 0):
        e -= 1
    b[0] = e


cdef inline int64_t _days(int64_t y, int m, int d) noexcept nogil:
    """Days since 0001-01-01 of a valid date (proleptic Gregorian), as date.toordinal() - 1."""
    cdef int* before = [0, 31, 59, 90, 120, 151, 181, 212, 243, 273, 304, 334]
    cdef int64_t day = (y - 1) * 365 + (y - 1) // 4 - (y - 1) // 100 + (y - 1) // 400 + before[m - 1] + d - 1
    if m > 2 and (y % 4 == 0 and (y % 100 != 0 or y % 400 == 0)):
        day += 1
    return day


cdef bint _day_number(const uint8_t* p, Py_ssize_t n, int64_t* day) noexcept nogil:
    """Days since 0001-01-01 of a valid YYYYMMDD (values.parse_da), else False."""
    if not _valid_da(p, n):
        return False
    day[0] = _days(_digits(p, 4), _digits(p + 4, 2), _digits(p + 6, 2))
    return True


cdef bint _time_of_day(const uint8_t* p, Py_ssize_t n, int64_t* floor, int64_t* ceil) noexcept nogil:
    """floor and ceil in µs of HH[MM[SS[.F{1,6}]]] (values.parse_tm), else False (the retired
    HH:MM form included: the reference decides those)."""
    cdef int hh, mm, ss, f, k
    cdef int64_t span
    if n != 2 and n != 4 and n != 6 and not (8 <= n <= 13 and p[6] == 46):
        return False
    hh = _digits(p, 2)
    if hh < 0 or hh > 23:
        return False
    floor[0] = <int64_t>hh * 3600 * US_SECOND
    span = <int64_t>3600 * US_SECOND
    if n >= 4:
        mm = _digits(p + 2, 2)
        if mm < 0 or mm > 59:
            return False
        floor[0] += <int64_t>mm * 60 * US_SECOND
        span = <int64_t>60 * US_SECOND
    if n >= 6:
        ss = _digits(p + 4, 2)
        if ss < 0 or ss > 60:
            return False
        floor[0] += <int64_t>ss * US_SECOND
        span = US_SECOND
    if n >= 8:
        f = _digits(p + 7, n - 7)
        if f < 0:
            return False
        for k in range(6 - (n - 7)):
            f *= 10
        floor[0] += f
        span = 1
        for k in range(6 - (n - 7)):
            span *= 10
    ceil[0] = floor[0] + span - 1
    return True


cdef bint _dt_instant(const uint8_t* p, Py_ssize_t n, int64_t default_offset, int64_t* floor) noexcept nogil:
    """The first instant (µs since 0001-01-01 UTC) of a DT value YYYY[MM[DD[HH[MM[SS[.F{1,6}]]]]]]
    with an optional &HHMM offset (values.parse_dt; ``default_offset`` without one), else False
    (the reference decides those). The pure twin is query/temporal.py ``dt_floor_pure``."""
    cdef int64_t offset = default_offset, tceil = 0, tfloor = 0, day
    cdef int oh, om, year, month
    cdef Py_ssize_t m = n
    if n >= 5 and (p[n - 5] == 43 or p[n - 5] == 45):  # '+' or '-'
        oh = _digits(p + n - 4, 2)
        om = _digits(p + n - 2, 2)
        if oh < 0 or om < 0 or om > 59:
            return False
        offset = (<int64_t>oh * 3600 + <int64_t>om * 60) * US_SECOND
        if p[n - 5] == 45:
            offset = -offset
        if offset < -12 * 3600 * <int64_t>US_SECOND or offset > 14 * 3600 * <int64_t>US_SECOND:
            return False
        m = n - 5
    if m != 4 and m != 6 and m < 8:
        return False
    year = _digits(p, 4)
    if year < 1:
        return False
    if m == 4:
        day = _days(year, 1, 1)
    elif m == 6:
        month = _digits(p + 4, 2)
        if month < 1 or month > 12:
            return False
        day = _days(year, month, 1)
    else:
        if not _day_number(p, 8, &day):
            return False
        if m > 8 and not _time_of_day(p + 8, m - 8, &tfloor, &tceil):
            return False
    floor[0] = day * US_DAY + tfloor - offset
    return True


def tm_floor(bytes value):
    """The first instant (µs since midnight) of a plain TM value HH[MM[SS[.F{1,6}]]], or None
    for any other text (the pure twin is query/temporal.py ``tm_floor_pure``)."""
    cdef int64_t floor = 0, ceil = 0
    if _time_of_day(<const uint8_t*>PyBytes_AS_STRING(value), PyBytes_GET_SIZE(value), &floor, &ceil):
        return floor
    return None


def dt_floor(bytes value, int64_t default_offset=0):
    """The first instant (µs since 0001-01-01 UTC) of a DT value, or None (``_dt_instant``)."""
    cdef int64_t floor = 0
    if _dt_instant(<const uint8_t*>PyBytes_AS_STRING(value), PyBytes_GET_SIZE(value), default_offset, &floor):
        return floor
    return None


cdef class FieldTest:
    """One condition on one stored attribute, decided on the record's bytes.

    mode EXACT: any stored value equals any key (``keys`` are UTF-8 bytes);
    mode WILDCARD: any stored value matches any pattern;
    mode PN_WILDCARD: the normalised Alphabetic group of any stored name, ASCII-lowered when
    ``fold``, matches any pattern, with missing trailing carets added as the reference does.
    ``fallback(stored)`` is the reference test: it decides non-ASCII values (NFC, Unicode case
    folding) and SQ fields."""

    cdef readonly uint32_t tag
    cdef int mode
    cdef readonly bint empty
    cdef bint strip_lead, split, fold
    cdef readonly object fallback
    cdef list keys
    cdef object keyset
    cdef Py_UCS4** pats
    cdef Py_ssize_t* lens
    cdef Py_ssize_t* carets
    cdef Py_ssize_t npats
    cdef char lo[8]
    cdef char hi[8]
    cdef bint has_lo, has_hi
    cdef int64_t tlo, thi, toffset

    def __cinit__(self, uint32_t tag, int mode, keys, bint empty, bint strip_lead, bint split,
                  bint fold, fallback, carets=None):
        cdef Py_ssize_t i
        self.tag = tag
        self.mode = mode
        self.empty = empty
        self.strip_lead = strip_lead
        self.split = split
        self.fold = fold
        self.fallback = fallback
        self.pats = NULL
        self.lens = NULL
        self.carets = NULL
        self.npats = 0
        if mode == MODE_TM_RANGE or mode == MODE_DT_RANGE:
            # keys: (low, high, offset): the key's first and last instant (µs, None for an open
            # end) and the offset (µs) of stored DT values without one
            low, high, offset = keys
            self.has_lo, self.has_hi = low is not None, high is not None
            self.tlo = low if low is not None else 0
            self.thi = high if high is not None else 0
            self.toffset = offset
            return
        if mode == MODE_DA_RANGE:
            # keys: (low, high), each YYYYMMDD or "" for an open end
            low, high = [k.encode("ascii") for k in keys]
            if len(low) not in (0, 8) or len(high) not in (0, 8):
                raise ValueError("DA range bounds are YYYYMMDD or empty")
            self.has_lo, self.has_hi = len(low) == 8, len(high) == 8
            if self.has_lo:
                memcpy(self.lo, <const char*>low, 8)
            if self.has_hi:
                memcpy(self.hi, <const char*>high, 8)
            return
        if mode == MODE_EXACT:
            self.keys = [k.encode("utf-8", "surrogatepass") if isinstance(k, str) else bytes(k) for k in keys]
            self.keyset = frozenset(self.keys) if len(self.keys) > 8 else None
            return
        patterns = list(keys)
        self.npats = len(patterns)
        self.pats = <Py_UCS4**>PyMem_Malloc(self.npats * sizeof(Py_UCS4*))
        self.lens = <Py_ssize_t*>PyMem_Malloc(self.npats * sizeof(Py_ssize_t))
        self.carets = <Py_ssize_t*>PyMem_Malloc(self.npats * sizeof(Py_ssize_t))
        if self.pats == NULL or self.lens == NULL or self.carets == NULL:
            raise MemoryError()
        for i in range(self.npats):
            self.pats[i] = NULL
        for i in range(self.npats):
            self.pats[i] = _ucs4(patterns[i], &self.lens[i])
            self.carets[i] = carets[i] if carets is not None else 0

    def __dealloc__(self):
        cdef Py_ssize_t i
        if self.pats != NULL:
            for i in range(self.npats):
                if self.pats[i] != NULL:
                    PyMem_Free(self.pats[i])
            PyMem_Free(self.pats)
        PyMem_Free(self.lens)
        PyMem_Free(self.carets)

    # -- one value, padding removed ---------------------------------------------------------
    cdef int _one(self, const uint8_t* v, Py_ssize_t n) except -1:
        """1 match, 0 no match, 2 undecided (let the reference decide the whole field)."""
        cdef Py_ssize_t i, k, g, have, olen, keep, s, e, a, b
        cdef uint8_t buf[514]
        cdef bytes key
        cdef uint32_t ubuf[514]
        cdef Py_ssize_t un
        cdef int64_t tfloor = 0, tceil = 0
        if self.mode == MODE_EXACT:
            if self.keyset is not None:
                return PyBytes_FromStringAndSize(<const char*>v, n) in self.keyset
            for key in self.keys:
                if PyBytes_GET_SIZE(key) == n and memcmp(PyBytes_AS_STRING(key), v, n) == 0:
                    return 1
            return 0
        if self.mode == MODE_DA_RANGE:
            # a valid YYYYMMDD compares as its day; anything else goes to the reference
            if not _valid_da(v, n):
                return 2
            if self.has_lo and memcmp(v, self.lo, 8) < 0:
                return 0
            if self.has_hi and memcmp(v, self.hi, 8) > 0:
                return 0
            return 1
        if self.mode == MODE_TM_RANGE or self.mode == MODE_DT_RANGE:
            # a plain value compares by its first instant; any other form goes to the reference
            if self.mode == MODE_TM_RANGE:
                if not _time_of_day(v, n, &tfloor, &tceil):
                    return 2
            elif not _dt_instant(v, n, self.toffset, &tfloor):
                return 2
            if self.has_lo and tfloor < self.tlo:
                return 0
            if self.has_hi and tfloor > self.thi:
                return 0
            return 1
        if self.mode == MODE_WILDCARD:
            if _has_high(v, n):  # safe non-ASCII (checked in _field): match code points
                if n > 512:
                    return 2
                un = _decode(v, n, ubuf, False)
                if un < 0:
                    return 2
                for k in range(self.npats):
                    if _wildcard(self.pats[k], self.lens[k], 4, ubuf, un, 0, False):
                        return 1
                return 0
            for k in range(self.npats):
                if _wildcard(self.pats[k], self.lens[k], 1, v, n, 0, False):
                    return 1
            return 0
        # PN: the Alphabetic group normalised as values.parse_pn does (components trimmed,
        # trailing empty ones dropped), then lowered and matched like group_ok
        g = 0
        while g < n and v[g] != 61:  # the Alphabetic group ends at the first '='
            g += 1
        if g > 512:
            return 2
        olen = 0
        keep = 0
        s = 0
        while s <= g:
            e = s
            while e < g and v[e] != 94:
                e += 1
            a = s
            b = e
            while b > a and _is_pad(v[b - 1]):
                b -= 1
            while a < b and _is_pad(v[a]):
                a += 1
            if s:
                buf[olen] = 94
                olen += 1
            memcpy(buf + olen, v + a, b - a)
            olen += b - a
            if b > a:
                keep = olen
            s = e + 1
        have = 0
        for i in range(keep):
            if buf[i] == 94:
                have += 1
        if _has_high(buf, keep):  # safe non-ASCII: code points, folded by the table
            un = _decode(buf, keep, ubuf, self.fold)
            if un < 0:
                return 2
            for k in range(self.npats):
                if _wildcard(self.pats[k], self.lens[k], 4, ubuf, un, 0, False):
                    return 1
                if self.carets[k] > have and _wildcard(self.pats[k], self.lens[k], 4, ubuf, un, self.carets[k] - have, False):
                    return 1
            return 0
        for k in range(self.npats):
            if _wildcard(self.pats[k], self.lens[k], 1, buf, keep, 0, self.fold):
                return 1
            if self.carets[k] > have and _wildcard(self.pats[k], self.lens[k], 1, buf, keep, self.carets[k] - have, self.fold):
                return 1
        return 0

    # -- one stored field (the rules of conditions._stored_test) -----------------------------
    cdef int _field(self, const uint8_t* p, Py_ssize_t n) except -1:
        """1 match, 0 no match, 2 undecided."""
        cdef Py_ssize_t i, a, b, s, e
        cdef int r
        cdef bint alphabetic = True
        if self.mode == MODE_PN_WILDCARD:
            # only the Alphabetic group of each value is matched: it must be ASCII or safe
            # code points, and the '=' after it must stay a '=' under NFC (U+0338 would compose
            # it into U+2260)
            i = 0
            while i < n:
                if p[i] == 92:
                    alphabetic = True
                elif alphabetic and p[i] == 61:
                    alphabetic = False
                    if i + 2 < n and p[i + 1] == 0xCC and p[i + 2] == 0xB8:
                        return 2
                elif alphabetic and p[i] >= 0x80:
                    if not _safe_at(p, n, i):
                        return 2
                    i += 1
                i += 1
        else:
            i = 0
            while i < n:
                if p[i] >= 0x80:
                    if not _safe_at(p, n, i):
                        return 2
                    i += 1
                i += 1
        if not self.split or memchr(p, 92, <size_t>n) == NULL:
            a = 0
            b = n
            while b > a and _is_pad(p[b - 1]):
                b -= 1
            if self.strip_lead:
                while a < b and _is_pad(p[a]):
                    a += 1
            if a == b:
                return 1 if self.empty else 0
            return self._one(p + a, b - a)
        s = 0
        while s <= n:
            e = s
            while e < n and p[e] != 92:
                e += 1
            a = s
            b = e
            while b > a and _is_pad(p[b - 1]):
                b -= 1
            if self.strip_lead:
                while a < b and _is_pad(p[a]):
                    a += 1
            r = self._one(p + a, b - a)
            if r != 0:
                return r
            s = e + 1
        return 0

    cdef bint run(self, object rec, const uint8_t* buf, Py_ssize_t size) except -1:
        cdef Py_ssize_t start = 0, end = 0
        cdef const uint8_t* vr = NULL
        cdef int found = _find_field(buf, size, self.tag, &start, &end, &vr)
        cdef int r
        if found == 0:
            return self.empty
        if found < 0 or (vr[0] == 83 and vr[1] == 81):  # malformed, or 'SQ': the reference decides
            if rec is None:
                rec = PyBytes_FromStringAndSize(<const char*>buf, size)
            return bool(self.fallback(_get_value(rec, self.tag)))
        r = self._field(buf + start, end - start)
        if r == 2:
            return bool(self.fallback(PyUnicode_DecodeUTF8(<const char*>(buf + start), end - start, "surrogatepass")))
        return r == 1

    def test_record(self, bytes rec):
        """The condition on a whole record (the field is read in place)."""
        return self.run(rec, <const uint8_t*>PyBytes_AS_STRING(rec), PyBytes_GET_SIZE(rec))

    def __call__(self, stored):
        """The condition on one stored value, like ``Condition.test``."""
        cdef bytes raw
        cdef int r
        if stored is None:
            return self.empty
        if type(stored) is not str or not (<str>stored).isascii():
            return bool(self.fallback(stored))
        raw = (<str>stored).encode("ascii")
        r = self._field(<const uint8_t*>PyBytes_AS_STRING(raw), PyBytes_GET_SIZE(raw))
        if r == 2:
            return bool(self.fallback(stored))
        return r == 1


cdef class CombinedTest:
    """Combined date-time range matching (C.2.2.2.5.4) of a DA and a TM attribute, decided on the
    record's bytes for valid YYYYMMDD dates and HH[MM[SS[.F]]] times; anything else goes to
    ``fallback(stored_date, stored_time)`` (the reference's ``cond.test``)."""

    cdef readonly uint32_t dtag, ttag
    cdef bint has_lo, has_hi, empty
    cdef int64_t lo, hi, offset
    cdef readonly object fallback

    def __cinit__(self, uint32_t dtag, uint32_t ttag, lo, hi, int64_t offset, bint empty, fallback):
        self.dtag, self.ttag = dtag, ttag
        self.has_lo, self.has_hi = lo is not None, hi is not None
        self.lo = lo if lo is not None else 0
        self.hi = hi if hi is not None else 0
        self.offset, self.empty, self.fallback = offset, empty, fallback

    cdef int _decide(self, const uint8_t* d, Py_ssize_t dn, bint has_time, const uint8_t* t, Py_ssize_t tn) noexcept:
        """1 match, 0 no match, 2 undecided; d is the stripped first date value (not empty)."""
        cdef int64_t day, floor, ceil, tfloor = 0, tceil = 0
        if not _day_number(d, dn, &day):
            return 2
        floor = day * US_DAY - self.offset
        if not has_time:  # the whole day overlaps the range
            ceil = floor + US_DAY - 1
            return (not self.has_hi or floor <= self.hi) and (not self.has_lo or ceil >= self.lo)
        if not _time_of_day(t, tn, &tfloor, &tceil):
            return 2
        floor += tfloor
        return (not self.has_lo or self.lo <= floor) and (not self.has_hi or floor <= self.hi)

    cdef bint run(self, object raw, const uint8_t* buf, Py_ssize_t size) except -1:
        """``raw``: the record as bytes, or None (made from ``buf`` only if the reference is needed)."""
        cdef Py_ssize_t ds = 0, de = 0, ts = 0, te = 0, a, b, ta = 0, tb = 0
        cdef const uint8_t* dvr = NULL
        cdef const uint8_t* tvr = NULL
        cdef int fd = _find_field(buf, size, self.dtag, &ds, &de, &dvr)
        cdef int ft = _find_field(buf, size, self.ttag, &ts, &te, &tvr)
        cdef Py_ssize_t i
        cdef int r
        if fd < 0 or ft < 0 or (fd == 1 and dvr[0] == 83 and dvr[1] == 81) or (ft == 1 and tvr[0] == 83 and tvr[1] == 81):
            return self._fall(raw, buf, size)
        if fd == 0:
            return self.empty
        for i in range(ds, de):
            if buf[i] >= 0x80:
                return self._fall(raw, buf, size)
        _first_value(buf + ds, de - ds, &a, &b)
        if a == b:
            return self.empty
        if ft == 1:
            for i in range(ts, te):
                if buf[i] >= 0x80:
                    return self._fall(raw, buf, size)
            _first_value(buf + ts, te - ts, &ta, &tb)
        r = self._decide(buf + ds + a, b - a, ft == 1 and tb > ta, buf + ts + ta, tb - ta)
        if r == 2:
            return self._fall(raw, buf, size)
        return r == 1

    cdef bint _fall(self, object raw, const uint8_t* buf, Py_ssize_t size) except -1:
        if raw is None:
            raw = PyBytes_FromStringAndSize(<const char*>buf, size)
        return bool(self.fallback(_get_value(raw, self.dtag), _get_value(raw, self.ttag)))

    def test_record(self, bytes rec):
        """The condition on a whole record (the fields are read in place)."""
        return self.run(rec, <const uint8_t*>PyBytes_AS_STRING(rec), PyBytes_GET_SIZE(rec))

    def __call__(self, stored_date, stored_time=None):
        """The condition on two stored values, like ``cond.test(date, time)``."""
        from pacscore._ext._records import encode

        if not all(v is None or type(v) is str for v in (stored_date, stored_time)):
            return bool(self.fallback(stored_date, stored_time))
        fields = {}
        if stored_date is not None:
            fields[self.dtag] = ("DA", stored_date)
        if stored_time is not None:
            fields[self.ttag] = ("TM", stored_time)
        return self.test_record(encode(fields))


cdef class RecordTest:
    """All conditions of one level on a record: FieldTests in place, the others through the
    codec and the reference (``(tags, test)`` pairs)."""

    cdef tuple checks

    def __cinit__(self, checks):
        self.checks = tuple(checks)

    def __call__(self, rec):
        cdef bytes raw = rec if type(rec) is bytes else bytes(rec)
        return self._test(raw, <const uint8_t*>PyBytes_AS_STRING(raw), PyBytes_GET_SIZE(raw))

    cdef bint _test(self, object raw, const uint8_t* buf, Py_ssize_t size) except -1:
        """``raw``: the record as bytes, or None when only ``buf`` exists (a segment entry); the
        checks without a kernel get bytes made from ``buf``."""
        for check in self.checks:
            if type(check) is FieldTest:
                if not (<FieldTest>check).run(raw, buf, size):
                    return False
            elif type(check) is CombinedTest:
                if not (<CombinedTest>check).run(raw, buf, size):
                    return False
            else:
                if raw is None:
                    raw = PyBytes_FromStringAndSize(<const char*>buf, size)
                tags, test = <tuple>check
                if not test(*[_get_value(raw, t) for t in tags]):
                    return False
        return True

    def scan(self, it, Py_ssize_t limit=1024, bint keys=True):
        """Test up to ``limit`` (key, record) pairs from ``it`` (an LMDB cursor iterator) in
        one C loop; returns ``(matches, exhausted)``, matches as (key, record) bytes pairs, or
        the records alone when ``keys`` is false. Records arrive as buffers into the map: each
        is copied once, before the next read."""
        cdef list out = []
        cdef Py_ssize_t n = 0
        cdef bytes raw
        for key, rec in it:
            raw = rec if type(rec) is bytes else bytes(rec)
            if self._test(raw, <const uint8_t*>PyBytes_AS_STRING(raw), PyBytes_GET_SIZE(raw)):
                out.append((key if type(key) is bytes else bytes(key), raw) if keys else raw)
            n += 1
            if n >= limit:
                return out, False
        return out, True

    def fetch(self, get, list keys, db, bint with_keys=True):
        """The (key, record) bytes pairs that pass among ``keys`` (the records alone when
        ``with_keys`` is false), each read with ``get(key, None, db)`` (a transaction's get):
        absent keys are skipped."""
        cdef list out = []
        cdef bytes raw
        for key in keys:
            rec = get(key, None, db)
            if rec is None:
                continue
            raw = rec if type(rec) is bytes else bytes(rec)
            if self._test(raw, <const uint8_t*>PyBytes_AS_STRING(raw), PyBytes_GET_SIZE(raw)):
                out.append((key if type(key) is bytes else bytes(key), raw) if with_keys else raw)
        return out

    def scan_segment(self, segment, bint keys=True):
        """The (key, record) bytes pairs of one scan segment (index/segments.py) that pass (the
        records alone when ``keys`` is false): the records are tested where they lie and only
        the matches are copied."""
        cdef const uint8_t[::1] view = segment
        cdef Py_ssize_t size = view.shape[0], pos = 0, start, klen, rlen
        cdef const uint8_t* p
        cdef list out = []
        if size == 0:
            return out
        p = &view[0]
        while pos < size:
            if pos + SEGMENT_HEAD > size:
                raise ValueError(f"segment entry header cut at byte {pos} of {size}")
            klen = u16le(p + pos)
            rlen = _u32(p + pos + 2)
            start = pos + SEGMENT_HEAD
            if start + klen + rlen > size:
                raise ValueError(f"segment entry at byte {pos} runs past the end ({start + klen + rlen} > {size})")
            if self._test(None, p + start + klen, rlen):
                if keys:
                    out.append((PyBytes_FromStringAndSize(<const char*>(p + start), klen),
                                PyBytes_FromStringAndSize(<const char*>(p + start + klen), rlen)))
                else:
                    out.append(PyBytes_FromStringAndSize(<const char*>(p + start + klen), rlen))
            pos = start + klen + rlen
        return out


MODES = {"exact": MODE_EXACT, "wildcard": MODE_WILDCARD, "pn_wildcard": MODE_PN_WILDCARD,
         "da_range": MODE_DA_RANGE, "tm_range": MODE_TM_RANGE, "dt_range": MODE_DT_RANGE}
