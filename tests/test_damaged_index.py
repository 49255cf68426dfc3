"""An index whose own links point at a missing record is reported as damaged, naming the entity,
and the store that found it writes nothing (the writer used to fail with a bare TypeError)."""

from __future__ import annotations

import pytest

import pacscore
from pacscore.errors import NotFound, StorageError
from pacscore.index.layout import LEVEL_DB

from .factories import make_instance


def test_a_series_whose_study_record_is_missing_is_reported_and_nothing_is_written(tmp_path):
    with pacscore.open(tmp_path / "a") as arc:
        arc.store(make_instance(sop="1.9.1", study="1.9", series="1.9.5"))
        # the damage: the study record is gone, the series still names it as its parent
        with arc.index.env.begin(write=True) as txn:
            assert txn.delete(b"1.9", db=arc.index.db(LEVEL_DB["STUDY"]))
        before = arc.count({}, level="IMAGE", relational=True)
        # an instance of the same series under another study: the writer follows the series to its study
        with pytest.raises(StorageError, match=r"damaged: the study of series 1\.9\.5 \(STUDY 1\.9\) is missing"):
            arc.store(make_instance(sop="1.9.2", study="1.8", series="1.9.5"))
        assert arc.count({}, level="IMAGE", relational=True) == before
        assert arc.count({"StudyInstanceUID": "1.8"}, level="STUDY") == 0
        with pytest.raises(NotFound):
            arc.get("1.9.2")
        assert arc.get("1.9.1")  # the stored instance still reads back
