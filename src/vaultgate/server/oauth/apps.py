"""OAuth apps: the OAuth client an operator registers per provider, from a template or custom.

A template knows a provider's endpoints, whether it takes PKCE, and where the connected account's
id is read (a userinfo URL or the token response). The client secret is sealed at rest and never
answered; `OAuthAppService.client_for` opens it for the one code exchange or revocation at hand.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field, replace
from typing import Any, Final
from urllib.parse import urlsplit

import sqlalchemy as sa
from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy.engine import Engine

from vaultgate.server.audit.events import AuditEvent
from vaultgate.server.audit.sink import AuditSink
from vaultgate.server.auth.services import Actor, actor_fields
from vaultgate.server.clock import Clock
from vaultgate.server.crypto import Barrier
from vaultgate.server.errors import Conflict, NotFound, Unprocessable
from vaultgate.server.oauth.sealing import open_sealed, seal
from vaultgate.server.secrets.specs import check_hosts
from vaultgate.server.storage import tables as t
from vaultgate.server.storage.engine import reading

CLIENT_AUTH_METHODS: Final = ("client_secret_basic", "client_secret_post", "none")


@dataclass(frozen=True, slots=True)
class Template:
    """A provider's OAuth endpoints; ``account_*`` are dotted paths into the userinfo answer
    (or, with no ``userinfo_url``, into the token response)."""

    slug: str
    authorize_url: str
    token_url: str
    revoke_url: str | None
    userinfo_url: str | None
    account_id: str
    account_login: str | None
    pkce: bool
    scopes: tuple[str, ...]
    allowed_hosts: tuple[str, ...]
    client_auth_method: str = "client_secret_post"
    extra_authorize: tuple[tuple[str, str], ...] = ()
    notes: str = ""


TEMPLATES: Final[dict[str, Template]] = {
    t_.slug: t_
    for t_ in (
        Template(
            slug="github",
            authorize_url="https://github.com/login/oauth/authorize",
            token_url="https://github.com/login/oauth/access_token",
            # GitHub revokes through DELETE /applications/{client_id}/grant, not RFC 7009.
            revoke_url=None,
            userinfo_url="https://api.github.com/user",
            account_id="id",
            account_login="login",
            pkce=True,
            scopes=("read:user",),
            allowed_hosts=("api.github.com",),
            notes="OAuth apps without expiring tokens get no refresh token: stored as bearer.",
        ),
        Template(
            slug="google",
            authorize_url="https://accounts.google.com/o/oauth2/v2/auth",
            token_url="https://oauth2.googleapis.com/token",
            revoke_url="https://oauth2.googleapis.com/revoke",
            userinfo_url="https://openidconnect.googleapis.com/v1/userinfo",
            account_id="sub",
            account_login="email",
            pkce=True,
            scopes=("openid", "email"),
            allowed_hosts=("*.googleapis.com",),
            # Without these Google issues no refresh token.
            extra_authorize=(("access_type", "offline"), ("prompt", "consent")),
        ),
        Template(
            slug="slack",
            authorize_url="https://slack.com/oauth/v2/authorize",
            token_url="https://slack.com/api/oauth.v2.access",
            revoke_url="https://slack.com/api/auth.revoke",
            userinfo_url=None,  # oauth.v2.access names the workspace itself
            account_id="team.id",
            account_login="team.name",
            pkce=False,
            scopes=("chat:write",),
            allowed_hosts=("slack.com",),
        ),
        Template(
            slug="microsoft",
            authorize_url="https://login.microsoftonline.com/common/oauth2/v2.0/authorize",
            token_url="https://login.microsoftonline.com/common/oauth2/v2.0/token",
            revoke_url=None,  # Entra ID has no RFC 7009 endpoint
            userinfo_url="https://graph.microsoft.com/v1.0/me",
            account_id="id",
            account_login="userPrincipalName",
            pkce=True,
            scopes=("openid", "offline_access", "User.Read"),
            allowed_hosts=("graph.microsoft.com",),
        ),
    )
}
TEMPLATE_NAMES: Final = (*TEMPLATES, "custom")


class OAuthAppCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    app_id: str = Field(min_length=1, max_length=64)
    provider: str = Field(pattern=r"^[a-z0-9][a-z0-9_-]{0,63}$")
    template: str = Field(default="custom", max_length=32)
    client_id: str = Field(min_length=1, max_length=512)
    # Plain str, never echoed: a typed secret model would repeat it in a validation error.
    client_secret: str | None = Field(default=None, max_length=4096)
    scopes: list[str] | None = Field(default=None, max_length=64)
    redirect_uri: str | None = Field(default=None, max_length=2048)
    authorize_url: str | None = Field(default=None, max_length=2048)
    token_url: str | None = Field(default=None, max_length=2048)
    revoke_url: str | None = Field(default=None, max_length=2048)
    userinfo_url: str | None = Field(default=None, max_length=2048)
    account_id_field: str | None = Field(default=None, max_length=128)
    account_login_field: str | None = Field(default=None, max_length=128)
    allowed_hosts: list[str] | None = Field(default=None, max_length=64)
    pkce: bool | None = None
    client_auth_method: str | None = None


@dataclass(frozen=True, slots=True)
class OAuthClient:
    """One registered client, opened for one exchange: the secret never prints."""

    id: str
    app_id: str
    provider: str
    client_id: str
    client_secret: str | None = field(repr=False)
    scopes: tuple[str, ...]
    redirect_uri: str
    endpoints: Template


def check_url(url: str, where: str, *, allow_http: bool) -> str:
    parts = urlsplit(url)
    schemes = ("https", "http") if allow_http else ("https",)
    if parts.scheme not in schemes or not parts.hostname or parts.username or parts.password:
        plain = (
            " (plain http only while private destinations are allowed)" if not allow_http else ""
        )
        raise Unprocessable(f"{where}: must be an absolute https URL{plain}", field=where)
    return url


def _endpoints(body: OAuthAppCreate, *, allow_http: bool) -> Template:
    if body.template not in TEMPLATE_NAMES:
        raise Unprocessable(
            f"template: must be one of {', '.join(TEMPLATE_NAMES)}", field="template"
        )
    base = TEMPLATES.get(body.template)
    if base is None:
        for name in ("authorize_url", "token_url", "account_id_field"):
            if getattr(body, name) is None:
                raise Unprocessable(f"{name}: required for a custom OAuth app", field=name)
        if not body.allowed_hosts:
            raise Unprocessable(
                "allowed_hosts: required for a custom OAuth app (where may its token go?)",
                field="allowed_hosts",
            )
        base = Template("custom", "", "", None, None, "", None, True, (), ())
    merged = replace(
        base,
        slug=body.template,
        authorize_url=body.authorize_url or base.authorize_url,
        token_url=body.token_url or base.token_url,
        revoke_url=body.revoke_url or base.revoke_url,
        userinfo_url=body.userinfo_url or base.userinfo_url,
        account_id=body.account_id_field or base.account_id,
        account_login=body.account_login_field or base.account_login,
        pkce=base.pkce if body.pkce is None else body.pkce,
        allowed_hosts=tuple(body.allowed_hosts or base.allowed_hosts),
        client_auth_method=body.client_auth_method or base.client_auth_method,
    )
    for name in ("authorize_url", "token_url", "revoke_url", "userinfo_url"):
        value = getattr(merged, name)
        if value is not None:
            check_url(value, name, allow_http=allow_http)
    if merged.client_auth_method not in CLIENT_AUTH_METHODS:
        raise Unprocessable(
            f"client_auth_method: must be one of {', '.join(CLIENT_AUTH_METHODS)}",
            field="client_auth_method",
        )
    check_hosts(merged.allowed_hosts)
    return merged


def _endpoints_doc(e: Template) -> dict[str, Any]:
    return {
        "authorize_url": e.authorize_url,
        "token_url": e.token_url,
        "revoke_url": e.revoke_url,
        "userinfo_url": e.userinfo_url,
        "account_id_field": e.account_id,
        "account_login_field": e.account_login,
        "pkce": e.pkce,
        "allowed_hosts": list(e.allowed_hosts),
        "client_auth_method": e.client_auth_method,
        "extra_authorize": [list(p) for p in e.extra_authorize],
    }


def _endpoints_of(slug: str, doc: dict[str, Any]) -> Template:
    return Template(
        slug=slug,
        authorize_url=doc["authorize_url"],
        token_url=doc["token_url"],
        revoke_url=doc["revoke_url"],
        userinfo_url=doc["userinfo_url"],
        account_id=doc["account_id_field"],
        account_login=doc["account_login_field"],
        pkce=bool(doc["pkce"]),
        scopes=(),
        allowed_hosts=tuple(doc["allowed_hosts"]),
        client_auth_method=doc["client_auth_method"],
        extra_authorize=tuple((str(k), str(v)) for k, v in doc.get("extra_authorize", [])),
    )


def public(row: dict[str, Any]) -> dict[str, Any]:
    return {
        "id": row["id"],
        "app_id": row["app_id"],
        "provider": row["provider"],
        "template": row["template"],
        "client_id": row["client_id"],
        "has_client_secret": row["client_secret"] is not None,
        "scopes": row["scopes"],
        "redirect_uri": row["redirect_uri"],
        **row["endpoints"],
        "created_at": row["created_at"].isoformat(),
    }


def template_catalogue() -> list[dict[str, Any]]:
    return [
        {"template": slug, "scopes": list(tpl.scopes), "notes": tpl.notes, **_endpoints_doc(tpl)}
        for slug, tpl in TEMPLATES.items()
    ]


class OAuthAppService:
    def __init__(
        self,
        engine: Engine,
        barrier: Barrier,
        audit: AuditSink,
        clock: Clock,
        *,
        callback_url: str,
        allow_http: bool,
    ) -> None:
        self._engine = engine
        self._barrier = barrier
        self._audit = audit
        self._clock = clock
        self.callback_url = callback_url
        self._allow_http = allow_http

    def create(self, body: OAuthAppCreate, actor: Actor) -> dict[str, Any]:
        endpoints = _endpoints(body, allow_http=self._allow_http)
        if body.client_secret is None and endpoints.client_auth_method != "none":
            raise Unprocessable(
                "client_secret: required unless client_auth_method is none", field="client_secret"
            )
        redirect = check_url(
            body.redirect_uri or self.callback_url, "redirect_uri", allow_http=self._allow_http
        )
        scopes = body.scopes if body.scopes is not None else list(endpoints.scopes)
        if any(not s or len(s) > 256 or " " in s or not s.isprintable() for s in scopes):
            raise Unprocessable(
                "scopes: each scope is one printable word of at most 256 characters",
                field="scopes",
            )
        app_row_id, now = str(uuid.uuid4()), self._clock()
        secret = body.client_secret
        row = {
            "id": app_row_id,
            "app_id": body.app_id,
            "provider": body.provider,
            "template": body.template,
            "client_id": body.client_id,
            "client_secret": None
            if secret is None
            else seal(self._barrier, secret.encode(), "oauth_apps", app_row_id, "client_secret"),
            "scopes": scopes,
            "redirect_uri": redirect,
            "endpoints": _endpoints_doc(endpoints),
            "created_at": now,
        }
        with self._engine.begin() as conn:
            if (
                conn.execute(sa.select(t.apps.c.id).where(t.apps.c.id == body.app_id)).first()
                is None
            ):
                raise NotFound("app_id: no such app", code="app_not_found", field="app_id")
            taken = conn.execute(
                sa.select(t.oauth_apps.c.id).where(
                    t.oauth_apps.c.app_id == body.app_id, t.oauth_apps.c.provider == body.provider
                )
            ).first()
            if taken is not None:
                raise Conflict(
                    f"provider: this app already has an OAuth app for {body.provider!r}",
                    code="duplicate_oauth_app",
                    field="provider",
                )
            conn.execute(t.oauth_apps.insert().values(row))
            self._audit.append(conn, self._event("oauth_app:create", row, actor))
        return public(row)

    def _event(self, event: str, row: dict[str, Any], actor: Actor) -> AuditEvent:
        details = {"oauth_app_id": row["id"], "provider": row["provider"]}
        return AuditEvent.new(
            event=event,
            outcome="ok",
            now=self._clock(),
            app_id=row["app_id"],
            details=details,
            **actor_fields(actor),
        )

    def all(self, app_id: str | None = None) -> list[dict[str, Any]]:
        query = sa.select(t.oauth_apps).order_by(t.oauth_apps.c.created_at)
        if app_id is not None:
            query = query.where(t.oauth_apps.c.app_id == app_id)
        with reading(self._engine) as conn:
            return [public(dict(r)) for r in conn.execute(query).mappings()]

    def _row(self, oauth_app_id: str) -> dict[str, Any]:
        with reading(self._engine) as conn:
            row = (
                conn.execute(sa.select(t.oauth_apps).where(t.oauth_apps.c.id == oauth_app_id))
                .mappings()
                .first()
            )
        if row is None:
            raise NotFound("no such OAuth app", code="oauth_app_not_found")
        return dict(row)

    def get(self, oauth_app_id: str) -> dict[str, Any]:
        return public(self._row(oauth_app_id))

    def delete(self, oauth_app_id: str, actor: Actor) -> None:
        row = self._row(oauth_app_id)
        with self._engine.begin() as conn:
            conn.execute(t.oauth_apps.delete().where(t.oauth_apps.c.id == oauth_app_id))
            self._audit.append(conn, self._event("oauth_app:delete", row, actor))

    def providers_of(self, app_id: str) -> list[str]:
        return [a["provider"] for a in self.all(app_id)]

    def client_for(self, app_id: str, provider: str) -> OAuthClient:
        """The app's client for ``provider``, its secret opened; `NotFound` when none is set up."""
        with reading(self._engine) as conn:
            row = (
                conn.execute(
                    sa.select(t.oauth_apps).where(
                        t.oauth_apps.c.app_id == app_id, t.oauth_apps.c.provider == provider
                    )
                )
                .mappings()
                .first()
            )
        if row is None:
            raise NotFound(
                f"no OAuth app is registered for provider {provider!r}",
                code="provider_configuration_unavailable",
            )
        blob = row["client_secret"]
        secret = (
            None
            if blob is None
            else open_sealed(self._barrier, blob, "oauth_apps", row["id"], "client_secret").decode()
        )
        return OAuthClient(
            id=row["id"],
            app_id=row["app_id"],
            provider=row["provider"],
            client_id=row["client_id"],
            client_secret=secret,
            scopes=tuple(row["scopes"]),
            redirect_uri=row["redirect_uri"],
            endpoints=_endpoints_of(row["template"], row["endpoints"]),
        )
