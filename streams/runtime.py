"""How a long-lived driftline process runs: settings of the Python runtime itself."""

import gc

GC_THRESHOLDS = (10_000, 100, 1_000)
"""The cyclic garbage collector's thresholds for a long-lived worker (Python's are 700, 10, 10)."""


def tune_garbage_collector() -> None:
    """Keep Python's cyclic garbage collector from stalling a busy, long-lived process.

    A worker holds hundreds of thousands of long-lived objects (remembered
    event ids, waiting predictions, detector histories) and allocates many
    short-lived ones per batch. With Python's default thresholds the
    collector walks the whole heap every few seconds; measured on replay of
    10 models, that was a quarter of the time, in pauses up to 0.4 s that
    delay alerts. Objects alive at start-up are frozen out of collections,
    and full collections become rare; the worker's data creates no cycles
    to speak of, so young cycles are still collected in time.
    """
    gc.freeze()
    gc.set_threshold(*GC_THRESHOLDS)
