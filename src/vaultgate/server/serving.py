"""Running the app: one process, or several worker processes sharing the port.

Each worker binds its own listening socket with SO_REUSEPORT, so the kernel spreads connections
across workers. uvicorn's own multi-worker mode shares one socket, and with keep-alive clients
one worker tends to accept every connection while the others idle (measured: one worker at
100% CPU, the other at 0%).
"""

from __future__ import annotations

import multiprocessing
import os
import signal
import socket
from typing import Any

import uvicorn

from vaultgate.server.api.connections import server_options
from vaultgate.server.settings import Settings, load_settings

UVICORN_OPTIONS: dict[str, Any] = {
    "log_level": "warning",
    "access_log": False,
    "server_header": False,
    "lifespan": "on",
}


def serve_one(app: Any, settings: Settings) -> None:
    options = {**UVICORN_OPTIONS, **server_options(settings)}
    uvicorn.run(app, host=settings.host, port=settings.port, **options)


def serve_many(settings: Settings, workers: int, environment: dict[str, str]) -> None:
    """``workers`` processes, each a full node configured from ``environment``."""
    context = multiprocessing.get_context("spawn")
    children = [
        context.Process(
            target=_worker,
            args=(environment, settings.host, settings.port),
            name=f"vaultgate-worker-{i}",
        )
        for i in range(workers)
    ]
    for child in children:
        child.start()

    def stop(signum: int, _frame: object) -> None:
        for child in children:
            if child.pid is not None and child.is_alive():
                os.kill(child.pid, signal.SIGTERM)

    signal.signal(signal.SIGINT, stop)
    signal.signal(signal.SIGTERM, stop)
    for child in children:
        child.join()


def _worker(environment: dict[str, str], host: str, port: int) -> None:
    os.environ.update(environment)
    from vaultgate.server.app import app_from_environment

    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    sock.bind((host, port))
    sock.listen(2048)
    sock.set_inheritable(True)
    options = {**UVICORN_OPTIONS, **server_options(load_settings(os.environ))}
    config = uvicorn.Config(app_from_environment(), host=host, port=port, **options)
    uvicorn.Server(config).run(sockets=[sock])
