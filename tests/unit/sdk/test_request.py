"""Retrieve mode (``AlterVault.request``): token, injection, provider call, audit report."""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from typing import Any

import httpx
import pytest

import vaultgate as vg

OPENAI = "https://api.openai.com/v1/chat/completions"
CHAT = {"model": "gpt-4", "messages": [{"role": "user", "content": "Hello"}]}
QUERY_KEY = {
    "injection_header": "X-Vaultgate-Grant",
    "injection_format": "{token}",
    "additional_injections": [{"target": "query_param", "key": "api_key", "value_source": "token"}],
}

MakeVault = Callable[..., vg.AlterVault]


async def test_first_user_story_sends_the_documented_wire(
    vault: Any, provider: Any, make_vault: MakeVault
) -> None:
    async with make_vault(caller="my-agent") as client:
        response = await client.request(
            vg.HttpMethod.POST,
            OPENAI,
            grant_id=vault.grant_id,
            json=CHAT,
            reason="AI model inference",
        )
    assert response.json() == {"ok": True}
    expected = (
        f'{{"grant_id":"{vault.grant_id}","reason":"AI model inference",'
        f'"request":{{"method":"POST","url":"{OPENAI}"}}}}'
    ).encode()
    assert vault.bodies("/sdk/token") == [expected]
    token = vault.seen[0]
    assert token.headers["content-type"] == "application/json"
    assert token.headers["user-agent"] == "vaultgate-python/0.1"
    assert token.headers["x-alter-caller"] == "my-agent"
    assert token.headers["x-alter-caller-type"] == "service"
    assert token.headers["x-alter-signature-v2"] == token.headers["x-alter-signature"]


async def test_provider_gets_the_credential_and_nothing_of_the_vault(
    vault: Any, provider: Any, make_vault: MakeVault
) -> None:
    async with make_vault(caller="my-agent") as client:
        await client.request("POST", OPENAI, grant_id=vault.grant_id, json=CHAT)
    [sent] = provider.seen
    assert sent.headers["authorization"] == f"Bearer {vault.canary}"
    assert sent.content == json.dumps(CHAT, separators=(",", ":")).encode()
    assert sent.headers["content-type"] == "application/json"
    assert "x-api-key" not in sent.headers
    assert not [name for name in sent.headers if name.lower().startswith("x-alter")]
    assert vault.api_key not in str(sent.headers.raw)


async def test_each_call_fetches_a_fresh_token_with_a_fresh_nonce(
    vault: Any, make_vault: MakeVault
) -> None:
    async with make_vault() as client:
        await client.request("GET", "https://api.example.com/a", grant_id=vault.grant_id)
        await client.request("GET", "https://api.example.com/a", grant_id=vault.grant_id)
    tokens = [r for r in vault.seen if r.url.path == "/sdk/token"]
    assert len(tokens) == 2
    assert tokens[0].headers["x-alter-nonce"] != tokens[1].headers["x-alter-nonce"]
    assert len(tokens[0].headers["x-alter-nonce"]) == 32


async def test_audit_report_carries_the_outcome_and_no_credential(
    vault: Any, provider: Any, make_vault: MakeVault
) -> None:
    provider.headers = {"content-type": "application/json", "set-cookie": "s=1", "x-reply": "y"}
    async with make_vault() as client:
        await client.request(
            "POST",
            "https://api.example.com/v1/x?page=2",
            grant_id=vault.grant_id,
            json={"q": 1},
            headers={"X-Trace": "t1", "Cookie": "c=1"},
            reason="nightly sync",
        )
    [raw] = vault.bodies("/sdk/oauth/audit/api-call")
    assert vault.canary.encode() not in raw
    report = json.loads(raw)
    assert raw == json.dumps(report, separators=(",", ":")).encode()  # compact, as hashed
    assert list(report) == [
        "grant_id",
        "provider_id",
        "token_generation",
        "method",
        "url",
        "request_headers",
        "request_body",
        "response_status",
        "response_headers",
        "response_body",
        "latency_ms",
        "reason",
        "context",
    ]
    assert report["grant_id"] == vault.grant_id
    assert report["method"] == "POST"
    assert report["url"] == "https://api.example.com/v1/x?page=2"
    assert report["request_headers"]["x-trace"] == "t1"
    assert "authorization" not in report["request_headers"]
    assert "cookie" not in report["request_headers"]
    assert report["request_body"] == {"q": 1}
    assert report["response_status"] == 200
    assert report["response_headers"]["x-reply"] == "y"
    assert "set-cookie" not in report["response_headers"]
    assert report["response_body"] == '{"ok":true}'
    assert report["reason"] == "nightly sync"
    assert isinstance(report["latency_ms"], int)


