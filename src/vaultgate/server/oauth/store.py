"""The fleet's token state: one row per OAuth secret, sealed, refreshed under its lock.

Whoever finds the token due locks the row (``SELECT ... FOR UPDATE`` on PostgreSQL; on SQLite the
transaction's ``BEGIN IMMEDIATE`` already holds the database's write lock), reads it again, and
only then asks the provider: the others wait on the lock and find the new token when they get it.
The new state (a rotated refresh token included) commits before anyone uses the new access token,
so a crash after the provider answered cannot leave the vault holding a revoked refresh token.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Final

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

from vaultgate.injection.credential import Credential
from vaultgate.server.audit.events import AuditEvent
from vaultgate.server.audit.sink import AuditSink
from vaultgate.server.clock import Clock
from vaultgate.server.crypto import Barrier, DecryptionError, Sealed, aad_for
from vaultgate.server.errors import Forbidden, Unavailable, VaultError
from vaultgate.server.oauth.client import TokenAnswer, TokenRefused, TokenUnreachable
from vaultgate.server.oauth.tokens import AccessToken, Holder
from vaultgate.server.observability.metrics import OAUTH_REFRESHES
from vaultgate.server.storage import upsert
from vaultgate.server.storage.tables import oauth_tokens as T

ACTIVE: Final = "active"
REAUTH_REQUIRED: Final = "reauth_required"
_EMPTY: Final = "empty"
_AAD: Final = b"vaultgate-oauth-token\x00"
OAUTH_REFRESH: Final = "oauth:refresh"
MAX_BACKOFF: Final = 60.0

Fetch = Callable[..., TokenAnswer]


@dataclass(slots=True)
class TokenState:
    version: int
    status: str
    access: AccessToken | None
    refresh_token: str | None = field(repr=False)
    failures: int = 0
    retry_at: float | None = None


@dataclass(frozen=True, slots=True)
class _Outcome:
    token: AccessToken | None = None
    error: VaultError | None = None

    def result(self) -> AccessToken:
        if self.error is not None:
            raise self.error
        assert self.token is not None
        return self.token


class TokenStore:
    def __init__(
        self,
        engine: Engine,
        barrier: Barrier,
        sink: AuditSink,
        clock: Clock,
        now: Callable[[], float],
        fetch: Fetch,
        *,
        margin: float,
        timeout: float,
    ) -> None:
        self._engine = engine
        self._barrier = barrier
        self._sink = sink
        self._clock = clock
        self._now = now
        self._fetch = fetch
        self._margin = margin
        self._timeout = timeout

    def obtain(self, holder: Holder, credential: Credential) -> AccessToken:
        """A usable access token for ``holder``'s secret: the stored one, or a new one."""
        with self._engine.begin() as conn:
            state = self._lock(conn, holder)
            outcome = self._decide(conn, holder, credential, state)
        # Raised only now: the state written above (a refusal, a backoff) must commit first.
        return outcome.result()

    def _decide(
        self, conn: Connection, holder: Holder, credential: Credential, state: TokenState | None
    ) -> _Outcome:
        now = self._now()
        if state is None or state.version != holder.version:
            state = self._initial(holder, credential, now)
        if state.status == REAUTH_REQUIRED:
            return _Outcome(error=_revoked(holder))
        access = state.access
        if access is not None and now < access.refresh_at:
            return _Outcome(access)  # fresh: another worker or node refreshed it meanwhile
        if state.retry_at is not None and state.retry_at > now:
            return self._held(state, state.retry_at - now)  # backing off: no request now
        return self._refresh(conn, holder, credential, state, now)

    def _refresh(
        self,
        conn: Connection,
        holder: Holder,
        credential: Credential,
        state: TokenState,
        now: float,
    ) -> _Outcome:
        refresh = None
        if credential.type == "oauth2_refresh_token":
            refresh = state.refresh_token or credential["refresh_token"]
        try:
            answer = self._fetch(credential, refresh, timeout=self._timeout)
        except TokenRefused as exc:
            state.status = REAUTH_REQUIRED
            self._write(conn, holder, state, now)
            self._audit(conn, holder, "error", REAUTH_REQUIRED, {"provider_error": exc.code})
            OAUTH_REFRESHES.labels("refused").inc()
            return _Outcome(error=_revoked(holder))
        except TokenUnreachable as exc:
            return self._backoff(conn, holder, state, now, exc.code)
        token = AccessToken.issued(answer.access_token, answer.expires_in, now, self._margin)
        rotated = refresh is not None and answer.refresh_token not in (None, refresh)
        next_state = TokenState(
            holder.version, ACTIVE, token, answer.refresh_token or refresh, failures=0
        )
        self._write(conn, holder, next_state, now)
        details = {"grant_type": "refresh_token" if refresh else "client_credentials"}
        self._audit(conn, holder, "ok", "token_refreshed", {**details, "rotated": rotated})
        OAUTH_REFRESHES.labels("ok").inc()
        return _Outcome(token)

    def _backoff(
        self, conn: Connection, holder: Holder, state: TokenState, now: float, code: str
    ) -> _Outcome:
        """Note the failure and when to try again; serve the old token while it is valid."""
        state.failures += 1
        delay = min(MAX_BACKOFF, 2.0 ** (state.failures - 1))
        state.retry_at = now + delay
        self._write(conn, holder, state, now)
        self._audit(conn, holder, "error", code, {"failures": state.failures})
        OAUTH_REFRESHES.labels("unreachable").inc()
        return self._held(state, delay)

    def _held(self, state: TokenState, wait: float) -> _Outcome:
        """While backing off: the old token as long as it is valid, else a retryable refusal."""
        now = self._now()
        access = state.access
        if access is not None and access.valid(now):
            return _Outcome(dataclasses.replace(access, recheck_at=now + wait))
        return _Outcome(
            error=Unavailable(
                "the OAuth token endpoint could not be reached and no valid access token is "
                "held; retry later",
                code="token_refresh_failed",
                headers={"Retry-After": str(int(wait) + 1)},
            )
        )

    def _initial(self, holder: Holder, credential: Credential, now: float) -> TokenState:
        """The state of a secret version never refreshed: its initial token, if it has one."""
        access = None
        value, expires = credential.get("access_token"), credential.get("expires_at")
        if value and expires and expires.isdigit():
            at = float(expires)
            access = AccessToken(value, at, at - self._margin, at - self._margin)
        return TokenState(holder.version, ACTIVE, access, None)

    # --- the row ------------------------------------------------------------------------------

    def _lock(self, conn: Connection, holder: Holder) -> TokenState | None:
        query = sa.select(T).where(T.c.secret_id == holder.secret_id).with_for_update()
        row = conn.execute(query).mappings().first()
        if row is None:
            # The first use of this secret anywhere: create the row to lock. ON CONFLICT: a
            # second node doing the same waits for our insert, then locks the row it finds.
            conn.execute(_insert_absent(conn, holder.secret_id, self._clock()))
            row = conn.execute(query).mappings().one()
        return self._state(row, holder)

    def _state(self, row: Any, holder: Holder) -> TokenState | None:
        if row["status"] == _EMPTY or row["version"] != holder.version:
            return None
        access, refresh = None, None
        if row["ciphertext"] is not None:
            sealed = Sealed(row["ciphertext"], row["wrapped_key"], row["master_key_id"])
            try:
                opened = json.loads(self._barrier.open_secret(sealed, aad=_aad(holder)))
            except DecryptionError:
                opened = {}  # a master key retired under it: start again from the secret
            refresh = opened.get("refresh_token")
            if opened.get("access_token"):
                access = AccessToken(
                    opened["access_token"],
                    row["expires_at"],
                    row["refresh_at"],
                    row["refresh_at"],
                )
        return TokenState(
            row["version"], row["status"], access, refresh, row["failures"], row["retry_at"]
        )

    def _write(self, conn: Connection, holder: Holder, state: TokenState, now: float) -> None:
        values: dict[str, Any] = {
            "version": state.version,
            "status": state.status,
            "failures": state.failures,
            "retry_at": state.retry_at,
            "updated_at": self._clock(),
            "expires_at": state.access.expires_at if state.access else None,
            "refresh_at": state.access.refresh_at if state.access else None,
        }
        plain = {
            "access_token": state.access.value if state.access else None,
            "refresh_token": state.refresh_token,
        }
        sealed = self._barrier.seal_secret(json.dumps(plain).encode(), aad=_aad(holder))
        values.update(
            ciphertext=sealed.ciphertext,
            wrapped_key=sealed.wrapped_key,
            master_key_id=sealed.master_key_id,
        )
        conn.execute(T.update().where(T.c.secret_id == holder.secret_id).values(**values))

    def _audit(
        self, conn: Connection, holder: Holder, outcome: str, code: str, details: dict[str, Any]
    ) -> None:
        event = AuditEvent.new(
            event=OAUTH_REFRESH,
            outcome=outcome,
            now=self._clock(),
            code=code,
            app_id=holder.app_id,
            grant_id=holder.grant_id,
            secret_id=holder.secret_id,
            details=details,
        )
        self._sink.append(conn, event)


