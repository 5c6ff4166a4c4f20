"""Streaming through the vault's transparent proxy: the key authenticates, the vault injects."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import httpx
import pytest

import vaultgate as vg

MakeVault = Callable[..., vg.AlterVault]


class AsyncChunks(httpx.AsyncByteStream):
    def __init__(self, chunks: list[bytes]) -> None:
        self.chunks = chunks

    async def __aiter__(self) -> Any:
        for chunk in self.chunks:
            yield chunk


async def test_stream_goes_through_the_transparent_proxy(vault: Any, make_vault: MakeVault) -> None:
    seen: list[httpx.Request] = []

    def proxy(request: httpx.Request) -> httpx.Response:
        request.read()
        seen.append(request)
        stream = AsyncChunks([b"data: one\n\n", b"data: two\n\n"])
        return httpx.Response(200, headers={"content-type": "text/event-stream"}, stream=stream)

    client = make_vault(transport=httpx.MockTransport(proxy), caller="svc")
    async with (
        client,
        client.stream(
            "POST",
            "https://api.openai.com:8443/v1/chat/completions",
            grant_id=vault.grant_id,
            params={"stream": "true"},
            json={"stream": True},
            reason="chat",
        ) as response,
    ):
        chunks = [chunk async for chunk in response.aiter_bytes()]
    assert chunks == [b"data: one\n\n", b"data: two\n\n"]
    [request] = seen
    assert str(request.url) == (
        f"http://127.0.0.1:8200/proxy/{vault.grant_id}/v1/chat/completions?stream=true"
    )
    assert request.headers["authorization"] == f"Bearer {vault.api_key}"
    assert request.headers["x-vaultgate-target"] == "https://api.openai.com:8443"
    assert request.headers["x-vaultgate-reason"] == "chat"
    assert "x-vaultgate-caller" not in request.headers  # only a per-call caller is sent
    assert request.content == b'{"stream":true}'
    assert "x-api-key" not in request.headers
    assert not [name for name in request.headers if name.startswith("x-alter")]


async def test_default_port_is_left_out_of_the_target(vault: Any, make_vault: MakeVault) -> None:
    seen: list[httpx.Request] = []

    def proxy(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(200)

    client = make_vault(transport=httpx.MockTransport(proxy))
    async with (
        client,
        client.stream("GET", "https://api.example.com/", grant_id=vault.grant_id, caller="job"),
    ):
        pass
    assert seen[0].headers["x-vaultgate-target"] == "https://api.example.com"
    assert seen[0].headers["x-vaultgate-caller"] == "job"
    assert seen[0].url.path == f"/proxy/{vault.grant_id}/"


async def test_grant_id_cannot_climb_out_of_its_path(vault: Any, make_vault: MakeVault) -> None:
    seen: list[httpx.Request] = []

    def proxy(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(200)

    client = make_vault(transport=httpx.MockTransport(proxy))
    async with client, client.stream("GET", "https://api.example.com/x", grant_id="../v1/apps"):
        pass
    assert seen[0].url.raw_path == b"/proxy/..%2Fv1%2Fapps/x"


async def test_vault_errors_are_typed(vault: Any, make_vault: MakeVault) -> None:
    def proxy(request: httpx.Request) -> httpx.Response:
        answer = vault.error(403, "path_not_allowed")
        answer.headers["X-Vaultgate-Error"] = "path_not_allowed"
        return answer

    async with make_vault(transport=httpx.MockTransport(proxy)) as client:
        with pytest.raises(vg.PolicyViolationError) as info:
            async with client.stream("GET", "https://api.example.com/", grant_id=vault.grant_id):
                pass
    assert info.value.policy_error == "path_not_allowed"


async def test_provider_errors_raise_provider_api_error(vault: Any, make_vault: MakeVault) -> None:
    def proxy(request: httpx.Request) -> httpx.Response:
        return httpx.Response(429, content=b"slow down")

    async with make_vault(transport=httpx.MockTransport(proxy)) as client:
        with pytest.raises(vg.ProviderAPIError) as info:
            async with client.stream("GET", "https://api.example.com/", grant_id=vault.grant_id):
                pass
    assert info.value.status_code == 429
    assert info.value.response_body == "slow down"
    assert vault.api_key not in repr(info.value)


async def test_reserved_headers_are_refused(vault: Any, make_vault: MakeVault) -> None:
    async with make_vault() as client:
        with pytest.raises(vg.AlterValueError):
            async with client.stream(
                "GET",
                "https://api.example.com/",
                grant_id=vault.grant_id,
                headers={"Authorization": "Bearer mine"},
            ):
                pass
    assert vault.seen == []


async def test_cookies_set_through_the_proxy_do_not_reach_later_vault_calls(
    vault: Any, make_vault: MakeVault
) -> None:
    def proxy(request: httpx.Request) -> httpx.Response:
        if request.url.path.startswith("/proxy/"):
            return httpx.Response(200, headers={"set-cookie": "session=abc; Path=/"})
        return vault.handler(request)

    client = make_vault(transport=httpx.MockTransport(proxy))
    async with client:
        async with client.stream("GET", "https://api.example.com/", grant_id=vault.grant_id):
            pass
        await client.request("GET", "https://api.example.com/", grant_id=vault.grant_id)
    assert [r.headers.get("cookie") for r in vault.seen] == [None, None]
