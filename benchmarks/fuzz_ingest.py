"""Coverage-guided fuzzing of ingest with atheris (libFuzzer for Python). Not run in CI.

    pip install atheris                         # needs a clang-built CPython wheel or clang
    python benchmarks/fuzz_ingest.py -atheris_runs=200000 -max_len=65536 -rss_limit_mb=1024 \
        -timeout=10 fuzz-corpus/

The seed corpus (written into the corpus folder on the first run when it is empty) is a few of
pydicom's bundled files cut down to their headers, plus small crafted files: a deflated data
set, undefined-length sequences, an implicit VR file, a bare data set without the Part-10
preamble.

The property checked for every input:

1. ``pacscore.ingest.parse_bytes`` either returns a ParsedInstance or raises IngestError;
   anything else (an escaping pydicom error, RecursionError, MemoryError, ...) is a finding;
2. with ``--store`` (``PACSCORE_FUZZ_STORE=1``): the input is also stored in a scratch archive
   in memory blobs, and a stored instance comes back byte-identical from ``get``. Every 1,000
   inputs the archive is verified (a finding if it is damaged).

libFuzzer's ``-rss_limit_mb`` and ``-timeout`` turn unbounded memory (a deflate bomb: see
docs/reliability.md) and unbounded time into findings too. Crashing inputs are written by
libFuzzer as ``crash-<sha1>``; replay one with ``python benchmarks/fuzz_ingest.py crash-...``.

Without atheris installed, ``python benchmarks/fuzz_ingest.py --smoke N`` runs the same
property over N random mutations of the seeds (no coverage guidance), useful as a quick check.
"""

from __future__ import annotations

import io
import os
import random
import struct
import sys
import tempfile
import warnings
from pathlib import Path

warnings.simplefilter("ignore")

STORE = os.environ.get("PACSCORE_FUZZ_STORE") == "1" or "--store" in sys.argv
if "--store" in sys.argv:
    sys.argv.remove("--store")


def seeds() -> list[bytes]:
    import pydicom
    import pydicom.data
    from pydicom.dataset import Dataset, FileMetaDataset
    from pydicom.uid import DeflatedExplicitVRLittleEndian, ExplicitVRLittleEndian, ImplicitVRLittleEndian

    folder = Path(pydicom.data.__file__).parent / "test_files"
    out = []
    for name in ("CT_small.dcm", "MR_small.dcm", "rtplan.dcm", "image_dfl.dcm", "ExplVR_BigEnd.dcm", "test-SR.dcm"):
        path = folder / name
        if path.exists():
            out.append(path.read_bytes()[:16384])
    for syntax in (ExplicitVRLittleEndian, ImplicitVRLittleEndian, DeflatedExplicitVRLittleEndian):
        ds = Dataset()
        ds.SpecificCharacterSet = "ISO_IR 192"
        ds.SOPClassUID = "1.2.840.10008.5.1.4.1.1.2"
        ds.SOPInstanceUID, ds.StudyInstanceUID, ds.SeriesInstanceUID = "1.2.3.4", "1.2.3", "1.2.3.1"
        ds.PatientName, ds.PatientID, ds.StudyDate = "Müller^Hans", "P1", "20200101"
        item = Dataset()
        item.ReferencedSOPInstanceUID = "1.2.3.9"
        ds.ReferencedImageSequence = [item]
        ds.file_meta = FileMetaDataset()
        ds.file_meta.TransferSyntaxUID = syntax
        ds.file_meta.MediaStorageSOPClassUID = ds.SOPClassUID
        ds.file_meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
        buf = io.BytesIO()
        pydicom.dcmwrite(buf, ds, enforce_file_format=True)
        out.append(buf.getvalue())
    out.append(out[-3][132:])  # a bare data set, as sent over the network (meta included)
    seq = struct.pack("<HH2sHI", 0x0040, 0xA730, b"SQ", 0, 0xFFFFFFFF)
    out.append(out[-4] + seq + struct.pack("<HHI", 0xFFFE, 0xE000, 0xFFFFFFFF) * 2)
    return out


_archive = None
_count = 0


def check(data: bytes) -> None:
    """The fuzzed property (see the module docstring); raises on a finding."""
    global _archive, _count
    import pacscore
    from pacscore import IngestError, ingest

    try:
        ingest.parse_bytes(data, "<fuzz>")
    except IngestError:
        return
    if not STORE:
        return
    if _archive is None:
        _archive = pacscore.open(tempfile.mkdtemp(prefix="pacscore-fuzz-"), blobs="memory://")
    try:
        result = _archive.store(data)
    except IngestError:
        return
    if result.status != "duplicate" and _archive.get(result.sop_instance_uid) != data:
        raise AssertionError("stored bytes differ from the input")
    _count += 1
    if _count % 1000 == 0:
        report = _archive.verify()
        if report.damaged:
            raise AssertionError(report.summary())


def mutate(data: bytes, rng: random.Random) -> bytes:
    b = bytearray(data)
    for _ in range(rng.randint(1, 8)):
        if not b:
            break
        pos = rng.randrange(len(b))
        op = rng.randrange(5)
        if op == 0:
            b[pos] ^= 1 << rng.randrange(8)
        elif op == 1:
            b[pos : pos + 4] = rng.choice([b"\xff\xff\xff\xff", b"\xf0\xff\xff\xff", b"\x00\x00\x00\x00"])
        elif op == 2:
            del b[pos : pos + rng.randint(1, 64)]
        elif op == 3:
            b[pos:pos] = bytes(rng.randrange(256) for _ in range(rng.randint(1, 16)))
        else:
            b = b[:pos]
    return bytes(b)


def smoke(n: int, seed: int = 0) -> int:
    rng = random.Random(seed)
    corpus = seeds()
    findings = 0
    for i in range(n):
        data = mutate(rng.choice(corpus), rng)
        try:
            check(data)
        except Exception as exc:
            findings += 1
            name = f"smoke-finding-{i}"
            Path(name).write_bytes(data)
            print(f"{name}: {type(exc).__name__}: {exc}"[:300])
    print(f"{n} inputs, {findings} findings")
    return 1 if findings else 0


def main() -> int:
    if len(sys.argv) >= 3 and sys.argv[1] == "--smoke":
        return smoke(int(sys.argv[2]))
    try:
        import atheris
    except ImportError:
        print("atheris is not installed (pip install atheris); try --smoke N for an unguided run")
        return 2
    corpus_dirs = [a for a in sys.argv[1:] if not a.startswith("-") and os.path.isdir(a)]
    for folder in corpus_dirs[:1]:
        if not any(Path(folder).iterdir()):
            for i, data in enumerate(seeds()):
                Path(folder, f"seed-{i}").write_bytes(data)
    with atheris.instrument_imports():
        import pacscore.ingest  # noqa: F401  (instrumented for coverage)

    def one_input(data: bytes) -> None:
        check(data)

    atheris.Setup(sys.argv, one_input)
    atheris.Fuzz()
    return 0


if __name__ == "__main__":
    sys.exit(main())
