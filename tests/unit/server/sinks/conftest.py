"""A migrated engine on each backend, a barrier, and a sink store on it."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from sqlalchemy.engine import Engine

from vaultgate.server.audit.events import AuditEvent
from vaultgate.server.audit.sink import AuditSink
from vaultgate.server.crypto import Barrier, Keyring, MasterKey
from vaultgate.server.sinks import SinkStore

AUDIT_KEY = b"audit-key-for-tests-0123456789ab"
NOW = datetime(2026, 6, 1, 12, 0, tzinfo=UTC)


@pytest.fixture
def barrier() -> Barrier:
    key = MasterKey("mk_test", bytes(range(32)))
    return Barrier(Keyring([key], active_id=key.key_id))


@pytest.fixture
def store(engine: Engine, barrier: Barrier) -> SinkStore:
    return SinkStore(engine, barrier, AuditSink(AUDIT_KEY), lambda: NOW)


def append_events(engine: Engine, count: int, event: str = "grant:use") -> None:
    sink = AuditSink(AUDIT_KEY)
    with engine.begin() as conn:
        for _ in range(count):
            sink.append(conn, AuditEvent.new(event=event, outcome="allowed", now=NOW))
