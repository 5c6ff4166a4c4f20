"""Scoped app keys: what a key may do (scopes, CIDR allow-list, rotation grace), and the client's
``keys.derive`` / ``keys.rotate`` / ``keys.revoke``.

A key without a ``key_controls`` row is a full app key. A derived key is a child: its scopes,
expiry and CIDR allow-list can only narrow its parent's, and revoking a key revokes every key
derived from it (a revoked ancestor is also checked on load, so a revocation through the
management API cuts the descendants off too). A rotated key keeps working until its grace ends,
and every answer it gets carries ``X-Alter-Key-Deprecated: true``.
"""

from __future__ import annotations

import ipaddress
import time
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import anyio
import sqlalchemy as sa
from sqlalchemy.engine import Engine
from sqlalchemy.exc import DBAPIError

from vaultgate.server.api.sdk_unserved import route_of
from vaultgate.server.auth import key_rates
from vaultgate.server.auth.keys import Principal
from vaultgate.server.auth.scopes import (
    AGENT_KEY_SCOPES,
    AGENT_ME,
    AGENT_MINTING,
    ALL_SCOPES,
    NEVER_DERIVED,
    ROUTE_SCOPES,
    SCOPE_VERSION,
    holds,
    insufficient,
    insufficient_for,
    parse_scopes,
)
from vaultgate.server.auth.services import Actor, KeyService
from vaultgate.server.clock import Clock
from vaultgate.server.errors import (
    Conflict,
    Forbidden,
    NotFound,
    Unauthenticated,
    Unprocessable,
)
from vaultgate.server.storage import tables as t
from vaultgate.server.storage.engine import reading

# The ASGI scope flag for a request made with a rotated (deprecated) key: the front door
# (api/hotpath.py) answers it with X-Alter-Key-Deprecated, on /sdk routes and the proxy alike.
DEPRECATED_KEY = "vaultgate.deprecated_key"

Network = ipaddress.IPv4Network | ipaddress.IPv6Network
MAX_DEPTH = 16
MAX_EXPIRES_IN = 366 * 86400


@dataclass(frozen=True, slots=True)
class Controls:
    key_type: str
    scopes: frozenset[str]
    cidrs: tuple[Network, ...] | None
    deprecated_at: datetime | None
    grace_until: datetime | None
    parent_key_id: str | None
    ancestor_revoked: bool
    rate_limit_rpm: int | None = None
    # The buckets a request spends: the key's own limit, then each limited ancestor's.
    rates: tuple[key_rates.Bucket, ...] = ()
    rate_key: str | None = None  # the key whose bucket its own rate spends (itself, or rotated)


def parse_networks(raw: object, field: str = "cidr_allowlist") -> tuple[Network, ...]:
    if not isinstance(raw, list) or not raw or len(raw) > 64:
        raise Unprocessable(f"{field}: must be a list of 1 to 64 CIDRs", field=field)
    try:
        return tuple(ipaddress.ip_network(str(c), strict=False) for c in raw)
    except ValueError:
        raise Unprocessable(
            f"{field}: entries must be CIDRs such as 10.0.0.0/8", field=field
        ) from None


def _check_agent(principal: Principal) -> None:
    """A suspended agent's keys are refused (the client's AgentInactiveError)."""
    if principal.agent_status == "inactive":
        raise Unauthenticated(
            f"agent {principal.agent_name!r} is suspended; resume it to use its keys",
            code="agent_inactive",
        )
    if principal.agent_status != "active":
        raise Unauthenticated(f"agent {principal.agent_name!r} is deleted", code="agent_revoked")


def _within(child: Network, parents: tuple[Network, ...]) -> bool:
    return any(
        child.version == p.version and child.subnet_of(p)  # type: ignore[arg-type]
        for p in parents
    )


