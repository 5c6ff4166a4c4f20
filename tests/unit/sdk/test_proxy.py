"""Proxy mode (``AlterVault.proxy_request``): the envelope out, the provider's answer back."""

from __future__ import annotations

import base64
import json
from collections.abc import Callable
from typing import Any

import httpx
import pytest

import vaultgate as vg

MakeVault = Callable[..., vg.AlterVault]
URL = "https://api.example.com/v1/items"


async def test_proxy_body_is_the_documented_compact_envelope(
    vault: Any, make_vault: MakeVault
) -> None:
    vault.answers["/sdk/proxy"] = vault.proxy_answer(201, b'{"id":7}')
    async with make_vault() as client:
        response = await client.proxy_request(
            "post",
            URL,
            grant_id=vault.grant_id,
            json={"x": 1},
            headers={"X-Foo": "1"},
            params={"z": "9"},
            reason="r",
        )
    expected = (
        f'{{"method":"POST","url":"{URL}","grant_id":"{vault.grant_id}","body":{{"x":1}},'
        '"headers":{"X-Foo":"1"},"query_params":{"z":"9"},"reason":"r"}'
    )
    assert vault.bodies("/sdk/proxy") == [expected.encode()]
    assert response.status_code == 201
    assert response.json() == {"id": 7}
    assert response.headers["content-type"] == "application/json"
    assert response.request.url == URL + "?z=9"


async def test_minimal_envelope_drops_absent_fields(vault: Any, make_vault: MakeVault) -> None:
    vault.answers["/sdk/proxy"] = vault.proxy_answer(200, b"")
    async with make_vault() as client:
        await client.proxy_request("GET", URL, grant_id=vault.grant_id)
    assert json.loads(vault.bodies("/sdk/proxy")[0]) == {
        "method": "GET",
        "url": URL,
        "grant_id": vault.grant_id,
    }


async def test_raw_content_travels_as_body_b64(vault: Any, make_vault: MakeVault) -> None:
    vault.answers["/sdk/proxy"] = vault.proxy_answer(200, b"\x00\xff")
    async with make_vault() as client:
        response = await client.proxy_request(
            "PUT", URL, grant_id=vault.grant_id, content=b"\x01\x02binary"
        )
    sent = json.loads(vault.bodies("/sdk/proxy")[0])
    assert base64.b64decode(sent["body_b64"]) == b"\x01\x02binary"
    assert "body" not in sent
    assert response.content == b"\x00\xff"


async def test_the_provider_is_never_called_directly(
    vault: Any, provider: Any, make_vault: MakeVault
) -> None:
    vault.answers["/sdk/proxy"] = vault.proxy_answer(200, b"{}")
    async with make_vault() as client:
        await client.proxy_request("GET", URL, grant_id=vault.grant_id)
    assert provider.seen == []
    assert [r.url.path for r in vault.seen] == ["/sdk/proxy"]


async def test_stale_framing_headers_are_dropped_from_the_decoded_body(
    vault: Any, make_vault: MakeVault
) -> None:
    headers = {"content-encoding": "gzip", "content-length": "999", "x-kept": "1"}
    vault.answers["/sdk/proxy"] = vault.proxy_answer(200, b"plain", headers)
    async with make_vault() as client:
        response = await client.proxy_request("GET", URL, grant_id=vault.grant_id)
    assert response.content == b"plain"
    assert "content-encoding" not in response.headers
    assert response.headers["content-length"] == "5"
    assert response.headers["x-kept"] == "1"


@pytest.mark.parametrize(
    ("status", "expected"), [(401, vg.ProviderUnauthorizedError), (500, vg.ProviderAPIError)]
)
async def test_provider_errors_raise_like_retrieve_mode(
    vault: Any, make_vault: MakeVault, status: int, expected: type[vg.ProviderAPIError]
) -> None:
    vault.answers["/sdk/proxy"] = vault.proxy_answer(status, b'{"error":"x"}')
    async with make_vault() as client:
        with pytest.raises(expected) as info:
            await client.proxy_request("GET", URL, grant_id=vault.grant_id)
    assert info.value.status_code == status
    assert info.value.response_body == '{"error":"x"}'


async def test_blocked_destination_is_typed(vault: Any, make_vault: MakeVault) -> None:
    vault.answers["/sdk/proxy"] = vault.error(422, "blocked_destination")
    async with make_vault() as client:
        with pytest.raises(vg.BlockedDestinationError):
            await client.proxy_request("GET", "https://10.0.0.1/", grant_id=vault.grant_id)


@pytest.mark.parametrize(
    "name", ["Authorization", "x-api-key", "Cookie", "Host", "X-Vaultgate-Target"]
)
async def test_reserved_headers_are_refused_before_sending(
    vault: Any, make_vault: MakeVault, name: str
) -> None:
    async with make_vault() as client:
        with pytest.raises(vg.AlterValueError):
            await client.proxy_request("GET", URL, grant_id=vault.grant_id, headers={name: "v"})
    assert vault.seen == []


async def test_header_values_with_line_breaks_are_refused(
    vault: Any, make_vault: MakeVault
) -> None:
    async with make_vault() as client:
        with pytest.raises(vg.AlterValueError):
            await client.proxy_request(
                "GET", URL, grant_id=vault.grant_id, headers={"X-A": "1\r\nX-B: 2"}
            )
    assert vault.seen == []


@pytest.mark.parametrize(
    "answer",
    [
        httpx.Response(202, json={"status": "pending", "approval_id": "a"}),
        httpx.Response(200, json={"status_code": 200, "headers": {}, "body_b64": "not base64!"}),
        httpx.Response(200, json={"status_code": "200", "headers": {}, "body_b64": ""}),
        httpx.Response(200, json={"status_code": 200, "headers": {"a": 1}, "body_b64": ""}),
        httpx.Response(200, json=[1, 2]),
        httpx.Response(200, content=b"<html>"),
    ],
)
async def test_unusable_proxy_answers_are_backend_errors(
    vault: Any, make_vault: MakeVault, answer: httpx.Response
) -> None:
    vault.answers["/sdk/proxy"] = answer
    async with make_vault() as client:
        with pytest.raises(vg.BackendError) as info:
            await client.proxy_request("GET", URL, grant_id=vault.grant_id)
    assert info.value.code == "invalid_response"
