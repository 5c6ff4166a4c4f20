"""``with_constraints()`` of the official client, unmodified: every constraint is enforced.

The scope and rule headers ride under the request signature; the vault enforces them on
``/sdk/token`` and ``/sdk/proxy`` or refuses with the typed error the client raises. Each refusal
is next to the request that the same constrained client is allowed to make, and the loopback
upstream proves what reached it.
"""

from __future__ import annotations

import json
import time
from collections.abc import AsyncIterator, Callable, Iterator
from typing import Any

import alter_sdk
import pytest
from alter_sdk import HttpMethod, content_match_rule

from support import Upstream, Vault, run_upstream, run_vault
from support.injection import Tenant

TOKEN = "canary-constraints-4Wd"
DENY_POST = {"rule_type": "json_match", "rule_body": {"when": {"method": "POST"}, "effect": "deny"}}


@pytest.fixture(scope="module")
def vault(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Vault]:
    with run_vault(tmp_path_factory.mktemp("constraints") / "data") as server:
        yield server


@pytest.fixture(scope="module")
def module_upstream() -> Iterator[Upstream]:
    with run_upstream() as server:
        yield server


@pytest.fixture
def origin(module_upstream: Upstream) -> Upstream:
    module_upstream.requests.clear()
    return module_upstream


@pytest.fixture(scope="module")
def tenant(vault: Vault) -> Tenant:
    return Tenant.create(vault, "constrained")


@pytest.fixture(scope="module")
def grant(tenant: Tenant, module_upstream: Upstream) -> str:
    body = {"credential_type": "bearer", "credential": {"token": TOKEN}}
    return tenant.store(body, [module_upstream.origin])


@pytest.fixture
async def app(
    vault: Vault, tenant: Tenant, monkeypatch: pytest.MonkeyPatch
) -> AsyncIterator[alter_sdk.App]:
    monkeypatch.setenv("ALTER_BASE_URL", vault.base_url)
    async with alter_sdk.App(api_key=tenant.key) as client:
        yield client


Constrain = Callable[..., Any]


@pytest.fixture
async def constrain(app: alter_sdk.App) -> AsyncIterator[Constrain]:
    """``app.with_constraints(...)``, each sibling closed at the end as the client asks."""
    made: list[Any] = []

    def build(**constraints: Any) -> Any:
        made.append(app.with_constraints(**constraints))
        return made[-1]

    yield build
    for sibling in made:
        await sibling.close()


def _denials(vault: Vault, grant: str, code: str, count: int) -> list[dict[str, Any]]:
    """The grant's denial events with ``code``, once ``count`` of them are written (denials are
    recorded without holding up the refusal, so this waits for them)."""
    deadline = time.monotonic() + 30
    with vault.admin() as admin:
        while True:
            items = admin.get("/v1/audit", params={"grant_id": grant, "event": "grant:deny"})
            found = [e for e in items.json()["items"] if e["code"] == code]
            if len(found) >= count or time.monotonic() > deadline:
                return found
            time.sleep(0.05)


async def test_a_deny_rule_denies_the_method_it_names_and_passes_the_others(
    app: alter_sdk.App, constrain: Constrain, vault: Vault, grant: str, origin: Upstream
) -> None:
    narrowed = constrain(rule=DENY_POST)
    with pytest.raises(alter_sdk.PolicyViolationError) as denied:
        await narrowed.proxy_request(
            HttpMethod.POST, f"{origin.origin}/v1/send", grant_id=grant, json={"a": 1}
        )
    assert denied.value.policy_error == "request_rule_denied"
    assert origin.requests == []
    allowed = await narrowed.proxy_request(
        HttpMethod.GET, f"{origin.origin}/v1/read", grant_id=grant
    )
    assert allowed.status_code == 200
    assert [r.method for r in origin.requests] == ["GET"]
    assert origin.last().headers["authorization"] == f"Bearer {TOKEN}"
    [event] = _denials(vault, grant, "request_rule_denied", 1)
    assert event["method"] == "POST"
    assert event["outcome"] == "denied"
    assert TOKEN not in json.dumps(event)
    assert TOKEN not in str(denied.value)


async def test_retrieve_mode_fails_closed_on_a_method_rule(
    app: alter_sdk.App, constrain: Constrain, grant: str, origin: Upstream
) -> None:
    """A retrieved token serves any method, so a method rule holds for every retrieval."""
    narrowed = constrain(rule=DENY_POST)
    with pytest.raises(alter_sdk.PolicyViolationError) as denied:
        await narrowed.request(HttpMethod.GET, f"{origin.origin}/v1/read", grant_id=grant)
    assert denied.value.policy_error == "request_rule_denied"
    assert origin.requests == []
    # The twin: the same client without the rule retrieves and calls the upstream itself.
    allowed = await app.request(HttpMethod.GET, f"{origin.origin}/v1/read", grant_id=grant)
    assert allowed.status_code == 200
    assert len(origin.requests) == 1


async def test_a_content_rule_on_a_family_denies_only_that_family(
    app: alter_sdk.App, constrain: Constrain, grant: str, origin: Upstream
) -> None:
    narrowed = constrain(rule=content_match_rule(families=["delete"]))
    with pytest.raises(alter_sdk.PolicyViolationError) as denied:
        await narrowed.proxy_request(HttpMethod.DELETE, f"{origin.origin}/v1/x", grant_id=grant)
    assert denied.value.policy_error == "request_rule_denied"
    assert origin.requests == []
    allowed = await narrowed.proxy_request(HttpMethod.GET, f"{origin.origin}/v1/x", grant_id=grant)
    assert allowed.status_code == 200


