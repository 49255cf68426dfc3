"""The names and bytes of the index layout, in one place (docs/storage-layout.md).

Every module that reads or writes the index takes these from here, so that no module of the
index needs another one just for a name: the environment (lmdb_index.py), the entries
(secondary.py), the segments (segments.py), the writer and the migrations all depend on this
module, and on nothing of each other's for it.
"""

from __future__ import annotations

#: 2: scan segments; 3: trigram entries (secondary.GRAM_INDEXED); 4: entries of values the index
#: cannot file by text apart from the empty ones (secondary.UNINDEXABLE); 5: the extra indexed
#: tags in their own meta key, their entries backfilled (extra_tags.py); 7: instance records
#: and headers compressed with zstd dictionaries trained on the archive (compression.py). An
#: older archive is upgraded at its first writable open (migrations.py); opened read-only it is
#: read as it is
SCHEMA_VERSION = 7
#: the version that brought the compressed records and headers (its step in migrations.py)
COMPACT_HEADERS_SCHEMA = 7

DB_NAMES = ("meta", "patient", "study", "series", "instance", "header", "children", "idx", "segments")
#: databases an archive gains at the first write that needs them, never at open (an older
#: archive keeps its layout and schema version until then): the Modality Worklist's items and
#: their index entries (pacscore/worklist/store.py); the performed procedure steps and the
#: storage commitment reports not yet delivered (pacscore/workflow/store.py). A reader finds none
#: in an archive that has no worklist and reads that as an empty worklist (no steps, no reports)
OPTIONAL_DB_NAMES = ("worklist", "worklist_idx", "mpps", "commitment")
#: databases with sorted duplicate values
DUPSORT = ("children", "idx", "worklist_idx")
#: named databases LMDB may open in one environment: every one above plus room for more
MAX_DBS = len(DB_NAMES) + len(OPTIONAL_DB_NAMES) + 4

#: level -> the database of its records
LEVEL_DB = {"PATIENT": "patient", "STUDY": "study", "SERIES": "series", "IMAGE": "instance"}
#: level -> the byte that starts its keys in ``children``, ``idx`` and ``segments``
LEVEL_BYTE = {"PATIENT": b"P", "STUDY": b"S", "SERIES": b"E", "IMAGE": b"I"}

#: level -> the level of its children
CHILD_LEVEL = {"PATIENT": "STUDY", "STUDY": "SERIES", "SERIES": "IMAGE"}

#: meta keys
SCHEMA_KEY = b"schema"
SETTINGS_KEY = b"settings"
#: the JSON list of the extra indexed tags (schema 5; before, in the settings)
INDEXED_TAGS = b"indexed_tags"


# Reserved pseudo-tags of the internal fields of a record (VR "IN"); never returned or matched.
INTERNAL_VR = "IN"
#: the parent entity's key (a series' study UID, an instance's series UID, a study's patient key)
T_PARENT = 0xFFFF0001
#: an instance's blob size in bytes, and its checksum (ingest.checksum)
T_SIZE = 0xFFFF0002
T_CHECKSUM = 0xFFFF0003
#: an instance's study UID and patient key (its series' parents, for one-step lookups)
T_STUDY = 0xFFFF0004
T_PATIENT = 0xFFFF0005
#: an instance's blob key in the blob store
T_BLOBKEY = 0xFFFF0006
#: when a study last received an instance: which study's patient values are the latest
T_SEQ = 0xFFFF0007
#: the bulk elements left out of the indexed header ("tag:vr" list)
T_BULK = 0xFFFF0008


def is_internal(tag: int) -> bool:
    """A pseudo-tag of an internal field (group FFFF)."""
    return tag >= 0xFFFF0000


def following(prefix: bytes) -> bytes | None:
    """The smallest key after every key that starts with ``prefix`` (None: there is none)."""
    trimmed = prefix.rstrip(b"\xff")
    if not trimmed:
        return None
    return trimmed[:-1] + bytes([trimmed[-1] + 1])
