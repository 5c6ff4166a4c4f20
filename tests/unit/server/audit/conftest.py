"""A migrated engine on each backend, and a running writer on it."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from sqlalchemy.engine import Engine

from vaultgate.server.audit.writer import AuditWriter

AUDIT_KEY = b"audit-key-for-tests-0123456789ab"


@pytest.fixture
def audit_key() -> bytes:
    return AUDIT_KEY


@pytest.fixture
def writer(engine: Engine) -> Iterator[AuditWriter]:
    w = AuditWriter(engine, AUDIT_KEY)
    w.start()
    yield w
    w.stop()
