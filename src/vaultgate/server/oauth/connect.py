"""End-user Connect: a session the app creates, a consent link the end user opens, the
authorization-code flow with PKCE (S256) and ``state``, and a grant the app's poll receives.

``session_token`` (the app polls with it), the link's id and the current ``state`` are random and
stored as SHA-256 only; the PKCE verifier is sealed. A ``state`` works once: the callback that
clears it is the only one that exchanges its code. The tokens become a managed secret of type
``oauth2_refresh_token`` through the secrets service, and its grant is bound to the session's end
user (``app_user_id``) and the account the provider reported (`oauth_connections`).
"""

from __future__ import annotations

import hashlib
import secrets as random
import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any, Final

import anyio.to_thread
import sqlalchemy as sa
from sqlalchemy.engine import Engine

from vaultgate.server.audit.events import AuditEvent
from vaultgate.server.audit.sink import AuditSink
from vaultgate.server.auth.services import Actor, actor_fields
from vaultgate.server.clock import Clock
from vaultgate.server.crypto import Barrier
from vaultgate.server.egress.guard import AddressGuard
from vaultgate.server.errors import InvalidInput, NotFound, VaultError
from vaultgate.server.oauth.apps import OAuthAppService, OAuthClient
from vaultgate.server.oauth.requests import SessionRequest
from vaultgate.server.oauth.sealing import open_sealed, seal
from vaultgate.server.oauth.storing import connected_credential, store_connection
from vaultgate.server.secrets.services import SecretService
from vaultgate.server.storage import tables as t
from vaultgate.server.storage.engine import reading

if TYPE_CHECKING:
    from vaultgate.server.oauth import exchange

# ``exchange`` (Authlib's httpx client, httpx itself) is imported where a flow step runs, not
# here: a worker that never meets a Connect flow does not load httpx (see the worker-imports
# test in tests/functional/fleet).

SESSION_SECONDS: Final = 600


def digest(value: str) -> str:
    return hashlib.sha256(value.encode()).hexdigest()


