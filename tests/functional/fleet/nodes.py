"""``serve`` processes for the fleet tests: start one, read what it logs, stop it."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

from support import Vault, free_port

VAULTGATE = [sys.executable, "-m", "vaultgate.cli"]
# Generous: on a loaded 2-core machine a cold `serve` start has taken over a minute.
START_TIMEOUT = 180.0


@dataclass
class Node:
    """One ``serve`` process (a parent and its workers) and what it has logged so far."""

    vault: Vault
    proc: subprocess.Popen[str]
    log: list[str] = field(default_factory=list)
    _reader: threading.Thread | None = None

    @property
    def base_url(self) -> str:
        return self.vault.base_url

    @property
    def port(self) -> int:
        return int(self.base_url.rsplit(":", 1)[1])

    def read_log(self) -> None:
        assert self.proc.stderr is not None
        for line in self.proc.stderr:
            self.log.append(line.rstrip("\n"))

    def wait_for_log(self, needle: str, count: int = 1, timeout: float = START_TIMEOUT) -> None:
        deadline = time.monotonic() + timeout
        while sum(needle in line for line in list(self.log)) < count:
            assert time.monotonic() < deadline, f"never logged {needle!r}: {self.log}"
            ended = self.proc.poll() is not None and not (self._reader and self._reader.is_alive())
            assert not ended, f"serve exited before logging {needle!r}: {self.log}"
            time.sleep(0.05)

    def worker_pids(self) -> list[int]:
        """The pids of the workers started so far, newest last (from the parent's log)."""
        return [
            int(line.rsplit("pid ", 1)[1].rstrip(")"))
            for line in self.log
            if "started (pid" in line
        ]

    def stop(self) -> int:
        if self.proc.poll() is None:
            self.proc.terminate()
        code = self.proc.wait(timeout=90)
        if self._reader is not None:
            self._reader.join(timeout=10)
        if self.proc.stderr is not None:
            self.proc.stderr.close()
        return code


def init_vault(data_dir: Path, database_url: str | None) -> dict[str, Any]:
    command = [*VAULTGATE, "init", "--data-dir", str(data_dir), "--json"]
    if database_url:
        command += ["--database-url", database_url]
    done = subprocess.run(command, capture_output=True, text=True, check=True, timeout=120)
    result: dict[str, Any] = json.loads(done.stdout)
    return result


# A port picked free can be taken before `serve` binds it (another test's client, say): `serve`
# then refuses to start, saying so, and the node is started again on another port.
PORT_ATTEMPTS = 3


def start_node(
    data_dir: Path,
    init: dict[str, Any],
    database_url: str | None,
    workers: int,
    extra_env: dict[str, str] | None = None,
) -> Node:
    for _ in range(PORT_ATTEMPTS - 1):
        try:
            return _start_node(data_dir, init, database_url, workers, extra_env)
        except PortTaken:
            continue
    return _start_node(data_dir, init, database_url, workers, extra_env)


class PortTaken(Exception):
    pass


def _start_node(
    data_dir: Path,
    init: dict[str, Any],
    database_url: str | None,
    workers: int,
    extra_env: dict[str, str] | None,
) -> Node:
    port = free_port()
    env = {
        "VAULTGATE_DATA_DIR": str(data_dir),
        "VAULTGATE_ALLOW_PRIVATE_DESTINATIONS": "127.0.0.0/8",
        **(extra_env or {}),
    }
    if database_url:
        env["VAULTGATE_DATABASE_URL"] = database_url
    command = [*VAULTGATE, "serve", "--port", str(port), "--workers", str(workers)]
    proc = subprocess.Popen(command, env={**os.environ, **env}, stderr=subprocess.PIPE, text=True)
    vault = Vault(
        f"http://127.0.0.1:{port}",
        init["admin_key"],
        init.get("portal_user", ""),
        init.get("portal_password", ""),
        data_dir,
        env,
    )
    node = Node(vault, proc)
    node._reader = threading.Thread(target=node.read_log, daemon=True)
    node._reader.start()
    try:
        if workers > 1:
            node.wait_for_log("started (pid", count=workers)
        else:  # one process serves itself: no supervisor to log its workers
            node.wait_for_log("serving on")
    except AssertionError:
        # serve's own refusal, or uvicorn's when the port went between serve's check and its bind
        taken = ("cannot listen on", "address already in use")
        if any(words in line.lower() for line in node.log for words in taken):
            node.stop()
            raise PortTaken(port) from None
        raise
    _wait_ready(node)
    return node


def _wait_ready(node: Node) -> None:
    """Ready once several fresh connections in a row are answered (they reach any worker)."""
    deadline = time.monotonic() + START_TIMEOUT
    answered = 0
    while answered < 8:
        assert node.proc.poll() is None, f"serve exited: {node.log}"
        assert time.monotonic() < deadline, f"the node did not come up: {node.log}"
        try:
            ok = httpx.get(f"{node.base_url}/readyz", trust_env=False, timeout=5).status_code
            answered = answered + 1 if ok == 200 else 0
        except httpx.HTTPError:
            answered = 0
            time.sleep(0.1)
