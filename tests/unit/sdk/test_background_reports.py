"""Outcome reports off the critical path: sent in the background, drained on close, bounded.

A real loopback server plays the vault and the provider; its report endpoint holds each report
until the test opens ``gate``, so a test can prove ``request()`` returned while its report was
still held, and that close waited for it.
"""

from __future__ import annotations

import asyncio
import json
import logging
import socket
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

from vaultgate import AlterValueError, AlterVault, SyncVault
from vaultgate._reports import verdict

API_KEY = "alter_key_0123456789abcdefghijABCDEFGHIJ-_klmnopqr"
CANARY = "canary-tok-Rp4vK8sW"  # the credential: it must never reach a log line
GRANT_ID = "0b8f3c52-4a1e-4c6b-9a57-2d7e1f0c9a31"
WAIT = 20.0  # generous: the machine is shared; nothing here measures time


@dataclass
class HeldVault:
    """The vault's token and report routes plus a provider, on one loopback port."""

    port: int = 0
    gate: threading.Event = field(default_factory=threading.Event)
    # "accept" answers 204; "refuse" a 500 echoing secrets; "hang_up" closes without an answer;
    # "cut" records every second report of a connection, then closes it without an answer.
    mode: str = "accept"
    received: int = 0  # reports, counted in each batch
    answered: int = 0
    batches: int = 0  # batch requests accepted
    # The batch route: "accept"; "missing" (a vault without it: 404); "refuse" (422).
    batch_route: str = "accept"
    batch_refusals: int = 0
    # The vault's replay check: a report's nonce is recorded once; a second copy is refused.
    nonces: list[str] = field(default_factory=list)  # of the requests recorded
    recorded: int = 0  # reports recorded
    arrived: threading.Condition = field(default_factory=threading.Condition)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def provider(self) -> str:
        return self.url + "/provider"

    def wait_received(self, count: int) -> None:
        with self.arrived:
            if not self.arrived.wait_for(lambda: self.received >= count, timeout=WAIT):
                raise AssertionError(f"{count} reports expected, {self.received} arrived")

    def wait_answered(self, count: int) -> None:
        with self.arrived:
            if not self.arrived.wait_for(lambda: self.answered >= count, timeout=WAIT):
                raise AssertionError(f"{count} answers expected, {self.answered} sent")

    def record(self, count: int) -> None:
        with self.arrived:
            self.received += count
            self.arrived.notify_all()


def _handler(vault: HeldVault) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, *args: Any) -> None:
            pass

        def _send(self, status: int, body: bytes = b"") -> None:
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def _hang_up(self) -> None:
            """Closed without an answer, lingering: the requests already sent are read first,
            so the answers already written are not lost to a reset."""
            self.wfile.flush()
            self.connection.shutdown(socket.SHUT_WR)
            while self.rfile.read1(65536):
                pass
            self.close_connection = True

        def do_GET(self) -> None:
            self._send(200, b'{"ok":true}')

        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers.get("content-length") or 0))
            if self.path == "/sdk/token":
                self._send(200, json.dumps({"access_token": CANARY, "grant_id": GRANT_ID}).encode())
                return
            if self.path.endswith("-calls") and vault.batch_route != "accept":
                vault.batch_refusals += 1
                status, code = (404, "not_found") if vault.batch_route == "missing" else (422, "x")
                self._send(status, json.dumps({"detail": {"error": code}}).encode())
                return
            nonce = self.headers["x-alter-nonce"]
            if nonce in vault.nonces:
                refusal = {"detail": {"error": "replayed_request", "message": "seen"}}
                self._send(401, json.dumps(refusal).encode())
                return
            # A batch (``/sdk/oauth/audit/api-calls``) carries several reports, one nonce.
            count = len(json.loads(body)["reports"]) if self.path.endswith("-calls") else 1
            vault.batches += int(self.path.endswith("-calls"))
            vault.record(count)
            self.reports = getattr(self, "reports", 0) + 1
            if vault.mode == "cut" and self.reports % 2 == 0:
                vault.nonces.append(nonce)  # recorded, and the answer is lost
                vault.recorded += count
                self._hang_up()
                return
            if not vault.gate.wait(timeout=WAIT):
                return
            if vault.mode == "hang_up":  # failed before recording: a resent copy is new
                self.close_connection = True
                return
            with vault.arrived:
                vault.answered += count
                vault.arrived.notify_all()
            if vault.mode == "refuse":
                echo = json.dumps({"detail": f"bad report from {API_KEY} with {CANARY}"})
                self._send(500, echo.encode())
                return
            vault.nonces.append(nonce)
            vault.recorded += count
            self._send(204)

    return Handler


