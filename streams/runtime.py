"""How a long-lived driftline process runs: settings of the Python runtime itself."""

import contextlib
import ctypes
import functools
import gc
import os
from collections.abc import Callable, Iterator

GC_THRESHOLDS = (10_000, 100, 1_000)
"""The cyclic garbage collector's thresholds for a long-lived worker (Python's are 700, 10, 10)."""

MEMORY_RELEASE_SECONDS = 1.0
"""How often a worker hands the C heap's free pages back to the system.

Each second rather than each five: in the 100-model scaling case of
``benchmarks/throughput.py`` (with :func:`fix_mmap_threshold`), the worker's
resident memory over its last 25 seconds ran 374-384 MiB against 380-393
MiB, at 7,504 events/s against 7,873 (one run each, same session, within
the case's spread); a release takes a few milliseconds."""

MALLOC_ARENAS = 1
"""C heaps (glibc malloc arenas) a worker's threads share, unless ``MALLOC_ARENA_MAX`` says."""

MMAP_THRESHOLD_BYTES = 2**20
"""C allocations this large or larger get pages of their own, unless ``MALLOC_MMAP_THRESHOLD_``
says otherwise."""

TRIM_THRESHOLD_BYTES = 16 * 2**20
"""Free C heap at the top of the heap kept for the next allocations, up to this many bytes,
unless ``MALLOC_TRIM_THRESHOLD_`` says otherwise (:func:`release_free_memory` still hands it
back)."""

_M_TRIM_THRESHOLD = -1
"""glibc's ``mallopt`` parameter for the free bytes at the heap's top that make it shrink."""

_M_ARENA_MAX = -8
"""glibc's ``mallopt`` parameter for the most arenas (``malloc.h``)."""
_M_MMAP_THRESHOLD = -3
"""glibc's ``mallopt`` parameter for the size from which an allocation is mapped apart."""


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


@contextlib.contextmanager
def collector_paused() -> Iterator[None]:
    """Hold Python's cyclic garbage collector off while a batch of events is processed.

    A batch's decoded events, and much of what they lead to, live until the
    batch is done, so every collection during it walks them all and frees
    nothing: replay of 100,000 events of one model ran 176 young collections
    that took about 2 µs an event and found 10 objects in cycles. After the
    batch they are freed by their reference counts, which also takes them
    off the collector's count of new objects, so the next collection comes
    no sooner for having waited; cycles made during the batch are collected
    then. A collector already off stays off.

    >>> import gc
    >>> with collector_paused():
    ...     gc.isenabled()
    False
    >>> gc.isenabled()
    True
    """
    if not gc.isenabled():
        yield
        return
    gc.disable()
    try:
        yield
    finally:
        gc.enable()


def limit_malloc_arenas(arenas: int = MALLOC_ARENAS) -> bool:
    """Have the process's threads share ``arenas`` C heaps; whether this C library could.

    glibc gives each thread an arena of its own when it first allocates, up
    to eight per core: Kafka's fetch thread then allocates every fetched
    record in its arena while the worker's state grows in the main one, and
    each keeps its free pages scattered among its survivors. In the
    100-model scaling case, same session, one run each, the worker ended at
    393 MiB with glibc's arenas and 364 MiB with one (``MALLOC_ARENA_MAX=1``),
    at 6,654 and 6,227 events/s (within the case's spread from run to run):
    the GIL lets one thread run Python at a time, so they seldom wait for
    the heap. Call it before the threads start: arenas made already stay. A
    ``MALLOC_ARENA_MAX`` in the environment is glibc's to apply and is left
    as it is; other C libraries have no such setting, and this does nothing
    and says so.
    """
    return _set_malloc_option(_M_ARENA_MAX, arenas, unless_set="MALLOC_ARENA_MAX")


def fix_mmap_threshold(threshold: int = MMAP_THRESHOLD_BYTES) -> bool:
    """Give every C allocation of ``threshold`` bytes or more pages of its own, returned to the
    system as soon as it is freed; whether this C library could.

    glibc maps large allocations apart from its heap (from 128 KiB), but
    each time such a mapping is freed it raises that size to the freed
    one's, up to 32 MiB, so that the same allocation comes from the heap
    next time. A worker frees large buffers all the time: Kafka's fetch
    responses (then up to 2 MiB a partition), each batch's arrays. After the
    first few, they all came from the heap, freed among the state that
    lives on, and stayed resident until the next :func:`release_free_memory`.
    A fixed threshold stops that. In the 100-model scaling case of
    ``benchmarks/throughput.py``, the worker's resident memory over its
    last 25 seconds ran 380-393 MiB with 1 MiB, against 389-405 MiB with
    glibc's moving threshold (one run each, same session), at the same CPU
    time an event for one model (36.2 and 37.2 µs against 36.4 and 37.3).
    256 KiB saved more memory (365-387 MiB) but cost ~10 % more CPU time:
    each batch's arrays of a few hundred KiB then took fresh pages, zeroed
    by the system, every time. A ``MALLOC_MMAP_THRESHOLD_`` in the
    environment is glibc's to apply and is left as it is; other C libraries
    have no such setting, and this does nothing and says so.
    """
    return _set_malloc_option(_M_MMAP_THRESHOLD, threshold, unless_set="MALLOC_MMAP_THRESHOLD_")


