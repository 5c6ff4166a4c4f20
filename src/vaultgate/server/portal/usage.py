"""When a secret or key was last used, read from the audit trail (the one record of every use)."""

from __future__ import annotations

from collections.abc import Collection
from datetime import datetime

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from vaultgate.server.audit.events import GRANT_USE
from vaultgate.server.storage.engine import reading
from vaultgate.server.storage.tables import audit_events


def last_uses(engine: Engine, column: str, ids: Collection[str]) -> dict[str, datetime]:
    """``{id: time of the latest allowed use}`` for ``secret_id`` or ``key_id`` values."""
    if not ids:
        return {}
    col = audit_events.c[column]
    query = (
        sa.select(col, sa.func.max(audit_events.c.ts))
        .where(col.in_(list(ids)), audit_events.c.event == GRANT_USE)
        .group_by(col)
    )
    with reading(engine) as conn:
        return {str(key): when for key, when in conn.execute(query).all() if when is not None}
