"""Distributed ingest (pacscore/distributed.py): Dask workers read, parse and put blobs into an
S3 object store (moto's server), this process writes the index; the outcome must equal a local
``store_many`` of the same sources, answers and bytes."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

import pacscore
from pacscore.cli import main as cli_main
from pacscore.errors import ConfigError
from pacscore.index import pending

from .factories import BUCKET, CREDENTIALS, make_instance, pydicom_test_files, s3_prefix_for, s3_url, to_bytes

distributed = pytest.importorskip("dask.distributed")
boto3 = pytest.importorskip("boto3")

LEVELS = {
    "PATIENT": {"PatientID": "", "PatientName": "", "NumberOfPatientRelatedInstances": ""},
    "STUDY": {
        "StudyInstanceUID": "",
        "PatientID": "",
        "StudyDate": "",
        "ModalitiesInStudy": "",
        "NumberOfStudyRelatedInstances": "",
    },
    "SERIES": {"SeriesInstanceUID": "", "Modality": "", "NumberOfSeriesRelatedInstances": ""},
    "IMAGE": {"SOPInstanceUID": "", "SOPClassUID": "", "InstanceNumber": ""},
}


@pytest.fixture(autouse=True)
def small_chunks(monkeypatch):
    """Chunks of 8 sources: the test corpora span several chunks and several write batches."""
    from pacscore import distributed as pacscore_distributed

    monkeypatch.setattr(pacscore_distributed, "CHUNK", 8)


@pytest.fixture(scope="module")
def client() -> Iterator[distributed.Client]:
    """Two worker processes of one thread each: tasks and results cross a process boundary."""
    with (
        distributed.LocalCluster(
            n_workers=2, threads_per_worker=1, processes=True, dashboard_address=":0", memory_limit="1GiB"
        ) as cluster,
        distributed.Client(cluster, timeout=120) as c,
    ):
        yield c


def _s3(endpoint: str):
    return boto3.session.Session(aws_access_key_id="testing", aws_secret_access_key="testing-secret").client(
        "s3", endpoint_url=endpoint, region_name="us-east-1"
    )


def _source_url(endpoint: str, key: str) -> str:
    return f"s3://{BUCKET}/{key}?endpoint_url={endpoint}&region=us-east-1&{CREDENTIALS}"


def _corpus(folder: Path, generated: int = 70) -> list[Path]:
    """Three studies of generated instances and real files with pixel data."""
    folder.mkdir()
    paths = []
    for i in range(generated):
        study = f"1.2.826.0.1.{i % 3}"
        ds = make_instance(
            sop=f"{study}.{i}",
            study=study,
            series=f"{study}.{i % 2}",
            patient_id=f"P{i % 3}",
            modality=("CT", "MR")[i % 2],
            instance_number=str(i),
        )
        path = folder / f"gen{i:03d}.dcm"
        path.write_bytes(to_bytes(ds))
        paths.append(path)
    for name in ("CT_small.dcm", "MR_small.dcm"):
        path = folder / name
        shutil.copy(pydicom_test_files() / name, path)
        paths.append(path)
    return paths


def _answers(arc: pacscore.Archive) -> dict:
    return {
        level: sorted(map(repr, arc.find(keys, level=level, model="PATIENT", format="dict", relational=True)))
        for level, keys in LEVELS.items()
    }


def _bytes(arc: pacscore.Archive) -> dict[str, bytes]:
    return {ref.sop_instance_uid: arc.get(ref.sop_instance_uid) for ref in arc.instances(patient=["P0", "P1", "P2"])}


def test_dask_ingest_into_s3_equals_a_local_store_many(tmp_path, client, s3_endpoint):
    paths = _corpus(tmp_path / "in")
    # a third of the sources come from the object store as s3:// URLs, the rest as local paths
    s3 = _s3(s3_endpoint)
    prefix = s3_prefix_for(tmp_path)
    sources: list[object] = []
    for i, path in enumerate(paths):
        if i % 3 == 0:
            s3.put_object(Bucket=BUCKET, Key=f"{prefix}-src/{path.name}", Body=path.read_bytes())
            sources.append(_source_url(s3_endpoint, f"{prefix}-src/{path.name}"))
        else:
            sources.append(str(path))
    with pacscore.open(tmp_path / "local") as local:
        local_report = local.store_many(paths, workers=1)
        expected, expected_bytes = _answers(local), _bytes(local)
    with pacscore.open(tmp_path / "dask", blobs=s3_url(s3_endpoint, prefix)) as arc:
        report = arc.store_many(sources, executor=client, batch_size=20)
        assert sorted(report.stored) == sorted(local_report.stored)
        assert len(report.stored) == len(paths) and not report.rejected
        assert _answers(arc) == expected
        assert _bytes(arc) == expected_bytes
        # the blobs went straight into the object store, and nothing is left unreferenced
        listed = s3.list_objects_v2(Bucket=BUCKET, Prefix=f"{prefix}/")["KeyCount"]
        assert listed == len(paths)
        check = arc.verify()
        assert check.ok and not check.orphans
        # again: every instance is a duplicate, and the store is unchanged
        again = arc.store_many(sources, executor=client)
        assert sorted(again.duplicates) == sorted(report.stored) and not again.stored
        assert s3.list_objects_v2(Bucket=BUCKET, Prefix=f"{prefix}/")["KeyCount"] == len(paths)


def test_bad_sources_are_reported_and_nothing_else_is_lost(tmp_path, client, s3_endpoint):
    paths = _corpus(tmp_path / "in")
    not_dicom = tmp_path / "in" / "notes.txt"
    not_dicom.write_text("this is not a DICOM file\n" * 20)
    missing = tmp_path / "in" / "gone.dcm"
    missing_url = _source_url(s3_endpoint, f"{s3_prefix_for(tmp_path)}-src/absent.dcm")
    sources = [str(p) for p in paths[:30]] + [str(not_dicom), str(missing), missing_url] + [str(p) for p in paths[30:]]
    with pacscore.open(tmp_path / "dask", blobs=s3_url(s3_endpoint, s3_prefix_for(tmp_path))) as arc:
        report = arc.store_many(sources, executor=client, batch_size=25)
        rejected = dict(report.rejected)
        assert set(rejected) == {str(not_dicom), str(missing), missing_url.split("?")[0]}
        assert "cannot read" in rejected[str(missing)]
        assert "NoSuchKey" in rejected[missing_url.split("?")[0]]
        assert len(report.stored) == len(paths)
        assert arc.stats()["instances"] == len(paths)
        assert arc.verify().ok


def test_a_folder_of_files_and_an_s3_folder(tmp_path, client, s3_endpoint):
    paths = _corpus(tmp_path / "in")
    s3 = _s3(s3_endpoint)
    prefix = s3_prefix_for(tmp_path)
    for path in paths[:5]:
        s3.put_object(Bucket=BUCKET, Key=f"{prefix}-src/{path.name}", Body=path.read_bytes())
    with pacscore.open(tmp_path / "dask") as arc:  # file blobs: the workers share this machine's disk
        report = arc.store_many([tmp_path / "in", _source_url(s3_endpoint, f"{prefix}-src/")], executor=client)
        assert len(report.stored) == len(paths) and len(report.duplicates) == 5
        assert arc.get("1.2.826.0.1.0.0") == paths[0].read_bytes()


def test_the_version_kept_by_on_conflict_keep_leaves_no_orphan(tmp_path, client, s3_endpoint):
    first = to_bytes(make_instance(sop="1.2.9.1", patient_name="First^Version"))
    second = to_bytes(make_instance(sop="1.2.9.1", patient_name="Second^Version"))
    with pacscore.open(tmp_path / "dask", blobs=s3_url(s3_endpoint, s3_prefix_for(tmp_path))) as arc:
        arc.store(first)
        arc.configure(on_conflict="keep")
        report = arc.store_many([second], executor=client)
        assert report.kept == ["1.2.9.1"]
        assert arc.get("1.2.9.1") == first
        check = arc.verify()  # the blob the worker put for the second version was removed
        assert check.ok and not check.orphans


def test_a_failed_blob_put_rejects_that_instance_and_nothing_else(tmp_path, monkeypatch):
    """Workers in this process (processes=False), so that their blob store can be made to fail
    for one key: that instance is rejected naming the store's error, the others are stored."""
    from pacscore import distributed as pacscore_distributed
    from pacscore.blobs.file import FileBlobStore

    paths = _corpus(tmp_path / "in")
    bad = make_instance(sop="1.2.826.0.1.1.4").SOPInstanceUID

    class Failing(FileBlobStore):
        def put_many(self, items):
            raise OSError("the batch failed")

        def put(self, key, data):
            if key.startswith(f"{bad}_"):
                raise OSError("disk on fire")
            super().put(key, data)

    real_store = pacscore_distributed._store

    def failing_store(url, root):
        store = real_store(url, root)
        return Failing(store.path) if isinstance(store, FileBlobStore) else store

    monkeypatch.setattr(pacscore_distributed, "_store", failing_store)
    with (
        distributed.LocalCluster(n_workers=1, processes=False, dashboard_address=":0") as cluster,
        distributed.Client(cluster) as local_client,
        pacscore.open(tmp_path / "arc") as arc,
    ):
        report = arc.store_many(paths, executor=local_client)
        assert [uid for uid in report.stored if uid == bad] == []
        assert len(report.stored) == len(paths) - 1
        assert len(report.rejected) == 1 and "disk on fire" in report.rejected[0][1]
        assert report.rejected[0][0] == str(tmp_path / "in" / "gen004.dcm")
        with pytest.raises(pacscore.NotFound):
            arc.get(bad)
        check = arc.verify()
        assert check.ok and not check.orphans


