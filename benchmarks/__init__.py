"""Benchmarks of driftline's detectors; see benchmarks/README.md.

The replay and in-process paths run with one BLAS thread, as the
``driftline`` command does (see :mod:`driftline.blas`).
"""

import driftline.blas  # noqa: F401
