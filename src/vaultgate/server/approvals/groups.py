"""Named groups of approvers: a rule may say ``group`` instead of listing people."""

from __future__ import annotations

from typing import Any

from sqlalchemy.engine import Engine

from vaultgate.server.approvals import store
from vaultgate.server.audit.events import AuditEvent
from vaultgate.server.audit.sink import AuditSink
from vaultgate.server.auth.services import Actor, actor_fields
from vaultgate.server.clock import Clock
from vaultgate.server.storage.engine import reading


class GroupService:
    def __init__(self, engine: Engine, sink: AuditSink, clock: Clock) -> None:
        self._engine = engine
        self._sink = sink
        self._clock = clock

    def set(self, name: str, members: list[str], actor: Actor) -> dict[str, Any]:
        """Replace the group's members (an empty list empties it); audited with the change."""
        now = self._clock()
        with self._engine.begin() as conn:
            store.set_group(conn, name, members)
            event = AuditEvent.new(
                event="approver_group:set",
                outcome="ok",
                now=now,
                details={"group": name, "members": members},
                **actor_fields(actor),
            )
            self._sink.append(conn, event)
        return {"name": name, "members": members}

    def all(self) -> list[dict[str, Any]]:
        with reading(self._engine) as conn:
            return [{"name": n, "members": m} for n, m in store.groups(conn).items()]
