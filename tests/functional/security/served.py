"""A real ``vaultgate serve`` process, started by the CLI as an operator starts it."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx

from support import Vault, free_port

VAULTGATE = [sys.executable, "-m", "vaultgate.cli"]


@dataclass
class Served(Vault):
    """A vault as ``support.Vault`` describes one, served by the process ``proc``."""

    proc: subprocess.Popen[bytes] | None = None


def init_vault(data: Path, env: dict[str, str] | None = None) -> dict[str, str]:
    done = subprocess.run(
        [*VAULTGATE, "init", "--data-dir", str(data), "--json"],
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
        env={**os.environ, **(env or {})},
    )
    return dict(json.loads(done.stdout))


def wait_ready(base: str, proc: subprocess.Popen[bytes], timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while True:
        assert proc.poll() is None, "vaultgate serve exited"
        try:
            if httpx.get(f"{base}/readyz", trust_env=False).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        assert time.monotonic() < deadline, "vaultgate serve did not come up"
        time.sleep(0.1)


@contextmanager
def serve_vault(
    data: Path, *, extra_env: dict[str, str] | None = None, workers: int = 1
) -> Iterator[Served]:
    """``init`` (unless ``data`` holds a vault already), then ``serve`` until the block ends."""
    env = {**os.environ, "VAULTGATE_ALLOW_PRIVATE_DESTINATIONS": "127.0.0.0/8", **(extra_env or {})}
    first = init_vault(data, env) if not data.exists() else {}
    port = free_port()
    command = [*VAULTGATE, "serve", "--data-dir", str(data), "--port", str(port)]
    proc = subprocess.Popen([*command, "--workers", str(workers)], env=env)
    base = f"http://127.0.0.1:{port}"
    try:
        wait_ready(base, proc)
        yield Served(
            base,
            first.get("admin_key", ""),
            first.get("portal_user", ""),
            first.get("portal_password", ""),
            data,
            env,
            proc,
        )
    finally:
        proc.send_signal(signal.SIGINT)
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=10)
