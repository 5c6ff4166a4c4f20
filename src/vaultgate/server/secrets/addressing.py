"""Provider addressing: ``request(provider=..., label=..., account=...)`` finds the app's grant.

A provider names a secret by its name (the slug ``list_grants`` shows as ``managed_secret_slug``)
or by its catalogue provider (``openai``), or, for an account an end user connected (Connect),
by the OAuth app's provider id (``github``). ``label`` picks a grant by its name, as ``mint_grant``
set it. ``app_user_id`` keeps only that end user's connected accounts; ``account`` picks one by
the login or id the provider reported (a managed secret carries no account, so naming one matches
none of them). One active grant answers; several are the client's ``AmbiguousGrantError``
listing them; none, its not-found error.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from vaultgate.server.errors import Conflict, NotFound
from vaultgate.server.secrets.sdk_grants import app_grants, grant_state
from vaultgate.server.storage import tables as t
from vaultgate.server.storage.engine import reading

MAX_CANDIDATES = 20


@dataclass(frozen=True, slots=True)
class Address:
    provider: str
    label: str | None = None
    account: str | None = None
    app_user_id: str | None = None


def resolve(engine: Engine, app_id: str, address: Address, now: datetime) -> str:
    """The grant id an address names, for the caller's app only."""
    c = t.oauth_connections
    query = (
        app_grants(app_id)
        .add_columns(
            c.c.provider.label("connected_provider"),
            c.c.app_user_id,
            c.c.account_id,
            c.c.account_login,
        )
        .outerjoin(c, c.c.secret_id == t.grants.c.secret_id)
        .where(
            sa.or_(
                t.secrets.c.name == address.provider,
                t.secrets.c.provider == address.provider,
                c.c.provider == address.provider,
            )
        )
    )
    with reading(engine) as conn:
        rows = [dict(r) for r in conn.execute(query).mappings()]
    # A clone shares its parent's secret, so every grant's chain is within these rows.
    by_id = {r["id"]: r for r in rows}
    named = [r for r in rows if _fits(r, address)]
    active = [r for r in named if grant_state(r, by_id, now)[0] == "active"]
    if len(active) == 1:
        return str(active[0]["id"])
    if len(active) > 1:
        raise _ambiguous(address, active)
    if len(named) == 1:
        return str(named[0]["id"])  # the request path says how it ended: revoked or expired
    raise NotFound(_nothing(address), code="grant_not_found")


def _fits(row: dict[str, Any], address: Address) -> bool:
    if row["secret_deleted_at"] is not None:
        return False
    if address.label is not None and row["name"] != address.label:
        return False
    if address.app_user_id is not None and row["app_user_id"] != address.app_user_id:
        return False
    if address.account is None:
        return True
    return address.account in (row["account_login"], row["account_id"])


def _nothing(address: Address) -> str:
    if address.app_user_id is not None:
        return "no grant for this provider connected by this end user"
    if address.account is not None:
        return "no grant for this provider and account"
    if address.label is not None:
        return "no grant for this provider with this label"
    return "no grant for this provider"


def _ambiguous(address: Address, rows: list[dict[str, Any]]) -> Conflict:
    shown = rows[:MAX_CANDIDATES]
    return Conflict(
        f"{len(rows)} grants match this provider; pass account=, label= (or grant_id=) to pick one",
        code="ambiguous_grant",
        extra={
            "grant_ids": [r["id"] for r in shown],
            "candidates": [
                {
                    "grant_id": r["id"],
                    "label": r["name"],
                    "account_identifier": r["account_login"] or r["account_id"],
                    "account_display_name": r["account_login"],
                }
                for r in shown
            ],
            "candidates_truncated": len(rows) > MAX_CANDIDATES,
            "account_identifiers": sorted(
                {r["account_login"] or r["account_id"] for r in shown if r["account_id"]}
            ),
            "app_user_ids": sorted({r["app_user_id"] for r in shown if r["app_user_id"]}),
            "account_was_provided": address.account is not None,
        },
    )
