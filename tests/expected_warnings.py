"""The pydicom warnings that tests provoke on purpose, as pytest marks.

Each mark ignores named pydicom messages from one pydicom module, and only in the tests that
carry it: an unexpected warning (a new message, another module, a test that should not warn)
still shows in pytest's summary.
"""

from __future__ import annotations

import pytest


def _pydicom(module: str, *messages: str) -> pytest.MarkDecorator:
    """Ignore UserWarnings from ``pydicom.<module>`` whose text starts with one of ``messages``."""
    return pytest.mark.filterwarnings(*(f"ignore:{m}:UserWarning:pydicom\\.{module}" for m in messages))


#: UIDs that are not digits and dots, or longer than 64 bytes (PS3.5 Section 9.1), built on purpose
BAD_UIDS = _pydicom(
    "valuerep",
    "Invalid value for VR UI",
    r"The value length \(\d+\) exceeds the maximum length of 64 allowed for VR UI",
)
#: dates that are not DA (PS3.5 Section 6.2): "2015", the old "2015.03.04", "not a date"
BAD_DATES = _pydicom("valuerep", "Invalid value for VR DA")
#: times and date-times that are not TM or DT: "2500", the retired "12:00:00", a bad offset
BAD_TIMES = _pydicom("valuerep", "Invalid value for VR TM", "Invalid value for VR DT")
#: LO values over 64 characters (PS3.5 Section 6.2)
LONG_LO = _pydicom("valuerep", r"The value length \(\d+\) exceeds the maximum length of 64 allowed for VR LO")
#: CS bytes outside the CS repertoire (PS3.5 Section 6.2)
BAD_CS = _pydicom("valuerep", "Invalid value for VR CS")
#: files whose transfer syntax and elements disagree on explicit/implicit VR (some of pydicom's
#: own test files, damaged data)
VR_MISMATCH = _pydicom("filereader", "Expected (explicit|implicit) VR, but found (explicit|implicit) VR")
#: unknown, invalid or undecodable Specific Character Set (0008,0005) (PS3.5 Section 6.1)
BAD_CHARSETS = _pydicom(
    "charset",
    "Unknown encoding",
    "Incorrect value for Specific Character Set",
    "Failed to decode byte string",
    "Failed to encode value",
)
#: fuzzed bytes: any complaint of any pydicom module is expected (pacscore's own warnings and
#: other packages' still show)
FUZZED = pytest.mark.filterwarnings("ignore::UserWarning:pydicom")
#: the real files pydicom and pydicom-data ship, read as they are: some carry values outside
#: their VR (over-long SH, "1A" as IS, hash UIDs); the tests that sweep all of them expect it
REAL_FILE_VALUES = _pydicom("valuerep", "Invalid value for VR", r"The value length \(\d+\) exceeds the maximum length")
#: a stored file cut short on purpose (a damaged blob read back)
TRUNCATED = _pydicom("filereader", "End of file reached before delimiter")
