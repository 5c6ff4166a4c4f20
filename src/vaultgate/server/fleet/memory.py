"""Handing the memory a worker freed back to the system once a burst of work is over.

glibc keeps what a process frees for reuse and returns to the system only the free space at the
top of its heap. What a burst leaves free further down (the imports at start, a backlog of audit
records, the buffers of 32 connections) stays resident: measured on a ``serve --workers 2``
worker, ``malloc_trim(0)`` gave back about 4 MiB right after start and 4 to 5 MiB after
``make bench``'s rows, in well under a millisecond. The heartbeat thread, which runs every second
anyway, asks a ``Trimmer`` after each beat; it trims when the process has just gone quiet after
some work (a steady load would only fault the same pages in again), and at most every
``TRIM_EVERY`` seconds while the work goes on. Where the C library has no ``malloc_trim``
(musl, macOS), nothing is done.
"""

from __future__ import annotations

import ctypes
import time
from collections.abc import Callable
from typing import Final

# CPU seconds spent (above the quiet share) since the last trim that make one worth it;
# start-up spends several.
WORK_SECONDS: Final = 0.2
# A beat in which the process used at most this share of one core's time counts as quiet.
QUIET_SHARE: Final = 0.1
# Under a lasting load, freed memory is mostly reused; one trim this often bounds what is not.
TRIM_EVERY: Final = 10.0


def glibc_trim() -> Callable[[], object] | None:
    """``malloc_trim(0)`` of the C library this process runs on, or None where it has none."""
    try:
        libc = ctypes.CDLL(None)  # the symbols already loaded into this process
    except OSError:
        return None
    trim = getattr(libc, "malloc_trim", None)
    if trim is None:
        return None
    trim.argtypes = [ctypes.c_size_t]
    trim.restype = ctypes.c_int
    return lambda: trim(0)  # ctypes releases the GIL for the call: requests go on meanwhile


class Trimmer:
    """Decides after each beat whether to ``release`` (``glibc_trim()``; None: never)."""

    def __init__(
        self,
        release: Callable[[], object] | None,
        cpu: Callable[[], float] = time.process_time,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._release = release
        self._cpu = cpu
        self._clock = clock
        self._last_cpu = cpu()
        self._last = self._since = clock()
        # Counted from interpreter start, so the first quiet beat returns what start-up freed.
        self._work = self._last_cpu

    def after_beat(self) -> bool:
        """Trim when due; True when it did."""
        now, cpu = self._clock(), self._cpu()
        used, elapsed = cpu - self._last_cpu, now - self._last
        self._last_cpu, self._last = cpu, now
        quiet = used <= QUIET_SHARE * elapsed
        # What an idle worker spends (its heartbeat, the change feed) is not work that frees.
        self._work += max(0.0, used - QUIET_SHARE * elapsed)
        if self._work < WORK_SECONDS:
            if quiet:
                self._since = now  # nothing to return: a load starting now is timed from here
            return False
        if self._release is None or (not quiet and now - self._since < TRIM_EVERY):
            return False
        self._release()
        self._work, self._since = 0.0, now
        return True