class KeyControls:
    def __init__(self, engine: Engine, keys: KeyService, clock: Clock, cache_ttl: float) -> None:
        self._engine = engine
        self._keys = keys
        self._clock = clock
        self._ttl = cache_ttl
        self._cache: dict[str, tuple[float, Controls | None]] = {}
        self._rates = key_rates.KeyRates(engine)

    # --- the request path ---------------------------------------------------------------------
    async def enforce(
        self, principal: Principal, method: str, path: str, client_ip: str | None
    ) -> bool:
        """Refuse what the key may not do on this route; True when the key is deprecated."""
        route = (method, path)
        if route not in ROUTE_SCOPES and (known := route_of(method, path)) is not None:
            route = (method, known[0])
        if principal.agent_id is not None and route in AGENT_MINTING:
            raise Forbidden(
                "an agent's key cannot create agents or agent keys; use the app's key",
                code="agent_cannot_mint_subagents",
            )
        return await self.enforce_scope(
            principal, ROUTE_SCOPES.get(route), client_ip, self_check=route == AGENT_ME
        )

    async def enforce_scope(
        self,
        principal: Principal,
        required: str | None,
        client_ip: str | None,
        *,
        self_check: bool = False,
    ) -> bool:
        """``enforce`` for a known scope (the transparent proxy needs ``proxy:execute``).

        ``self_check``: ``Agent.me()``, which a suspended agent may still call to see why.
        A limited key's request is counted once its standing is checked, before its scope is:
        a call outside its scopes still spends its rate."""
        if principal.agent_id is not None and not self_check:
            _check_agent(principal)
        controls = self._controls(principal.key_id)
        if controls is not None:
            self._check_standing(controls, client_ip)
            if controls.rates:
                self._rates.refuse_known_full(controls.rates, time.time())
                await anyio.to_thread.run_sync(self._rates.spend, controls.rates)
        if controls is not None:
            granted = controls.scopes
        else:
            granted = ALL_SCOPES if principal.agent_id is None else AGENT_KEY_SCOPES
        if required is not None and not holds(required, granted):
            raise insufficient_for(required, granted)
        deprecated = controls is not None and controls.deprecated_at is not None
        return deprecated or principal.key_deprecated

    def _check_standing(self, controls: Controls, client_ip: str | None) -> None:
        if controls.ancestor_revoked:
            raise Unauthenticated(
                "the key this one was derived from has been revoked", code="key_revoked"
            )
        if controls.grace_until is not None and self._clock() >= controls.grace_until:
            raise Unauthenticated(
                "this key was rotated and its grace period has ended",
                code="key_rotated_grace_expired",
            )
        if controls.cidrs is not None:
            try:
                ip = ipaddress.ip_address(client_ip or "")
            except ValueError:
                ip = None
            if ip is None or not any(ip in net for net in controls.cidrs):
                raise Forbidden("this key may not be used from this address", code="ip_not_allowed")

    def _controls(self, key_id: str) -> Controls | None:
        cached = self._cache.get(key_id)
        if cached is None or cached[0] < time.monotonic():
            try:
                loaded = self._load(key_id)
            except DBAPIError:
                # The store is down: what was known a moment ago still holds (nothing can change
                # it meanwhile); a key never seen answers as the store being unavailable.
                if cached is None:
                    raise
                loaded = cached[1]
            cached = (time.monotonic() + self._ttl, loaded)
            if len(self._cache) > 10_000:
                self._cache.clear()
            self._cache[key_id] = cached
        return cached[1]

    def _load(self, key_id: str) -> Controls | None:
        with reading(self._engine) as conn:
            row = _row(conn, key_id)
            if row is None:
                return None
            revoked = False
            rates = []
            if row["rate_limit_rpm"] is not None:
                rates.append(key_rates.Bucket(row["rate_key_id"] or key_id, row["rate_limit_rpm"]))
            parent, hops = row["parent_key_id"], 0
            while parent is not None and hops < MAX_DEPTH and not revoked:
                key = conn.execute(
                    sa.select(t.api_keys.c.revoked_at).where(t.api_keys.c.id == parent)
                ).first()
                revoked = key is None or key.revoked_at is not None
                up = _row(conn, parent)
                if up is not None and up["rate_limit_rpm"] is not None:
                    bucket = up["rate_key_id"] or parent
                    rates.append(key_rates.Bucket(bucket, up["rate_limit_rpm"], inherited=True))
                parent, hops = (up["parent_key_id"] if up else None), hops + 1
        cidrs = row["cidr_allowlist"]
        return Controls(
            key_type=row["key_type"],
            scopes=frozenset(row["scopes"]),
            cidrs=None if cidrs is None else parse_networks(cidrs),
            deprecated_at=row["deprecated_at"],
            grace_until=row["grace_until"],
            parent_key_id=row["parent_key_id"],
            ancestor_revoked=revoked,
            rate_limit_rpm=row["rate_limit_rpm"],
            rates=tuple(rates),
            rate_key=row["rate_key_id"] or key_id,
        )

    # --- keys.derive --------------------------------------------------------------------------
    def derive(self, principal: Principal, data: dict[str, Any], actor: Actor) -> dict[str, Any]:
        parent = self._controls(principal.key_id)
        granted = ALL_SCOPES if parent is None else parent.scopes
        scopes = parse_scopes(data.get("scopes"))
        if NEVER_DERIVED & set(scopes):
            raise Unprocessable("scopes: a derived key cannot hold keys:derive", field="scopes")
        missing = sorted(set(scopes) - granted)
        if missing:
            raise insufficient(missing, granted)
        expires_at = self._child_expiry(data.get("expires_in"), principal.expires_at)
        cidrs = self._child_cidrs(data.get("cidr_allowlist"), parent)
        name = data.get("name") or f"derived-{self._clock():%Y%m%d-%H%M%S}"
        if not isinstance(name, str) or len(name) > 200 or not name.isprintable():
            raise Unprocessable("name: must be a printable string of at most 200", field="name")
        controls = {
            "parent_key_id": principal.key_id,
            "key_type": "dk",
            "scopes": scopes,
            "cidr_allowlist": None if cidrs is None else [str(c) for c in cidrs],
            "deprecated_at": None,
            "grace_until": None,
            "rate_limit_rpm": None if parent is None else parent.rate_limit_rpm,
        }
        return self._mint(principal.app_id, name, expires_at, controls, actor)

    def _child_expiry(self, raw: object, parent: datetime | None) -> datetime:
        if isinstance(raw, bool) or not isinstance(raw, int) or not 0 < raw <= MAX_EXPIRES_IN:
            raise Unprocessable(
                f"expires_in: must be a whole number of seconds from 1 to {MAX_EXPIRES_IN}",
                field="expires_in",
            )
        expires_at = self._clock() + timedelta(seconds=raw)
        if parent is not None and expires_at > parent:
            raise Unprocessable(
                "expires_in: the derived key would outlive the key it is derived from",
                field="expires_in",
            )
        return expires_at

    @staticmethod
    def _child_cidrs(raw: object, parent: Controls | None) -> tuple[Network, ...] | None:
        inherited = None if parent is None else parent.cidrs
        if raw is None:
            return inherited
        wanted = parse_networks(raw)
        if inherited is not None and not all(_within(c, inherited) for c in wanted):
            raise Unprocessable(
                "cidr_allowlist: includes a network outside the parent key's allow-list",
                field="cidr_allowlist",
            )
        return wanted

    def _mint(
        self,
        app_id: str | None,
        name: str,
        expires_at: datetime | None,
        controls: dict[str, Any],
        actor: Actor,
    ) -> dict[str, Any]:
        def insert(conn: sa.Connection, row: dict[str, Any]) -> None:
            conn.execute(t.key_controls.insert().values(key_id=row["id"], **controls))

        plaintext, meta = self._keys.create_key(
            "app", name, actor, app_id=app_id, expires_at=expires_at, on_insert=insert
        )
        return {**_public(meta, controls), "api_key": plaintext}

    # --- keys.rotate / keys.revoke ------------------------------------------------------------
    def rotate(
        self, principal: Principal, key_id: str, overlap_days: object, actor: Actor
    ) -> dict[str, Any]:
        if isinstance(overlap_days, bool) or not isinstance(overlap_days, int):
            raise Unprocessable("overlap_days: must be 0 to 30", field="overlap_days")
        if not 0 <= overlap_days <= 30:
            raise Unprocessable("overlap_days: must be 0 to 30", field="overlap_days")
        target = self._reachable(principal, key_id)
        old = self._controls(key_id)
        if old is not None and old.deprecated_at is not None:
            raise Conflict("this key has already been rotated", code="key_already_rotated")
        now = self._clock()
        controls = {
            "parent_key_id": None if old is None else old.parent_key_id,
            "key_type": "rk" if old is None else old.key_type,
            "scopes": sorted(ALL_SCOPES if old is None else old.scopes),
            "cidr_allowlist": None
            if old is None or old.cidrs is None
            else [str(c) for c in old.cidrs],
            "rate_limit_rpm": None if old is None else old.rate_limit_rpm,
            # The successor spends the old key's bucket (which the old key, in its grace,
            # goes on spending): a fresh one would refill the rate at every rotation.
            "rate_key_id": None if old is None or old.rate_limit_rpm is None else old.rate_key,
        }
        retire = {"deprecated_at": now, "grace_until": now + timedelta(days=overlap_days)}
        minted = self._mint(
            target["app_id"],
            target["name"],
            target["expires_at"],
            {**controls, "deprecated_at": None, "grace_until": None},
            actor,
        )
        with self._engine.begin() as conn:
            if old is None:
                conn.execute(t.key_controls.insert().values(key_id=key_id, **controls, **retire))
            else:
                conn.execute(
                    t.key_controls.update()
                    .where(t.key_controls.c.key_id == key_id)
                    .values(**retire)
                )
        self._cache.clear()
        return minted

    def revoke(self, principal: Principal, key_id: str, actor: Actor) -> dict[str, Any]:
        target = self._reachable(principal, key_id)
        if target["revoked_at"] is not None:
            raise NotFound("key not found (it is already revoked)", code="key_not_found")
        ids = [key_id, *sorted(self._descendants(key_id) - {key_id})]
        self._keys.revoke_many(ids, actor, target["app_id"])
        self._cache.clear()
        with reading(self._engine) as conn:
            row = (
                conn.execute(sa.select(t.api_keys).where(t.api_keys.c.id == key_id))
                .mappings()
                .one()
            )
            controls = _row(conn, key_id)
        return _public(dict(row), controls)

    def _reachable(self, principal: Principal, key_id: str) -> dict[str, Any]:
        """The target key: the caller's own or one derived from it, else 404 (never another's)."""
        with reading(self._engine) as conn:
            row = (
                conn.execute(sa.select(t.api_keys).where(t.api_keys.c.id == key_id))
                .mappings()
                .first()
            )
            chain: list[str] = []
            current: str | None = key_id
            while current is not None and len(chain) <= MAX_DEPTH:
                chain.append(current)
                up = _row(conn, current)
                current = up["parent_key_id"] if up else None
        if row is None or row["app_id"] != principal.app_id or principal.key_id not in chain:
            raise NotFound("key not found", code="key_not_found")
        return dict(row)

    def _descendants(self, key_id: str) -> set[str]:
        found, frontier = {key_id}, [key_id]
        with reading(self._engine) as conn:
            while frontier:
                children = conn.execute(
                    sa.select(t.key_controls.c.key_id).where(
                        t.key_controls.c.parent_key_id.in_(frontier),
                        t.key_controls.c.key_type == "dk",
                    )
                ).scalars()
                frontier = [c for c in children if c not in found]
                found.update(frontier)
        return found


