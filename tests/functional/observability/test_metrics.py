"""`/metrics` after real traffic: the expected series and values, and only bounded labels."""

from __future__ import annotations

import httpx
from prometheus_client.parser import text_string_to_metric_families

from support import Upstream, Vault
from support.audit import wait_until
from vaultgate.server.observability.metrics import MODES, OAUTH_OUTCOMES, REASON_CODES

CANARY = "sk-canary-metrics-7f3a91"
Samples = dict[tuple[str, tuple[tuple[str, str], ...]], float]


def scrape(vault: Vault) -> tuple[str, Samples]:
    response = httpx.get(f"{vault.base_url}/metrics", trust_env=False)
    assert response.status_code == 200
    samples: Samples = {}
    for family in text_string_to_metric_families(response.text):
        for sample in family.samples:
            samples[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return response.text, samples


def value(samples: Samples, name: str, **labels: str) -> float:
    return samples.get((name, tuple(sorted(labels.items()))), 0.0)


def _store(vault: Vault, app_id: str, upstream: Upstream) -> str:
    with vault.admin() as admin:
        created = admin.post(
            "/v1/secrets",
            json={
                "app_id": app_id,
                "name": "metrics",
                "credential_type": "bearer",
                "credential": {"token": CANARY},
                "allowed_hosts": [upstream.origin],
                "policy": {"allowed_methods": ["GET"]},
            },
        )
    assert created.status_code == 201, created.text
    return str(created.json()["grant_id"])


def test_requests_outcomes_and_latencies_after_real_traffic(
    vault: Vault, upstream: Upstream
) -> None:
    app_id, key = vault.make_app_key()
    grant_id = _store(vault, app_id, upstream)
    _, before = scrape(vault)
    headers = {"Authorization": f"Bearer {key}", "X-Vaultgate-Caller": "agent-7f3a91"}
    proxy = f"{vault.base_url}/proxy/{grant_id}/v1/models"
    for _ in range(3):
        allowed = httpx.get(proxy, headers=headers, trust_env=False)
        assert allowed.status_code == 200, allowed.text
    denied = httpx.post(proxy, headers=headers, content=b"{}", trust_env=False)
    assert denied.status_code == 403, denied.text
    assert len(upstream.requests) == 3  # the denied call reached nothing

    def delta(name: str, **labels: str) -> float:
        return value(after, name, **labels) - value(before, name, **labels)

    def settled() -> bool:
        nonlocal text, after
        text, after = scrape(vault)
        outcomes = delta("vaultgate_upstream_seconds_count", mode="transparent", outcome="ok")
        return outcomes >= 3 and delta("vaultgate_requests_total", **no) >= 1

    ok = {"mode": "transparent", "outcome": "allowed", "code": "allowed"}
    no = {"mode": "transparent", "outcome": "denied", "code": "method_not_allowed"}
    text, after = "", before
    wait_until(settled)
    assert delta("vaultgate_requests_total", **ok) == 3
    assert delta("vaultgate_requests_total", **no) == 1
    assert delta("vaultgate_upstream_seconds_count", mode="transparent", outcome="ok") == 3
    assert delta("vaultgate_decision_seconds_count") == 4
    assert delta("vaultgate_audit_batch_events_sum") >= 7  # 3 uses, 3 outcomes, 1 denial
    assert delta("vaultgate_audit_commit_seconds_count") >= 1
    lookups = delta("vaultgate_grant_cache_lookups_total", result="hit") + delta(
        "vaultgate_grant_cache_lookups_total", result="miss"
    )
    assert lookups >= 4  # each request looks its grant up at least once (the proxy: more)
    assert delta("vaultgate_grant_cache_lookups_total", result="hit") >= 3  # repeats are hits
    assert value(after, "vaultgate_audit_queue_depth") >= 0
    assert value(after, "vaultgate_audit_failed_batches_total") == 0
    assert value(after, "vaultgate_audit_dropped_events_total") == 0
    assert value(after, "vaultgate_approvals_pending") == 0
    _assert_bounded(text, after, grant_id, upstream, key)


def _assert_bounded(
    text: str, samples: Samples, grant_id: str, upstream: Upstream, key: str
) -> None:
    for secret in (CANARY, grant_id, upstream.origin, key, "agent-7f3a91", "/v1/models"):
        assert secret not in text
    for name, labels in samples:
        for label, got in labels:
            if label == "mode":
                assert got in MODES | {"other"}, (name, got)
            elif label == "code":
                assert got in REASON_CODES | {"other", "none"}, (name, got)
            elif label == "outcome":
                assert got in {"allowed", "denied", "ok", "error"} | OAUTH_OUTCOMES, (name, got)


def test_an_unknown_reason_code_is_counted_as_other() -> None:
    from vaultgate.server.observability.metrics import reason

    assert reason("method_not_allowed") == "method_not_allowed"
    assert reason(f"grant {CANARY} said no") == "other"
    assert reason(None) == "none"


def test_upstream_pool_use_is_read_while_a_response_is_still_streaming(
    vault: Vault, upstream: Upstream
) -> None:
    app_id, key = vault.make_app_key()
    grant_id = _store(vault, app_id, upstream)
    headers = {"Authorization": f"Bearer {key}"}
    _, idle = scrape(vault)
    assert value(idle, "vaultgate_upstream_connections", state="in_use") == 0
    assert value(idle, "vaultgate_upstream_connections_limit") == 256
    with httpx.stream(
        "GET", f"{vault.base_url}/proxy/{grant_id}/gated-sse", headers=headers, trust_env=False
    ) as streaming:
        lines = streaming.iter_lines()
        assert next(line for line in lines if line.startswith("data:"))  # the first event
        _, busy = scrape(vault)  # the upstream holds its second event until the gate opens
        assert value(busy, "vaultgate_upstream_connections", state="in_use") == 1
        upstream.gate.set()
        rest = [line for line in lines if line.startswith("data:")]
    assert rest[-1] == "data: [DONE]"

    def released() -> bool:
        _, after = scrape(vault)
        return value(after, "vaultgate_upstream_connections", state="in_use") == 0

    wait_until(released)
