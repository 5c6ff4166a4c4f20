"""`vaultgate audit tail --follow` and `audit export --format csv`, run against a real vault."""

from __future__ import annotations

import csv
import io
import json
import os
import queue
import subprocess
import sys
import threading
from typing import IO, Any

from support import Vault

VAULTGATE = [sys.executable, "-m", "vaultgate.cli"]
WAIT = 30.0  # generous: the machine is shared


def _env(vault: Vault) -> dict[str, str]:
    return {**os.environ, "VAULTGATE_URL": vault.base_url, "VAULTGATE_ADMIN_KEY": vault.admin_key}


def _lines(stream: IO[str], readers: list[threading.Thread]) -> queue.Queue[str]:
    """A queue fed with the stream's lines by a reader thread (so a wait can time out)."""
    lines: queue.Queue[str] = queue.Queue()

    def pump() -> None:
        for line in stream:
            lines.put(line)

    reader = threading.Thread(target=pump, daemon=True)
    reader.start()
    readers.append(reader)
    return lines


def _create_app(vault: Vault, name: str) -> str:
    with vault.admin() as admin:
        created = admin.post("/v1/apps", json={"name": name})
    assert created.status_code == 201, created.text
    return str(created.json()["id"])


def test_tail_follow_prints_only_events_after_it_started(sqlite_vault: Vault) -> None:
    before = [_create_app(sqlite_vault, f"before-{n}") for n in range(3)]
    tail = subprocess.Popen(
        [*VAULTGATE, "audit", "tail", "--follow", "--interval", "0.1"],
        env=_env(sqlite_vault),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    readers: list[threading.Thread] = []
    try:
        assert tail.stdout is not None and tail.stderr is not None
        started = _lines(tail.stderr, readers)
        printed = _lines(tail.stdout, readers)
        assert "following the audit trail after seq" in started.get(timeout=WAIT)
        after = [_create_app(sqlite_vault, f"after-{n}") for n in range(2)]
        seen: list[dict[str, Any]] = []
        while {e.get("app_id") for e in seen if e["event"] == "app:create"} < set(after):
            seen.append(json.loads(printed.get(timeout=WAIT)))
    finally:
        tail.terminate()
        tail.wait(timeout=WAIT)
        for reader in readers:  # at end of file now that the process has gone
            reader.join(timeout=WAIT)
        for stream in (tail.stdout, tail.stderr):
            if stream is not None:
                stream.close()
    created = [e["app_id"] for e in seen if e["event"] == "app:create"]
    assert created == after  # in order, each once
    assert not set(before) & {e.get("app_id") for e in seen}
    seqs = [e["seq"] for e in seen]
    assert seqs == sorted(seqs)


def test_tail_without_follow_prints_the_latest_events_and_ends(sqlite_vault: Vault) -> None:
    apps = [_create_app(sqlite_vault, f"app-{n}") for n in range(3)]
    result = subprocess.run(
        [*VAULTGATE, "audit", "tail", "-n", "2", "--event", "app:create"],
        env=_env(sqlite_vault),
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    printed = [json.loads(line) for line in result.stdout.splitlines()]
    assert [e["app_id"] for e in printed] == apps[1:]


def test_export_as_csv_matches_the_json_lines_export(sqlite_vault: Vault) -> None:
    _create_app(sqlite_vault, '=HYPERLINK("http://evil")')

    def export(fmt: str) -> str:
        return subprocess.run(
            [*VAULTGATE, "audit", "export", "--format", fmt],
            env=_env(sqlite_vault),
            capture_output=True,
            text=True,
            timeout=60,
            check=True,
        ).stdout

    events = [json.loads(line) for line in export("jsonl").splitlines()]
    rows = list(csv.DictReader(io.StringIO(export("csv"))))
    assert len(rows) == len(events) > 0
    assert list(rows[0]) == list(events[0])
    for row, event in zip(rows, events, strict=True):
        assert row["seq"] == str(event["seq"]) and row["hash"] == event["hash"]
        assert row["event"] == event["event"]
        if event["details"] is not None:
            assert json.loads(row["details"].removeprefix("'")) == event["details"]
    cells = [cell for row in rows for cell in row.values()]
    assert not any(cell.startswith("=") for cell in cells)  # no cell runs as a formula


def test_the_api_export_serves_csv_and_refuses_an_unknown_format(sqlite_vault: Vault) -> None:
    with sqlite_vault.admin() as admin:
        as_csv = admin.get("/v1/audit/export", params={"format": "csv"})
        refused = admin.get("/v1/audit/export", params={"format": "xlsx"})
    assert as_csv.status_code == 200
    assert as_csv.headers["content-type"].startswith("text/csv")
    rows = list(csv.DictReader(io.StringIO(as_csv.text)))
    assert rows and {"seq", "ts", "event", "hash"} <= set(rows[0])
    assert refused.status_code == 422, refused.text
    assert "format" in refused.text
