"""Benchmarks, the demo, and the data they run on (generated and real DICOM)."""
