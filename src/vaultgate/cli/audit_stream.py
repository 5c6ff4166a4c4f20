"""Following the audit trail from its head, and the export's CSV form, for ``vaultgate audit``."""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Iterable, Iterator
from typing import Any, Protocol

PAGE = 200
# A cell a spreadsheet would run as a formula (OWASP's CSV injection): callers, URLs and
# reasons are written by API clients, so such a cell is exported with a leading apostrophe.
_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


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


def csv_rows(lines: Iterable[str]) -> Iterator[str]:
    """JSON-lines events as CSV text: a header (the events' own fields), then a row each."""
    out = io.StringIO()
    writer: csv.DictWriter[str] | None = None
    for line in lines:
        if not line.strip():
            continue
        event = json.loads(line)
        if writer is None:
            writer = csv.DictWriter(out, list(event), extrasaction="ignore", lineterminator="\n")
            writer.writeheader()
        writer.writerow({name: _cell(value) for name, value in event.items()})
        yield out.getvalue()
        out.seek(0)
        out.truncate()


def _cell(value: Any) -> Any:
    if isinstance(value, dict | list):
        value = json.dumps(value, sort_keys=True)
    if isinstance(value, str) and value.startswith(_FORMULA_START):
        return "'" + value
    return value
