"""Running the app: one process, or a supervised group of worker processes sharing the port.

With several workers the parent binds one listening socket per worker, once, before any worker
starts (``fleet.sockets``: a SO_REUSEPORT group no other process can take connections from), and
hands each worker its socket. ``fleet.supervisor`` replaces a worker that dies and exits non-zero
when it cannot keep them alive. uvicorn's own multi-worker mode shares one socket, and with
keep-alive clients one worker tends to accept every connection while the others idle
(measured: one worker at 100% CPU, the other at 0%).

The supervisor imports this module too, so uvicorn and the HTTP layer load only where a server
runs: a supervisor that only watches its workers stays small.
"""

from __future__ import annotations

import logging
import os
import socket
import sys
from typing import TYPE_CHECKING, Any

from vaultgate.server.fleet.sockets import bind_group, listen_refusal
from vaultgate.server.fleet.supervisor import Supervisor
from vaultgate.server.settings import Settings, load_settings

if TYPE_CHECKING:
    import uvicorn

UVICORN_OPTIONS: dict[str, Any] = {
    "log_level": "warning",
    "access_log": False,
    "server_header": False,
    "lifespan": "on",
}


def uvicorn_config(app: Any, host: str, port: int, settings: Settings) -> uvicorn.Config:
    """The one place uvicorn is configured, for a single process and for every worker."""
    import uvicorn

    from vaultgate.server.api.connections import server_options

    options = {**UVICORN_OPTIONS, **server_options(settings), "loop": settings.event_loop}
    return uvicorn.Config(app, host=host, port=port, **options)


def serve_one(app: Any, settings: Settings) -> None:
    import uvicorn

    uvicorn.Server(uvicorn_config(app, settings.host, settings.port, settings)).run()


def serve_many(settings: Settings, workers: int, environment: dict[str, str]) -> int:
    """``workers`` processes, each a full node configured from ``environment``; the exit code."""
    _log_to_stderr()
    # glibc gives each thread that allocates a malloc arena of its own (up to 8 per core), and
    # each arena keeps what it freed; a worker runs several threads (the audit writer, the
    # heartbeat, the change feed, the event loop's resolver). Two arenas bound that growth.
    # glibc reads this once, at process start: so it goes into the environment the workers are
    # spawned with. An operator's own setting wins.
    os.environ.setdefault("MALLOC_ARENA_MAX", "2")
    try:
        sockets = bind_group(settings.host, settings.port, workers)
    except OSError as exc:  # taken since `serve` checked it: the same refusal, no traceback
        logging.getLogger("vaultgate.serve").error(
            "%s", listen_refusal(settings.host, settings.port, exc)
        )
        return 1
    supervisor = Supervisor(_worker, sockets, (environment, settings.host, settings.port))
    return supervisor.run()


def _log_to_stderr() -> None:
    logger = logging.getLogger("vaultgate.serve")
    if not logger.handlers:
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(logging.Formatter("vaultgate: %(message)s"))
        logger.addHandler(handler)
        logger.setLevel(logging.INFO)


def _worker(environment: dict[str, str], host: str, port: int, sock: socket.socket) -> None:
    import uvicorn

    uvicorn.Server(worker_config(environment, host, port)).run(sockets=[sock])


def worker_config(environment: dict[str, str], host: str, port: int) -> uvicorn.Config:
    """A worker's server, built in the process that runs it (spawned: it starts empty)."""
    os.environ.update(environment)
    without_pydantic_v1()
    from vaultgate.server.app import app_from_environment

    return uvicorn_config(app_from_environment(), host, port, load_settings(os.environ))


def without_pydantic_v1() -> None:
    """Keep ``pydantic.v1`` out of this process: about 1.5 MiB of a worker's memory.

    FastAPI imports it while it builds each route, only to refuse a v1 model with a clearer
    error, and treats a failed import as "no v1 model here"; nothing in vaultgate defines one.
    A None in ``sys.modules`` makes the import fail as if the module were not installed. Only
    for processes that serve (a worker), never for one that already loaded it.
    """
    # sys.modules is typed as holding modules; None there is the documented import block.
    sys.modules.setdefault("pydantic.v1", None)  # type: ignore[arg-type]
