"""A real OAuth 2.0 authorization server on loopback: Authlib's server side on Flask.

Grants: client credentials and refresh token (refresh tokens rotate; the old one is revoked the
moment a new one is issued). Its models live in memory. It also serves a protected resource,
``GET /api/whoami``, that verifies the bearer token against what this server issued, so a test
proves the vault injected a token that is valid right now, not merely some string.

The token endpoint counts what reaches it (``token_requests``) under a lock, so a test can assert
"exactly one token request". To add a grant (the authorization-code grant of Connect), register
it on ``server.authorization`` before the first request and add clients with its grant type:
``AuthServer.app`` is the Flask app, free to take more routes.
"""

from __future__ import annotations

import secrets
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

from authlib.integrations.flask_oauth2 import AuthorizationServer, ResourceProtector
from authlib.oauth2.rfc6749 import ClientMixin, TokenMixin, grants
from authlib.oauth2.rfc6750 import BearerTokenGenerator, BearerTokenValidator
from flask import Flask, jsonify
from werkzeug.serving import WSGIRequestHandler, make_server


@dataclass
class Client(ClientMixin):  # type: ignore[misc]  # Authlib is untyped
    client_id: str
    client_secret: str
    grant_types: tuple[str, ...] = ("client_credentials", "refresh_token")
    scope: str = "read write"
    auth_methods: tuple[str, ...] = ("client_secret_basic", "client_secret_post")
    redirect_uris: tuple[str, ...] = ()

    def get_client_id(self) -> str:
        return self.client_id

    def get_default_redirect_uri(self) -> str | None:
        return self.redirect_uris[0] if self.redirect_uris else None

    def get_allowed_scope(self, scope: str | None) -> str:
        if not scope:
            return ""
        allowed = set(self.scope.split())
        return " ".join(s for s in scope.split() if s in allowed)

    def check_redirect_uri(self, redirect_uri: str) -> bool:
        return redirect_uri in self.redirect_uris

    def check_client_secret(self, client_secret: str) -> bool:
        return secrets.compare_digest(client_secret, self.client_secret)

    def check_endpoint_auth_method(self, method: str, endpoint: str) -> bool:
        return method in self.auth_methods

    def check_response_type(self, response_type: str) -> bool:
        return response_type == "code" and "authorization_code" in self.grant_types

    def check_grant_type(self, grant_type: str) -> bool:
        return grant_type in self.grant_types


@dataclass
class Token(TokenMixin):  # type: ignore[misc]
    client_id: str
    access_token: str
    scope: str
    expires_in: int
    issued_at: float
    refresh_token: str | None = None
    user: str | None = None
    revoked: bool = False
    refresh_revoked: bool = False

    def check_client(self, client: Client) -> bool:
        return client.client_id == self.client_id

    def get_scope(self) -> str:
        return self.scope

    def get_expires_in(self) -> int:
        return self.expires_in

    def is_expired(self) -> bool:
        return time.time() >= self.issued_at + self.expires_in

    def is_revoked(self) -> bool:
        return self.revoked

    def get_user(self) -> str | None:
        return self.user

    def get_client(self) -> Any:
        return None


