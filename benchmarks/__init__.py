"""Benchmarks of driftline's detectors; see benchmarks/README.md."""
