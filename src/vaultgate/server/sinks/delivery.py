"""The delivery loop: every process runs one; per sink, only the lease holder delivers.

Each tick, for each enabled sink whose backoff has passed: take (or renew) the sink's lease, read
the events after its cursor, send those its filter keeps, and move the cursor past the whole
batch once the receiver took it. A failure leaves the cursor, counts the attempt, and waits
``backoff * 2**(attempts-1)`` (capped) before the same events go again. Nothing is copied on the
request path: the audit commit that records a use is all the outbox there is.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import aiohttp
from sqlalchemy.engine import Engine

from vaultgate.server.clock import Clock
from vaultgate.server.crypto import Barrier
from vaultgate.server.fleet.leases import owner_id
from vaultgate.server.fleet.ticker import Ticker
from vaultgate.server.sinks import formats, outbox, transports
from vaultgate.server.sinks.models import Sink
from vaultgate.server.sinks.store import SinkStore, open_secret

log = logging.getLogger("vaultgate.sinks")


@dataclass(frozen=True, slots=True)
class DeliverySettings:
    poll_seconds: float = 0.5
    batch: int = 500
    backoff_seconds: float = 1.0
    max_backoff_seconds: float = 300.0
    lease_seconds: float = 30.0
    timeout_seconds: float = 10.0
    batches_per_tick: int = 50  # a sink far behind catches up without starving the others


class Deliverer:
    def __init__(
        self,
        engine: Engine,
        store: SinkStore,
        barrier: Barrier,
        clock: Clock,
        settings: DeliverySettings,
        *,
        default_lead: int | None = None,
        wall: Callable[[], float] = time.time,
    ) -> None:
        self._engine = engine
        self._default_lead = default_lead
        self._store = store
        self._barrier = barrier
        self._clock = clock
        self._settings = settings
        self._wall = wall
        self.owner = owner_id()
        self._ticker: Ticker | None = None
        self._client: aiohttp.ClientSession | None = None

    def __repr__(self) -> str:
        return f"Deliverer(owner={self.owner!r})"

    async def start(self) -> None:
        self._ticker = Ticker("audit sink delivery", self.run_once, self._settings.poll_seconds)
        self._ticker.start()

    async def stop(self) -> None:
        if self._ticker is not None:
            await self._ticker.stop(grace=self._settings.timeout_seconds + 5)
        if self._client is not None:
            await self._client.close()

    async def run_once(self) -> None:
        sinks = await asyncio.to_thread(self._store.sinks, enabled_only=True)
        await asyncio.gather(*(self._drain(sink) for sink in sinks))

    async def _drain(self, sink: Sink) -> None:
        now, cfg = self._wall(), self._settings
        if sink.next_attempt_at > now:
            return
        claimed = await asyncio.to_thread(
            outbox.claim, self._engine, sink.id, self.owner, now=now, ttl=cfg.lease_seconds
        )
        if not claimed:
            return
        cursor = sink.cursor
        for _ in range(cfg.batches_per_tick):
            if self._ticker is not None and self._ticker.stopping:
                return
            events = await asyncio.to_thread(outbox.batch, self._engine, cursor, cfg.batch)
            if not events:
                return
            chosen = [e for e in events if sink.filter.matches(e) and self._lead_fits(sink, e)]
            try:
                if chosen:
                    await self._send(sink, chosen)
            except transports.DeliveryFailed as exc:
                await self._failed(sink, str(exc))
                return
            last = int(events[-1]["seq"])
            moved = await asyncio.to_thread(
                outbox.advance, self._engine, sink.id, self.owner, last, self._clock()
            )
            if not moved or len(events) < cfg.batch:
                return
            cursor = last

    def _lead_fits(self, sink: Sink, event: dict[str, Any]) -> bool:
        """An expiry alert goes to the sinks whose lead time it was raised for (alerts/)."""
        if event["event"] != "alert:expiry" or self._default_lead is None:
            return True
        lead = (event.get("details") or {}).get("lead_seconds")
        return lead == (sink.alert_lead_seconds or self._default_lead)

    async def _failed(self, sink: Sink, reason: str) -> None:
        cfg = self._settings
        delay = min(cfg.backoff_seconds * 2**sink.attempts, cfg.max_backoff_seconds)
        log.warning(
            "audit sink %s: delivery failed (%s); retrying in %.1fs", sink.name, reason, delay
        )
        await asyncio.to_thread(
            outbox.failed, self._engine, sink.id, self.owner, reason, self._wall() + delay
        )

    async def _send(self, sink: Sink, events: list[dict[str, Any]]) -> None:
        try:
            async with asyncio.timeout(self._settings.timeout_seconds):
                await self._send_now(sink, events)
        except TimeoutError:
            raise transports.DeliveryFailed(f"{sink.kind}: timed out") from None

    async def _send_now(self, sink: Sink, events: list[dict[str, Any]]) -> None:
        config = sink.config
        if sink.kind == "webhook":
            key = open_secret(self._barrier, sink)
            await transports.post_webhook(self._session(), config["url"], key, sink.name, events)
        elif sink.kind == "syslog":
            frames = formats.syslog_frames(
                events, facility=config["facility"], app_name=config["app_name"]
            )
            await self._send_syslog(config, frames)
        else:
            await asyncio.to_thread(transports.append_file, config["path"], formats.jsonl(events))

    async def _send_syslog(self, config: dict[str, Any], frames: bytes) -> None:
        context = None
        if config.get("tls"):  # rows stored before TLS existed have no such key: plain TCP
            files = [config.get(name) for name in ("ca_file", "cert_file", "key_file")]
            try:
                context = await asyncio.to_thread(transports.tls_context, *files)
            except transports.TlsFileError as exc:
                raise transports.DeliveryFailed(f"syslog: {exc.field} {exc}") from None
        await transports.send_syslog(
            config["host"],
            config["port"],
            frames,
            tls=context,
            server_name=config.get("server_name"),
        )

    def _session(self) -> aiohttp.ClientSession:
        # aiohttp, the server's HTTP client; no proxy from the environment, no cookies kept.
        if self._client is None or self._client.closed:
            self._client = aiohttp.ClientSession(
                trust_env=False, cookie_jar=aiohttp.DummyCookieJar()
            )
        return self._client
