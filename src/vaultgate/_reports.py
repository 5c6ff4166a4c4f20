"""Outcome reports off the caller's critical path: a bounded backlog sent in the background.

``request()`` hands its report here and returns the provider's answer at once. The async twin
sends each report as a task kept in a set (the official client's ``_schedule_audit_log``); the
blocking twin hands it to one daemon thread through a bounded queue. That thread takes all
that is queued (up to ``MAX_BATCH``) and sends it as one batch, pipelined over a few
connections (``SyncLane.pipeline``): with many caller threads holding the GIL, one report at a
time could not keep up (each send and each read waits for the GIL again), and reports were
dropped. Both drain on close. A report is best effort: a failure is logged (once per run of
failures, never with a traceback or a body) and counted, a full backlog drops the new report
and counts it, and nothing here ever raises into the caller. A process that exits without
closing loses what is still queued.
"""

from __future__ import annotations

import asyncio
import logging
import queue
import threading
from abc import ABC, abstractmethod
from collections.abc import Awaitable, Callable
from typing import Any, Final

import httpx

from ._calls import Call
from ._errors import AlterValueError, NetworkError

logger = logging.getLogger("vaultgate")

DEFAULT_BACKLOG: Final = 1000
MAX_BATCH: Final = 100  # reports the thread takes at once: the backlog drains a batch at a time
THREAD_NAME: Final = "vaultgate-reports"

Report = tuple[dict[str, Any], Call]
# A delivery's result: the vault's answer (or only its status), or why there is none.
Outcome = httpx.Response | int | NetworkError | BaseException


def check_backlog(limit: int) -> int:
    if isinstance(limit, bool) or not isinstance(limit, int) or limit < 1:
        raise AlterValueError("max_pending_reports must be a positive integer")
    return limit


class Outbox(ABC):
    """The counters and the logging the two twins share."""

    def __init__(self, limit: int) -> None:
        self.limit = check_backlog(limit)
        self.dropped = 0
        self.failed = 0
        self._lock = threading.Lock()
        self._failing = False

    @property
    @abstractmethod
    def pending(self) -> int:
        """Reports handed over and not yet settled."""

    @abstractmethod
    def put(self, body: dict[str, Any], call: Call) -> None:
        """Queue one report; never blocks and never raises."""

    def _drop(self) -> None:
        with self._lock:
            self.dropped += 1
            first = self.dropped == 1
        if first:
            logger.warning(
                "vaultgate: %d audit reports are already pending; new ones are dropped until "
                "the backlog drains (counted in dropped_reports)",
                self.limit,
            )

    def _settle(self, outcome: Outcome) -> None:
        """Count and log one delivery; only the first failure of a run is a warning."""
        status = outcome.status_code if isinstance(outcome, httpx.Response) else outcome
        if isinstance(status, int) and 200 <= status < 300:
            self._failing = False
            return
        with self._lock:
            self.failed += 1
            first, self._failing = not self._failing, True
        log = logger.warning if first else logger.debug
        log("vaultgate: %s", _describe(outcome))


def _describe(outcome: Outcome) -> str:
    """What went wrong, by status or exception type only: a body or message may quote secrets."""
    if isinstance(outcome, httpx.Response):
        return f"the vault refused the audit report: HTTP {outcome.status_code}"
    if isinstance(outcome, int):
        return f"the vault refused the audit report: HTTP {outcome}"
    # A NetworkError's text names the exception type only (see error_from_httpx).
    reason = str(outcome) if isinstance(outcome, NetworkError) else type(outcome).__name__
    return f"the audit report was not delivered: {reason}"


class TaskOutbox(Outbox):
    """``AlterVault``'s backlog: one task per report, kept in a set until it is done."""

    def __init__(
        self, send: Callable[[dict[str, Any], Call], Awaitable[httpx.Response | int]], limit: int
    ) -> None:
        super().__init__(limit)
        self._send = send
        self._tasks: set[asyncio.Task[None]] = set()

    @property
    def pending(self) -> int:
        return len(self._tasks)

    def put(self, body: dict[str, Any], call: Call) -> None:
        if len(self._tasks) >= self.limit:
            self._drop()
            return
        task = asyncio.get_running_loop().create_task(self._deliver(body, call))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _deliver(self, body: dict[str, Any], call: Call) -> None:
        outcome: Outcome
        try:
            outcome = await self._send(body, call)
        except Exception as exc:  # a background report must never raise
            outcome = exc
        self._settle(outcome)

    async def drain(self) -> None:
        """Wait for every pending report, including any scheduled while waiting."""
        while self._tasks:
            await asyncio.gather(*self._tasks, return_exceptions=True)


class ThreadOutbox(Outbox):
    """``SyncVault``'s backlog: a bounded queue emptied by one daemon thread, started lazily.

    ``send`` delivers a batch and tells each report's outcome, in order. The queue holds up to
    ``limit`` reports besides the batch the thread is sending.
    """

    def __init__(self, send: Callable[[list[Report]], list[Outcome]], limit: int) -> None:
        super().__init__(limit)
        self._send = send
        self._queue: queue.Queue[Report | None] = queue.Queue(maxsize=self.limit)
        self._thread: threading.Thread | None = None
        self._closed = False

    @property
    def pending(self) -> int:
        """Queued plus in flight: an item counts until the thread is done with it."""
        return self._queue.unfinished_tasks

    def put(self, body: dict[str, Any], call: Call) -> None:
        if not self._start():
            self._drop()
            return
        try:
            self._queue.put_nowait((body, call))
        except queue.Full:
            self._drop()

    def _start(self) -> bool:
        with self._lock:
            if self._closed:
                return False
            if self._thread is None:
                self._thread = threading.Thread(target=self._run, name=THREAD_NAME, daemon=True)
                self._thread.start()
            return True

    def _run(self) -> None:
        stop = False
        while not stop:
            batch, stop = self._take()
            try:
                if batch:
                    self._deliver(batch)
            finally:
                for _ in range(len(batch) + int(stop)):  # the stop mark is an item too
                    self._queue.task_done()

    def _take(self) -> tuple[list[Report], bool]:
        """What is queued, waiting for the first; True once the stop mark was taken."""
        item = self._queue.get()
        batch: list[Report] = []
        while item is not None:
            batch.append(item)
            if len(batch) == MAX_BATCH:
                return batch, False
            try:
                item = self._queue.get_nowait()
            except queue.Empty:
                return batch, False
        return batch, True

    def _deliver(self, batch: list[Report]) -> None:
        outcomes: list[Outcome]
        try:
            outcomes = self._send(batch)
        except Exception as exc:  # the worker thread must outlive any failure
            outcomes = [exc] * len(batch)
        for outcome in outcomes:
            self._settle(outcome)

    def drain(self) -> None:
        """Deliver what is queued, then stop the thread; later reports are dropped."""
        with self._lock:
            self._closed = True
            thread = self._thread
        if thread is None:
            return
        self._queue.put(None)  # after the queued reports; waits for room while the queue is full
        thread.join()
