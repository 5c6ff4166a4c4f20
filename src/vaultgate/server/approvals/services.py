"""Holding a call, deciding its gates, and the lazy moves (expiry, a lost executor) on read.

Decisions and status reads are database work and run off the event loop; a decision that lands
on this node wakes its long-polling waiters at once, other nodes' waiters notice on their next
read (``POLL_SECONDS``).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable, Coroutine
from datetime import datetime, timedelta
from typing import Any

import anyio.to_thread
from sqlalchemy.engine import Connection, Engine

from vaultgate.server.approvals import store, views
from vaultgate.server.approvals.decisions import check_approver, decided_event, row_event
from vaultgate.server.approvals.errors import ApprovalRequired, no_result, not_found, not_pending
from vaultgate.server.approvals.groups import GroupService
from vaultgate.server.approvals.models import STATUSES, TERMINAL, HeldRequest, KeptResult
from vaultgate.server.approvals.notify import Notifier, announcement
from vaultgate.server.approvals.sealing import open_sealed, seal
from vaultgate.server.audit.events import AuditEvent, new_id
from vaultgate.server.audit.sink import AuditSink
from vaultgate.server.auth.services import Actor
from vaultgate.server.clock import Clock
from vaultgate.server.crypto import Barrier
from vaultgate.server.egress.pipeline import UseRequest
from vaultgate.server.errors import Unprocessable
from vaultgate.server.storage.engine import reading

POLL_SECONDS = 0.5
MAX_WAIT = 25
NODE_LOST = "the node sending this call stopped before it recorded the answer; it is not sent again"
Executor = Callable[[str], Coroutine[Any, Any, None]]


class ApprovalService:
    def __init__(
        self,
        engine: Engine,
        barrier: Barrier,
        audit_key: bytes,
        clock: Clock,
        *,
        portal_base: str,
        lease_seconds: float,
    ) -> None:
        self._engine = engine
        self._barrier = barrier
        self._sink = AuditSink(audit_key)
        self._clock = clock
        self._portal_base = portal_base.rstrip("/")
        self._lease = timedelta(seconds=lease_seconds)
        self.node_id = new_id()
        self._events: dict[str, asyncio.Event] = {}
        self._running: dict[str, asyncio.Task[None]] = {}
        self.executor: Executor | None = None
        self.notifier = Notifier(None, None)
        self.groups = GroupService(engine, self._sink, clock)

    @property
    def engine(self) -> Engine:
        return self._engine

    def url(self, request_id: str) -> str:
        return f"{self._portal_base}/portal/approvals/{request_id}"

    # --- holding ---------------------------------------------------------------------------

    async def hold(
        self, use: UseRequest, held: ApprovalRequired, call: HeldRequest
    ) -> dict[str, Any]:
        pending = await anyio.to_thread.run_sync(self._hold, use, held, call)
        self.notifier.announce(announcement(pending, use, held, call))
        return pending

    def _hold(self, use: UseRequest, held: ApprovalRequired, call: HeldRequest) -> dict[str, Any]:
        now = self._clock()
        request_id, gate_ids = new_id(), [new_id() for _ in range(held.approvals)]
        app_id = str(use.principal.app_id)
        row: dict[str, Any] = {
            "id": request_id,
            "app_id": app_id,
            "grant_id": use.grant_id,
            "key_id": use.principal.key_id,
            "caller": use.caller,
            "reason": use.reason,
            "mode": use.mode,
            "method": use.method.upper(),
            "host": use.target.netloc[:255],
            "eligible": held.eligible,
            "status": "pending",
            "request_sealed": seal(
                self._barrier, call.dump(), app_id=app_id, approval_id=request_id, kind="request"
            ),
            "request_id": use.request_id,
            "created_at": now,
            "expires_at": now + timedelta(seconds=held.ttl_seconds),
        }
        event = AuditEvent.new(
            event="approval:requested",
            outcome="ok",
            now=now,
            app_id=app_id,
            key_id=use.principal.key_id,
            caller=use.caller,
            source_ip=use.client_ip,
            grant_id=use.grant_id,
            method=row["method"],
            url=use.display_url,
            reason=use.reason,
            mode=use.mode,
            request_id=use.request_id,
            details={
                "approval_id": request_id,
                "gates": len(gate_ids),
                "expires_at": views.iso(row["expires_at"]),
            },
        )
        with self._engine.begin() as conn:
            store.insert(conn, row, gate_ids)
            self._sink.append(conn, event)
        return views.pending(row, gate_ids, self.url(request_id), now)

    # --- deciding --------------------------------------------------------------------------

    async def decide(
        self, approval_id: str, approver: str, comment: str | None, *, approve: bool, actor: Actor
    ) -> dict[str, Any]:
        """Record one person's decision on the next open gate; send the call after the last."""
        request_id, ready = await anyio.to_thread.run_sync(
            lambda: self._decide(approval_id, approver, comment, approve, actor)
        )
        self.notify(request_id)
        if ready:
            self.start(request_id)
        return await anyio.to_thread.run_sync(self.show, request_id)

    def _decide(
        self, approval_id: str, approver: str, comment: str | None, approve: bool, actor: Actor
    ) -> tuple[str, bool]:
        email = approver.strip().lower()
        if comment is not None and len(comment) > 2000:
            raise Unprocessable("comment: at most 2000 characters", field="comment")
        now = self._clock()
        with self._engine.begin() as conn:
            request_id = store.request_id_of(conn, approval_id)
            row = store.load(conn, request_id, for_update=True) if request_id else None
            if row is None:
                raise not_found()
            row = self._settle(conn, row, now)
            if row["status"] != "pending":
                raise not_pending(row["status"])
            gates = store.gates(conn, row["id"])
            check_approver(conn, row, gates, email, approve)
            open_gates = [g for g in gates if g["status"] == "pending"]
            gate = open_gates[0]
            decision = "approved" if approve else "denied"
            store.decide_gate(
                conn, gate["id"], status=decision, approver=email, comment=comment, decided_at=now
            )
            last = approve and len(open_gates) == 1
            if not approve:
                # Never to be sent: the held request goes now rather than at expiry.
                store.move(
                    conn,
                    row["id"],
                    "pending",
                    status="denied",
                    decided_at=now,
                    decision_reason=comment,
                    request_sealed=None,
                )
            elif last:
                store.move(conn, row["id"], "pending", status="approved", decided_at=now)
            self._sink.append(conn, decided_event(row, gate, email, decision, comment, actor, now))
        return row["id"], last

    # --- the lazy moves --------------------------------------------------------------------

    def _settle(self, conn: Connection, row: dict[str, Any], now: datetime) -> dict[str, Any]:
        """Apply a move that time has made due: expiry, or the loss of the executing node."""
        if row["status"] == "pending" and now >= row["expires_at"]:
            if store.move(conn, row["id"], "pending", status="expired", request_sealed=None):
                self._sink.append(
                    conn, row_event(row, "approval:expired", "denied", "approval_expired", now)
                )
            return store.load(conn, row["id"]) or row
        claimed = row["claimed_at"]
        if row["status"] == "executing" and claimed is not None and now >= claimed + self._lease:
            if store.move(
                conn,
                row["id"],
                "executing",
                status="failed",
                execution_error=NODE_LOST,
                request_sealed=None,
            ):
                self._sink.append(
                    conn, row_event(row, "approval:executed", "error", "node_lost", now)
                )
            return store.load(conn, row["id"]) or row
        return row

    def _current(
        self, approval_id: str, app_id: str | None
    ) -> tuple[dict[str, Any], list[dict[str, Any]]]:
        now = self._clock()
        with reading(self._engine) as conn:
            request_id = store.request_id_of(conn, approval_id)
            row = store.load(conn, request_id) if request_id else None
            if row is None or (app_id is not None and row["app_id"] != app_id):
                raise not_found()
            due = self._due(row, now)
            gates = store.gates(conn, row["id"])
        if due:
            with self._engine.begin() as conn:
                locked = store.load(conn, row["id"], for_update=True) or row
                row = self._settle(conn, locked, now)
        return row, gates

    def _due(self, row: dict[str, Any], now: datetime) -> bool:
        if row["status"] == "pending":
            return bool(now >= row["expires_at"])
        claimed = row["claimed_at"]
        return row["status"] == "executing" and claimed is not None and now >= claimed + self._lease

    # --- reading ---------------------------------------------------------------------------

    def show(self, approval_id: str) -> dict[str, Any]:
        row, gates = self._current(approval_id, None)
        return views.public(row, gates, self.url(row["id"]), self._held(row))

    def queue(
        self, *, status: str | None, grant_id: str | None, app_id: str | None, limit: int
    ) -> list[dict[str, Any]]:
        if status is not None and status not in STATUSES:
            raise Unprocessable("status: must be one of " + ", ".join(STATUSES), field="status")
        if not 1 <= limit <= 500:
            raise Unprocessable("limit: must be from 1 to 500", field="limit")
        with reading(self._engine) as conn:
            rows = store.listing(conn, status=status, grant_id=grant_id, app_id=app_id, limit=limit)
            gates = store.gates_of(conn, [r["id"] for r in rows])
        return [views.public(r, gates[r["id"]], self.url(r["id"]), self._held(r)) for r in rows]

    def _held(self, row: dict[str, Any]) -> HeldRequest | None:
        blob = row["request_sealed"]
        if blob is None:
            return None
        raw = open_sealed(
            self._barrier, blob, app_id=row["app_id"], approval_id=row["id"], kind="request"
        )
        return HeldRequest.load(raw)

    def held_request(self, row: dict[str, Any]) -> HeldRequest | None:
        return self._held(row)

    async def sdk_status(self, approval_id: str, app_id: str, wait: int) -> dict[str, Any]:
        """``ApprovalStatus``; with ``wait``, held open until it changes (at most ``wait`` s)."""
        row, gates = await anyio.to_thread.run_sync(self._current, approval_id, app_id)
        first = views.sdk_status(approval_id, row, gates)
        self._pick_up(row)
        loop = asyncio.get_running_loop()
        deadline = loop.time() + wait
        view = first
        while view["status"] not in TERMINAL and (left := deadline - loop.time()) > 0:
            await self._changed(row["id"], min(left, POLL_SECONDS))
            row, gates = await anyio.to_thread.run_sync(self._current, approval_id, app_id)
            view = views.sdk_status(approval_id, row, gates)
            self._pick_up(row)
            if _moved(first, view):
                break
        return view

    def result(self, approval_id: str, app_id: str) -> dict[str, Any]:
        row, _ = self._current(approval_id, app_id)
        if row["status"] != "executed":
            raise no_result(row["status"], row["execution_error"])
        if row["result_sealed"] is None or self._clock() >= row["result_expires_at"]:
            raise no_result("expired", "the result was kept until the approval's window closed")
        raw = open_sealed(
            self._barrier,
            row["result_sealed"],
            app_id=row["app_id"],
            approval_id=row["id"],
            kind="result",
        )
        return {**KeptResult.load(raw).payload, "approval_id": row["id"]}

    # --- waking and executing --------------------------------------------------------------

    async def _changed(self, request_id: str, seconds: float) -> None:
        event = self._events.setdefault(request_id, asyncio.Event())
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(event.wait(), seconds)

    def notify(self, request_id: str) -> None:
        """Wake this node's waiters on ``request_id`` (call on the event loop's thread)."""
        event = self._events.pop(request_id, None)
        if event is not None:
            event.set()

    def _pick_up(self, row: dict[str, Any]) -> None:
        # An approved call nobody claimed (its approver's node went away first) is claimed by
        # whichever node sees it; the claim itself makes sure only one sends it.
        if row["status"] == "approved":
            self.start(row["id"])

    def start(self, request_id: str) -> None:
        if self.executor is None or request_id in self._running:
            return
        task = asyncio.get_running_loop().create_task(self.executor(request_id))
        self._running[request_id] = task
        task.add_done_callback(lambda _: self._running.pop(request_id, None))

    async def settle_running(self) -> None:
        """Wait for the calls this node is sending (tests, and a clean shutdown)."""
        if self._running:
            await asyncio.gather(*self._running.values(), return_exceptions=True)

    # Claim, then record: the two moves around the single send (see executor.py).

    def claim(self, request_id: str) -> dict[str, Any] | None:
        now = self._clock()
        with self._engine.begin() as conn:
            if not store.move(
                conn,
                request_id,
                "approved",
                status="executing",
                claimed_at=now,
                claimed_by=self.node_id,
            ):
                return None
            return store.load(conn, request_id)

    def finish(self, row: dict[str, Any], payload: dict[str, Any]) -> None:
        now = self._clock()
        blob = seal(
            self._barrier,
            KeptResult(payload).dump(),
            app_id=row["app_id"],
            approval_id=row["id"],
            kind="result",
        )
        keep = max(row["expires_at"], now + (row["expires_at"] - row["created_at"]))
        with self._engine.begin() as conn:
            done = store.move(
                conn,
                row["id"],
                "executing",
                status="executed",
                executed_at=now,
                result_sealed=blob,
                upstream_status=payload["status_code"],
                result_expires_at=keep,
                request_sealed=None,
            )
            if done:
                status = payload["status_code"]
                self._sink.append(
                    conn,
                    row_event(
                        row, "approval:executed", "ok", "executed", now, upstream_status=status
                    ),
                )

    def fail(self, row: dict[str, Any], message: str, code: str) -> None:
        now = self._clock()
        with self._engine.begin() as conn:
            if store.move(
                conn,
                row["id"],
                "executing",
                status="failed",
                executed_at=now,
                execution_error=message,
                request_sealed=None,
            ):
                self._sink.append(conn, row_event(row, "approval:executed", "error", code, now))


def _moved(before: dict[str, Any], after: dict[str, Any]) -> bool:
    """Whether a held poll should answer: an end, or a gate decided while others still wait.

    ``approved`` and ``executing`` last only as long as the send: answering them would make the
    client sleep its poll interval before it asks again, so the poll stays held through them.
    """
    if after["status"] in TERMINAL:
        return True
    gates = [g["status"] for g in before["gates"]] != [g["status"] for g in after["gates"]]
    return after["status"] == "pending" and gates
