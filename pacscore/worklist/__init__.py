"""The Modality Worklist (PS3.4 Annex K) kept in an archive: ``Archive.worklist``.

items.py   what an item must hold, its key and forms;  store.py  its LMDB databases;
match.py   identifiers compiled with the worklist rule; response.py  response identifiers;
api.py     the Worklist object.
"""

from .api import Worklist
from .errors import DuplicateItem, WorklistError
from .items import STATUSES

__all__ = ["Worklist", "WorklistError", "DuplicateItem", "STATUSES"]
