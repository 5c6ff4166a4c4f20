"""App keys made and listed by an administrator (management API, CLI, portal): a full key, or
one limited by scopes, a CIDR allow-list and a request rate (enforced by ``key_controls``)."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Final

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from vaultgate.server.auth.key_controls import parse_networks
from vaultgate.server.auth.scopes import ALL_SCOPES, parse_scopes
from vaultgate.server.auth.services import Actor, KeyService
from vaultgate.server.errors import Unprocessable
from vaultgate.server.storage import tables as t
from vaultgate.server.storage.engine import reading

MAX_RPM: Final = 1_000_000
LIMITS: Final = ("scopes", "cidr_allowlist", "rate_limit_rpm")


def parse_rpm(raw: object) -> int | None:
    if raw is None:
        return None
    if isinstance(raw, bool) or not isinstance(raw, int) or not 0 < raw <= MAX_RPM:
        raise Unprocessable(
            f"rate_limit_rpm: a whole number of requests per minute from 1 to {MAX_RPM}",
            field="rate_limit_rpm",
        )
    return raw


def _limits(controls: dict[str, Any] | None) -> dict[str, Any]:
    """What limits a key: a key without controls holds every scope, from anywhere, unmetered."""
    c = controls or {}
    return {
        "key_type": c.get("key_type", "rk"),
        "scopes": sorted(c.get("scopes", ALL_SCOPES)),
        "cidr_allowlist": c.get("cidr_allowlist"),
        "rate_limit_rpm": c.get("rate_limit_rpm"),
        "parent_key_id": c.get("parent_key_id"),
    }


def parse_limits(limits: dict[str, Any]) -> dict[str, Any] | None:
    """The ``key_controls`` row for the limits asked for, or None for a full key."""
    if all(limits.get(k) is None for k in LIMITS):
        return None
    raw_scopes, raw_cidrs = limits.get("scopes"), limits.get("cidr_allowlist")
    return {
        "parent_key_id": None,
        "key_type": "rk",
        "scopes": sorted(ALL_SCOPES) if raw_scopes is None else parse_scopes(raw_scopes),
        "cidr_allowlist": None
        if raw_cidrs is None
        else [str(c) for c in parse_networks(raw_cidrs)],
        "deprecated_at": None,
        "grace_until": None,
        "rate_limit_rpm": parse_rpm(limits.get("rate_limit_rpm")),
    }


def create_app_key(
    keys: KeyService,
    app_id: str,
    name: str,
    expires_at: datetime | None,
    limits: dict[str, Any],
    actor: Actor,
) -> dict[str, Any]:
    """A new app key (the plaintext under ``api_key``, shown once) and what limits it."""
    controls = parse_limits(limits)

    def insert(conn: sa.Connection, row: dict[str, Any]) -> None:
        if controls is not None:
            conn.execute(t.key_controls.insert().values(key_id=row["id"], **controls))

    plaintext, meta = keys.create_key(
        "app", name, actor, app_id=app_id, expires_at=expires_at, on_insert=insert
    )
    return {**meta, **_limits(controls), "api_key": plaintext}


def list_app_keys(engine: Engine, keys: KeyService, app_id: str) -> list[dict[str, Any]]:
    """The app's keys (``KeyService.list_keys``) with each one's scopes, CIDRs and rate."""
    listed = keys.list_keys(app_id)
    with reading(engine) as conn:
        query = sa.select(t.key_controls).where(
            t.key_controls.c.key_id.in_([k["id"] for k in listed])
        )
        found = {r["key_id"]: dict(r) for r in conn.execute(query).mappings()}
    return [{**k, **_limits(found.get(k["id"]))} for k in listed]