def keep_heap_top(threshold: int = TRIM_THRESHOLD_BYTES) -> bool:
    """Let ``free`` leave up to ``threshold`` free bytes at the top of the C heap; whether this
    C library could.

    glibc shrinks its heap whenever more than 128 KiB lie free at its top
    (once the mmap threshold is fixed, this threshold no longer moves with
    it). Replay's batches of 5,000 events free arrays of up to 800 KB at
    the top, and the next batch allocates them again: each time, the pages
    went back to the system and came again as new ones, zeroed by it on
    first touch. Kept (with the mmap threshold at 1 MiB), the normal scores
    of 100,000 values of 20 features took 4.4 ms instead of 8.3-8.6, and
    replay in ``benchmarks/throughput.py`` (two alternated rounds, same
    session) 23.2 and 23.5 µs an event for one model instead of 25.2 and
    24.6; for ten models, 30.1 and 32.3 against 31.9 and 31.4 (their
    largest arrays, a few MiB, were still mapped apart: replay's own mmap
    threshold is higher, see ``driftline.replay.tune_replay_process``). A
    worker calls it too: its batches of 2,000 events took ~0.9 page faults
    an event without it, none with it (replay taken the worker's way,
    in-process), and ``driftline worker`` (two alternated rounds of
    ``--paths c``, two runs each) took 31.8, 31.1, 30.5 and 29.7 µs an
    event against 31.4, 32.6, 32.2 and 33.3 for one model, 35.9, 38.3,
    37.5 and 36.9 against 39.1, 38.5, 35.3 and 38.6 for ten, ending 0-1
    MiB larger. The free pages kept are at most ``threshold``, and
    :func:`release_free_memory` still hands them back (a worker, every
    second). A ``MALLOC_TRIM_THRESHOLD_`` in the environment is glibc's to
    apply and is left as it is; other C libraries have no such setting, and
    this does nothing and says so.
    """
    return _set_malloc_option(_M_TRIM_THRESHOLD, threshold, unless_set="MALLOC_TRIM_THRESHOLD_")


def release_free_memory() -> bool:
    """Hand the free pages inside the C heap back to the system; whether this C library can.

    A worker's long-lived state (waiting predictions, remembered ids,
    detector histories) is allocated among the short-lived objects of every
    batch and of Kafka's fetches. What is freed around the survivors stays
    in the process: glibc returns memory on its own only from the top of a
    heap. Its ``malloc_trim`` also releases the whole free pages in between.
    Measured with 100 models and 300,000 predictions, the worker's resident
    memory was 531 MiB without it and 444 MiB with it every 5 seconds, at no
    measurable cost in speed: a call takes ~3 ms on a 400 MB heap (~50 ms
    the one time it hands back 500 MB freed at once). A worker calls it
    every :data:`MEMORY_RELEASE_SECONDS`. Other C libraries (musl, macOS)
    have no such call; there this does nothing and says so.
    """
    trim = _malloc_trim()
    if trim is None:
        return False
    trim()
    return True


def _set_malloc_option(parameter: int, value: int, *, unless_set: str) -> bool:
    """glibc's ``mallopt(parameter, value)``, unless the environment variable ``unless_set``
    (glibc's own for it) is set; whether it was set here."""
    if unless_set in os.environ:
        return False
    mallopt = _mallopt()
    if mallopt is None:
        return False
    return bool(mallopt(parameter, value))


@functools.cache
def _mallopt() -> Callable[[int, int], int] | None:
    """glibc's ``mallopt``, if the process's C library has it."""
    try:
        function = ctypes.CDLL(None).mallopt
    except (OSError, AttributeError):
        return None
    function.argtypes = [ctypes.c_int, ctypes.c_int]
    function.restype = ctypes.c_int
    return lambda parameter, value: int(function(parameter, value))


@functools.cache
def _malloc_trim() -> Callable[[], int] | None:
    """glibc's ``malloc_trim(0)``, if the process's C library has it."""
    try:
        function = ctypes.CDLL(None).malloc_trim
    except (OSError, AttributeError):
        return None
    function.argtypes = [ctypes.c_size_t]
    function.restype = ctypes.c_int
    return lambda: int(function(0))
