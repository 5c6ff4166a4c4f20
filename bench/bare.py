"""Rows (h) and (i): the floor under the vault, a bare Python proxy doing the least it must do.

Issue 9 sets its goals against this program's kind: "a bare Python proxy doing key lookup,
policy, a token bucket, one durable hash-chained audit row and the aiohttp call". This is that
proxy and no more, served as the vault is (uvicorn with httptools on asyncio's loop, the vault's
own listening sockets and supervisor, as many worker processes). Per request (h),
``/proxy/bench/<path>``, hashes the caller's key and looks it up, checks the method, the path
and the host, takes a token from a bucket, commits one audit row chained by HMAC to the row
before it (group-committed, ``synchronous=FULL`` in WAL, one lock for all the processes, as the
vault does), and makes the upstream call with the credential injected. (i), ``/sdk/token``,
checks the signed request instead (the signature, its clock and a nonce kept in memory), then
the same policy, bucket and audit row, and answers the credential as JSON.

Neither has the vault's other duties: revocation and edits seen across nodes, durable nonces,
budgets, approvals, outcome records, scoped keys, metrics, header hygiene, fairness, error
envelopes. What they reach is an upper bound for a Python process doing this work on this
machine, measured in the same run as nginx (bench/report.py prints it beside the goals).

    python -m bench.bare PORT UPSTREAM_ORIGIN DATABASE WORKERS
"""

from __future__ import annotations

import asyncio
import fcntl
import hashlib
import hmac
import json
import os
import re
import socket
import sqlite3
import sys
import time
import uuid
from typing import Any

import aiohttp
import uvicorn

from vaultgate.injection.signing import signing_key, string_to_sign
from vaultgate.server.fleet.sockets import bind_group
from vaultgate.server.fleet.supervisor import Supervisor

BARE_KEY = "vg-bare-bench-key"
SECRET = "sk-benchmark-secret"
_KEYS = {hashlib.sha256(BARE_KEY.encode()).hexdigest(): "app-bench"}
_PATHS = re.compile(r"/.*")
_METHODS = frozenset({"GET", "POST"})
_CHAIN_KEY = b"bench-chain-key"
_PREFIX = "/proxy/bench"


def _open(database: str) -> sqlite3.Connection:
    conn = sqlite3.connect(database, isolation_level=None, check_same_thread=False)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("PRAGMA synchronous=FULL")
    conn.execute("PRAGMA busy_timeout=10000")
    return conn


def prepare(database: str) -> None:
    conn = _open(database)
    conn.execute("CREATE TABLE IF NOT EXISTS audit (id TEXT, body TEXT, hash TEXT)")
    conn.execute("CREATE TABLE IF NOT EXISTS head (hash TEXT)")
    conn.execute("INSERT INTO head VALUES ('')")
    conn.close()


