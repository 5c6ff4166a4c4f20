"""What the injection tests share: a tenant that stores secrets, the rule shapes, the checks.

Every shape carries its own unique secret values, so a test can assert not only that the value
arrived where the rules say but also that it appears nowhere else in what the upstream saw.
"""

from __future__ import annotations

import base64
import json
import secrets
import socket
import time
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any
from urllib.parse import parse_qsl, urlsplit

import httpx

from support.servers import Recorded, Upstream, Vault
from vaultgate.injection.signing import sign_request
from vaultgate.injection.sigv4 import AwsCredentials, SigV4Request, sign_headers


@dataclass
class Tenant:
    """One app of a running vault, with a key, that stores secrets through the management API."""

    vault: Vault
    app_id: str
    key: str

    @classmethod
    def create(cls, vault: Vault, name: str = "app") -> Tenant:
        app_id, key = vault.make_app_key(name)
        return cls(vault, app_id, key)

    def store(self, body: dict[str, Any], hosts: list[str], **extra: Any) -> str:
        """Store a secret allowed to go to ``hosts``; return its grant id."""
        payload = {
            "app_id": self.app_id,
            "name": f"secret-{uuid.uuid4().hex[:10]}",
            **body,
            "allowed_hosts": hosts,
            **extra,
        }
        with self.vault.admin() as admin:
            created = admin.post("/v1/secrets", json=payload)
        assert created.status_code == 201, created.text
        return str(created.json()["grant_id"])


@dataclass(frozen=True)
class Shape:
    """A secret as stored, and what the upstream must receive for it."""

    id: str
    body: dict[str, Any]
    headers: dict[str, str]
    query: dict[str, str] = field(default_factory=dict)
    secrets: tuple[str, ...] = ()


def _basic(user: str, password: str) -> str:
    return "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()


def _token(kind: str) -> str:
    return f"canary-{kind}-Q7x2Lm9Rt4"


SHAPES: tuple[Shape, ...] = (
    Shape(
        "bearer",
        {"credential_type": "bearer", "credential": {"token": _token("bearer")}},
        {"authorization": f"Bearer {_token('bearer')}"},
        secrets=(_token("bearer"),),
    ),
    Shape(
        "api-key-custom-header",
        {
            "credential_type": "api_key",
            "credential": {"token": _token("custom")},
            "injection": {"header": "X-Service-Key", "format": "{token}"},
        },
        {"x-service-key": _token("custom")},
        secrets=(_token("custom"),),
    ),
    Shape(
        "token-format",
        {
            "credential_type": "api_key",
            "credential": {"token": _token("tokfmt")},
            "injection": {"header": "Authorization", "format": "Token {token}"},
        },
        {"authorization": f"Token {_token('tokfmt')}"},
        secrets=(_token("tokfmt"),),
    ),
    Shape(
        "raw-default-api-key",
        {"credential_type": "api_key", "credential": {"token": _token("raw")}},
        {"x-api-key": _token("raw")},
        secrets=(_token("raw"),),
    ),
    Shape(
        "basic",
        {
            "credential_type": "basic",
            "credential": {"username": "svc-user", "password": _token("basicpw")},
        },
        {"authorization": _basic("svc-user", _token("basicpw"))},
        secrets=(_token("basicpw"), _basic("svc-user", _token("basicpw")).split()[1]),
    ),
    Shape(
        "multi-header",
        {
            "credential_type": "api_key",
            "credential": {"token": _token("multi")},
            "injection": {
                "header": "X-Api-Key",
                "format": "{token}",
                "additional": [
                    {"target": "header", "name": "X-Client-Id", "value": "client-42"},
                    {"target": "header", "name": "X-Signed", "value": "sig {token}"},
                ],
            },
        },
        {
            "x-api-key": _token("multi"),
            "x-client-id": "client-42",
            "x-signed": f"sig {_token('multi')}",
        },
        secrets=(_token("multi"),),
    ),
    Shape(
        "query-param",
        {
            "credential_type": "api_key",
            "credential": {"token": _token("query")},
            "injection": {
                "additional": [{"target": "query", "name": "api_key", "value": "{token}"}]
            },
        },
        {},
        {"api_key": _token("query")},
        secrets=(_token("query"),),
    ),
    Shape(
        "header-and-query",
        {
            "credential_type": "api_key",
            "credential": {"token": _token("hq")},
            "injection": {
                "header": "X-Api-Key",
                "format": "{token}",
                "additional": [{"target": "query", "name": "key", "value": "{token}"}],
            },
        },
        {"x-api-key": _token("hq")},
        {"key": _token("hq")},
        secrets=(_token("hq"),),
    ),
    Shape(
        "username-password-templates",
        {
            "credential_type": "basic",
            "credential": {"username": "acct-9", "password": _token("tplpw")},
            "injection": {
                "header": "X-Account",
                "format": "acct={username}",
                "additional": [{"target": "header", "name": "X-Password", "value": "{password}"}],
            },
        },
        {"x-account": "acct=acct-9", "x-password": _token("tplpw")},
        secrets=(_token("tplpw"),),
    ),
    Shape(
        "provider-anthropic",
        {"provider": "anthropic", "credential": {"token": "sk-ant-" + _token("anthropic")}},
        {"x-api-key": "sk-ant-" + _token("anthropic"), "anthropic-version": "2023-06-01"},
        secrets=(_token("anthropic"),),
    ),
    Shape(
        "provider-gemini",
        {"provider": "google-gemini", "credential": {"token": "AIza" + _token("gemini")}},
        {},
        {"key": "AIza" + _token("gemini")},
        secrets=(_token("gemini"),),
    ),
)