async def test_a_rule_the_vault_cannot_judge_fails_closed(
    app: alter_sdk.App, constrain: Constrain, grant: str, origin: Upstream
) -> None:
    """Operation ids need a provider's catalogue the vault does not have: treated as matching."""
    rule = content_match_rule(operations=["gmail.users.messages.send"])
    with pytest.raises(alter_sdk.PolicyViolationError):
        await constrain(rule=rule).proxy_request(
            HttpMethod.GET, f"{origin.origin}/v1/x", grant_id=grant
        )
    assert origin.requests == []


async def test_a_redact_rule_removes_the_fields_from_the_forwarded_body(
    app: alter_sdk.App, constrain: Constrain, grant: str, origin: Upstream
) -> None:
    rule = content_match_rule(families=["write"], effect="redact", redact_fields=["ssn", "a.pin"])
    narrowed = constrain(rule=rule)
    sent = {"name": "n", "ssn": "078-05-1120", "a": {"pin": "1234", "keep": 1}}
    result = await narrowed.proxy_request(
        HttpMethod.POST, f"{origin.origin}/v1/people", grant_id=grant, json=sent
    )
    assert result.status_code == 200
    assert json.loads(origin.last().body) == {"name": "n", "a": {"keep": 1}}
    assert b"078-05-1120" not in origin.last().body


async def test_a_redact_rule_that_cannot_be_applied_refuses_the_request(
    app: alter_sdk.App, constrain: Constrain, vault: Vault, grant: str, origin: Upstream
) -> None:
    rule = content_match_rule(families=["write"], effect="redact", redact_fields=["ssn"])
    narrowed = constrain(rule=rule)
    with pytest.raises(alter_sdk.RedactDischargeFailedError):  # not an object: nothing to cut
        await narrowed.proxy_request(
            HttpMethod.POST, f"{origin.origin}/v1/people", grant_id=grant, json=["078-05-1120"]
        )
    with pytest.raises(alter_sdk.RedactDischargeFailedError):  # the vault never sees the body
        await narrowed.request(HttpMethod.POST, f"{origin.origin}/v1/people", grant_id=grant)
    assert origin.requests == []
    assert len(_denials(vault, grant, "redact_discharge_failed", 2)) == 2


async def test_a_step_up_rule_asks_for_a_fresh_session(
    app: alter_sdk.App, constrain: Constrain, grant: str, origin: Upstream
) -> None:
    rule = content_match_rule(families=["write"], effect="step_up", max_session_age_seconds=300)
    narrowed = constrain(rule=rule)
    with pytest.raises(alter_sdk.StepUpRequiredError) as stepped:
        await narrowed.proxy_request(HttpMethod.PUT, f"{origin.origin}/v1/x", grant_id=grant)
    assert stepped.value.max_session_age_seconds == 300
    assert origin.requests == []
    allowed = await narrowed.proxy_request(HttpMethod.GET, f"{origin.origin}/v1/x", grant_id=grant)
    assert allowed.status_code == 200


async def test_scopes_narrow_to_the_endpoints_they_name(
    app: alter_sdk.App, constrain: Constrain, grant: str, origin: Upstream
) -> None:
    narrowed = constrain(scopes=["tokens:retrieve"])
    with pytest.raises(alter_sdk.InsufficientScopeError) as refused:
        await narrowed.proxy_request(HttpMethod.GET, f"{origin.origin}/v1/x", grant_id=grant)
    assert refused.value.missing == ["proxy:execute"]
    assert origin.requests == []
    allowed = await narrowed.request(HttpMethod.GET, f"{origin.origin}/v1/x", grant_id=grant)
    assert allowed.status_code == 200
    bound = constrain(scopes=[f"proxy:execute:{grant}"])
    proxied = await bound.proxy_request(HttpMethod.GET, f"{origin.origin}/v1/x", grant_id=grant)
    assert proxied.status_code == 200


async def test_a_scope_bound_to_another_grant_does_not_reach_this_one(
    app: alter_sdk.App, constrain: Constrain, grant: str, origin: Upstream
) -> None:
    other = constrain(scopes=["proxy:execute:some-other-grant"])
    with pytest.raises(alter_sdk.InsufficientScopeError):
        await other.proxy_request(HttpMethod.GET, f"{origin.origin}/v1/x", grant_id=grant)
    assert origin.requests == []


@pytest.mark.parametrize(
    ("constraints", "code"),
    [
        ({"scopes": ["keys:derive"]}, "constraint_not_narrowing"),
        ({"rule": {"rule_type": "time_window", "rule_body": {}}}, "unsupported_request_rule"),
        (
            {"rule": {"rule_type": "json_match", "rule_body": {"when": {"url": "x"}}}},
            "invalid_request_rule",
        ),
    ],
    ids=["broadening-scope", "unknown-rule-type", "unmatchable-attribute"],
)
async def test_a_constraint_the_vault_cannot_enforce_is_refused_not_ignored(
    app: alter_sdk.App,
    constrain: Constrain,
    grant: str,
    origin: Upstream,
    constraints: dict[str, Any],
    code: str,
) -> None:
    narrowed = constrain(**constraints)
    for call in (narrowed.request, narrowed.proxy_request):
        with pytest.raises(alter_sdk.BackendError) as refused:
            await call(HttpMethod.GET, f"{origin.origin}/v1/x", grant_id=grant)
        assert refused.value.details.get("error") == code
        assert refused.value.status_code == 400
    assert origin.requests == []
