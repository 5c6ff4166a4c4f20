"""A webhook sink against a real receiver: down, then up, then the vault killed (-9) mid-delivery.

The receiver checks every delivery with the README's own verification snippet and keeps the
first copy of each event id. After a restart every event arrives exactly once, in seq order.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pytest

from functional.security.served import serve_vault
from functional.sinks.conftest import FAST
from support.receivers import free_port, webhook_receiver

HOOK_SECRET = "sink-hook-secret-canary-8Qw2xZ"
WAIT = 60.0


def _wait(condition: Callable[[], bool], what: str) -> None:
    deadline = time.monotonic() + WAIT
    while not condition():
        assert time.monotonic() < deadline, f"never: {what}"
        time.sleep(0.05)


def _admin(base: str, key: str) -> httpx.Client:
    return httpx.Client(
        base_url=base, trust_env=False, timeout=30, headers={"Authorization": f"Bearer {key}"}
    )


def _make_apps(client: httpx.Client, prefix: str, count: int) -> None:
    for i in range(count):
        assert client.post("/v1/apps", json={"name": f"{prefix}-{i}"}).status_code == 201


def _state(client: httpx.Client) -> dict[str, Any]:
    state: dict[str, Any] = client.get("/v1/audit/sinks/siem").json()["state"]
    return state


@pytest.mark.timeout(300)  # two `serve` starts and a lease lapse on a loaded machine
def test_every_event_arrives_once_in_order_across_an_outage_and_a_kill_9(
    tmp_path: Path,
) -> None:
    data = tmp_path / "data"
    with webhook_receiver(HOOK_SECRET.encode(), free_port(), started=False) as receiver:
        with serve_vault(data, extra_env=FAST) as first:
            admin_key = first.admin_key
            admin = _admin(first.base_url, admin_key)
            sink = {
                "name": "siem",
                "kind": "webhook",
                "config": {"url": receiver.url},
                "secret": HOOK_SECRET,
                "filter": {"events": ["app:create"]},
            }
            created = admin.post("/v1/audit/sinks", json=sink)
            assert created.status_code == 201, created.text
            assert HOOK_SECRET not in created.text and created.json()["secret_set"] is True

            # The receiver is down (nothing listens on its port): retried, nothing skipped.
            _make_apps(admin, "down", 4)
            _wait(lambda: _state(admin)["attempts"] >= 2, "retries while the receiver is down")
            state = _state(admin)
            assert state["lag_events"] >= 4 and "webhook" in state["last_error"]
            receiver.start()
            _wait(lambda: len(receiver.unique_in_order()) == 4, "the outage's events delivered")
            _wait(lambda: _state(admin)["lag_events"] == 0, "the cursor caught up")

            # Killed mid-delivery: the receiver stored the batch but the vault never heard back.
            receiver.hold = threading.Event()
            _make_apps(admin, "kill", 4)
            assert receiver.holding.wait(WAIT), "no delivery started"
            assert first.proc is not None
            first.proc.kill()  # SIGKILL: no shutdown, no flush, the cursor not moved
            first.proc.wait(timeout=30)
            receiver.hold.set()
            admin.close()

        with serve_vault(data, extra_env=FAST) as second:
            admin = _admin(second.base_url, admin_key)
            _make_apps(admin, "after", 3)
            _wait(lambda: len(receiver.unique_in_order()) == 11, "every event after the restart")
            _wait(lambda: _state(admin)["lag_events"] == 0, "caught up after the restart")
            listed = admin.get("/v1/audit", params={"event": "app:create", "limit": 100}).json()
            admin.close()

    expected = sorted(item["seq"] for item in listed["items"])
    kept = receiver.unique_in_order()
    assert [event["seq"] for event in kept] == expected  # each once, in seq order
    assert len(receiver.events()) > len(kept), "the held batch was delivered again"
    assert {e["event"] for e in kept} == {"app:create"}
    assert receiver.rejected == []
    for body in receiver.bodies:
        assert HOOK_SECRET.encode() not in body and admin_key.encode() not in body
