"""Fakes for the vault and a provider: plain handler functions behind ``httpx.MockTransport``."""

from __future__ import annotations

import base64
import json
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import httpx
import pytest

from vaultgate import AlterVault, SyncVault
from vaultgate.injection.signing import SignatureError, verify_signature

API_KEY = "alter_key_0123456789abcdefghijABCDEFGHIJ-_klmnopqr"
CANARY = "canary-tok-7Hq2xZ9w"  # the credential; it must never surface outside the provider call
GRANT_ID = "0b8f3c52-4a1e-4c6b-9a57-2d7e1f0c9a31"
BASE_URL = "http://127.0.0.1:8200"

Handler = Callable[[httpx.Request], httpx.Response]


def error(status: int, code: str, message: str = "refused", **headers: str) -> httpx.Response:
    body = {"detail": {"error": code, "message": message}}
    return httpx.Response(status, json=body, headers=headers)


@dataclass
class FakeVault:
    """Records what reached the vault; every request must carry a valid HMAC signature."""

    api_key: str = API_KEY
    canary: str = CANARY
    grant_id: str = GRANT_ID
    token_answer: dict[str, Any] = field(
        default_factory=lambda: {"access_token": CANARY, "grant_id": GRANT_ID}
    )
    answers: dict[str, httpx.Response] = field(default_factory=dict)
    prefix: str = ""
    seen: list[httpx.Request] = field(default_factory=list)

    error = staticmethod(error)

    @staticmethod
    def proxy_answer(
        status: int, body: bytes, headers: dict[str, str] | None = None
    ) -> httpx.Response:
        envelope = {
            "status_code": status,
            "headers": headers or {"content-type": "application/json"},
            "body_b64": base64.b64encode(body).decode(),
        }
        return httpx.Response(200, json=envelope)

    def bodies(self, path: str) -> list[bytes]:
        return [r.content for r in self.seen if r.url.path == self.prefix + path]

    def json_bodies(self, path: str) -> list[Any]:
        return [json.loads(body) for body in self.bodies(path)]

    def handler(self, request: httpx.Request) -> httpx.Response:
        request.read()
        self.seen.append(request)
        path = request.url.raw_path.decode()
        assert path.startswith(self.prefix)
        signed_path = path[len(self.prefix) :]
        if request.url.path.startswith(self.prefix + "/sdk/"):
            if request.headers.get("x-api-key") != API_KEY:
                return error(401, "invalid_key")
            try:
                verify_signature(
                    API_KEY, request.method, signed_path, request.content, request.headers
                )
            except SignatureError:
                return error(401, "invalid_signature")
        if signed_path in self.answers:
            return self.answers[signed_path]
        if signed_path == "/sdk/token":
            return httpx.Response(200, json=self.token_answer)
        if signed_path == "/sdk/oauth/audit/api-call":
            return httpx.Response(204)
        return error(404, "not_found")


@dataclass
class FakeProvider:
    """An upstream API: answers ``status`` with ``body`` and records what it received."""

    status: int = 200
    body: bytes = b'{"ok":true}'
    headers: dict[str, str] = field(default_factory=lambda: {"content-type": "application/json"})
    seen: list[httpx.Request] = field(default_factory=list)

    def handler(self, request: httpx.Request) -> httpx.Response:
        request.read()
        self.seen.append(request)
        return httpx.Response(self.status, content=self.body, headers=self.headers)


@pytest.fixture
def vault() -> FakeVault:
    return FakeVault()


@pytest.fixture
def provider() -> FakeProvider:
    return FakeProvider()


@pytest.fixture
def make_vault(vault: FakeVault, provider: FakeProvider) -> Callable[..., AlterVault]:
    """An ``AlterVault`` wired to the fakes; keyword arguments override the defaults."""

    def make(**kwargs: Any) -> AlterVault:
        options: dict[str, Any] = {
            "base_url": BASE_URL + vault.prefix,
            "transport": httpx.MockTransport(vault.handler),
            "upstream_transport": httpx.MockTransport(provider.handler),
            "env": {},
        }
        return AlterVault(API_KEY, **(options | kwargs))

    return make


@pytest.fixture
def make_sync(vault: FakeVault, provider: FakeProvider) -> Callable[..., SyncVault]:
    def make(**kwargs: Any) -> SyncVault:
        options: dict[str, Any] = {
            "base_url": BASE_URL + vault.prefix,
            "transport": httpx.MockTransport(vault.handler),
            "upstream_transport": httpx.MockTransport(provider.handler),
            "env": {},
        }
        return SyncVault(API_KEY, **(options | kwargs))

    return make