@dataclass
class AuthServer:
    """The server's state: clients, issued tokens, and what its token endpoint received."""

    port: int = 0
    expires_in: int = 3600  # the lifetime of the next tokens issued; a test may change it
    clients: dict[str, Client] = field(default_factory=dict)
    tokens: list[Token] = field(default_factory=list)
    token_requests: int = 0
    grant_types_seen: list[str] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)
    app: Flask = field(default_factory=lambda: Flask("oauth-test-server"))
    authorization: AuthorizationServer = None

    @property
    def origin(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def token_url(self) -> str:
        return f"{self.origin}/oauth/token"

    def add_client(self, **fields: Any) -> Client:
        client = Client(
            client_id=fields.pop("client_id", f"client-{secrets.token_hex(4)}"),
            client_secret=fields.pop("client_secret", f"secret-{secrets.token_hex(12)}"),
            **fields,
        )
        self.clients[client.client_id] = client
        return client

    def seed_refresh_token(self, client: Client, user: str = "user-1", scope: str = "read") -> str:
        """A refresh token as if ``user`` had consented earlier (its access token long spent)."""
        refresh = f"rt-{secrets.token_urlsafe(24)}"
        with self.lock:
            self.tokens.append(
                Token(
                    client.client_id,
                    f"at-{secrets.token_urlsafe(24)}",
                    scope,
                    1,
                    0.0,
                    refresh_token=refresh,
                    user=user,
                    revoked=True,
                )
            )
        return refresh

    def live_refresh_tokens(self, client: Client) -> list[str]:
        with self.lock:
            return [
                t.refresh_token
                for t in self.tokens
                if t.client_id == client.client_id and t.refresh_token and not t.refresh_revoked
            ]

    def revoke_refresh_tokens(self, client: Client) -> None:
        """The user withdrew consent at the provider."""
        with self.lock:
            for token in self.tokens:
                if token.client_id == client.client_id:
                    token.refresh_revoked = True

    def issued_access_tokens(self) -> list[str]:
        with self.lock:
            return [t.access_token for t in self.tokens]

    def all_expired(self) -> bool:
        with self.lock:
            return all(t.is_expired() for t in self.tokens)

    def find_access(self, access_token: str) -> Token | None:
        with self.lock:
            return next((t for t in self.tokens if t.access_token == access_token), None)

    def save_token(self, token: dict[str, Any], request: Any) -> None:
        user = getattr(request, "user", None)
        with self.lock:
            self.tokens.append(
                Token(
                    client_id=request.client.client_id,
                    access_token=token["access_token"],
                    scope=token.get("scope", ""),
                    expires_in=int(token.get("expires_in", 0)),
                    issued_at=time.time(),
                    refresh_token=token.get("refresh_token"),
                    user=user if isinstance(user, str) else None,
                )
            )


class RotatingRefreshTokenGrant(grants.RefreshTokenGrant):  # type: ignore[misc]
    INCLUDE_NEW_REFRESH_TOKEN = True  # rotate on every refresh, as many providers do
    TOKEN_ENDPOINT_AUTH_METHODS = ["client_secret_basic", "client_secret_post", "none"]

    def authenticate_refresh_token(self, refresh_token: str) -> Token | None:
        state: AuthServer = self.server.state
        with state.lock:
            return next(
                (
                    t
                    for t in state.tokens
                    if t.refresh_token == refresh_token and not t.refresh_revoked
                ),
                None,
            )

    def authenticate_user(self, refresh_token: Token) -> str | None:
        return refresh_token.user or "machine"

    def revoke_old_credential(self, refresh_token: Token) -> None:
        with self.server.state.lock:
            refresh_token.refresh_revoked = True
            refresh_token.revoked = True


class ClientCredentialsGrant(grants.ClientCredentialsGrant):  # type: ignore[misc]
    TOKEN_ENDPOINT_AUTH_METHODS = ["client_secret_basic", "client_secret_post"]


def _build(state: AuthServer) -> None:
    app = state.app

    def query_client(client_id: str) -> Client | None:
        return state.clients.get(client_id)

    server = AuthorizationServer(app, query_client=query_client, save_token=state.save_token)
    server.state = state
    server.register_token_generator(
        "default",
        BearerTokenGenerator(
            access_token_generator=lambda **_: f"at-{secrets.token_urlsafe(24)}",
            refresh_token_generator=lambda **_: f"rt-{secrets.token_urlsafe(24)}",
            expires_generator=lambda client, grant_type: state.expires_in,
        ),
    )
    server.register_grant(ClientCredentialsGrant)
    server.register_grant(RotatingRefreshTokenGrant)
    state.authorization = server

    class Validator(BearerTokenValidator):  # type: ignore[misc]
        def authenticate_token(self, token_string: str) -> Token | None:
            return state.find_access(token_string)

    protect = ResourceProtector()
    protect.register_token_validator(Validator())

    @app.post("/oauth/token")
    def token() -> Any:
        from flask import request

        with state.lock:
            state.token_requests += 1
            state.grant_types_seen.append(str(request.form.get("grant_type")))
        return server.create_token_response()

    @app.get("/api/whoami")
    @protect()
    def whoami() -> Any:
        from authlib.integrations.flask_oauth2 import current_token

        return jsonify(client_id=current_token.client_id, scope=current_token.scope)


class _Quiet(WSGIRequestHandler):
    def log_request(self, *args: Any, **kwargs: Any) -> None:
        pass  # a line per request would bury the test's own output


@contextmanager
def run_auth_server() -> Iterator[AuthServer]:
    """The server on an ephemeral loopback port, in a thread, for the ``with`` block."""
    state = AuthServer()
    _build(state)
    http = make_server("127.0.0.1", 0, state.app, threaded=True, request_handler=_Quiet)
    state.port = http.server_port
    thread = threading.Thread(target=http.serve_forever, daemon=True)
    thread.start()
    try:
        yield state
    finally:
        http.shutdown()
        thread.join(timeout=10)
