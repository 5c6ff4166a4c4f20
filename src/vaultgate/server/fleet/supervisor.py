"""Keeping ``serve --workers N`` alive: a dead worker is logged and replaced on its own socket.

The parent owns the listening sockets (``fleet.sockets``) and starts one spawned worker per
socket. When a worker dies while the vault is not stopping, the parent logs it (pid, exit code
or signal) and starts a replacement on the same socket. When workers keep dying (more than
``MAX_RESTARTS`` within ``RESTART_WINDOW`` seconds: a bad database, a full disk), the parent stops
the rest and exits non-zero, so a restart-on-failure supervisor above it takes over.

SIGTERM or SIGINT: the parent passes SIGTERM to every worker; each stops accepting, finishes its
in-flight requests, then flushes its audit writer as its app shuts down; the parent exits 0 once
every worker has ended cleanly. A parent killed outright (SIGKILL, the OOM killer) cannot: on
Linux each worker asks the kernel for SIGTERM when its parent dies (``PR_SET_PDEATHSIG``), so it
stops the same way instead of serving on, unsupervised, on a port the next start needs.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import logging
import multiprocessing
import multiprocessing.connection
import os
import signal
import socket
import time
from collections import deque
from collections.abc import Callable
from multiprocessing.context import SpawnProcess
from typing import Any, Final, cast

log = logging.getLogger("vaultgate.serve")

MAX_RESTARTS: Final = 5
RESTART_WINDOW: Final = 30.0
STOP_TIMEOUT: Final = 60.0
_CLEAN_EXITS: Final = (0, -signal.SIGTERM, -signal.SIGINT)
PR_SET_PDEATHSIG: Final = 1  # linux/prctl.h

Target = Callable[..., None]


class Supervisor:
    def __init__(self, target: Target, sockets: list[socket.socket], args: tuple[Any, ...]) -> None:
        self._context = multiprocessing.get_context("spawn")
        self._target = target
        self._sockets = sockets
        self._args = args
        self._workers: dict[int, SpawnProcess] = {}  # socket index -> its current worker
        self._restarts: deque[float] = deque()
        self._stopping = False
        self._failed = False

    def run(self) -> int:
        """Serve until told to stop (exit code 0) or until workers cannot be kept alive (1)."""
        for index in range(len(self._sockets)):
            self._start(index)
        signal.signal(signal.SIGINT, self._on_signal)
        signal.signal(signal.SIGTERM, self._on_signal)
        while not self._stopping:
            sentinels = {w.sentinel: i for i, w in self._workers.items()}
            for ready in multiprocessing.connection.wait(list(sentinels), timeout=1.0):
                index = sentinels[cast(int, ready)]
                if self._stopping or not self._replace(index):
                    break
        return self._drain()

    def _start(self, index: int) -> None:
        worker = self._context.Process(
            target=_supervised,
            args=(os.getpid(), self._target, *self._args, self._sockets[index]),
            name=f"vaultgate-worker-{index}",
        )
        worker.start()
        self._workers[index] = worker
        log.info("worker %d started (pid %s)", index, worker.pid)

    def _replace(self, index: int) -> bool:
        """Log the death of worker ``index`` and start another; False when giving up."""
        dead = self._workers[index]
        dead.join()
        log.error("worker %d (pid %s) died: %s", index, dead.pid, _how(dead.exitcode))
        now = time.monotonic()
        self._restarts.append(now)
        while self._restarts and self._restarts[0] < now - RESTART_WINDOW:
            self._restarts.popleft()
        if len(self._restarts) > MAX_RESTARTS:
            log.critical(
                "workers died %d times within %.0f s; stopping the vault",
                len(self._restarts),
                RESTART_WINDOW,
            )
            self._failed = True
            self._stopping = True
            return False
        self._start(index)
        return True

    def _on_signal(self, signum: int, _frame: object) -> None:
        self._stopping = True
        log.info("signal %d: stopping the workers after their in-flight requests", signum)

    def _drain(self) -> int:
        for worker in self._workers.values():
            if worker.pid is not None and worker.is_alive():
                os.kill(worker.pid, signal.SIGTERM)
        deadline = time.monotonic() + STOP_TIMEOUT
        for worker in self._workers.values():
            worker.join(max(0.0, deadline - time.monotonic()))
            if worker.is_alive():
                log.error(
                    "worker pid %s did not stop in %.0f s; killing it", worker.pid, STOP_TIMEOUT
                )
                worker.kill()
                worker.join()
                self._failed = True
        for sock in self._sockets:
            sock.close()
        # uvicorn re-raises the signal it stopped on once it has shut down cleanly.
        clean = all(w.exitcode in _CLEAN_EXITS for w in self._workers.values())
        return 1 if self._failed or not clean else 0


def _supervised(parent: int, target: Target, *args: Any) -> None:
    """A worker's life: ``target(*args)``, ended by SIGTERM if ``parent`` dies first."""
    stop_with_parent(parent)
    target(*args)


def stop_with_parent(parent: int) -> None:
    """Have the kernel send this process SIGTERM when ``parent`` dies (Linux; elsewhere nothing).

    The parent may have died already, before the request was made: then this process is stopped
    at once, the same way.
    """
    if os.uname().sysname != "Linux":  # pragma: no cover - the fleet runs on Linux
        return
    libc = ctypes.CDLL(ctypes.util.find_library("c"), use_errno=True)
    if libc.prctl(PR_SET_PDEATHSIG, signal.SIGTERM, 0, 0, 0) != 0:
        log.warning("cannot ask to stop with the supervisor: errno %d", ctypes.get_errno())
        return
    if os.getppid() != parent:
        os.kill(os.getpid(), signal.SIGTERM)


def _how(exitcode: int | None) -> str:
    if exitcode is None:
        return "unknown"
    if exitcode < 0:
        return f"killed by {signal.Signals(-exitcode).name}"
    return f"exit code {exitcode}"
