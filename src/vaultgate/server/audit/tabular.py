"""The audit export as CSV: a header row of the events' own fields, then one row per event."""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Iterable, Iterator
from typing import Any

# A cell a spreadsheet would run as a formula (OWASP's CSV injection): callers, URLs and
# reasons are written by API clients, so such a cell is exported with a leading apostrophe.
_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


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