def test_a_blob_store_the_workers_cannot_reach_is_refused(tmp_path, client):
    with pacscore.open(tmp_path / "mem", blobs="memory://") as arc:
        with pytest.raises(ConfigError, match="memory"):
            arc.store_many([to_bytes(make_instance(sop="1.2.9.2"))], executor=client)
        assert arc.stats()["instances"] == 0


def test_cli_ingest_with_a_dask_scheduler(tmp_path, client, capsys):
    paths = _corpus(tmp_path / "in")
    status = cli_main(
        ["ingest", "--archive", str(tmp_path / "arc"), "--dask", client.scheduler.address, "-q", str(tmp_path / "in")]
    )
    out = capsys.readouterr().out
    assert status == 0, out
    assert f"stored {len(paths)}," in out
    with pacscore.open(tmp_path / "arc") as arc:
        assert arc.stats()["instances"] == len(paths)


# -- a batch holding two versions of one instance ------------------------------------------------


@pytest.mark.parametrize("distributed_ingest", [False, True], ids=["local", "dask"])
def test_the_last_version_in_a_batch_wins_as_if_stored_one_by_one(tmp_path, request, distributed_ingest):
    """Stored v1, then v2 and v1 again in one batch: one-by-one stores end with v1, and so must
    the batch (an earlier version compared the second v1 with the stored v1, called it a
    duplicate and left v2 in place)."""
    v1 = to_bytes(make_instance(sop="1.2.9.3", patient_name="One^Version"))
    v2 = to_bytes(make_instance(sop="1.2.9.3", patient_name="Two^Version"))
    executor = request.getfixturevalue("client") if distributed_ingest else None
    with pacscore.open(tmp_path / "arc") as arc:
        arc.store(v1)
        report = arc.store_many([v2, v1], executor=executor, workers=1)
        assert report.replaced == ["1.2.9.3", "1.2.9.3"] and not report.duplicates
        assert arc.get("1.2.9.3") == v1
        assert [
            d["PatientName"] for d in arc.find({"PatientName": ""}, level="PATIENT", model="PATIENT", format="dict")
        ] == ["One^Version"]
        check = arc.verify()
        assert check.ok and not check.orphans


