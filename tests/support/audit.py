"""Reading a running vault's audit trail through the management API, for assertions."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from support.servers import Vault


def events(vault: Vault, **filters: Any) -> list[dict[str, Any]]:
    """Every matching event, oldest first (follows the cursor through all pages)."""
    params = {k: v for k, v in filters.items() if v is not None}
    params.setdefault("limit", 1000)
    found: list[dict[str, Any]] = []
    with vault.admin() as admin:
        while True:
            page = admin.get("/v1/audit", params=params)
            assert page.status_code == 200, page.text
            body = page.json()
            found.extend(body["items"])
            if body["next_cursor"] is None:
                return list(reversed(found))
            params["cursor"] = body["next_cursor"]


def verify(vault: Vault) -> dict[str, Any]:
    with vault.admin() as admin:
        answer = admin.get("/v1/audit/verify")
    assert answer.status_code == 200, answer.text
    result: dict[str, Any] = answer.json()
    return result


def wait_until(condition: Callable[[], bool], tries: int = 400) -> None:
    """Poll ``condition`` (denials and outcomes are written in the background)."""
    for _ in range(tries):
        if condition():
            return
        time.sleep(0.025)
    raise AssertionError("the condition never became true")


def wait_for_events(vault: Vault, count: int, **filters: Any) -> list[dict[str, Any]]:
    """The matching events once there are ``count`` of them (fails if more ever appear)."""
    found: list[dict[str, Any]] = []

    def enough() -> bool:
        found[:] = events(vault, **filters)
        return len(found) >= count

    wait_until(enough)
    assert len(found) == count, [(e["event"], e["code"]) for e in found]
    return found
