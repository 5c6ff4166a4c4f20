"""Vaults for the sink tests: fast delivery settings, and one whose clock the test moves."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import uvicorn

from support import Vault, free_port
from vaultgate.server.app import create_app
from vaultgate.server.bootstrap import initialise
from vaultgate.server.runtime import Runtime
from vaultgate.server.settings import load_settings

# Delivery polls often and backs off briefly, so a test waits for events, not for timers.
FAST = {
    "VAULTGATE_SINK_POLL_SECONDS": "0.05",
    "VAULTGATE_SINK_BACKOFF_SECONDS": "0.1",
    "VAULTGATE_SINK_MAX_BACKOFF_SECONDS": "0.5",
    "VAULTGATE_SINK_LEASE_SECONDS": "2",
    "VAULTGATE_SINK_TIMEOUT_SECONDS": "20",
    "VAULTGATE_ALERT_INTERVAL_SECONDS": "3600",  # the tests tick the alerter themselves
}


@dataclass
class MovableClock:
    now: datetime

    def __call__(self) -> datetime:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += timedelta(seconds=seconds)


@contextmanager
def run_vault_at(
    data_dir: Path, clock: MovableClock, extra_env: dict[str, str] | None = None
) -> Iterator[tuple[Vault, Runtime]]:
    """A vault on loopback whose runtime reads ``clock`` (the server's injectable clock)."""
    env = {
        "VAULTGATE_DATA_DIR": str(data_dir),
        "VAULTGATE_ALLOW_PRIVATE_DESTINATIONS": "127.0.0.0/8",
        **FAST,
        **(extra_env or {}),
    }
    port = free_port()
    settings = load_settings(env, port=port)
    result = initialise(settings)
    runtime = Runtime.build(settings, clock=clock)
    app = create_app(settings, runtime=runtime)
    config = uvicorn.Config(
        app, host="127.0.0.1", port=port, log_level="warning", lifespan="on", access_log=False
    )
    server = uvicorn.Server(config)
    thread = threading.Thread(target=lambda: asyncio.run(server.serve()), daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not server.started:
        assert time.monotonic() < deadline and thread.is_alive(), "the vault did not start"
        time.sleep(0.02)
    vault = Vault(
        f"http://127.0.0.1:{port}",
        result.admin_key,
        result.portal_user,
        result.portal_password,
        data_dir,
        env,
    )
    try:
        yield vault, runtime
    finally:
        server.should_exit = True
        thread.join(timeout=15)


def start_clock() -> MovableClock:
    return MovableClock(datetime.now(UTC))