def _row(conn: sa.Connection, key_id: str) -> dict[str, Any] | None:
    query = sa.select(t.key_controls).where(t.key_controls.c.key_id == key_id)
    row = conn.execute(query).mappings().first()
    return None if row is None else dict(row)


def _public(meta: dict[str, Any], controls: dict[str, Any] | None) -> dict[str, Any]:
    """The client's ``APIKeyInfo``."""
    c = controls or {}

    def iso(value: datetime | None) -> str | None:
        return None if value is None else value.isoformat()

    return {
        "id": meta["id"],
        "name": meta["name"],
        "key_prefix": meta["hint"],
        "key_type": c.get("key_type", "rk"),
        "scopes": sorted(c.get("scopes", ALL_SCOPES)),
        "scope_version": SCOPE_VERSION,
        "cidr_allowlist": c.get("cidr_allowlist"),
        "rate_limit_rpm": c.get("rate_limit_rpm"),
        "effective_rate_limit_rpm": c.get("rate_limit_rpm"),
        "rate_limit_source": "key" if c.get("rate_limit_rpm") is not None else None,
        "expires_at": iso(meta["expires_at"]),
        "deprecated_at": iso(c.get("deprecated_at")),
        "revoked_at": iso(meta.get("revoked_at")),
        "parent_key_id": c.get("parent_key_id"),
        "created_at": iso(meta["created_at"]),
        "last_used_at": iso(meta.get("last_used_at")),
    }
