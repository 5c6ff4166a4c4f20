"""Following the audit trail from its head, for ``vaultgate audit tail --follow``."""

from __future__ import annotations

from typing import Any, Protocol

PAGE = 200  # events a poll asks for at once; a bigger burst is paged by cursor


class Caller(Protocol):
    def call(self, method: str, path: str, **kwargs: Any) -> Any: ...


def head_seq(client: Caller, params: dict[str, Any]) -> int:
    """The newest matching event's seq (0 on an empty trail): following starts after it."""
    items = client.call("GET", "/v1/audit", params={**params, "limit": 1})["items"]
    return int(items[0]["seq"]) if items else 0


def newer_than(client: Caller, last: int, params: dict[str, Any]) -> list[dict[str, Any]]:
    """Every matching event after seq ``last``, oldest first.

    The listing is newest first, so this pages down with its cursor until it reaches ``last``:
    a burst of more than one page between two polls is still printed whole.
    """
    found: list[dict[str, Any]] = []
    cursor: str | None = None
    while True:
        query = {**params, "limit": PAGE, **({"cursor": cursor} if cursor else {})}
        page = client.call("GET", "/v1/audit", params=query)
        fresh = [item for item in page["items"] if int(item["seq"]) > last]
        found.extend(fresh)
        cursor = page.get("next_cursor")
        if cursor is None or len(fresh) < len(page["items"]):
            return list(reversed(found))