def test_the_writer_ceiling_benchmark_indexes_every_instance(tmp_path):
    """benchmarks/writer_ceiling.py commits on distributed ingest's path (journal token, no blob
    written): every generated instance ends up indexed and nothing is left journaled."""
    from benchmarks import writer_ceiling

    result = writer_ceiling.run(300, batch=100, folder=tmp_path / "arc")
    assert result["instances"] == 300 and result["writer_instances_per_second"] > 0
    with pacscore.open(tmp_path / "arc", blobs="memory://") as arc:
        assert arc.stats()["instances"] == 300
        with arc.index.read() as txn:
            assert not list(pending.entries(txn, arc.index.db("meta")))


def test_a_backup_of_the_index_serves_as_a_read_replica_over_the_same_bucket(tmp_path, client, s3_endpoint):
    """docs/scaling.md: a read replica is a backup's index opened read-only with the
    primary's blob store URL; it answers as the primary did when the backup was taken."""
    _corpus(tmp_path / "in", generated=12)
    url = s3_url(s3_endpoint, s3_prefix_for(tmp_path))
    with pacscore.open(tmp_path / "primary", blobs=url) as arc:
        arc.store_many([tmp_path / "in"], executor=client)
        arc.backup(tmp_path / "replica")
        expected, expected_bytes = _answers(arc), _bytes(arc)
        arc.store(to_bytes(make_instance(sop="1.2.9.9", patient_id="P0")))  # after the backup
        with pacscore.open(tmp_path / "replica", blobs=url, readonly=True) as replica:
            assert _answers(replica) == expected
            assert _bytes(replica) == expected_bytes
            with pytest.raises(pacscore.PacsError, match="read-only"):
                replica.store(to_bytes(make_instance(sop="1.2.9.10")))


def test_the_input_is_read_as_ingest_goes_with_a_bounded_number_in_flight(tmp_path, client):
    """Backpressure: a generator of 240 instances is pulled at most a bounded distance ahead of
    what is committed (queued chunks, the batch being filled, one chunk being submitted), and
    every stored event comes after its commit."""
    from pacscore import distributed as pacscore_distributed

    pulled = 0

    def sources():
        nonlocal pulled
        for i in range(240):
            pulled += 1
            yield to_bytes(make_instance(sop=f"1.2.826.0.2.{i}", study=f"1.2.826.0.2.{i // 40}"))

    ahead: list[int] = []
    with pacscore.open(tmp_path / "arc") as arc:
        stored = 0

        def on_stored(event) -> None:
            nonlocal stored
            stored += 1
            ahead.append(pulled - stored)

        arc.on_stored(on_stored)
        report = arc.store_many(sources(), executor=client, batch_size=16, progress=True)
        assert len(report.stored) == 240 and stored == 240
    chunk = pacscore_distributed.CHUNK
    in_flight = max(4, 2 * sum(client.nthreads().values()))
    assert max(ahead) <= (in_flight + 2) * chunk + 16
    assert max(ahead) < 240 - 16  # not read whole before the first commit