async def test_query_credential_is_sent_but_never_reported_logged_or_kept(
    vault: Any, provider: Any, make_vault: MakeVault, caplog: pytest.LogCaptureFixture
) -> None:
    vault.token_answer |= QUERY_KEY
    caplog.set_level(logging.DEBUG)
    async with make_vault() as client:
        response = await client.request(
            "GET", "https://maps.example.com/geo", grant_id=vault.grant_id, params={"q": "x"}
        )
    [sent] = provider.seen
    assert sent.url.params["api_key"] == vault.canary
    assert sent.url.params["q"] == "x"
    report = json.loads(vault.bodies("/sdk/oauth/audit/api-call")[0])
    assert report["url"] == "https://maps.example.com/geo?q=x"
    assert "x-vaultgate-grant" not in report["request_headers"]
    assert vault.canary not in str(response.request.url)
    assert vault.canary not in str(response.url)
    assert vault.canary not in str(response.request.headers.raw)
    assert vault.canary not in caplog.text
    assert all(vault.canary not in r.getMessage() for r in caplog.records)


async def test_a_provider_echoing_the_token_is_masked_in_the_report(
    vault: Any, provider: Any, make_vault: MakeVault
) -> None:
    provider.body = f'{{"you_sent":"{vault.canary}"}}'.encode()
    async with make_vault() as client:
        await client.request("GET", "https://echo.example.com/", grant_id=vault.grant_id)
    raw = vault.bodies("/sdk/oauth/audit/api-call")[0]
    assert vault.canary.encode() not in raw
    assert b"**********" in raw


async def test_provider_401_raises_unauthorized_after_reporting(
    vault: Any, provider: Any, make_vault: MakeVault
) -> None:
    provider.status, provider.body = 401, f"bad token {vault.canary}".encode()
    async with make_vault() as client:
        with pytest.raises(vg.ProviderUnauthorizedError) as info:
            await client.request("GET", "https://api.example.com/me", grant_id=vault.grant_id)
    error = info.value
    assert error.status_code == 401
    assert error.response is not None
    assert error.response.status_code == 401
    for text in (str(error), repr(error), error.response_body or ""):
        assert vault.canary not in text
    assert json.loads(vault.bodies("/sdk/oauth/audit/api-call")[0])["response_status"] == 401


@pytest.mark.parametrize(
    ("status", "challenge"), [(500, ""), (404, ""), (401, 'Bearer error="insufficient_scope"')]
)
async def test_other_provider_errors_raise_provider_api_error(
    vault: Any, provider: Any, make_vault: MakeVault, status: int, challenge: str
) -> None:
    provider.status = status
    provider.headers = {"www-authenticate": challenge} if challenge else {}
    async with make_vault() as client:
        with pytest.raises(vg.ProviderAPIError) as info:
            await client.request("GET", "https://api.example.com/", grant_id=vault.grant_id)
    assert type(info.value) is vg.ProviderAPIError
    assert info.value.status_code == status


async def test_provider_redirect_is_returned_not_followed(
    vault: Any, provider: Any, make_vault: MakeVault
) -> None:
    provider.status, provider.body = 302, b""
    provider.headers = {"location": "https://elsewhere.example.com/steal"}
    async with make_vault() as client:
        response = await client.request("GET", "https://api.example.com/", grant_id=vault.grant_id)
    assert response.status_code == 302
    assert len(provider.seen) == 1