def rewrap_state(
    barrier: Barrier, wrapped_key: bytes, *, app_id: str, secret_id: str, version: int
) -> tuple[bytes, str]:
    """A token state's data key moved to the active master key (``master-key rewrap``); the
    ``version`` is the row's. Returns the wrapped key and its master key's id."""
    return barrier.rewrap(wrapped_key, aad=_state_aad(app_id, secret_id, version))


def _aad(holder: Holder) -> bytes:
    return _state_aad(holder.app_id, holder.secret_id, holder.version)


def _state_aad(app_id: str, secret_id: str, version: int) -> bytes:
    # Its own prefix: a token-state blob moved into secret_versions (or back) does not open.
    return _AAD + aad_for(app_id, secret_id, version)


def _revoked(holder: Holder) -> Forbidden:
    extra: dict[str, Any] = {"grant_id": holder.grant_id}
    if holder.provider:
        extra["provider_id"] = holder.provider
    return Forbidden(
        "the provider refused this grant's OAuth credential; it must be re-authorised "
        "(rotate the secret with a new credential)",
        code="credential_revoked",
        extra=extra,
    )


def _insert_absent(conn: Connection, secret_id: str, now: Any) -> Any:
    values = {"secret_id": secret_id, "version": 0, "status": _EMPTY, "failures": 0}
    return (
        upsert.insert(conn, T)
        .values(**values, updated_at=now)
        .on_conflict_do_nothing(index_elements=["secret_id"])
    )
