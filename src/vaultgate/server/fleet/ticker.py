"""A background loop on the event loop: tick, wait, and stop between ticks, never inside one.

Ticks do their database work in threads (``asyncio.to_thread``); cancelling a task does not stop
such a thread, which would then hand its connection back to a pool already disposed at shutdown.
So ``stop`` asks first and waits for the tick in progress; only one stuck past ``grace`` is
cancelled.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable

log = logging.getLogger(__name__)


class Ticker:
    def __init__(self, name: str, tick: Callable[[], Awaitable[None]], interval: float) -> None:
        self._name = name
        self._tick = tick
        self._interval = interval
        self._stopping = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    @property
    def stopping(self) -> bool:
        return self._stopping.is_set()

    def start(self) -> None:
        self._stopping.clear()
        self._task = asyncio.get_running_loop().create_task(self._run(), name=self._name)

    async def stop(self, grace: float = 30.0) -> None:
        self._stopping.set()
        if self._task is None:
            return
        try:
            await asyncio.wait_for(asyncio.shield(self._task), grace)
        except TimeoutError:
            log.warning("%s: a tick outlived %.0fs at shutdown; cancelled", self._name, grace)
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        self._task = None

    async def _run(self) -> None:
        failing = False
        while not self._stopping.is_set():
            try:
                await self._tick()
            except Exception as exc:  # one broken tick (the database away) must not end the loop
                if not failing:  # once per outage, not every tick
                    log.error("%s: tick failed: %s", self._name, _describe(exc))
                failing = True
            else:
                if failing:
                    log.warning("%s: working again", self._name)
                failing = False
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stopping.wait(), self._interval)


def _describe(exc: BaseException) -> str:
    # The driver's own first line: SQLAlchemy's str() would append the bound parameters.
    inner = getattr(exc, "orig", None) or exc
    first = str(inner).splitlines()[0] if str(inner) else ""
    return f"{type(inner).__name__}: {first}"