@pytest.mark.parametrize(
    ("failure", "expected"),
    [
        (httpx.ConnectError("refused"), vg.NetworkError),
        (httpx.ReadTimeout("slow"), vg.TimeoutError),
    ],
)
async def test_unreachable_provider_raises_network_error_and_reports_status_zero(
    vault: Any, make_vault: MakeVault, failure: Exception, expected: type[Exception]
) -> None:
    def broken(request: httpx.Request) -> httpx.Response:
        raise failure

    async with make_vault(upstream_transport=httpx.MockTransport(broken)) as client:
        with pytest.raises(expected) as info:
            await client.request("GET", "https://api.example.com/", grant_id=vault.grant_id)
    assert info.value.__context__ is None  # no httpx error (holding the request) chained
    report = json.loads(vault.bodies("/sdk/oauth/audit/api-call")[0])
    assert report["response_status"] == 0
    assert report["response_body"] is None


@pytest.mark.parametrize(
    ("status", "code", "expected"),
    [
        (404, "grant_not_found", vg.GrantNotFoundError),
        (400, "restricted_grant_requires_proxy", vg.RestrictedGrantRequiresProxyError),
        (403, "method_not_allowed", vg.PolicyViolationError),
        (401, "invalid_key", vg.InvalidKeyError),
        (503, "audit_unavailable", vg.ServiceUnavailableError),
    ],
)
async def test_vault_refusal_raises_and_the_provider_is_never_called(
    vault: Any,
    provider: Any,
    make_vault: MakeVault,
    status: int,
    code: str,
    expected: type[Exception],
) -> None:
    vault.answers["/sdk/token"] = vault.error(status, code, **{"X-Request-ID": "r-9"})
    async with make_vault() as client:
        with pytest.raises(expected) as info:
            await client.request("GET", "https://api.example.com/", grant_id=vault.grant_id)
    assert info.value.request_id == "r-9"  # type: ignore[attr-defined]
    assert provider.seen == []
    assert vault.bodies("/sdk/oauth/audit/api-call") == []


@pytest.mark.parametrize(
    "answer",
    [
        {"grant_id": "0b8f3c52-4a1e-4c6b-9a57-2d7e1f0c9a31"},
        {"access_token": "", "grant_id": "0b8f3c52-4a1e-4c6b-9a57-2d7e1f0c9a31"},
        {"access_token": "t", "grant_id": "0B8F3C52-4A1E-4C6B-9A57-2D7E1F0C9A31"},
        {"access_token": "t\r\nX-Evil: 1", "grant_id": "0b8f3c52-4a1e-4c6b-9a57-2d7e1f0c9a31"},
        {
            "access_token": "t",
            "grant_id": "0b8f3c52-4a1e-4c6b-9a57-2d7e1f0c9a31",
            "injection_header": "Host",
        },
    ],
)
async def test_unusable_token_answer_is_a_backend_error_before_any_provider_call(
    vault: Any, provider: Any, make_vault: MakeVault, answer: dict[str, Any]
) -> None:
    vault.token_answer = answer
    async with make_vault() as client:
        with pytest.raises(vg.BackendError):
            await client.request("GET", "https://api.example.com/", grant_id=vault.grant_id)
    assert provider.seen == []


@pytest.mark.parametrize(
    "url", ["http://api.example.com/", "ftp://api.example.com/", "https://u:p@api.example.com/"]
)
async def test_unsafe_provider_urls_are_refused_before_the_vault_is_asked(
    vault: Any, make_vault: MakeVault, url: str
) -> None:
    async with make_vault() as client:
        with pytest.raises(vg.AlterValueError):
            await client.request("GET", url, grant_id=vault.grant_id)
    assert vault.seen == []


async def test_loopback_http_provider_is_allowed(
    vault: Any, provider: Any, make_vault: MakeVault
) -> None:
    async with make_vault() as client:
        response = await client.request("GET", "http://127.0.0.1:9999/x", grant_id=vault.grant_id)
    assert response.status_code == 200


async def test_json_and_content_together_are_refused(vault: Any, make_vault: MakeVault) -> None:
    async with make_vault() as client:
        with pytest.raises(vg.AlterValueError):
            await client.request(
                "POST", "https://api.example.com/", grant_id=vault.grant_id, json={}, content=b"x"
            )
    assert vault.seen == []