@pytest.fixture
def held() -> Iterator[HeldVault]:
    vault = HeldVault()
    server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(vault))
    vault.port = server.server_address[1]
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield vault
    finally:
        vault.gate.set()
        server.shutdown()
        server.server_close()


def async_vault(held: HeldVault, **kwargs: Any) -> AlterVault:
    return AlterVault(API_KEY, base_url=held.url, env={}, **kwargs)


def sync_vault(held: HeldVault, **kwargs: Any) -> SyncVault:
    return SyncVault(API_KEY, base_url=held.url, env={}, **kwargs)


def report_threads() -> set[threading.Thread]:
    return {t for t in threading.enumerate() if t.name == "vaultgate-reports"}


async def test_async_request_returns_while_its_report_is_held(held: HeldVault) -> None:
    async with async_vault(held) as vault:
        response = await vault.request("GET", held.provider, grant_id=GRANT_ID)
        assert response.json() == {"ok": True}
        await asyncio.to_thread(held.wait_received, 1)
        # request() has returned, and the vault holds its report unanswered.
        assert held.answered == 0
        assert vault.pending_reports == 1
        held.gate.set()
    assert held.answered == 1
    assert (vault.pending_reports, vault.failed_reports, vault.dropped_reports) == (0, 0, 0)


def test_sync_request_returns_while_its_report_is_held(held: HeldVault) -> None:
    with sync_vault(held) as vault:
        response = vault.request("GET", held.provider, grant_id=GRANT_ID)
        assert response.json() == {"ok": True}
        held.wait_received(1)
        assert held.answered == 0
        assert vault.pending_reports == 1
        held.gate.set()
    assert held.answered == 1
    assert (vault.pending_reports, vault.failed_reports, vault.dropped_reports) == (0, 0, 0)


async def test_async_close_delivers_the_reports_still_held(held: HeldVault) -> None:
    vault = async_vault(held)
    for _ in range(5):
        await vault.request("GET", held.provider, grant_id=GRANT_ID)
    # The vault holds what the two senders took; what neither took queues behind them.
    await asyncio.to_thread(held.wait_received, 2)
    assert vault.pending_reports == 5
    closing = asyncio.create_task(vault.aclose())
    await asyncio.sleep(0)  # let aclose() start while the reports are still held
    assert not closing.done()
    held.gate.set()
    await asyncio.wait_for(closing, WAIT)
    assert held.answered == held.recorded == 5
    # Two senders send at most two requests at a time: some of the five went out together.
    assert held.batches >= 1
    assert (vault.pending_reports, vault.failed_reports) == (0, 0)


def test_sync_close_delivers_the_reports_still_queued(held: HeldVault) -> None:
    vault = sync_vault(held)
    for _ in range(3):
        vault.request("GET", held.provider, grant_id=GRANT_ID)
    held.wait_received(1)  # the worker holds the first; two wait in the queue
    closing = threading.Thread(target=vault.close)
    closing.start()
    held.gate.set()
    closing.join(WAIT)
    assert not closing.is_alive()
    assert held.answered == 3
    assert (vault.pending_reports, vault.failed_reports) == (0, 0)


async def test_async_full_backlog_drops_and_counts(
    held: HeldVault, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.WARNING, logger="vaultgate"):
        async with async_vault(held, max_pending_reports=2) as vault:
            for _ in range(5):
                response = await vault.request("GET", held.provider, grant_id=GRANT_ID)
                assert response.status_code == 200
            assert (vault.pending_reports, vault.dropped_reports) == (2, 3)
            held.gate.set()
    assert held.received == held.answered == 2
    assert vault.dropped_reports == 3
    assert len([r for r in caplog.records if "dropped" in r.getMessage()]) == 1


