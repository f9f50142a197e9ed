import gc
import os
import platform
import subprocess
import sys
from collections.abc import Callable

import numpy as np
import pytest

from driftline.streams.runtime import (
    GC_THRESHOLDS,
    collector_paused,
    fix_mmap_threshold,
    keep_heap_top,
    limit_malloc_arenas,
    release_free_memory,
    tune_garbage_collector,
)

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


def test_no_collection_runs_while_paused_and_the_collector_comes_back() -> None:
    collections: list[int] = []

    def note(phase: str, info: dict[str, int]) -> None:
        if phase == "start":
            collections.append(info["generation"])

    gc.callbacks.append(note)
    try:
        with collector_paused():
            assert not gc.isenabled()
            kept = [[] for _ in range(5 * gc.get_threshold()[0])]  # well past a young collection
            assert collections == []
        assert gc.isenabled()
        more = [[] for _ in range(10)]  # the first new objects after it start the one held off
        assert collections
        assert len(kept) + len(more) == 5 * gc.get_threshold()[0] + 10
        with pytest.raises(RuntimeError), collector_paused():
            raise RuntimeError("a batch that fails")
        assert gc.isenabled()
    finally:
        gc.callbacks.remove(note)


def test_a_collector_switched_off_stays_off() -> None:
    gc.disable()
    try:
        with collector_paused():
            assert not gc.isenabled()
        assert not gc.isenabled()
    finally:
        gc.enable()


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


FREED_AMONG_SURVIVORS = """
import os, sys
import numpy as np
from driftline.streams.runtime import fix_mmap_threshold
if sys.argv[1] == "fixed":
    assert fix_mmap_threshold()
def resident():
    with open("/proc/self/statm") as statm:
        return int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
np.ones(2**20)  # 8 MiB, mapped apart and freed: glibc maps nothing under 8 MiB apart from now on
arrays = [np.ones(2**18) for _ in range(128)]  # 256 MiB in arrays of 2 MiB
survivor = arrays[-1]  # the newest, on top of the others if they came from the heap
before = resident()
del arrays
print(before - resident())
"""


def _run_without_malloc_settings(script: str, mode: str) -> subprocess.CompletedProcess[str]:
    """Run a script in a fresh interpreter, with glibc's ``MALLOC_*`` variables unset."""
    env = {key: value for key, value in os.environ.items() if not key.startswith("MALLOC_")}
    return subprocess.run(
        [sys.executable, "-c", script, mode],
        capture_output=True,
        text=True,
        check=True,
        env=env,
        timeout=60,
    )


def _released_on_free(mode: str) -> int:
    """Bytes a subprocess handed back on freeing 127 arrays of 2 MiB, without a trim."""
    return int(_run_without_malloc_settings(FREED_AMONG_SURVIVORS, mode).stdout)


@pytest.mark.skipif(not GLIBC, reason="the mmap threshold is glibc's")
def test_large_buffers_go_back_to_the_system_when_freed_once_the_threshold_is_fixed() -> None:
    assert _released_on_free("moving") < 32 * 2**20  # glibc's own: they stay in its heap
    assert _released_on_free("fixed") > 192 * 2**20


FREED_AT_THE_TOP = """
import os, sys
import numpy as np
from driftline.streams.runtime import fix_mmap_threshold, keep_heap_top, release_free_memory
assert fix_mmap_threshold()  # arrays under 1 MiB come from the heap
if sys.argv[1] == "kept":
    assert keep_heap_top()
def resident():
    with open("/proc/self/statm") as statm:
        return int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
release_free_memory()  # what start-up freed goes first: the trim below measures the arrays alone
arrays = [np.ones(2**16) for _ in range(16)]  # 8 MiB in arrays of 512 KiB, at the heap's top
before = resident()
del arrays
freed = resident()
release_free_memory()
print(before - freed, freed - resident())
"""


def _released_at_the_top(mode: str) -> tuple[int, int]:
    """Bytes a subprocess handed back on freeing 8 MiB at the top of its heap, then on a trim."""
    on_free, on_trim = _run_without_malloc_settings(FREED_AT_THE_TOP, mode).stdout.split()
    return int(on_free), int(on_trim)


@pytest.mark.skipif(not GLIBC, reason="the trim threshold is glibc's")
def test_free_memory_at_the_heaps_top_stays_for_the_next_batch_until_a_release() -> None:
    on_free, on_trim = _released_at_the_top("default")
    assert on_free > 6 * 2**20  # glibc's own: handed back at once, to be asked for again
    assert on_trim < 2**20
    on_free, on_trim = _released_at_the_top("kept")
    assert on_free < 2**20
    assert on_trim > 6 * 2**20  # a release still hands it back


ARENAS_OF_A_THREAD = """
import ctypes, sys, threading
from driftline.streams.runtime import limit_malloc_arenas
if sys.argv[1] == "limited":
    assert limit_malloc_arenas()
kept = []
thread = threading.Thread(target=lambda: kept.extend(bytes(4_000) for _ in range(1_000)))
thread.start()
thread.join()
ctypes.CDLL(None).malloc_stats()  # one "Arena n:" paragraph per arena, on stderr
"""


def _arenas(mode: str) -> int:
    return _run_without_malloc_settings(ARENAS_OF_A_THREAD, mode).stderr.count("Arena ")


@pytest.mark.skipif(not GLIBC, reason="malloc arenas are glibc's")
def test_a_thread_allocates_from_the_shared_heap_once_arenas_are_limited() -> None:
    assert _arenas("free") == 2  # glibc gives a new thread an arena of its own
    assert _arenas("limited") == 1


MALLOC_OPTIONS = [
    pytest.param(limit_malloc_arenas, "MALLOC_ARENA_MAX", "4", id="arenas"),
    pytest.param(fix_mmap_threshold, "MALLOC_MMAP_THRESHOLD_", "131072", id="mmap-threshold"),
    pytest.param(keep_heap_top, "MALLOC_TRIM_THRESHOLD_", "131072", id="trim-threshold"),
]


@pytest.mark.skipif(not GLIBC, reason="malloc options are glibc's")
@pytest.mark.parametrize(("setting", "variable", "value"), MALLOC_OPTIONS)
def test_a_malloc_option_in_the_environment_is_left_to_glibc(
    monkeypatch: pytest.MonkeyPatch, setting: Callable[[], bool], variable: str, value: str
) -> None:
    monkeypatch.setenv(variable, value)
    assert not setting()


@pytest.mark.skipif(GLIBC, reason="only where the C library has no mallopt")
@pytest.mark.parametrize(("setting", "variable", "value"), MALLOC_OPTIONS)
def test_without_mallopt_malloc_options_are_left_alone(
    monkeypatch: pytest.MonkeyPatch, setting: Callable[[], bool], variable: str, value: str
) -> None:
    monkeypatch.delenv(variable, raising=False)
    assert not setting()
