"""Outcome reports off the caller's critical path: a bounded backlog sent in the background.

``request()`` hands its report here and returns the provider's answer at once. What queues up
while earlier reports are in flight goes out together: several reports of one caller in one
signed request to ``/sdk/oauth/audit/api-calls`` (``BATCH_PATH``, up to ``MAX_BATCH``), where
the vault records each as its own event, all or none. For the vault, one request per report
cost about as much as the token call itself, so a whole ``request()`` ran at a third of the
token route's rate; a batch pays for authentication, the nonce and the commit once. A lone
report goes alone to ``/sdk/oauth/audit/api-call``, the official client's route; so do the
reports of a batch the vault refused as a batch (one report at fault: the others are still
recorded), and every report once the vault turned out not to know the batch route.

The async twin sends from up to ``SENDERS`` tasks kept in a set (the official client keeps
its ``_schedule_audit_log`` tasks so); the blocking twin from one daemon thread fed through a
bounded queue, pipelining what it sends over a few connections (``SyncLane.pipeline``). Both
drain on close. A report is best effort: a failure is logged (once per run of failures, never
with a traceback or a body) and counted, a full backlog drops the new report and counts it,
and nothing here ever raises into the caller. A process that exits without closing loses what
is still queued.
"""

from __future__ import annotations

import asyncio
import enum
import json
import logging
import queue
import threading
import time
from abc import ABC, abstractmethod
from collections import deque
from collections.abc import Awaitable, Callable, Sequence
from typing import Final

import httpx

from ._calls import Call
from ._errors import AlterValueError, NetworkError

logger = logging.getLogger("vaultgate")

DEFAULT_BACKLOG: Final = 1000
MAX_BATCH: Final = 100  # reports taken at once (the vault's limit per batch request)
SENDERS: Final = 2  # the async twin's batches in flight at once
# How long a sender waits for more reports before it sends what it has (unless the batch is
# full or the vault is closing): the longest a report's outcome record lags its call. Nobody
# waits for a report, so this costs no caller any time, and each batch spares the vault (and
# the SDK) a signed request. Row (e)'s load, four processes at 8 calls each, medians of 4
# interleaved runs of 8 s: 5 ms gave 753 req/s at 1,321 us of vault CPU and
# 1,022 us of SDK CPU a call; 50 ms 793 req/s, 1,246 and 985 us; 200 ms 818, 1,194 and 935.
LINGER: Final = 0.1
THREAD_NAME: Final = "vaultgate-reports"

Report = tuple[bytes, Call]  # the report's JSON (``_audit.report``), and its call
# A delivery's result: the vault's answer (or only its status), or why there is none.
Outcome = httpx.Response | int | NetworkError | BaseException


class Verdict(enum.Enum):
    """What the vault's answer to a batch means for the reports in it."""

    DELIVERED = "delivered"
    SINGLY = "singly"  # refused as a batch (one report at fault, or too large): send each alone
    UNSUPPORTED = "unsupported"  # the vault has no batch route: send each alone, from now on
    FAILED = "failed"  # every report shares the answer as its outcome


def verdict(status: int, body: bytes) -> Verdict:
    if 200 <= status < 300:
        return Verdict.DELIVERED
    try:
        detail = json.loads(body).get("detail")
    except (ValueError, AttributeError):
        detail = None
    code = detail.get("error") if isinstance(detail, dict) else None
    if status in (404, 405, 501) and code != "grant_not_found":
        return Verdict.UNSUPPORTED  # a vault (or the Alter service) that predates the route
    if status in (400, 404, 413, 422):
        return Verdict.SINGLY
    return Verdict.FAILED