def test_sync_close_delivers_a_whole_backlog_sent_in_batches(held: HeldVault) -> None:
    vault = sync_vault(held)
    for _ in range(60):
        vault.request("GET", held.provider, grant_id=GRANT_ID)
    held.wait_received(1)  # the thread holds a batch: the others queue behind it
    closing = threading.Thread(target=vault.close)
    closing.start()
    held.gate.set()
    closing.join(WAIT)
    assert not closing.is_alive()
    assert held.answered == held.recorded == 60
    assert len(held.nonces) == len(set(held.nonces))
    assert held.batches >= 1
    assert (vault.pending_reports, vault.failed_reports, vault.dropped_reports) == (0, 0, 0)


def test_sync_reports_cut_off_mid_pipeline_are_resent_and_recorded_once(held: HeldVault) -> None:
    """The vault records every second report of a connection and then closes it unanswered:
    the client cannot know it was recorded, sends the same signed copy again, and the vault's
    replay refusal of that copy proves the first landed. None is lost, none is doubled."""
    held.mode = "cut"
    held.gate.set()
    with sync_vault(held) as vault:
        for _ in range(40):
            vault.request("GET", held.provider, grant_id=GRANT_ID)
    assert held.recorded == 40
    assert len(held.nonces) == len(set(held.nonces))
    assert (vault.pending_reports, vault.failed_reports, vault.dropped_reports) == (0, 0, 0)