class Bare:
    def __init__(self) -> None:
        self.upstream = os.environ["BARE_UPSTREAM"]
        self.database = os.environ["BARE_DATABASE"]
        self.session: aiohttp.ClientSession | None = None
        self.conn: sqlite3.Connection | None = None
        self.lock_fd = -1
        self.tokens, self.rate, self.stamp = 1e7, 1e7, time.monotonic()
        self.queued: list[tuple[str, asyncio.Future[None]]] = []
        self.flushing = False
        self.flusher: asyncio.Future[None] | None = None
        self.nonces: set[str] = set()
        self.signing_key = signing_key(BARE_KEY)

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] == "lifespan":
            await self._lifespan(receive, send)
            return
        if scope["path"] == "/sdk/token":
            status, body = await self._token(scope, receive)
        else:
            status, body = await self._handle(scope)
        length = str(len(body)).encode()
        headers = [(b"content-length", length), (b"content-type", b"application/json")]
        await send({"type": "http.response.start", "status": status, "headers": headers})
        await send({"type": "http.response.body", "body": body})

    async def _lifespan(self, receive: Any, send: Any) -> None:
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                self.session = aiohttp.ClientSession()
                self.conn = _open(self.database)
                self.lock_fd = os.open(self.database + ".lock", os.O_RDWR | os.O_CREAT, 0o600)
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                if self.session is not None:
                    await self.session.close()
                await send({"type": "lifespan.shutdown.complete"})
                return

    async def _handle(self, scope: dict[str, Any]) -> tuple[int, bytes]:
        auth = dict(scope["headers"]).get(b"authorization", b"")
        app = _KEYS.get(hashlib.sha256(auth[7:]).hexdigest())
        path = scope["path"]
        if app is None:
            return 401, b"unknown key"
        if not path.startswith(_PREFIX + "/"):
            return 404, b"no such grant"
        rest = path[len(_PREFIX) :]
        if scope["method"] not in _METHODS or not _PATHS.fullmatch(rest):
            return 403, b"policy"
        if not self.upstream.startswith("http://127.0.0.1:"):
            return 422, b"host"
        now = time.monotonic()
        self.tokens = min(self.rate, self.tokens + (now - self.stamp) * self.rate)
        self.stamp = now
        if self.tokens < 1:
            return 429, b"rate"
        self.tokens -= 1
        event = {"id": str(uuid.uuid4()), "app": app, "method": scope["method"], "path": rest}
        await self._audit(json.dumps(event, sort_keys=True, separators=(",", ":")))
        assert self.session is not None
        headers = {"Authorization": f"Bearer {SECRET}"}
        async with self.session.get(self.upstream + rest, headers=headers) as response:
            return response.status, await response.read()

    async def _token(self, scope: dict[str, Any], receive: Any) -> tuple[int, bytes]:
        """`/sdk/token`: the signed request checked (signature, clock, nonce), then policy, the
        bucket and the audit row as above, and the credential's header returned as JSON."""
        raw = b""
        while True:
            message = await receive()
            raw += message.get("body", b"")
            if not message.get("more_body"):
                break
        headers = {k.decode(): v.decode() for k, v in scope["headers"]}
        app = _KEYS.get(hashlib.sha256(headers.get("x-api-key", "").encode()).hexdigest())
        if app is None:
            return 401, b"unknown key"
        stamp, nonce = headers.get("x-alter-timestamp", ""), headers.get("x-alter-nonce", "")
        if not stamp.isdigit() or abs(time.time() - int(stamp)) > 300 or nonce in self.nonces:
            return 401, b"stale or replayed"
        digest = hashlib.sha256(raw).hexdigest()
        signed = string_to_sign("POST", "/sdk/token", stamp, nonce, digest)
        expected = hmac.new(self.signing_key, signed.encode(), "sha256").hexdigest()
        if not hmac.compare_digest(expected, headers.get("x-alter-signature", "")):
            return 401, b"bad signature"
        self.nonces.add(nonce)
        body = json.loads(raw)
        target = body["request"]
        if target["method"] not in _METHODS or not target["url"].startswith(self.upstream):
            return 403, b"policy"
        now = time.monotonic()
        self.tokens = min(self.rate, self.tokens + (now - self.stamp) * self.rate)
        self.stamp = now
        if self.tokens < 1:
            return 429, b"rate"
        self.tokens -= 1
        event = {
            "id": str(uuid.uuid4()),
            "app": app,
            "grant": body["grant_id"],
            "url": target["url"],
        }
        await self._audit(json.dumps(event, sort_keys=True, separators=(",", ":")))
        answer = {"access_token": SECRET, "token_type": "Bearer", "grant_id": body["grant_id"]}
        return 200, json.dumps(answer).encode()

    async def _audit(self, row: str) -> None:
        """Committed before the call: queued rows share one transaction (group commit)."""
        future = asyncio.get_running_loop().create_future()
        self.queued.append((row, future))
        if not self.flushing:
            self.flushing = True
            self.flusher = asyncio.ensure_future(self._flush())
        await future

    async def _flush(self) -> None:
        loop = asyncio.get_running_loop()
        while self.queued:
            batch, self.queued = self.queued, []
            await loop.run_in_executor(None, self._commit, [row for row, _ in batch])
            for _, future in batch:
                future.set_result(None)
        self.flushing = False

    def _commit(self, rows: list[str]) -> None:
        assert self.conn is not None
        fcntl.flock(self.lock_fd, fcntl.LOCK_EX)
        try:
            self.conn.execute("BEGIN IMMEDIATE")
            (head,) = self.conn.execute("SELECT hash FROM head").fetchone()
            for row in rows:
                head = hmac.new(_CHAIN_KEY, (head + row).encode(), "sha256").hexdigest()
                self.conn.execute("INSERT INTO audit VALUES (?, ?, ?)", (row[:40], row, head))
            self.conn.execute("UPDATE head SET hash = ?", (head,))
            self.conn.execute("COMMIT")
        finally:
            fcntl.flock(self.lock_fd, fcntl.LOCK_UN)


def _worker(upstream: str, database: str, sock: socket.socket) -> None:
    os.environ["BARE_UPSTREAM"] = upstream
    os.environ["BARE_DATABASE"] = database
    config = uvicorn.Config(
        Bare(), http="httptools", loop="asyncio", log_level="error", access_log=False
    )
    # Accepted connections inherit this. asyncio sets it only on sockets it knows are TCP, which a
    # socket handed to a spawned worker is not; without it the body waits for the head's ACK
    # (the vault corks the two writes into one instead: server/api/connections.py).
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    uvicorn.Server(config).run(sockets=[sock])


def main() -> None:
    port, upstream, database, workers = sys.argv[1:5]
    prepare(database)
    # The vault's own listening sockets and supervisor (`serve --workers N`): one socket per
    # worker, as the vault is served.
    sockets = bind_group("127.0.0.1", int(port), int(workers))
    sys.exit(Supervisor(_worker, sockets, (upstream, database)).run())


if __name__ == "__main__":
    main()
