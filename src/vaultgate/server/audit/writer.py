"""The one audit writer of a process: a thread that group-commits whatever has been queued.

Callers enqueue; the thread takes everything waiting (up to ``max_batch``), chains it onto the
head inside ONE transaction that locks the head, commits, and only then tells each caller. So a
burst of N requests costs one flush, not N, and several nodes sharing a PostgreSQL database still
build one gap-free chain (the head row lock serialises their batches).

Failure is all-or-nothing per batch: every waiter gets ``Unavailable`` (503) and nothing of the
batch is stored. The next batch reads the head afresh, so the vault recovers on its own when the
store does. Fire-and-forget events (``submit``) are kept and retried with backoff instead.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
import time
from collections import deque
from collections.abc import Callable, Iterator
from concurrent.futures import Future, InvalidStateError
from dataclasses import dataclass
from typing import Final

from sqlalchemy.engine import Connection, Engine

from vaultgate.server.audit.events import AuditEvent
from vaultgate.server.audit.sink import ChainHeadMissing, append, lock_head
from vaultgate.server.budgets.alerts import alert_event
from vaultgate.server.errors import Unavailable
from vaultgate.server.fleet.admission import Admission, Admitter, StaleView, refused
from vaultgate.server.observability import metrics
from vaultgate.server.storage.driver import SQL, DriverSQL
from vaultgate.server.storage.engine import sqlite_write_turn

# lock_head and ChainHeadMissing are re-exported: callers reached for them here first.
__all__ = ["AuditWriter", "ChainHeadMissing", "WriterStats", "audit_unavailable", "lock_head"]

log = logging.getLogger(__name__)

UNAVAILABLE_MESSAGE: Final = "the audit trail cannot be written; the request was refused"
_MIN_BACKOFF: Final = 0.05
_MAX_BACKOFF: Final = 5.0
# How long events nobody waits for (outcomes) may wait for one somebody does. A request's
# outcome is queued as its answer goes out, just before the caller's next request: written at
# once, its commit is what that next use record queues behind, so one caller in a loop paid two
# fsyncs a request. Held this long, the outcome rides in the next use's commit instead (the
# idea of PostgreSQL's commit_delay), and a vault that is idle writes it this much later. An
# SDK's outcome report is waited for (its admission can refuse it) but by a background sender,
# not a caller: it lingers the same way (``record(..., linger=True)``).
LINGER: Final = 0.005


def audit_unavailable() -> Unavailable:
    return Unavailable(UNAVAILABLE_MESSAGE, code="audit_unavailable")


@dataclass(slots=True)
class _Pending:
    event: AuditEvent
    # Who waits: nobody (submit), a thread (record_sync), or a task on ``loop`` (record).
    future: Future[None] | asyncio.Future[None] | None = None
    loop: asyncio.AbstractEventLoop | None = None
    admission: Admission | None = None  # checked in the batch's transaction (fleet.admission)
    refusal: Exception | None = None  # why the admission refused it (the batch committed)
    queued_at: float = 0.0  # time.monotonic() when queued, for `LINGER`
    lingers: bool = False  # may wait for a use's commit, though somebody waits (`LINGER`)
    more: tuple[AuditEvent, ...] = ()  # written after ``event`` only if its admission admits


@dataclass(slots=True)
class WriterStats:
    batches: int = 0
    rows: int = 0
    failed_batches: int = 0
    dropped: int = 0


def _resolve(
    future: Future[None] | asyncio.Future[None], failed: bool, refusal: Exception | None = None
) -> None:
    # A waiter that timed out or was cancelled has gone; its event is still written (the trail
    # over-records a refused request rather than losing an allowed one).
    if future.done():
        return
    try:
        if failed:
            future.set_exception(audit_unavailable())
        elif refusal is not None:
            future.set_exception(refusal)
        else:
            future.set_result(None)
    except (InvalidStateError, asyncio.InvalidStateError):
        pass


def _expire(future: asyncio.Future[None], timeout: float) -> None:
    if not future.done():
        log.warning("audit write did not complete within %.1fs", timeout)
        future.set_exception(audit_unavailable())


def _resolve_all(
    futures: list[tuple[asyncio.Future[None], Exception | None]], failed: bool
) -> None:
    for future, refusal in futures:
        _resolve(future, failed, refusal)


def _settle(batch: list[_Pending], *, failed: bool) -> None:
    """Tell every waiter of ``batch``; one wake-up per event loop, not one per task."""
    by_loop: dict[
        asyncio.AbstractEventLoop, list[tuple[asyncio.Future[None], Exception | None]]
    ] = {}
    for pending in batch:
        if isinstance(pending.future, asyncio.Future) and pending.loop is not None:
            by_loop.setdefault(pending.loop, []).append((pending.future, pending.refusal))
        elif pending.future is not None:
            _resolve(pending.future, failed, pending.refusal)
    for loop, futures in by_loop.items():
        with contextlib.suppress(RuntimeError):  # that loop has closed: nobody is left to tell
            loop.call_soon_threadsafe(_resolve_all, futures, failed)


def _describe(exc: BaseException) -> str:
    # The driver's own first line: SQLAlchemy's str() would append the bound parameters.
    inner = getattr(exc, "orig", None) or exc
    first = str(inner).splitlines()[0] if str(inner) else ""
    return f"{type(inner).__name__}: {first}"


class AuditWriter:
    """Group-committing audit writer; create one per process, ``start()`` it, ``stop()`` it."""

    def __init__(
        self,
        engine: Engine,
        audit_key: bytes,
        *,
        max_batch: int = 500,
        clock: Callable[[], float] = time.monotonic,
        timeout: float = 10.0,
        max_retained: int = 10_000,
        admitter: Admitter | None = None,
        linger: float = LINGER,
    ) -> None:
        if max_batch < 1:
            raise ValueError("max_batch must be positive")
        self._engine = engine
        self._key = audit_key
        self._max_batch = max_batch
        self._clock = clock
        self._timeout = timeout
        self._max_retained = max_retained
        self._admitter = admitter
        self._linger = linger
        self._cond = threading.Condition()
        self._fresh: deque[_Pending] = deque()
        self._waited_for = 0  # events in ``_fresh`` that somebody waits for
        self._retry: deque[_Pending] = deque()
        self._state = "new"
        self._thread: threading.Thread | None = None
        self._failing = False
        self._backoff = _MIN_BACKOFF
        self._retry_at = 0.0
        self.stats = WriterStats()
        self._held: Connection | None = None  # SQLite: the writer thread's own connection

    def __repr__(self) -> str:
        return f"AuditWriter(state={self._state!r}, dialect={self._engine.dialect.name!r})"

    # -- lifecycle -------------------------------------------------------------------------

    def start(self) -> None:
        with self._cond:
            if self._state != "new":
                raise RuntimeError(f"AuditWriter cannot start from state {self._state}")
            self._state = "running"
        self._thread = threading.Thread(target=self._run, name="vaultgate-audit", daemon=True)
        self._thread.start()

    def stop(self, timeout: float | None = 30.0) -> None:
        """Refuse new events, write what is queued (one last try for retried ones), then end."""
        with self._cond:
            if self._state in ("new", "stopped"):
                self._state = "stopped"
                return
            self._state = "stopping"
            self._cond.notify_all()
        if self._thread is not None:
            self._thread.join(timeout)
        with self._cond:
            self._state = "stopped"
            leftovers = [*self._fresh, *self._retry]
            self._fresh.clear()
            self._retry.clear()
        _settle(leftovers, failed=True)

    # -- callers ---------------------------------------------------------------------------

    async def record(
        self,
        event: AuditEvent,
        admission: Admission | None = None,
        *,
        linger: bool = False,
        more: tuple[AuditEvent, ...] = (),
    ) -> None:
        """Return once ``event`` is committed; raise ``Unavailable`` (503) when it cannot be.

        With an ``admission``, also raise what its checks refused (a replay, a rate limit, a
        stale view); the refusal is recorded instead of ``event`` (see fleet.admission).
        ``linger``: nobody's request waits for this answer (an SDK's background report), so
        the event may wait up to ``LINGER`` to share the next use's commit.
        ``more``: events that stand or fall with ``event`` (a batch of reports under one
        signed nonce): all are committed together, or on a refusal only the refusal is.
        """
        if admission is not None and self._admitter is None:
            raise RuntimeError("this AuditWriter was built without an admitter")
        loop = asyncio.get_running_loop()
        future: asyncio.Future[None] = loop.create_future()
        self._enqueue(_Pending(event, future, loop, admission, lingers=linger, more=more))
        # A bare timer rather than asyncio.timeout(): same outcome, a fraction of the cost on a
        # path every request takes. The writer skips a future that has already failed.
        timer = loop.call_later(self._timeout, _expire, future, self._timeout)
        try:
            await future
        finally:
            timer.cancel()

    def record_sync(self, event: AuditEvent) -> None:
        """Blocking ``record`` for sync code in a worker thread (never on the event loop)."""
        future: Future[None] = Future()
        self._enqueue(_Pending(event, future))
        try:
            future.result(self._timeout)
        except TimeoutError:
            future.cancel()
            log.warning("audit write did not complete within %.1fs", self._timeout)
            raise audit_unavailable() from None

    def submit(self, event: AuditEvent, admission: Admission | None = None) -> None:
        """Queue ``event`` without waiting (outcomes): retried until stored, logged if dropped.

        An ``admission`` here only spends (an outcome's usage, ``Admission.spend``): nothing
        it carries can refuse the event.
        """
        try:
            self._enqueue(_Pending(event, admission=admission))
        except Unavailable:
            self.stats.dropped += 1
            log.warning("audit writer stopped; an %s event was dropped", event.event)

    def queued(self) -> int:
        """Events waiting to be written, fresh and retried (read when metrics are scraped)."""
        return len(self._fresh) + len(self._retry)

    def _enqueue(self, pending: _Pending) -> None:
        with self._cond:
            if self._state == "new":
                raise RuntimeError("AuditWriter.start() has not been called")
            if self._state != "running":
                raise audit_unavailable()
            if pending.future is None or pending.lingers:
                pending.queued_at = time.monotonic()
            else:
                self._waited_for += 1
            self._fresh.append(pending)
            self._cond.notify()

    # -- the writer thread -----------------------------------------------------------------

    def _run(self) -> None:
        try:
            while (taken := self._next_batch()) is not None:
                batch, final = taken
                started = time.perf_counter()
                try:
                    written = self._write(batch)
                except Exception as exc:
                    self._on_failure(batch, exc, final=final)
                else:
                    self._on_success(batch)
                    metrics.committed(written, time.perf_counter() - started)
        finally:
            self._release()

    def _next_batch(self) -> tuple[list[_Pending], bool] | None:
        """What is queued (up to max_batch), topped up with due retries; None once drained.

        The flag says the batch was taken while stopping: its failure is final.

        Retries ride along with fresh events rather than waiting for a quiet moment, so a busy
        vault cannot starve them after the store comes back.
        """
        with self._cond:
            while True:
                stopping = self._state != "running"
                due = bool(self._retry) and (stopping or self._clock() >= self._retry_at)
                if not (stopping or due) and (hold := self._lingering()) > 0:
                    self._cond.wait(hold)
                    continue
                batch = self._take(self._fresh, self._max_batch)
                self._waited_for -= sum(p.future is not None and not p.lingers for p in batch)
                if due:
                    batch += self._take(self._retry, self._max_batch - len(batch))
                if batch:
                    return batch, stopping
                if stopping:
                    return None
                wait = max(0.0, self._retry_at - self._clock()) if self._retry else None
                self._cond.wait(wait)

    def _lingering(self) -> float:
        """How much longer a queue of events no request waits for should wait for one
        (`LINGER`)."""
        fresh = self._fresh
        if not fresh or self._waited_for or len(fresh) >= self._max_batch:
            return 0.0
        return fresh[0].queued_at + self._linger - time.monotonic()

    def _serialised(self) -> contextlib.AbstractContextManager[object]:
        """On SQLite, hold the file's write lock across the batch's transaction
        (``storage.engine.sqlite_write_turn``)."""
        return sqlite_write_turn(self._engine)

    @staticmethod
    def _take(queue: deque[_Pending], count: int) -> list[_Pending]:
        return [queue.popleft() for _ in range(min(len(queue), count))]

    def _write(self, batch: list[_Pending]) -> list[AuditEvent]:
        with self._serialised(), self._transaction() as conn:
            sql = DriverSQL(conn)
            head = lock_head(sql, self._key)
            events = self._admitted(sql, batch)
            append(sql, events, self._key, head)
        return events

    @contextlib.contextmanager
    def _transaction(self) -> Iterator[Connection]:
        """The batch's transaction, committed when the block ends.

        On PostgreSQL the connection comes from the pool for each batch: its pre-ping replaces a
        connection the server dropped before a batch meets it. On SQLite, where no server can
        drop one, the writer keeps one connection for as long as it runs (a checkout and
        check-in per batch cost about 30 us, once a request at concurrency 1). After a failure
        it goes back to the pool and the next batch checks one out, as every batch did before.
        """
        if self._engine.dialect.name != "sqlite":
            with self._engine.begin() as conn:
                yield conn
            return
        if self._held is None:
            self._held = self._engine.connect()
        try:
            with self._held.begin():
                yield self._held
        except BaseException:
            self._release()
            raise

    def _release(self) -> None:
        held, self._held = self._held, None
        if held is not None:
            with contextlib.suppress(Exception):
                held.close()

    def _admitted(self, conn: SQL, batch: list[_Pending]) -> list[AuditEvent]:
        """The batch's events after admission: a refusal recorded as a denial, a stale one not."""
        for pending in batch:
            pending.refusal = None  # a retried batch decides afresh
        if self._admitter is None or all(p.admission is None for p in batch):
            return [event for pending in batch for event in (pending.event, *pending.more)]
        verdicts = self._admitter.admit(conn, [pending.admission for pending in batch])
        events = []
        for pending, refusal in zip(batch, verdicts, strict=True):
            pending.refusal = refusal
            if refusal is None:
                events.append(pending.event)
                events.extend(pending.more)
            elif not isinstance(refusal, StaleView):
                events.append(refused(pending.event, refusal))
        events.extend(alert_event(alert, batch[i].event) for i, alert in self._admitter.alerts)
        return events

    def _on_success(self, batch: list[_Pending]) -> None:
        self.stats.batches += 1
        self.stats.rows += sum(1 + len(pending.more) for pending in batch)
        with self._cond:
            self._backoff = _MIN_BACKOFF
            self._retry_at = 0.0
            if self._failing:
                self._failing = False
                log.warning("audit store writable again; the audit trail resumed")
        _settle(batch, failed=False)

    def _on_failure(self, batch: list[_Pending], exc: Exception, *, final: bool) -> None:
        self.stats.failed_batches += 1
        if not self._failing:
            self._failing = True
            log.error("audit store cannot be written, refusing requests: %s", _describe(exc))
        _settle([pending for pending in batch if pending.future is not None], failed=True)
        kept = [pending for pending in batch if pending.future is None]
        with self._cond:
            if final:
                self._drop(len(kept))
                return
            # Not final even if stop() began meanwhile: the drain gives these one more try.
            # Back at the front, in order; beyond max_retained the newest are dropped (loudly).
            self._retry.extendleft(reversed(kept))
            overflow = len(self._retry) - self._max_retained
            for _ in range(max(0, overflow)):
                self._retry.pop()
            self._drop(overflow)
            self._retry_at = self._clock() + self._backoff
            self._backoff = min(self._backoff * 2, _MAX_BACKOFF)

    def _drop(self, count: int) -> None:
        if count > 0:
            self.stats.dropped += count
            log.error("%d fire-and-forget audit events could not be stored and were dropped", count)
