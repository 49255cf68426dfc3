"""Settings change only when asked: what open() or a command line is given applies to that handle;
`configure()` / `pacscore config` are the only writers; read-only commands create nothing;
credentials never reach the index."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

import pacscore
from pacscore.cli import main as cli
from pacscore.errors import ArchiveNotFound, ConfigError, StorageError
from pacscore.index.lmdb_index import Index
from pacscore.settings import public_url

from .expected_warnings import BAD_UIDS, LONG_LO
from .factories import make_instance


def stored(folder) -> dict:
    index = Index(folder / "index", readonly=True)
    try:
        return index.settings()
    finally:
        index.close()


def two_studies(arc):
    arc.store(make_instance(sop="1.5.1.1", study="1.5.1", series="1.5.1.1", patient_id="P1", patient_name="Smith^John"))
    arc.store(make_instance(sop="1.5.2.1", study="1.5.2", series="1.5.2.1", patient_id="", patient_name="Empty^Id"))


def test_matching_options_given_to_open_apply_to_that_handle_only(tmp_path):
    with pacscore.open(tmp_path / "a", empty_record_matches=False) as arc:
        two_studies(arc)
        assert arc.count({"PatientID": "P1"}, level="STUDY") == 1  # the empty PatientID does not match
    assert stored(tmp_path / "a") == {}
    with pacscore.open(tmp_path / "a") as arc:
        assert arc.options.empty_record_matches is True
        assert arc.count({"PatientID": "P1"}, level="STUDY") == 2  # PS3.4 C.2.2.1.2, the default


def test_on_conflict_given_to_open_is_not_kept(tmp_path):
    with pacscore.open(tmp_path / "a", on_conflict="error") as arc:
        arc.store(make_instance(sop="1.6.1"))
    with pacscore.open(tmp_path / "a") as arc:
        assert arc.on_conflict == "replace"
        assert arc.store(make_instance(sop="1.6.1", patient_name="Other^Name")).status == "replaced"


def test_configure_persists_and_applies_to_the_handle(tmp_path):
    with pacscore.open(tmp_path / "a") as arc:
        two_studies(arc)
        kept = arc.configure(on_conflict="keep", empty_record_matches=False, pn_case_insensitive=False)
        assert arc.on_conflict == "keep" and arc.options.empty_record_matches is False
        assert kept["on_conflict"] == "keep"
        assert kept["options"] == {"empty_record_matches": False, "pn_case_insensitive": False}
    with pacscore.open(tmp_path / "a") as arc:
        assert arc.count({"PatientID": "P1"}, level="STUDY") == 1
        assert arc.count({"PatientName": "smith*"}, level="STUDY") == 0
        arc.configure(empty_record_matches=None)  # None: back to the default
        assert arc.count({"PatientID": "P1"}, level="STUDY") == 2
    assert stored(tmp_path / "a")["options"] == {"pn_case_insensitive": False}


@pytest.mark.parametrize(
    "changes, message",
    [
        ({"on_conflict": "overwrite"}, "on_conflict"),
        ({"uid_policy": "loose"}, "uid_policy"),
        ({"no_such_option": True}, "no_such_option"),
        ({"empty_record_matches": "nope"}, "empty_record_matches"),
    ],
)
def test_a_bad_setting_names_itself_and_changes_nothing(tmp_path, changes, message):
    with pacscore.open(tmp_path / "a") as arc:
        arc.configure(on_conflict="keep")
        before = stored(tmp_path / "a")
        with pytest.raises(ConfigError, match=message):
            arc.configure(**changes)
        assert arc.on_conflict == "keep"
    assert stored(tmp_path / "a") == before


def test_a_bad_option_at_open_names_itself(tmp_path):
    with pytest.raises((ConfigError, ValueError), match="overwrite"):
        pacscore.open(tmp_path / "a", on_conflict="overwrite")


def test_blobs_given_for_one_run_do_not_replace_the_archive_store(tmp_path, capsys):
    folder = tmp_path / "a"
    with pacscore.open(folder) as arc:
        two_studies(arc)
    other = tmp_path / "elsewhere"
    assert cli(["stats", "--archive", str(folder), "--blobs", f"file://{other}"]) == 0
    assert "blobs" not in stored(folder)
    with pacscore.open(folder) as arc:
        assert arc.get("1.5.1.1")[128:132] == b"DICM"
        assert arc.verify().ok


def test_the_blob_store_an_archive_is_created_with_is_kept(tmp_path):
    with pacscore.open(tmp_path / "a", blobs="lmdb://") as arc:
        two_studies(arc)
    assert stored(tmp_path / "a")["blobs"] == "lmdb://"
    with pacscore.open(tmp_path / "a") as arc:
        assert arc.blobs.scheme == "lmdb" and arc.get("1.5.2.1")


def test_config_command_shows_and_changes_settings(tmp_path, capsys):
    folder = tmp_path / "a"
    with pacscore.open(folder) as arc:
        two_studies(arc)
    capsys.readouterr()
    assert cli(["config", "--archive", str(folder)]) == 0
    assert json.loads(capsys.readouterr().out) == {"extra_tags": []}
    assert (
        cli(
            [
                "config",
                "--archive",
                str(folder),
                "on_conflict=keep",
                "empty_record_matches=false",
                "extra_tags=StationName",
            ]
        )
        == 0
    )
    shown = json.loads(capsys.readouterr().out)
    assert shown == {"on_conflict": "keep", "options": {"empty_record_matches": False}, "extra_tags": ["StationName"]}
    assert cli(["find", "--archive", str(folder), "PatientID=P1", "--json"]) == 0
    assert len(json.loads(capsys.readouterr().out)) == 1
    assert cli(["config", "--archive", str(folder), "--reset", "empty_record_matches"]) == 0
    assert "options" not in json.loads(capsys.readouterr().out)


def test_config_command_rejects_a_bad_value(tmp_path, capsys):
    with pacscore.open(tmp_path / "a"):
        pass
    assert cli(["config", "--archive", str(tmp_path / "a"), "empty_record_matches=perhaps"]) == 2
    assert "empty_record_matches" in capsys.readouterr().err
    assert stored(tmp_path / "a") == {}


@pytest.mark.parametrize(
    "command",
    [
        ["find", "PatientID=1"],
        ["stats"],
        ["get", "1.2.3"],
        ["delete", "--study", "1.2.3"],
        ["config"],
        ["reindex", "--add", "StationName"],
        ["verify"],
        ["verify", "--repair"],
        ["backup", "DEST"],
        ["bench", "--repeat", "1"],
    ],
)
def test_commands_on_a_folder_without_an_archive_fail_and_create_nothing(tmp_path, capsys, command):
    folder = tmp_path / "typo"
    command = [str(tmp_path / "dest") if c == "DEST" else c for c in command]
    where = [str(folder)] if command[0] == "bench" else ["--archive", str(folder)]  # bench takes a target
    assert cli([command[0], *where, *command[1:]]) == 2
    err = capsys.readouterr().err
    assert "no archive in" in err and str(folder) in err
    assert not folder.exists() and not (tmp_path / "dest").exists()


@pytest.mark.parametrize("protocol", ["dimse", "web"])
def test_serve_on_a_folder_without_an_archive_fails_and_creates_nothing(tmp_path, protocol):
    pytest.importorskip("pynetdicom" if protocol == "dimse" else "starlette")
    folder = tmp_path / "typo"
    proc = subprocess.run(
        [sys.executable, "-m", "pacscore", "serve", protocol, "--archive", str(folder), "--port", "0"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 2, proc.stdout + proc.stderr
    assert "no archive in" in proc.stdout + proc.stderr
    assert not folder.exists()


def test_verify_and_backup_read_an_archive_without_changing_it(tmp_path, capsys):
    with pacscore.open(tmp_path / "a") as arc:
        two_studies(arc)
    before = (tmp_path / "a" / "index" / "data.mdb").read_bytes()
    assert cli(["verify", "--archive", str(tmp_path / "a")]) == 0
    assert cli(["backup", "--archive", str(tmp_path / "a"), "-q", str(tmp_path / "b")]) == 0
    assert (tmp_path / "a" / "index" / "data.mdb").read_bytes() == before
    assert "OK" in capsys.readouterr().out


def test_open_without_create_raises_and_creates_nothing(tmp_path):
    with pytest.raises(ArchiveNotFound, match="no archive"):
        pacscore.open(tmp_path / "none", create=False)
    with pytest.raises(ArchiveNotFound):
        pacscore.open(tmp_path / "none", readonly=True)
    assert not (tmp_path / "none").exists()


def test_a_read_only_archive_refuses_writes_and_leaves_the_index_alone(tmp_path):
    with pacscore.open(tmp_path / "a") as arc:
        two_studies(arc)
    before = (tmp_path / "a" / "index" / "data.mdb").read_bytes()
    with pacscore.open(tmp_path / "a", readonly=True) as arc:
        assert arc.count({}, level="STUDY") == 2
        with pytest.raises(StorageError, match="read-only"):
            arc.store(make_instance(sop="1.7.1"))
        with pytest.raises(StorageError, match="read-only"):
            arc.configure(on_conflict="keep")
    assert (tmp_path / "a" / "index" / "data.mdb").read_bytes() == before


def test_a_read_only_open_first_does_not_break_later_writes_in_the_process(tmp_path):
    with pacscore.open(tmp_path / "a") as arc:
        two_studies(arc)
    reader = pacscore.open(tmp_path / "a", readonly=True)
    try:
        with pacscore.open(tmp_path / "a") as writer:  # shares the reader's environment
            writer.store(make_instance(sop="1.8.1", study="1.8", series="1.8.1"))
            writer.delete(study="1.5.2")
        assert reader.count({}, level="STUDY") == 2
        with pytest.raises(StorageError, match="read-only"):
            reader.store(make_instance(sop="1.8.2", study="1.8", series="1.8.1"))
    finally:
        reader.close()
    with pacscore.open(tmp_path / "a") as arc:
        assert sorted(r.StudyInstanceUID for r in arc.find({}, level="STUDY")) == ["1.5.1", "1.8"]


S3_WITH_SECRETS = (
    "s3://bucket/prefix?endpoint_url=http%3A%2F%2F127.0.0.1%3A9&region=eu-west-1"
    "&aws_access_key_id=AKIDSECRETVALUE&aws_secret_access_key=SHHHSECRETKEY"
)


def test_public_url_drops_credentials_and_keeps_the_rest():
    assert public_url(S3_WITH_SECRETS) == "s3://bucket/prefix?endpoint_url=http%3A%2F%2F127.0.0.1%3A9&region=eu-west-1"
    assert public_url("s3://user:pw@bucket/p") == "s3://bucket/p"
    assert public_url("mirror:file:a|s3://b/p?aws_session_token=T") == "mirror:file:a|s3://b/p"
    assert public_url("file:blobs") == "file:blobs"


def test_blob_store_credentials_never_reach_the_index_or_a_backup(tmp_path):
    pytest.importorskip("boto3")
    folder = tmp_path / "a"
    with pacscore.open(folder, blobs=S3_WITH_SECRETS) as arc:
        assert arc.blobs.scheme == "s3"
        arc.backup(tmp_path / "backup")  # an empty archive: nothing to read from the bucket
    assert stored(folder)["blobs"] == public_url(S3_WITH_SECRETS)
    for path in [*folder.rglob("*"), *(tmp_path / "backup").rglob("*")]:
        if path.is_file():
            data = path.read_bytes()
            assert b"SHHHSECRETKEY" not in data and b"AKIDSECRETVALUE" not in data, path


def test_credentials_kept_by_an_older_version_are_removed_at_the_next_writable_open(tmp_path):
    pytest.importorskip("boto3")
    folder = tmp_path / "a"
    with pacscore.open(folder):
        pass
    index = Index(folder / "index")
    index.save_settings({"blobs": S3_WITH_SECRETS})
    index.close()
    with pacscore.open(folder, readonly=True):
        pass
    assert stored(folder)["blobs"] == S3_WITH_SECRETS  # a read-only open writes nothing
    with pacscore.open(folder):
        pass
    assert stored(folder)["blobs"] == public_url(S3_WITH_SECRETS)


def test_find_keys_may_follow_options(tmp_path, capsys):
    with pacscore.open(tmp_path / "a") as arc:
        two_studies(arc)
    capsys.readouterr()
    assert (
        cli(
            [
                "find",
                "--archive",
                str(tmp_path / "a"),
                "PatientID=P1",
                "--level",
                "STUDY",
                "PatientName=",
                "--json",
                "-o",
                "empty_record_matches=false",
            ]
        )
        == 0
    )
    rows = json.loads(capsys.readouterr().out)
    assert [r["00100010"]["Value"][0]["Alphabetic"] for r in rows] == ["Smith^John"]
    with pytest.raises(SystemExit) as exit_:
        cli(["find", "--archive", str(tmp_path / "a"), "PatientID=P1", "--bogus"])
    assert exit_.value.code == 2 and "--bogus" in capsys.readouterr().err


@LONG_LO
def test_find_prints_whole_uids(tmp_path, capsys):
    long_uid = "1.2.826.0.1.3680043.8.498." + "1234567890" * 3 + "12345678"
    assert len(long_uid) == 64
    with pacscore.open(tmp_path / "a") as arc:
        arc.store(make_instance(sop="1.9.1.1", study=long_uid, series="1.9.1", StudyDescription="D" * 70))
    capsys.readouterr()
    assert cli(["find", "--archive", str(tmp_path / "a"), "StudyDescription="]) == 0
    out = capsys.readouterr().out
    assert long_uid in out and "D" * 70 not in out and "…" in out
    assert cli(["find", "--archive", str(tmp_path / "a"), "StudyDescription=", "--wide"]) == 0
    assert "D" * 70 in capsys.readouterr().out


def test_stats_command_exits_2_naming_a_missing_archive_from_a_subprocess(tmp_path):
    proc = subprocess.run(
        [sys.executable, "-m", "pacscore", "stats", "--archive", str(tmp_path / "typo")],
        capture_output=True,
        text=True,
        cwd=tmp_path,
    )
    assert proc.returncode == 2 and "no archive in" in proc.stderr
    assert not (tmp_path / "typo").exists()


@BAD_UIDS
def test_uid_policy_is_kept_only_through_configure(tmp_path):
    bad = make_instance(sop="1.2.3.a-hash-uid", study="1.5.9", series="1.5.9.1")
    with pacscore.open(tmp_path / "a", uid_policy="strict") as arc:
        with pytest.raises(pacscore.IngestError, match="SOPInstanceUID"):
            arc.store(bad)
    with pacscore.open(tmp_path / "a") as arc:
        assert arc.uid_policy == "lenient"
        arc.configure(uid_policy="strict")
    with pacscore.open(tmp_path / "a") as arc:
        with pytest.raises(pacscore.IngestError, match="SOPInstanceUID"):
            arc.store(bad)
        assert arc.count({}, level="STUDY") == 0


def test_init_creates_an_empty_archive_that_serve_and_find_accept(tmp_path, capsys):
    folder = tmp_path / "new"
    assert cli(["init", "--archive", str(folder), "--extra-tag", "StationName"]) == 0
    assert "created an empty archive" in capsys.readouterr().out
    assert cli(["find", "--archive", str(folder), "PatientID=", "--json"]) == 0
    assert json.loads(capsys.readouterr().out) == []
    with pacscore.open(folder, create=False) as arc:
        assert arc.extra_tags == [0x00081010]
    assert cli(["init", "--archive", str(folder)]) == 2  # never over an existing archive
    assert "already holds an archive" in capsys.readouterr().err
