"""What can expire, as sources the alerter asks: "what lapses between now and the horizon?".

OAuth tokens, once they exist, join by adding a source to ``EXPIRY_SOURCES`` (a function of the
connection, now and the horizon); nothing else changes.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import datetime

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from vaultgate.server.storage.tables import api_keys, grants


@dataclass(frozen=True, slots=True)
class Expiring:
    kind: str  # "grant", "clone", "key" (later "oauth_token")
    id: str
    expires_at: datetime
    app_id: str | None = None
    grant_id: str | None = None
    secret_id: str | None = None
    key_id: str | None = None


ExpirySource = Callable[[Connection, datetime, datetime], Iterable[Expiring]]


def grant_expiries(conn: Connection, now: datetime, horizon: datetime) -> Iterable[Expiring]:
    g = grants.c
    query = sa.select(g.id, g.app_id, g.secret_id, g.parent_id, g.expires_at).where(
        g.status == "active", g.expires_at > now, g.expires_at <= horizon
    )
    for row in conn.execute(query):
        yield Expiring(
            kind="clone" if row.parent_id else "grant",
            id=row.id,
            expires_at=row.expires_at,
            app_id=row.app_id,
            grant_id=row.id,
            secret_id=row.secret_id,
        )


def key_expiries(conn: Connection, now: datetime, horizon: datetime) -> Iterable[Expiring]:
    k = api_keys.c
    query = sa.select(k.id, k.app_id, k.expires_at).where(
        k.revoked_at.is_(None), k.expires_at > now, k.expires_at <= horizon
    )
    for row in conn.execute(query):
        yield Expiring(
            kind="key", id=row.id, expires_at=row.expires_at, app_id=row.app_id, key_id=row.id
        )


EXPIRY_SOURCES: list[ExpirySource] = [grant_expiries, key_expiries]
