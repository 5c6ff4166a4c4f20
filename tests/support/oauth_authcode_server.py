"""A real OAuth 2.0 authorization server on loopback, built on Authlib's server side on Flask:
the authorization-code grant with PKCE (S256, required), refresh tokens, RFC 7009 revocation, a
consent page with a button, and a userinfo endpoint. Its token endpoint counts requests.

Nothing here is a stub of the protocol: Authlib validates the client, the redirect URI, the code,
its single use and the PKCE verifier; the test only decides who is signed in at the provider.
"""

from __future__ import annotations

import os
import secrets
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from html import escape
from typing import Any

from authlib.integrations.flask_oauth2 import AuthorizationServer
from authlib.oauth2.rfc6749 import grants
from authlib.oauth2.rfc7009 import RevocationEndpoint
from authlib.oauth2.rfc7636 import CodeChallenge
from flask import Flask, Response, jsonify, request
from werkzeug.serving import make_server


@dataclass
class Client:
    client_id: str
    client_secret: str = field(repr=False)  # the server's own logs print clients
    redirect_uri: str
    scope: str = "repo read:user"

    def get_client_id(self) -> str:
        return self.client_id

    def get_default_redirect_uri(self) -> str:
        return self.redirect_uri

    def get_allowed_scope(self, scope: str) -> str:
        allowed = set(self.scope.split())
        return " ".join(s for s in (scope or "").split() if s in allowed)

    def check_redirect_uri(self, redirect_uri: str) -> bool:
        return redirect_uri == self.redirect_uri

    def check_client_secret(self, client_secret: str) -> bool:
        return secrets.compare_digest(client_secret, self.client_secret)

    def check_endpoint_auth_method(self, method: str, endpoint: str) -> bool:
        return method in ("client_secret_basic", "client_secret_post")

    def check_response_type(self, response_type: str) -> bool:
        return response_type == "code"

    def check_grant_type(self, grant_type: str) -> bool:
        return grant_type in ("authorization_code", "refresh_token")


@dataclass
class User:
    id: int
    login: str

    def get_user_id(self) -> int:
        return self.id


@dataclass
class Code:
    code: str = field(repr=False)
    client_id: str
    redirect_uri: str
    scope: str
    user: User
    code_challenge: str | None
    code_challenge_method: str | None

    def get_redirect_uri(self) -> str:
        return self.redirect_uri

    def get_scope(self) -> str:
        return self.scope


@dataclass
class Token:
    access_token: str = field(repr=False)
    refresh_token: str | None = field(repr=False)
    client_id: str
    scope: str
    user: User
    expires_in: int
    issued_at: float
    revoked: bool = False

    def check_client(self, client: Client) -> bool:
        return client.client_id == self.client_id

    def get_scope(self) -> str:
        return self.scope

    def get_expires_in(self) -> int:
        return self.expires_in

    def is_expired(self) -> bool:
        return False  # the tests decide expiry by what they send, never by the clock

    def is_revoked(self) -> bool:
        return self.revoked

    def get_user(self) -> User:
        return self.user

    def get_client(self) -> Client:
        raise NotImplementedError


