"""``SyncVault``: the blocking twin behaves like ``AlterVault`` on the same fakes."""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from typing import Any

import httpx
import pytest

import vaultgate as vg

MakeSync = Callable[..., vg.SyncVault]
URL = "https://api.example.com/v1/things"


def test_request_fetches_injects_calls_and_reports(
    vault: Any, provider: Any, make_sync: MakeSync, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    with make_sync(caller="cron") as client:
        response = client.request(
            vg.HttpMethod.POST, URL, grant_id=vault.grant_id, json={"a": 1}, reason="sync"
        )
    assert response.json() == {"ok": True}
    assert vault.bodies("/sdk/token") == [
        f'{{"grant_id":"{vault.grant_id}","reason":"sync",'
        f'"request":{{"method":"POST","url":"{URL}"}}}}'.encode()
    ]
    assert vault.seen[0].headers["x-alter-caller"] == "cron"
    [sent] = provider.seen
    assert sent.headers["authorization"] == f"Bearer {vault.canary}"
    assert "x-api-key" not in sent.headers
    [raw] = vault.bodies("/sdk/oauth/audit/api-call")
    report = json.loads(raw)
    assert report["response_status"] == 200
    assert report["request_body"] == {"a": 1}
    assert vault.canary.encode() not in raw
    assert vault.canary not in caplog.text
    assert vault.canary not in str(response.request.headers.raw)


def test_query_credential_stays_out_of_logs_and_the_response(
    vault: Any, provider: Any, make_sync: MakeSync, caplog: pytest.LogCaptureFixture
) -> None:
    vault.token_answer |= {
        "injection_header": "X-Vaultgate-Grant",
        "injection_format": "{token}",
        "additional_injections": [{"target": "query_param", "key": "key", "value_source": "token"}],
    }
    caplog.set_level(logging.DEBUG)
    with make_sync() as client:
        response = client.request("GET", URL, grant_id=vault.grant_id)
    assert provider.seen[0].url.params["key"] == vault.canary
    assert vault.canary not in str(response.url)
    assert vault.canary not in caplog.text


def test_provider_error_raises_after_the_report(
    vault: Any, provider: Any, make_sync: MakeSync
) -> None:
    provider.status = 401
    with make_sync() as client, pytest.raises(vg.ProviderUnauthorizedError):
        client.request("GET", URL, grant_id=vault.grant_id)
    assert json.loads(vault.bodies("/sdk/oauth/audit/api-call")[0])["response_status"] == 401


def test_vault_refusal_is_typed_and_the_provider_untouched(
    vault: Any, provider: Any, make_sync: MakeSync
) -> None:
    vault.answers["/sdk/token"] = vault.error(429, "rate_limit_exceeded", **{"Retry-After": "4"})
    with make_sync() as client, pytest.raises(vg.RateLimitError) as info:
        client.request("GET", URL, grant_id=vault.grant_id)
    assert info.value.retry_after == 4
    assert provider.seen == []


def test_unreachable_provider_is_a_timeout_error_with_status_zero_reported(
    vault: Any, make_sync: MakeSync
) -> None:
    def slow(request: httpx.Request) -> httpx.Response:
        raise httpx.ReadTimeout("slow", request=request)

    client = make_sync(upstream_transport=httpx.MockTransport(slow))
    with client, pytest.raises(vg.TimeoutError):
        client.request("GET", URL, grant_id=vault.grant_id)
    assert json.loads(vault.bodies("/sdk/oauth/audit/api-call")[0])["response_status"] == 0


def test_proxy_request_round_trip(vault: Any, provider: Any, make_sync: MakeSync) -> None:
    vault.answers["/sdk/proxy"] = vault.proxy_answer(200, b'{"v":2}')
    with make_sync() as client:
        response = client.proxy_request("GET", URL, grant_id=vault.grant_id, params={"p": "1"})
    assert response.json() == {"v": 2}
    assert json.loads(vault.bodies("/sdk/proxy")[0]) == {
        "method": "GET",
        "url": URL,
        "grant_id": vault.grant_id,
        "query_params": {"p": "1"},
    }
    assert provider.seen == []


def test_stream_reads_through_the_transparent_proxy(vault: Any, make_sync: MakeSync) -> None:
    seen: list[httpx.Request] = []

    def proxy(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(200, content=b"data: 1\n\n")

    client = make_sync(transport=httpx.MockTransport(proxy))
    with client, client.stream("GET", URL, grant_id=vault.grant_id) as response:
        body = b"".join(response.iter_bytes())
    assert body == b"data: 1\n\n"
    assert seen[0].url.path == f"/proxy/{vault.grant_id}/v1/things"
    assert seen[0].headers["authorization"] == f"Bearer {vault.api_key}"


def test_refused_input_raises_before_any_io(vault: Any, make_sync: MakeSync) -> None:
    with make_sync() as client:
        with pytest.raises(vg.AlterValueError):
            client.request("GET", "http://api.example.com/", grant_id=vault.grant_id)
        with pytest.raises(vg.AlterValueError):
            client.proxy_request("GET", URL, grant_id=vault.grant_id, headers={"x-api-key": "k"})
    assert vault.seen == []


def test_repr_hides_the_key(vault: Any, make_sync: MakeSync) -> None:
    with make_sync() as client:
        assert vault.api_key not in repr(client)
        assert "SyncVault(base_url='http://127.0.0.1:8200'" in repr(client)
