"""When a worker hands freed memory back: after a burst, once quiet, and now and then under load."""

from __future__ import annotations

import sys

import pytest

from vaultgate.server.fleet.memory import QUIET_SHARE, TRIM_EVERY, WORK_SECONDS, Trimmer, glibc_trim


class Process:
    """A fake process clock: CPU seconds used and wall seconds passed, moved by the test."""

    def __init__(self, cpu: float = 0.0) -> None:
        self.cpu, self.now, self.trims = cpu, 0.0, 0

    def beat(self, used: float, seconds: float = 1.0) -> None:
        self.cpu += used
        self.now += seconds

    def trimmer(self) -> Trimmer:
        return Trimmer(self.release, cpu=lambda: self.cpu, clock=lambda: self.now)

    def release(self) -> None:
        self.trims += 1


BUSY = 0.9  # CPU seconds in a one-second beat: a loaded worker
QUIET = QUIET_SHARE / 2


def test_what_start_up_freed_is_returned_at_the_first_quiet_beat() -> None:
    process = Process(cpu=2.5)  # the imports and the app build
    trimmer = process.trimmer()
    process.beat(QUIET)
    assert trimmer.after_beat()
    # Then nothing more to return while nothing happens.
    for _ in range(30):
        process.beat(QUIET)
        assert not trimmer.after_beat()
    assert process.trims == 1


def test_a_burst_is_returned_once_it_is_over_not_while_it_lasts() -> None:
    process = Process()
    trimmer = process.trimmer()
    for _ in range(int(TRIM_EVERY) - 1):
        process.beat(BUSY)
        assert not trimmer.after_beat()
    process.beat(QUIET)
    assert trimmer.after_beat()
    assert process.trims == 1


def test_under_a_lasting_load_it_trims_at_most_every_trim_every_seconds() -> None:
    process = Process()
    trimmer = process.trimmer()
    beats = int(TRIM_EVERY) * 5
    for _ in range(beats):
        process.beat(BUSY)
        trimmer.after_beat()
    assert process.trims == 5


def test_an_idle_workers_own_chores_never_add_up_to_a_trim() -> None:
    process = Process()
    trimmer = process.trimmer()
    for _ in range(1000):
        process.beat(QUIET)  # the heartbeat, the change feed: under the quiet share
        assert not trimmer.after_beat()
    # The twin: one busy second is enough.
    process.beat(QUIET_SHARE + 2 * WORK_SECONDS)
    assert not trimmer.after_beat()  # not in the middle of the work
    process.beat(QUIET)
    assert trimmer.after_beat()


def test_without_malloc_trim_nothing_is_done() -> None:
    process = Process(cpu=2.5)
    # A C library without malloc_trim: glibc_trim() gave None.
    trimmer = Trimmer(None, cpu=lambda: process.cpu, clock=lambda: process.now)
    process.beat(QUIET)
    assert not trimmer.after_beat()


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc is Linux's")
def test_glibc_trim_calls_the_c_library() -> None:
    trim = glibc_trim()
    if trim is None:
        pytest.skip("a C library without malloc_trim (musl)")
    assert trim() in (0, 1)  # 1: memory was returned; 0: there was none to return
