"""The transparent proxy: plain httpx and the unmodified OpenAI client, streaming included."""

from __future__ import annotations

import json

import httpx
import openai
import pytest

from support import Upstream, Vault
from support.injection import SHAPES, Shape, Tenant, assert_injected, shape_ids
from vaultgate import AlterVault

BODY = {"prompt": "hello", "n": 1}


@pytest.mark.parametrize("shape", SHAPES, ids=shape_ids())
def test_httpx_through_the_proxy_gets_the_shape(
    shape: Shape, shared_vault: Vault, tenant: Tenant, grants: dict[str, str], origin: Upstream
) -> None:
    response = httpx.post(
        f"{shared_vault.base_url}/proxy/{grants[shape.id]}/v1/echo?x=1",
        json=BODY,
        headers={"Authorization": f"Bearer {tenant.key}"},
        trust_env=False,
    )
    assert response.status_code == 200, response.text
    got = origin.last()
    assert got.path.startswith("/v1/echo?")
    assert json.loads(got.body) == BODY
    assert_injected(got, shape, app_key=tenant.key, caller_query={"x": "1"})


def test_the_app_key_may_come_as_x_api_key(
    shared_vault: Vault, tenant: Tenant, grants: dict[str, str], origin: Upstream
) -> None:
    shape = next(s for s in SHAPES if s.id == "bearer")
    response = httpx.get(
        f"{shared_vault.base_url}/proxy/{grants['bearer']}/v1/echo",
        headers={"x-api-key": tenant.key},
        trust_env=False,
    )
    assert response.status_code == 200, response.text
    assert "x-api-key" not in origin.last().headers
    assert_injected(origin.last(), shape, app_key=tenant.key)


def _openai(vault: Vault, grant_id: str, key: str, prefix: str = "") -> openai.OpenAI:
    return openai.OpenAI(
        base_url=f"{vault.base_url}/proxy/{grant_id}{prefix}/v1",
        api_key=key,
        http_client=httpx.Client(trust_env=False),
        max_retries=0,
    )


def test_openai_client_unmodified(
    shared_vault: Vault, tenant: Tenant, grants: dict[str, str], origin: Upstream
) -> None:
    client = _openai(shared_vault, grants["bearer"], tenant.key)
    with client:
        raw = client.chat.completions.with_raw_response.create(
            model="gpt-4", messages=[{"role": "user", "content": "hi"}]
        )
    assert raw.http_response.status_code == 200
    got = origin.last()
    assert got.path == "/v1/chat/completions"
    assert json.loads(got.body)["model"] == "gpt-4"
    shape = next(s for s in SHAPES if s.id == "bearer")
    assert_injected(got, shape, app_key=tenant.key)


def test_openai_stream_relays_each_event_as_the_upstream_sends_it(
    shared_vault: Vault, tenant: Tenant, grants: dict[str, str], origin: Upstream
) -> None:
    """The upstream holds back every event after the first until the test has received it.

    A proxy that buffered the body would deliver nothing until the upstream gave up waiting,
    which the upstream records as ``gate_timed_out``.
    """
    client = _openai(shared_vault, grants["bearer"], tenant.key, prefix="/gated-sse")
    contents: list[str] = []
    with client:
        stream = client.chat.completions.create(
            model="gpt-4", messages=[{"role": "user", "content": "hi"}], stream=True
        )
        for chunk in stream:
            contents.append(chunk.choices[0].delta.content or "")
            origin.gate.set()
    assert contents == ["e0", "e1", "e2"]
    assert not origin.gate_timed_out, "the first event arrived only after the upstream gave up"
    assert origin.last().headers["authorization"] == "Bearer " + SHAPES[0].secrets[0]


def test_httpx_stream_receives_the_first_event_before_the_upstream_sends_the_second(
    shared_vault: Vault, tenant: Tenant, grants: dict[str, str], origin: Upstream
) -> None:
    url = f"{shared_vault.base_url}/proxy/{grants['raw-default-api-key']}/gated-sse"
    with httpx.stream(
        "GET", url, headers={"Authorization": f"Bearer {tenant.key}"}, trust_env=False
    ) as response:
        assert response.status_code == 200
        lines = response.iter_lines()
        first = next(line for line in lines if line.startswith("data:"))
        origin.gate.set()
        rest = [line for line in lines if line.startswith("data:")]
    assert '"e0"' in first
    assert rest[-1] == "data: [DONE]"
    assert not origin.gate_timed_out


async def test_our_sdk_stream_relays_events_as_they_come(
    shared_vault: Vault, tenant: Tenant, grants: dict[str, str], origin: Upstream
) -> None:
    events: list[str] = []
    async with (
        AlterVault(api_key=tenant.key, base_url=shared_vault.base_url) as vault,
        vault.stream(
            "POST", f"{origin.origin}/gated-sse/v1/chat", grant_id=grants["bearer"], json=BODY
        ) as response,
    ):
        async for line in response.aiter_lines():
            if line.startswith("data:"):
                events.append(line)
                origin.gate.set()
    assert len(events) == 4 and events[-1] == "data: [DONE]"
    assert not origin.gate_timed_out
    got = origin.last()
    assert json.loads(got.body) == BODY
    assert got.headers["authorization"] == f"Bearer {SHAPES[0].secrets[0]}"
    assert tenant.key not in repr(got.raw_headers)
