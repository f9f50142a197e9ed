import gc
import os
import platform

import numpy as np
import pytest

from driftline.streams.runtime import GC_THRESHOLDS, release_free_memory, tune_garbage_collector

GLIBC = platform.libc_ver()[0] == "glibc"


def resident_bytes() -> int:
    with open("/proc/self/statm") as statm:
        return int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def test_the_collector_is_tuned_and_start_up_objects_frozen() -> None:
    before = gc.get_threshold()
    try:
        tune_garbage_collector()
        assert gc.get_threshold() == GC_THRESHOLDS
        assert gc.get_freeze_count() > 0
    finally:
        gc.unfreeze()
        gc.set_threshold(*before)


@pytest.mark.skipif(not GLIBC, reason="malloc_trim is glibc's")
def test_free_pages_between_survivors_go_back_to_the_system() -> None:
    # 64 KiB arrays come from the C heap (under its mmap threshold); keeping every
    # 16th pins the heap's top, so the pages freed in between stay resident...
    arrays = [np.ones(8_192) for _ in range(4_096)]  # 256 MiB
    survivors = arrays[::16]
    del arrays
    pinned = resident_bytes()
    # ...until they are handed back.
    assert release_free_memory()
    assert pinned - resident_bytes() > 128 * 2**20
    assert all(float(a[0]) == 1.0 for a in survivors)


@pytest.mark.skipif(GLIBC, reason="only where the C library has no malloc_trim")
def test_without_malloc_trim_nothing_is_released() -> None:
    assert not release_free_memory()