def shape_ids() -> list[str]:
    return [shape.id for shape in SHAPES]


def query_of(rec: Recorded) -> list[tuple[str, str]]:
    return parse_qsl(urlsplit(rec.path).query, keep_blank_values=True)


def assert_injected(
    rec: Recorded, shape: Shape, *, app_key: str, caller_query: dict[str, str] | None = None
) -> None:
    """The upstream got exactly the shape's headers and query, and the secrets nowhere else."""
    for name, value in shape.headers.items():
        assert rec.headers.get(name) == value, f"header {name}: {rec.headers.get(name)!r}"
    pairs = query_of(rec)
    expected_query = {**(caller_query or {}), **shape.query}
    assert sorted(pairs) == sorted(expected_query.items()), pairs
    path = urlsplit(rec.path).path
    for secret in shape.secrets:
        assert secret not in path
        assert secret not in rec.body.decode("latin-1")
        for name, value in rec.raw_headers:
            if secret in value:
                assert name.lower() in shape.headers, f"{name} carries a secret"
        for name, value in pairs:
            if secret in value:
                assert name in shape.query, f"query {name} carries a secret"
    everything = repr(rec.raw_headers) + rec.path + rec.body.decode("latin-1")
    assert app_key not in everything, "the app key reached the upstream"


# --- SigV4 --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class SigV4Check:
    signed_headers: list[str]
    credential_scope: str


def verify_sigv4(
    rec: Recorded,
    upstream: Upstream,
    creds: AwsCredentials,
    region: str,
    service: str,
) -> SigV4Check:
    """Recompute the signature of what arrived; raise AssertionError unless it matches."""
    auth = rec.headers["authorization"]
    algorithm, _, rest = auth.partition(" ")
    assert algorithm == "AWS4-HMAC-SHA256", auth
    parts = dict(p.strip().split("=", 1) for p in rest.split(","))
    signed = parts["SignedHeaders"].split(";")
    now = datetime.strptime(rec.headers["x-amz-date"], "%Y%m%dT%H%M%SZ").replace(tzinfo=UTC)
    computed_by_signer = {"x-amz-date", "x-amz-content-sha256", "x-amz-security-token"}
    given = [(n, rec.headers[n]) for n in signed if n not in computed_by_signer]
    request = SigV4Request(rec.method, upstream.origin + rec.path, given, rec.body)
    again = sign_headers(
        request,
        creds,
        region,
        service,
        now,
        normalize=service != "s3",
        sign_body="x-amz-content-sha256" in signed,
        omit_session_token="x-amz-security-token" not in signed,
    )
    assert again.signature == parts["Signature"], "the SigV4 signature does not verify"
    access_key, _, scope = parts["Credential"].partition("/")
    assert access_key == creds.access_key_id
    return SigV4Check(signed, scope)


# --- raw Alter-protocol calls (for the attacks our SDKs would refuse to send) -------------------


def sdk_call(
    vault: Vault,
    key: str,
    path: str,
    payload: dict[str, Any] | bytes,
    *,
    now: int | None = None,
    nonce: str | None = None,
    extra_headers: dict[str, str] | None = None,
) -> httpx.Response:
    """POST ``payload`` to an ``/sdk/...`` path, signed as the official client signs."""
    body = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
    headers = sign_request(
        key,
        "POST",
        path,
        body,
        now=int(time.time()) if now is None else now,
        nonce=nonce or secrets.token_hex(16),
    )
    headers = {**headers, "x-api-key": key, "content-type": "application/json"}
    headers.update(extra_headers or {})
    return httpx.post(
        vault.base_url + path, content=body, headers=headers, trust_env=False, timeout=30
    )


def error_of(response: httpx.Response) -> str:
    """The ``error`` code of the envelope; fails on anything that is not the envelope."""
    detail = response.json()["detail"]
    assert set(detail) >= {"error", "message"}, detail
    return str(detail["error"])


def raw_http(port: int, head: str, body: bytes = b"") -> tuple[int, bytes]:
    """Send bytes no HTTP client library would (dot segments, CL with TE); (status, body).

    ``head`` is the request line and headers without the blank line; the connection is closed
    after the answer.
    """
    lines = [line.rstrip("\r") for line in head.strip("\r\n").split("\n")]
    data = "\r\n".join(lines).encode("latin-1")
    with socket.create_connection(("127.0.0.1", port), timeout=30) as sock:
        sock.sendall(data + b"\r\nConnection: close\r\n\r\n" + body)
        chunks = []
        while chunk := sock.recv(65536):
            chunks.append(chunk)
    head_bytes, _, body_bytes = b"".join(chunks).partition(b"\r\n\r\n")
    status = int(head_bytes.split(b" ", 2)[1])
    if b"transfer-encoding: chunked" in head_bytes.lower():
        body_bytes = _dechunk(body_bytes)
    return status, body_bytes


def _dechunk(data: bytes) -> bytes:
    out = b""
    while data:
        size_line, _, data = data.partition(b"\r\n")
        size = int(size_line.split(b";")[0] or b"0", 16)
        if size == 0:
            break
        out, data = out + data[:size], data[size + 2 :]
    return out


def envelope_code(body: bytes) -> str:
    detail = json.loads(body)["detail"]
    assert set(detail) >= {"error", "message"}, detail
    return str(detail["error"])
