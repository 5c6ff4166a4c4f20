"""A connected account as a managed secret: its credential fields, and its first grant bound to
the end user and the provider's account. Connecting the same account again for the same user
rotates that secret in place (``operation: reauth``), so the grant id the app holds stays."""

from __future__ import annotations

import uuid
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from vaultgate.injection.credential import Credential
from vaultgate.server.auth.services import Actor
from vaultgate.server.clock import Clock
from vaultgate.server.errors import Conflict
from vaultgate.server.oauth.apps import OAuthClient
from vaultgate.server.secrets.models import SecretCreate
from vaultgate.server.secrets.services import SecretService
from vaultgate.server.storage import tables as t
from vaultgate.server.storage.engine import reading

if TYPE_CHECKING:
    from vaultgate.server.oauth.exchange import Tokens  # (it loads httpx: types only here)


def connected_credential(oauth: OAuthClient, tokens: Tokens) -> Credential:
    """The fields `injection.credential` defines for the type, or ``bearer`` when the provider
    issued no refresh token (a GitHub OAuth app without expiring tokens)."""
    if tokens.refresh_token is None:
        return Credential("bearer", {"token": tokens.access_token})
    e = oauth.endpoints
    fields = {
        "token_url": e.token_url,
        "client_id": oauth.client_id,
        "refresh_token": tokens.refresh_token,
        "client_auth_method": e.client_auth_method,
        "access_token": tokens.access_token,
    }
    if oauth.client_secret is not None:
        fields["client_secret"] = oauth.client_secret
    if tokens.scopes or oauth.scopes:
        fields["scopes"] = " ".join(tokens.scopes or oauth.scopes)
    if e.revoke_url is not None:
        fields["revoke_url"] = e.revoke_url
    if tokens.expires_at is not None:
        fields["expires_at"] = str(tokens.expires_at)
    return Credential("oauth2_refresh_token", fields)


def store_connection(
    engine: Engine,
    secrets: SecretService,
    clock: Clock,
    session: dict[str, Any],
    oauth: OAuthClient,
    credential: Credential,
    tokens: Tokens,
    account: tuple[str, str | None],
) -> dict[str, Any]:
    """Store (or re-store) the connection; the poll's grant entry."""
    account_id, login = account
    actor = Actor(key_id=None, portal_user=None, source_ip=None)
    existing = _existing(engine, session, oauth.provider, account_id)
    scopes = list(tokens.scopes or oauth.scopes)
    if existing is not None and existing["credential_type"] == credential.type:
        secrets.rotate(existing["secret_id"], dict(credential), actor)
        grant_id, operation = existing["grant_id"], "reauth"
    else:
        created = _create(secrets, session, oauth, credential, login or account_id)
        grant_id, operation = created["grant_id"], "creation"
        with engine.begin() as conn:
            conn.execute(
                t.oauth_connections.insert().values(
                    secret_id=created["secret_id"],
                    grant_id=grant_id,
                    app_id=session["app_id"],
                    provider=oauth.provider,
                    app_user_id=session["app_user_id"],
                    account_id=account_id,
                    account_login=login,
                    scopes=scopes,
                    created_at=clock(),
                    disconnected_at=None,
                )
            )
    return {
        "grant_id": grant_id,
        "provider_id": oauth.provider,
        "account_identifier": login or account_id,
        "scopes": scopes,
        "operation": operation,
    }


def _existing(
    engine: Engine, session: dict[str, Any], provider: str, account_id: str
) -> dict[str, Any] | None:
    c = t.oauth_connections
    user = session["app_user_id"]
    with reading(engine) as conn:
        row = (
            conn.execute(
                sa.select(c.c.secret_id, c.c.grant_id, t.secrets.c.credential_type)
                .join(t.secrets, t.secrets.c.id == c.c.secret_id)
                .where(
                    c.c.app_id == session["app_id"],
                    c.c.provider == provider,
                    c.c.account_id == account_id,
                    c.c.app_user_id.is_(None) if user is None else c.c.app_user_id == user,
                    c.c.disconnected_at.is_(None),
                    t.secrets.c.deleted_at.is_(None),
                )
            )
            .mappings()
            .first()
        )
    return None if row is None else dict(row)


def _create(
    secrets: SecretService,
    session: dict[str, Any],
    oauth: OAuthClient,
    credential: Credential,
    account: str,
) -> dict[str, Any]:
    owner = session["app_user_id"] or "app"
    name = f"{oauth.provider}:{account}:{owner}"[:180]
    body = SecretCreate(
        app_id=session["app_id"],
        name=name,
        credential_type=credential.type,
        credential=dict(credential),
        # No rule: the type's default, Authorization: Bearer with the access token the vault
        # keeps current (oauth/tokens.py), never the refresh token.
        allowed_hosts=list(oauth.endpoints.allowed_hosts),
    )
    actor = Actor()
    try:
        return secrets.create(body, actor)
    except Conflict:
        # A secret of that name exists (stored by hand, or a disconnected twin): add the session.
        body = body.model_copy(update={"name": f"{name}:{uuid.uuid4().hex[:8]}"})
        return secrets.create(body, actor)