def test_sync_many_threads_lose_no_report(held: HeldVault) -> None:
    held.gate.set()
    with sync_vault(held) as vault:

        def calls() -> None:
            for _ in range(25):
                vault.request("GET", held.provider, grant_id=GRANT_ID)

        threads = [threading.Thread(target=calls) for _ in range(8)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(WAIT * 10)
    assert held.recorded == 200
    assert len(held.nonces) == len(set(held.nonces))
    assert (vault.failed_reports, vault.dropped_reports) == (0, 0)


def test_sync_full_backlog_drops_and_counts(
    held: HeldVault, caplog: pytest.LogCaptureFixture
) -> None:
    with (
        caplog.at_level(logging.WARNING, logger="vaultgate"),
        sync_vault(held, max_pending_reports=2) as vault,
    ):
        vault.request("GET", held.provider, grant_id=GRANT_ID)
        held.wait_received(1)  # in flight: the queue of two is empty again
        for _ in range(4):
            response = vault.request("GET", held.provider, grant_id=GRANT_ID)
            assert response.status_code == 200
        assert (vault.pending_reports, vault.dropped_reports) == (3, 2)
        held.gate.set()
    assert held.received == held.answered == 3
    assert vault.dropped_reports == 2
    assert len([r for r in caplog.records if "dropped" in r.getMessage()]) == 1


@pytest.mark.parametrize("mode", ["refuse", "hang_up"])
async def test_async_failing_reports_never_reach_the_caller_and_log_no_secret(
    held: HeldVault, mode: str, caplog: pytest.LogCaptureFixture
) -> None:
    held.mode = mode
    held.gate.set()
    with caplog.at_level(logging.DEBUG, logger="vaultgate"):
        async with async_vault(held) as vault:
            for _ in range(2):
                response = await vault.request("GET", held.provider, grant_id=GRANT_ID)
                assert response.json() == {"ok": True}
    assert vault.failed_reports == 2
    _logged_once_without_secrets(caplog)


@pytest.mark.parametrize("mode", ["refuse", "hang_up"])
def test_sync_failing_reports_never_reach_the_caller_and_log_no_secret(
    held: HeldVault, mode: str, caplog: pytest.LogCaptureFixture
) -> None:
    held.mode = mode
    held.gate.set()
    with caplog.at_level(logging.DEBUG, logger="vaultgate"), sync_vault(held) as vault:
        for _ in range(2):
            response = vault.request("GET", held.provider, grant_id=GRANT_ID)
            assert response.json() == {"ok": True}
    assert vault.failed_reports == 2
    _logged_once_without_secrets(caplog)


def _logged_once_without_secrets(caplog: pytest.LogCaptureFixture) -> None:
    warnings = [r for r in caplog.records if r.levelno >= logging.WARNING]
    assert len(warnings) == 1, [r.getMessage() for r in warnings]
    assert "audit report" in warnings[0].getMessage()
    assert all(r.exc_info is None for r in caplog.records)
    for secret in (CANARY, API_KEY, API_KEY[10:]):
        assert secret not in caplog.text


def test_sync_report_thread_starts_on_first_report_and_stops_on_close(held: HeldVault) -> None:
    before = report_threads()
    held.gate.set()
    vault = sync_vault(held)
    assert report_threads() == before  # a client that never reports starts no thread
    vault.request("GET", held.provider, grant_id=GRANT_ID)
    [thread] = report_threads() - before
    assert thread.daemon
    vault.close()
    assert not thread.is_alive()
    assert held.answered == 1


@pytest.mark.parametrize("limit", [0, -1, True, 1.5])
def test_backlog_limit_must_be_a_positive_integer(held: HeldVault, limit: Any) -> None:
    with pytest.raises(AlterValueError, match="max_pending_reports"):
        sync_vault(held, max_pending_reports=limit)
    with pytest.raises(AlterValueError, match="max_pending_reports"):
        async_vault(held, max_pending_reports=limit)


@pytest.mark.parametrize("route", ["missing", "refuse"])
async def test_async_reports_refused_as_a_batch_go_alone(held: HeldVault, route: str) -> None:
    """A vault without the batch route (404), or one refusing a batch (one report at fault:
    422), still gets every report, each alone; a missing route is not tried again."""
    held.batch_route = route
    vault = async_vault(held)
    refusals = []
    for round_ in (1, 2):
        held.gate.clear()
        for _ in range(5):
            await vault.request("GET", held.provider, grant_id=GRANT_ID)
        # The vault holds what went alone; at most two requests are in flight, so some of
        # the five were (or will be) sent as a batch.
        await asyncio.to_thread(held.wait_received, 5 * round_ - 3)
        held.gate.set()
        await asyncio.wait_for(vault._outbox.drain(), WAIT)
        refusals.append(held.batch_refusals)
    await vault.aclose()
    assert held.recorded == 10
    assert refusals[0] >= 1
    if route == "missing":
        assert refusals[1] == refusals[0]  # not tried again
    else:
        assert refusals[1] > refusals[0]
    assert (vault.failed_reports, vault.dropped_reports) == (0, 0)


@pytest.mark.parametrize("route", ["missing", "refuse"])
def test_sync_reports_refused_as_a_batch_go_alone(held: HeldVault, route: str) -> None:
    held.batch_route = route
    vault = sync_vault(held)
    refusals = []
    for round_ in (1, 2):
        held.gate.clear()
        for _ in range(30):
            vault.request("GET", held.provider, grant_id=GRANT_ID)
        held.wait_received(30 * round_ - 29)  # the thread holds some; the others queue
        held.gate.set()
        held.wait_answered(30 * round_)  # nothing held when the gate closes again
        refusals.append(held.batch_refusals)
    vault.close()
    assert held.recorded == 60
    assert refusals[0] >= 1  # the reports queued behind the first one held went as a batch
    if route == "missing":
        assert refusals[1] == refusals[0]  # not tried again
    else:
        assert refusals[1] > refusals[0]
    assert (vault.failed_reports, vault.dropped_reports) == (0, 0)


@pytest.mark.parametrize(
    ("status", "body", "expected"),
    [
        (202, b'{"ok":true,"recorded":3}', "delivered"),
        (404, b'{"detail":"Not Found"}', "unsupported"),  # a vault without the route
        (501, b'{"detail":{"error":"not_implemented"}}', "unsupported"),
        (404, b'{"detail":{"error":"grant_not_found"}}', "singly"),  # one report at fault
        (422, b'{"detail":{"error":"validation_error"}}', "singly"),
        (413, b'{"detail":{"error":"body_too_large"}}', "singly"),
        (401, b'{"detail":{"error":"invalid_key"}}', "failed"),
        (503, b"not json", "failed"),
    ],
)
def test_what_an_answer_to_a_batch_means_for_its_reports(
    status: int, body: bytes, expected: str
) -> None:
    assert verdict(status, body).value == expected