class ConnectPageError(Exception):
    """A consent-page failure the end user sees (status, message); it names no secret."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


@dataclass(frozen=True, slots=True)
class Outcome:
    """What the callback page says, and where it sends the browser afterwards."""

    ok: bool
    message: str
    return_url: str | None = None


class ConnectService:
    def __init__(
        self,
        engine: Engine,
        barrier: Barrier,
        audit: AuditSink,
        clock: Clock,
        apps: OAuthAppService,
        secrets: SecretService,
        guard: AddressGuard,
        *,
        public_base: str,
    ) -> None:
        self._engine = engine
        self._barrier = barrier
        self._audit = audit
        self._clock = clock
        self._apps = apps
        self._secrets = secrets
        self._guard = guard
        self._base = public_base

    # --- the app's side -------------------------------------------------------------------

    def create_session(self, app_id: str, req: SessionRequest) -> dict[str, Any]:
        configured = self._apps.providers_of(app_id)
        providers = [p for p in configured if req.providers is None or p in req.providers]
        if not providers:
            raise InvalidInput(
                "allowed_providers: no OAuth app is registered for "
                + (", ".join(req.providers) if req.providers else "this app"),
                code="provider_configuration_unavailable",
                field="allowed_providers",
            )
        for provider, wanted in req.required_scopes.items():
            allowed = set(self._apps.client_for(app_id, provider).scopes)
            if not set(wanted) <= allowed:
                raise InvalidInput(
                    f"required_scopes.{provider}: asks for scopes the OAuth app does not allow",
                    code="scope_not_allowed",
                    field=f"required_scopes.{provider}",
                )
        token, link = "cs_" + random.token_urlsafe(32), random.token_urlsafe(24)
        now = self._clock()
        expires = now + timedelta(seconds=SESSION_SECONDS)
        row = {
            "id": str(uuid.uuid4()),
            "app_id": app_id,
            "token_hash": digest(token),
            "link_hash": digest(link),
            "state_hash": None,
            "verifier": None,
            "providers": providers,
            "provider": None,
            "app_user_id": req.app_user_id,
            "scopes": req.required_scopes or None,
            "return_url": req.return_url,
            "status": "pending",
            "result": None,
            "created_at": now,
            "expires_at": expires,
        }
        with self._engine.begin() as conn:
            conn.execute(t.connect_sessions.insert().values(row))
        return {
            "session_token": token,
            "connect_url": f"{self._base}/connect/{link}",
            "expires_in": SESSION_SECONDS,
            "expires_at": expires.isoformat().replace("+00:00", "Z"),
            "scope_constraint_warnings": [],
            "single_provider": len(providers) == 1,
            "direct": req.direct,
        }

    def poll(self, app_id: str, session_token: str) -> dict[str, Any]:
        row = self._session(t.connect_sessions.c.token_hash == digest(session_token))
        if row is None or row["app_id"] != app_id:
            return {"status": "expired"}  # unknown and expired read alike to the client
        if row["status"] == "completed":
            return {"status": "completed", **row["result"], "failed_grants": []}
        if row["status"] == "error":
            return {"status": "error", "error": row["result"]}
        if row["expires_at"] <= self._clock():
            return {"status": "expired"}
        return {"status": "pending"}

    # --- the end user's browser ------------------------------------------------------------

    def providers_for_link(self, link: str) -> list[str]:
        return list(self._pending(t.connect_sessions.c.link_hash == digest(link))["providers"])

    def begin(self, link: str, provider: str) -> str:
        """The provider's authorization URL for this session, with a fresh ``state``."""
        from vaultgate.server.oauth import exchange

        row = self._pending(t.connect_sessions.c.link_hash == digest(link))
        if provider not in row["providers"]:
            raise ConnectPageError(400, "This connection link does not offer that provider.")
        oauth = self._apps.client_for(row["app_id"], provider)
        state, verifier = exchange.new_state(), exchange.new_verifier()
        sealed = seal(self._barrier, verifier.encode(), "connect_sessions", row["id"], "verifier")
        with self._engine.begin() as conn:
            # A new start replaces the old state: only the latest authorization can come back.
            conn.execute(
                t.connect_sessions.update()
                .where(t.connect_sessions.c.id == row["id"])
                .values(state_hash=digest(state), verifier=sealed, provider=provider)
            )
        scopes = tuple((row["scopes"] or {}).get(provider) or oauth.scopes)
        return exchange.authorization_url(oauth, state=state, verifier=verifier, scopes=scopes)

    async def callback(self, params: dict[str, str]) -> Outcome:
        from vaultgate.server.oauth import exchange

        state = params.get("state") or ""
        row = await anyio.to_thread.run_sync(self._claim_state, state)
        if "error" in params:
            code = "connect_denied" if params["error"] == "access_denied" else "provider_error"
            await anyio.to_thread.run_sync(self._fail, row, code, _denied_message(code))
            return Outcome(False, _denied_message(code), row["return_url"])
        code = params.get("code") or ""
        if not code:
            raise ConnectPageError(400, "The provider sent no authorization code.")
        oauth = await anyio.to_thread.run_sync(
            self._apps.client_for, row["app_id"], row["provider"]
        )
        verifier = open_sealed(
            self._barrier, row["verifier"], "connect_sessions", row["id"], "verifier"
        ).decode()
        try:
            tokens = await exchange.exchange_code(self._guard, oauth, code=code, verifier=verifier)
            account = await self._account(oauth, tokens)
        except exchange.ExchangeRefused as exc:
            message = f"The provider refused the authorization code ({exc.code})."
            await anyio.to_thread.run_sync(self._fail, row, exc.code, message)
            return Outcome(False, message, row["return_url"])
        except VaultError as exc:  # the guard refused an endpoint, or userinfo gave no account
            await anyio.to_thread.run_sync(self._fail, row, exc.code, exc.message)
            return Outcome(False, exc.message, row["return_url"])
        result = await anyio.to_thread.run_sync(self._complete, row, oauth, tokens, account)
        login = result["grants"][0]["account_identifier"]
        return Outcome(True, f"Connected {oauth.provider} account {login}.", row["return_url"])

    async def _account(self, oauth: OAuthClient, tokens: exchange.Tokens) -> tuple[str, str | None]:
        from vaultgate.server.oauth import exchange

        e = oauth.endpoints
        if e.userinfo_url is not None:
            source = await exchange.userinfo(self._guard, e.userinfo_url, tokens.access_token)
        else:
            source = dict(tokens.raw)
        account_id = exchange.dotted(source, e.account_id)
        if account_id is None:
            raise exchange.ExchangeRefused("account_unknown")
        return account_id, exchange.dotted(source, e.account_login)

    # --- storage ------------------------------------------------------------------------------

    def _session(self, where: Any) -> dict[str, Any] | None:
        with reading(self._engine) as conn:
            row = conn.execute(sa.select(t.connect_sessions).where(where)).mappings().first()
        return None if row is None else dict(row)

    def _pending(self, where: Any) -> dict[str, Any]:
        row = self._session(where)
        if row is None:
            raise ConnectPageError(404, "This connection link is not valid.")
        if row["status"] != "pending" or row["expires_at"] <= self._clock():
            raise ConnectPageError(410, "This connection link was used or has expired.")
        return row

    def _claim_state(self, state: str) -> dict[str, Any]:
        """The session this ``state`` belongs to, the state cleared so it never works again."""
        if not state:
            raise ConnectPageError(400, "The provider sent no state; nothing was connected.")
        hashed = digest(state)
        with self._engine.begin() as conn:
            row = (
                conn.execute(
                    sa.select(t.connect_sessions).where(t.connect_sessions.c.state_hash == hashed)
                )
                .mappings()
                .first()
            )
            won = conn.execute(
                t.connect_sessions.update()
                .where(t.connect_sessions.c.state_hash == hashed)
                .values(state_hash=None)
            ).rowcount
        if row is None or won != 1:
            raise ConnectPageError(
                400,
                "This authorization's state matches no connection in progress (it was already "
                "used, or it belongs to another flow); nothing was connected.",
            )
        if row["status"] != "pending" or row["expires_at"] <= self._clock():
            raise ConnectPageError(410, "This connection has expired; start again from the app.")
        return dict(row)

    def _fail(self, row: dict[str, Any], code: str, message: str) -> None:
        error = {"error_code": code, "error_message": message}
        with self._engine.begin() as conn:
            conn.execute(
                t.connect_sessions.update()
                .where(
                    t.connect_sessions.c.id == row["id"], t.connect_sessions.c.status == "pending"
                )
                .values(status="error", result=error, verifier=None)
            )
            self._audit.append(conn, self._event(row, "error", {"error_code": code}))

    def _complete(
        self,
        row: dict[str, Any],
        oauth: OAuthClient,
        tokens: exchange.Tokens,
        account: tuple[str, str | None],
    ) -> dict[str, Any]:
        credential = connected_credential(oauth, tokens)
        grant = store_connection(
            self._engine, self._secrets, self._clock, row, oauth, credential, tokens, account
        )
        result = {"grants": [grant]}
        with self._engine.begin() as conn:
            conn.execute(
                t.connect_sessions.update()
                .where(t.connect_sessions.c.id == row["id"])
                .values(status="completed", result=result, verifier=None)
            )
            details = {"provider": oauth.provider, "operation": grant["operation"]}
            self._audit.append(conn, self._event(row, "ok", details, grant["grant_id"]))
        return result

    def _event(
        self,
        row: dict[str, Any],
        outcome: str,
        details: dict[str, Any],
        grant_id: str | None = None,
    ) -> AuditEvent:
        return AuditEvent.new(
            event="oauth:connect",
            outcome=outcome,
            now=self._clock(),
            app_id=row["app_id"],
            grant_id=grant_id,
            details={**details, "app_user_id": row["app_user_id"], "session_id": row["id"]},
            **actor_fields(Actor()),
        )

    # --- connections ----------------------------------------------------------------------------

    def connections(
        self, app_id: str | None = None, app_user_id: str | None = None
    ) -> list[dict[str, Any]]:
        c = t.oauth_connections
        query = (
            sa.select(c, t.grants.c.status)
            .join(t.grants, t.grants.c.id == c.c.grant_id)
            .order_by(c.c.app_user_id, c.c.created_at)
        )
        if app_id is not None:
            query = query.where(c.c.app_id == app_id)
        if app_user_id is not None:
            query = query.where(c.c.app_user_id == app_user_id)
        with reading(self._engine) as conn:
            rows = [dict(r) for r in conn.execute(query).mappings()]
        return [_connection_public(r) for r in rows]

    async def disconnect(self, grant_id: str, actor: Actor) -> dict[str, Any]:
        """Revoke the tokens at the provider (where it has a revocation URL), then delete the
        secret: every grant on it is revoked and its ciphertext destroyed."""
        from vaultgate.server.oauth import exchange

        row = await anyio.to_thread.run_sync(self._connection, grant_id)
        oauth = await anyio.to_thread.run_sync(
            self._apps.client_for, row["app_id"], row["provider"]
        )
        revoked = False
        if oauth.endpoints.revoke_url is not None:
            secret = await anyio.to_thread.run_sync(self._open, row["secret_id"])
            token, hint = _revocable(secret)
            revoked = await exchange.revoke(self._guard, oauth, token, hint)
        await anyio.to_thread.run_sync(self._secrets.delete, row["secret_id"], actor)
        await anyio.to_thread.run_sync(self._mark_disconnected, row, revoked, actor)
        return {"grant_id": grant_id, "revoked_at_provider": revoked}

    def is_connection(self, grant_id: str) -> bool:
        c = t.oauth_connections
        with reading(self._engine) as conn:
            row = conn.execute(
                sa.select(c.c.grant_id).where(
                    c.c.grant_id == grant_id, c.c.disconnected_at.is_(None)
                )
            ).first()
        return row is not None

    def _connection(self, grant_id: str) -> dict[str, Any]:
        c = t.oauth_connections
        with reading(self._engine) as conn:
            row = conn.execute(sa.select(c).where(c.c.grant_id == grant_id)).mappings().first()
        if row is None or row["disconnected_at"] is not None:
            raise NotFound("no connected account has this grant", code="grant_not_found")
        return dict(row)

    def _open(self, secret_id: str) -> dict[str, str]:
        meta = self._secrets.get(secret_id)
        credential = self._secrets.open(
            meta["app_id"], secret_id, meta["version"], meta["credential_type"]
        )
        return dict(credential)

    def _mark_disconnected(self, row: dict[str, Any], revoked: bool, actor: Actor) -> None:
        with self._engine.begin() as conn:
            conn.execute(
                t.oauth_connections.update()
                .where(t.oauth_connections.c.secret_id == row["secret_id"])
                .values(disconnected_at=self._clock())
            )
            self._audit.append(
                conn,
                AuditEvent.new(
                    event="oauth:disconnect",
                    outcome="ok",
                    now=self._clock(),
                    app_id=row["app_id"],
                    grant_id=row["grant_id"],
                    secret_id=row["secret_id"],
                    details={"provider": row["provider"], "revoked_at_provider": revoked},
                    **actor_fields(actor),
                ),
            )


def _revocable(credential: dict[str, str]) -> tuple[str, str]:
    # Revoking the refresh token ends the whole authorization at RFC 7009 servers.
    if credential.get("refresh_token"):
        return credential["refresh_token"], "refresh_token"
    return credential.get("access_token") or credential.get("token") or "", "access_token"


def _denied_message(code: str) -> str:
    if code == "connect_denied":
        return "The account owner declined the authorization."
    return "The provider answered the authorization with an error."


def _connection_public(r: dict[str, Any]) -> dict[str, Any]:
    created: datetime = r["created_at"]
    return {
        "grant_id": r["grant_id"],
        "secret_id": r["secret_id"],
        "app_id": r["app_id"],
        "provider": r["provider"],
        "app_user_id": r["app_user_id"],
        "account_id": r["account_id"],
        "account_login": r["account_login"],
        "scopes": r["scopes"],
        "status": "disconnected" if r["disconnected_at"] is not None else r["status"],
        "created_at": created.isoformat(),
    }
