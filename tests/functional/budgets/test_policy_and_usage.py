"""Budget input, narrowing, USD pricing (shipped and overridden), the threshold alert, and that
no secret reaches the usage figures or the events."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from functional.budgets.conftest import CANARY, clone, store, transparent, usage
from support import Vault, run_vault
from support.audit import events, wait_for_events
from support.injection import Tenant, error_of
from support.llm import LlmUpstream


@pytest.mark.parametrize(
    ("budget", "field"),
    [
        ({"tokens": 0, "per": "day"}, "policy.budget.tokens"),
        ({"tokens": 10, "per": "week"}, "policy.budget.per"),
        ({"tokens": 10}, "policy.budget.per"),
        ({"usd": 5.5, "per": "day"}, "policy.budget.usd"),
        ({"usd": "1.0000001", "per": "day"}, "policy.budget.usd"),
        ({"usd": "-1", "per": "day"}, "policy.budget.usd"),
        ({"tokens": 10, "usd": "1", "per": "day"}, "policy.budget"),
        ({"per": "day"}, "policy.budget"),
        ({"tokens": 10, "per": "day", "alert_at_percent": 0}, "policy.budget.alert_at_percent"),
        ({"tokens": 10, "per": "day", "cap": 1}, "policy.budget.cap"),
        ("lots", "policy.budget"),
    ],
)
def test_bad_budget_input_is_a_422_naming_the_field(
    budget_vault: Vault, tenant: Tenant, llm: LlmUpstream, budget: Any, field: str
) -> None:
    body = {
        "app_id": tenant.app_id,
        "name": "bad-budget",
        "credential_type": "bearer",
        "credential": {"token": CANARY},
        "allowed_hosts": [llm.origin],
        "policy": {"budget": budget},
    }
    with budget_vault.admin() as admin:
        answer = admin.post("/v1/secrets", json=body)
    assert answer.status_code == 422, answer.text
    assert answer.json()["detail"]["field"] == field
    assert CANARY not in answer.text


@pytest.mark.parametrize(
    ("narrowed", "status"),
    [
        ({"tokens": 100, "per": "day"}, 201),
        ({"tokens": 1001, "per": "day"}, 422),
        ({"tokens": 100, "per": "hour"}, 422),
        ({"requests": 5, "per": "day"}, 422),
    ],
)
def test_a_clone_may_narrow_its_budget_but_not_widen_it(
    budget_vault: Vault, tenant: Tenant, llm: LlmUpstream, narrowed: dict[str, Any], status: int
) -> None:
    parent = store(tenant, llm, {"tokens": 1000, "per": "day"})
    made = clone(budget_vault, parent, policy={"budget": narrowed})
    assert made.status_code == status, made.text
    if status == 422:
        assert made.json()["detail"]["field"] == "policy.budget"
    # A PATCH is held to the same rule as a clone.
    with budget_vault.admin() as admin:
        child = clone(budget_vault, parent).json()["grant_id"]
        patched = admin.patch(f"/v1/grants/{child}", json={"policy": {"budget": narrowed}})
    assert patched.status_code == (200 if status == 201 else 422), patched.text


def test_shipped_prices_count_usd(budget_vault: Vault, tenant: Tenant, llm: LlmUpstream) -> None:
    grant = store(tenant, llm, {"usd": "5.00", "per": "month"})
    answer, _ = transparent(budget_vault.base_url, tenant.key, grant, "anthropic", True)
    assert answer.status_code == 200
    # claude-3-5-haiku: 30 in at $0.80/Mtok + 20 out at $4.00/Mtok = $0.000104.
    window = usage(budget_vault, grant)["budgets"][0]["window"]
    assert (window["usd"], window["spent"], window["remaining"]) == (
        "0.000104",
        "0.000104",
        "4.999896",
    )


@pytest.fixture(scope="module")
def priced_vault(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Vault]:
    root = tmp_path_factory.mktemp("priced")
    table = root / "prices.json"
    table.write_text(json.dumps({"models": {"gpt-4o-mini": {"input": "1000", "output": "2000"}}}))
    env = {"VAULTGATE_PRICING_FILE": str(table)}
    with run_vault(Path(root) / "data", extra_env=env) as server:
        yield server


def test_an_overridden_price_stops_a_usd_budget(priced_vault: Vault, llm: LlmUpstream) -> None:
    tenant = Tenant.create(priced_vault)
    grant = store(tenant, llm, {"usd": "0.20", "per": "month"})
    statuses = [
        transparent(priced_vault.base_url, tenant.key, grant, "openai", stream)[0].status_code
        for stream in (False, True, False, True)
    ]
    # $0.07 an answer at the overridden price: 0.07, 0.14, 0.21 (crossing), then refused.
    assert statuses == [200, 200, 200, 429]
    window = usage(priced_vault, grant)["budgets"][0]["window"]
    assert (window["usd"], window["remaining"], window["requests"]) == ("0.210000", "0.000000", 3)
    outcomes = wait_for_events(priced_vault, 3, grant_id=grant, event="grant:outcome")
    assert {o["details"]["usage"]["usd_nanos"] for o in outcomes} == {70_000_000}


def test_the_threshold_alert_fires_once_per_window(
    budget_vault: Vault, tenant: Tenant, llm: LlmUpstream
) -> None:
    grant = store(tenant, llm, {"tokens": 130, "per": "day", "alert_at_percent": 50})
    for _ in range(3):  # 50 (38%), 100 (77%: crosses 50%), 150 (over)
        transparent(budget_vault.base_url, tenant.key, grant, "gemini", False)
    alerts = wait_for_events(budget_vault, 1, grant_id=grant, event="alert:budget_threshold")
    assert alerts[0]["app_id"] == tenant.app_id
    assert alerts[0]["details"]["spent"] == 100
    assert alerts[0]["details"]["limit"] == 130
    transparent(budget_vault.base_url, tenant.key, grant, "gemini", False)  # refused
    wait_for_events(budget_vault, 1, grant_id=grant, event="grant:deny")
    assert len(events(budget_vault, grant_id=grant, event="alert:budget_threshold")) == 1


def test_no_secret_in_the_usage_figures_or_events(
    budget_vault: Vault, tenant: Tenant, llm: LlmUpstream
) -> None:
    grant = store(tenant, llm, {"tokens": 60, "per": "hour"})
    for stream in (True, False, True):
        transparent(budget_vault.base_url, tenant.key, grant, "openai", stream)
    with budget_vault.admin() as admin:
        figures = admin.get(f"/v1/grants/{grant}/usage")
        missing = admin.get("/v1/grants/00000000-0000-4000-8000-000000000000/usage")
    assert figures.status_code == 200 and missing.status_code == 404
    assert error_of(missing) == "grant_not_found"
    wait_for_events(budget_vault, 1, grant_id=grant, event="grant:deny")
    trail = json.dumps(events(budget_vault, grant_id=grant))
    for text in (figures.text, trail):
        assert CANARY not in text and tenant.key not in text
    # An app key is not an admin key: the figures are for operators.
    answer = budget_vault.admin()
    answer.headers["Authorization"] = f"Bearer {tenant.key}"
    with answer as app_client:
        assert app_client.get(f"/v1/grants/{grant}/usage").status_code in (401, 403)