async def test_raw_content_is_sent_and_reported_by_size_when_binary(
    vault: Any, provider: Any, make_vault: MakeVault
) -> None:
    async with make_vault() as client:
        await client.request(
            "PUT", "https://api.example.com/blob", grant_id=vault.grant_id, content=b"\xff\x00\x01"
        )
    assert provider.seen[0].content == b"\xff\x00\x01"
    report = json.loads(vault.bodies("/sdk/oauth/audit/api-call")[0])
    assert report["request_body"] == "<binary body: 3 bytes>"


async def test_base_url_prefix_is_sent_but_not_signed(
    vault: Any, provider: Any, make_vault: MakeVault
) -> None:
    vault.prefix = "/vault"  # the fake verifies the signature over the prefix-stripped path
    async with make_vault() as client:
        response = await client.request("GET", "https://api.example.com/", grant_id=vault.grant_id)
    assert response.status_code == 200
    assert [r.url.path for r in vault.seen] == [
        "/vault/sdk/token",
        "/vault/sdk/oauth/audit/api-call",
    ]


async def test_per_call_caller_overrides_the_constructor_caller_and_is_signed(
    vault: Any, make_vault: MakeVault
) -> None:
    async with make_vault(caller="svc") as client:
        await client.request(
            "GET", "https://api.example.com/", grant_id=vault.grant_id, caller="job-42"
        )
    assert {r.headers["x-alter-caller"] for r in vault.seen} == {"job-42"}
    assert all(r.headers["x-alter-signature-v2"] for r in vault.seen)


async def test_per_call_timeout_reaches_the_provider_request(
    vault: Any, provider: Any, make_vault: MakeVault
) -> None:
    async with make_vault(timeout=30.0) as client:
        await client.request("GET", "https://api.example.com/", grant_id=vault.grant_id, timeout=5)
    assert provider.seen[0].extensions["timeout"]["read"] == 5
    assert vault.seen[0].extensions["timeout"]["read"] == 5


async def test_failed_audit_report_is_logged_without_secrets_and_the_call_succeeds(
    vault: Any, make_vault: MakeVault, caplog: pytest.LogCaptureFixture
) -> None:
    vault.answers["/sdk/oauth/audit/api-call"] = vault.error(503, "audit_unavailable")
    with caplog.at_level(logging.WARNING, logger="vaultgate"):
        async with make_vault() as client:
            response = await client.request(
                "GET", "https://api.example.com/", grant_id=vault.grant_id
            )
    assert response.status_code == 200
    assert "audit report" in caplog.text
    assert vault.canary not in caplog.text
    assert vault.api_key not in caplog.text


async def test_unreachable_vault_is_a_network_error_naming_no_secret(vault: Any) -> None:
    def down(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError(f"cannot connect ({request.headers['x-api-key']})")

    async with vg.AlterVault(vault.api_key, env={}, transport=httpx.MockTransport(down)) as client:
        with pytest.raises(vg.NetworkError) as info:
            await client.request("GET", "https://api.example.com/", grant_id=vault.grant_id)
    assert vault.api_key not in str(info.value)
    assert info.value.__context__ is None


async def test_sigv4_is_signed_here_and_kept_out_of_the_report(
    vault: Any, provider: Any, make_vault: MakeVault
) -> None:
    secret_key = "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY"
    vault.token_answer = {
        "access_token": "AKIDEXAMPLE",
        "grant_id": vault.grant_id,
        "injection_format": "AWS4-HMAC-SHA256",
        "additional_credentials": {"secret_key": secret_key, "region": "us-east-1"},
    }
    url = "https://s3.us-east-1.amazonaws.com/bucket/key.txt"
    async with make_vault() as client:
        await client.request("PUT", url, grant_id=vault.grant_id, content=b"hello")
    [sent] = provider.seen
    assert sent.headers["authorization"].startswith("AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/")
    assert "/us-east-1/s3/aws4_request" in sent.headers["authorization"]
    assert "x-amz-date" in sent.headers
    report = json.loads(vault.bodies("/sdk/oauth/audit/api-call")[0])
    assert report["url"] == url  # the region is a place, not a secret: not masked
    assert not [
        h for h in report["request_headers"] if h.startswith("x-amz") or h == "authorization"
    ]
    assert all(secret_key.encode() not in r.content for r in vault.seen)