class Round:
    """One delivery of reports: which share a batch request, and what each report came to.

    A batch holds reports of one caller and one timeout: the caller is a signed header and
    the timeout belongs to the request. ``singles`` are sent alone.
    """

    def __init__(self, reports: Sequence[Report], *, batching: bool) -> None:
        self.reports = reports
        self.outcomes: list[Outcome] = [0] * len(reports)
        by_sender: dict[tuple[str | None, float | None], list[int]] = {}
        for index, (_, call) in enumerate(reports):
            by_sender.setdefault((call.caller, call.timeout), []).append(index)
        groups = list(by_sender.values())
        self.batches = [g for g in groups if batching and len(g) > 1]
        self.singles = [i for g in groups if not (batching and len(g) > 1) for i in g]

    def payload(self, batch: list[int]) -> tuple[bytes, Call]:
        """The batch request's body, ``{"reports": [report, ...]}`` joined from the reports'
        JSON, and a call of the batch (its caller and timeout)."""
        body = b'{"reports":[' + b",".join(self.reports[i][0] for i in batch) + b"]}"
        return body, self.reports[batch[0]][1]

    def answered(self, batch: list[int], status: int, body: bytes) -> Verdict:
        """Take the vault's answer to ``batch``; its reports go alone unless it settled them."""
        result = verdict(status, body)
        if result in (Verdict.SINGLY, Verdict.UNSUPPORTED):
            self.singles.extend(batch)
        else:
            for index in batch:
                self.outcomes[index] = status
        return result

    def failed(self, batch: list[int], error: NetworkError | BaseException) -> None:
        for index in batch:
            self.outcomes[index] = error


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
        self.batching = True  # until the vault answers that it has no batch route

    def round(self, reports: Sequence[Report]) -> Round:
        return Round(reports, batching=self.batching)

    def absorb(self, batch_round: Round, batch: list[int], status: int, body: bytes) -> None:
        """``Round.answered``, remembering a vault without the batch route."""
        if batch_round.answered(batch, status, body) is Verdict.UNSUPPORTED:
            self.batching = False

    @property
    @abstractmethod
    def pending(self) -> int:
        """Reports handed over and not yet settled."""

    @abstractmethod
    def put(self, body: bytes, call: Call) -> None:
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
    """``AlterVault``'s backlog: reports queue while up to ``SENDERS`` batches are in flight.

    ``send`` delivers a batch (a ``Round``'s worth) and tells each report's outcome, in order.
    A sender task takes what is queued (up to ``MAX_BATCH``) as long as anything is; at
    concurrency 1 each report therefore goes out at once, alone, behind the next call.
    """

    def __init__(
        self, send: Callable[[list[Report]], Awaitable[list[Outcome]]], limit: int
    ) -> None:
        super().__init__(limit)
        self._send = send
        self._queued: deque[Report] = deque()
        self._sending = 0
        self._tasks: set[asyncio.Task[None]] = set()
        self._wake: asyncio.Future[None] | None = None  # the lingering sender's, while it waits
        self._draining = False

    @property
    def pending(self) -> int:
        return len(self._queued) + self._sending

    def put(self, body: bytes, call: Call) -> None:
        if self.pending >= self.limit:
            self._drop()
            return
        self._queued.append((body, call))
        if len(self._queued) >= MAX_BATCH:
            self._send_now()
        # One sender lingers at a time: a second one starts while the first is sending.
        if self._wake is None and len(self._tasks) < SENDERS:
            task = asyncio.get_running_loop().create_task(self._run())
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

    def _send_now(self) -> None:
        if self._wake is not None and not self._wake.done():
            self._wake.set_result(None)

    async def _linger(self) -> None:
        """Wait up to ``LINGER`` for more reports (``_send_now`` ends it early)."""
        loop = asyncio.get_running_loop()
        self._wake = wake = loop.create_future()
        timer = loop.call_later(LINGER, _wake_up, wake)
        try:
            await wake
        finally:
            timer.cancel()
            self._wake = None

    async def _run(self) -> None:
        queued = self._queued
        while queued:
            if len(queued) < MAX_BATCH and not self._draining:
                await self._linger()
            batch = [queued.popleft() for _ in range(min(len(queued), MAX_BATCH))]
            if not batch:
                continue  # another sender took them meanwhile
            self._sending += len(batch)
            outcomes: list[Outcome]
            try:
                outcomes = await self._send(batch)
            except Exception as exc:  # a background report must never raise
                outcomes = [exc] * len(batch)
            finally:
                self._sending -= len(batch)
            for outcome in outcomes:
                self._settle(outcome)

    async def drain(self) -> None:
        """Send what is queued at once and wait for every pending report, including any
        scheduled while waiting."""
        self._draining = True
        try:
            self._send_now()
            while self._tasks:
                await asyncio.gather(*self._tasks, return_exceptions=True)
        finally:
            self._draining = False


def _wake_up(future: asyncio.Future[None]) -> None:
    if not future.done():
        future.set_result(None)


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

    def put(self, body: bytes, call: Call) -> None:
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
        """What is queued, waiting for the first and then up to ``LINGER`` for more; True
        once the stop mark (queued by ``drain``) was taken."""
        item = self._queue.get()
        until = time.monotonic() + LINGER
        batch: list[Report] = []
        while item is not None:
            batch.append(item)
            if len(batch) == MAX_BATCH:
                return batch, False
            try:
                item = self._queue.get(timeout=max(0.0, until - time.monotonic()))
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