@dataclass
class AuthServer:
    """What the tests see: the origin, who is signed in, and what the endpoints received."""

    port: int = 0
    client: Client | None = None
    signed_in: User = field(default_factory=lambda: User(1, "octocat"))
    codes: dict[str, Code] = field(default_factory=dict)
    tokens: list[Token] = field(default_factory=list)
    token_requests: list[dict[str, str]] = field(default_factory=list)
    revocations: list[dict[str, str]] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    @property
    def origin(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def token_count(self, grant_type: str) -> int:
        with self.lock:
            return sum(1 for r in self.token_requests if r.get("grant_type") == grant_type)

    def issued(self) -> list[Token]:
        with self.lock:
            return list(self.tokens)

    def by_access(self, value: str) -> Token | None:
        with self.lock:
            return next((t for t in self.tokens if t.access_token == value), None)


def _grants(state: AuthServer) -> tuple[type[Any], type[Any], type[Any]]:
    class AuthorizationCodeGrant(grants.AuthorizationCodeGrant):  # type: ignore[misc]
        TOKEN_ENDPOINT_AUTH_METHODS = ["client_secret_basic", "client_secret_post"]

        def save_authorization_code(self, code: str, req: Any) -> None:
            with state.lock:
                state.codes[code] = Code(
                    code=code,
                    client_id=req.client.client_id,
                    redirect_uri=req.payload.redirect_uri,
                    scope=req.payload.scope,
                    user=req.user,
                    code_challenge=req.payload.data.get("code_challenge"),
                    code_challenge_method=req.payload.data.get("code_challenge_method"),
                )

        def query_authorization_code(self, code: str, client: Client) -> Code | None:
            with state.lock:
                found = state.codes.get(code)
            return found if found is not None and found.client_id == client.client_id else None

        def delete_authorization_code(self, authorization_code: Code) -> None:
            with state.lock:
                state.codes.pop(authorization_code.code, None)

        def authenticate_user(self, authorization_code: Code) -> User:
            return authorization_code.user

    class RefreshTokenGrant(grants.RefreshTokenGrant):  # type: ignore[misc]
        TOKEN_ENDPOINT_AUTH_METHODS = ["client_secret_basic", "client_secret_post"]
        INCLUDE_NEW_REFRESH_TOKEN = True

        def authenticate_refresh_token(self, refresh_token: str) -> Token | None:
            with state.lock:
                return next(
                    (t for t in state.tokens if t.refresh_token == refresh_token and not t.revoked),
                    None,
                )

        def authenticate_user(self, refresh_token: Token) -> User:
            return refresh_token.user

        def revoke_old_credential(self, refresh_token: Token) -> None:
            refresh_token.revoked = True

    class Revocation(RevocationEndpoint):  # type: ignore[misc]
        CLIENT_AUTH_METHODS = ["client_secret_basic", "client_secret_post"]

        def query_token(self, token_string: str, token_type_hint: str | None) -> Token | None:
            with state.lock:
                return next(
                    (t for t in state.tokens if token_string in (t.access_token, t.refresh_token)),
                    None,
                )

        def revoke_token(self, token: Token, req: Any) -> None:
            token.revoked = True

    return AuthorizationCodeGrant, RefreshTokenGrant, Revocation


def _app(state: AuthServer) -> Flask:
    app = Flask("oauth-authcode-test-server")
    app.config["OAUTH2_REFRESH_TOKEN_GENERATOR"] = True

    def query_client(client_id: str) -> Client | None:
        client = state.client
        return client if client is not None and client.client_id == client_id else None

    def save_token(token: dict[str, Any], req: Any) -> None:
        with state.lock:
            state.tokens.append(
                Token(
                    access_token=token["access_token"],
                    refresh_token=token.get("refresh_token"),
                    client_id=req.client.client_id,
                    scope=token.get("scope", ""),
                    user=req.user,
                    expires_in=int(token.get("expires_in", 3600)),
                    issued_at=time.time(),
                )
            )

    server = AuthorizationServer(app, query_client=query_client, save_token=save_token)
    code_grant, refresh_grant, revocation = _grants(state)
    server.register_grant(code_grant, [CodeChallenge(required=True)])
    server.register_grant(refresh_grant)
    server.register_endpoint(revocation)

    @app.route("/authorize", methods=["GET"])
    def consent_page() -> Response | str:
        grant = server.get_consent_grant(end_user=state.signed_in)
        action = escape(request.full_path)
        return (
            f"<!doctype html><title>Authorize {escape(grant.client.client_id)}</title>"
            f"<p>Signed in as {escape(state.signed_in.login)}.</p>"
            f'<form method="post" action="{action}">'
            '<button type="submit" name="confirm" value="yes">Authorize</button>'
            '<button type="submit" name="confirm" value="no">Cancel</button></form>'
        )

    @app.route("/authorize", methods=["POST"])
    def authorize() -> Response:
        user = state.signed_in if request.form.get("confirm") == "yes" else None
        grant = server.get_consent_grant(end_user=state.signed_in)
        response: Response = server.create_authorization_response(grant_user=user, grant=grant)
        return response

    @app.route("/token", methods=["POST"])
    def issue_token() -> Response:
        with state.lock:
            state.token_requests.append(dict(request.form))
        response: Response = server.create_token_response()
        return response

    @app.route("/revoke", methods=["POST"])
    def revoke_token() -> Response:
        with state.lock:
            state.revocations.append(dict(request.form))
        response: Response = server.create_endpoint_response(RevocationEndpoint.ENDPOINT_NAME)
        return response

    @app.route("/userinfo")
    def userinfo() -> tuple[Response, int]:
        header = request.headers.get("Authorization", "")
        token = state.by_access(header.removeprefix("Bearer "))
        if token is None or token.revoked:
            return jsonify(error="invalid_token"), 401
        return jsonify(id=token.user.id, login=token.user.login), 200

    return app


@contextmanager
def run_authcode_server() -> Iterator[AuthServer]:
    # Authlib refuses plain http unless told otherwise; this server lives on loopback only.
    os.environ["AUTHLIB_INSECURE_TRANSPORT"] = "1"
    state = AuthServer()
    httpd = make_server("127.0.0.1", 0, _app(state), threaded=True)
    state.port = httpd.server_port
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    try:
        yield state
    finally:
        httpd.shutdown()
        httpd.server_close()
