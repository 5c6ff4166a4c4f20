"""A budget of N tokens stops a clone after the answer that crossed it, for every shape.

Each answer of the LLM upstream uses 50 tokens; with a budget of 120 the first three calls
complete (50, 100, then 150: the third crosses it) and the fourth is refused, 429
``quota_exceeded`` with ``Retry-After``, in the transparent proxy and through ``/sdk/proxy``
with the official client, for OpenAI-, Anthropic- and Gemini-shaped answers, plain and streamed.
"""

from __future__ import annotations

import json

import alter_sdk
import httpx
import pytest
from alter_sdk import HttpMethod, QuotaExceededError

from functional.budgets.conftest import CANARY, clone, store, transparent, usage
from support import Vault, run_upstream
from support.audit import events, wait_for_events
from support.injection import Tenant, error_of
from support.llm import SHAPES, TOKENS_IN, TOKENS_OUT, LlmUpstream, request_of

PER_ANSWER = TOKENS_IN + TOKENS_OUT
BUDGET = {"tokens": 120, "per": "day"}
CASES = [(shape, stream) for shape in SHAPES for stream in (False, True)]
IDS = [f"{shape}-{'sse' if stream else 'json'}" for shape, stream in CASES]


def _agent_clone(vault: Vault, tenant: Tenant, llm: LlmUpstream) -> tuple[str, str]:
    parent = store(tenant, llm, BUDGET)
    made = clone(vault, parent, ttl_seconds=3600)
    assert made.status_code == 201, made.text
    assert made.json()["policy"]["budget"]["tokens"] == 120  # inherited
    return parent, str(made.json()["grant_id"])


def _assert_stopped_after_third(vault: Vault, parent: str, agent: str) -> None:
    figures = usage(vault, agent)
    own, inherited = figures["budgets"]
    assert (own["grant_id"], inherited["grant_id"]) == (agent, parent)
    for budget in (own, inherited):
        window = budget["window"]
        assert window["requests"] == 3
        assert (window["tokens_in"], window["tokens_out"]) == (3 * TOKENS_IN, 3 * TOKENS_OUT)
        assert window["spent"] == 3 * PER_ANSWER and window["remaining"] == 0
        assert window["exhausted"] is True
    denied = wait_for_events(vault, 1, grant_id=agent, event="grant:deny")
    assert denied[0]["code"] == "quota_exceeded"
    outcomes = wait_for_events(vault, 3, grant_id=agent, event="grant:outcome")
    assert [o["details"]["usage"]["tokens_out"] for o in outcomes] == [TOKENS_OUT] * 3


@pytest.mark.parametrize(("shape", "stream"), CASES, ids=IDS)
def test_transparent_proxy_stops_the_clone_after_the_crossing_answer(
    budget_vault: Vault, tenant: Tenant, llm: LlmUpstream, shape: str, stream: bool
) -> None:
    parent, agent = _agent_clone(budget_vault, tenant, llm)
    for _ in range(3):
        answer, content = transparent(budget_vault.base_url, tenant.key, agent, shape, stream)
        assert answer.status_code == 200, content
        if stream:
            assert answer.headers["content-type"].startswith("text/event-stream")
            assert content.count(b"data: ") >= 3
    refused, content = transparent(budget_vault.base_url, tenant.key, agent, shape, stream)
    assert refused.status_code == 429
    assert json.loads(content)["detail"]["error"] == "quota_exceeded"
    assert 1 <= int(refused.headers["retry-after"]) <= 86400
    # The parent shares the spend: its own next call is refused too.
    again, _ = transparent(budget_vault.base_url, tenant.key, parent, shape, stream)
    assert again.status_code == 429
    _assert_stopped_after_third(budget_vault, parent, agent)


@pytest.mark.parametrize(("shape", "stream"), CASES, ids=IDS)
async def test_sdk_proxy_stops_the_clone_with_the_official_quota_error(
    budget_vault: Vault,
    tenant: Tenant,
    llm: LlmUpstream,
    monkeypatch: pytest.MonkeyPatch,
    shape: str,
    stream: bool,
) -> None:
    monkeypatch.setenv("ALTER_BASE_URL", budget_vault.base_url)
    parent, agent = _agent_clone(budget_vault, tenant, llm)
    path, body = request_of(shape, stream)
    async with alter_sdk.App(api_key=tenant.key) as app:
        for _ in range(3):
            result = await app.proxy_request(
                HttpMethod.POST, f"{llm.origin}{path}", grant_id=agent, json=body
            )
            assert result.status_code == 200
        with pytest.raises(QuotaExceededError) as raised:
            await app.proxy_request(
                HttpMethod.POST, f"{llm.origin}{path}", grant_id=agent, json=body
            )
    assert raised.value.retry_after is not None and 1 <= raised.value.retry_after <= 86400
    _assert_stopped_after_third(budget_vault, parent, agent)


def test_an_answer_without_usage_counts_as_a_request_only(
    budget_vault: Vault, tenant: Tenant, llm: LlmUpstream
) -> None:
    grant = store(tenant, llm, {"requests": 2, "per": "hour"})
    headers = {"Authorization": f"Bearer {tenant.key}"}
    url = f"{budget_vault.base_url}/proxy/{grant}/no-usage"
    answers = [httpx.post(url, json={}, headers=headers, trust_env=False) for _ in range(3)]
    assert [a.status_code for a in answers] == [200, 200, 429]
    assert error_of(answers[2]) == "quota_exceeded"
    window = usage(budget_vault, grant)["budgets"][0]["window"]
    assert (window["requests"], window["tokens_in"], window["tokens_out"]) == (2, 0, 0)
    assert window["usd"] == "0.000000"
    outcomes = wait_for_events(budget_vault, 2, grant_id=grant, event="grant:outcome")
    assert all(o["details"]["usage"]["metered"] is False for o in outcomes)
    assert CANARY not in json.dumps(events(budget_vault, grant_id=grant))


def test_a_metered_stream_is_still_relayed_event_by_event(
    budget_vault: Vault, tenant: Tenant
) -> None:
    """The upstream holds its second event until the first has reached the client: a relay
    that buffered a budgeted stream to read its usage would never deliver that first event."""
    with run_upstream() as upstream:
        body = {"credential_type": "bearer", "credential": {"token": CANARY}}
        grant = tenant.store(body, [upstream.origin], policy={"budget": BUDGET})
        url = f"{budget_vault.base_url}/proxy/{grant}/gated-sse"
        headers = {"Authorization": f"Bearer {tenant.key}"}
        with (
            httpx.Client(trust_env=False, timeout=30) as client,
            client.stream("POST", url, json={}, headers=headers) as answer,
        ):
            chunks = answer.iter_bytes()
            first = next(chunks)
            assert b'"e0"' in first
            upstream.gate.set()
            rest = b"".join(chunks)
        assert not upstream.gate_timed_out
        assert b"[DONE]" in rest
    assert usage(budget_vault, grant)["budgets"][0]["window"]["requests"] == 1
