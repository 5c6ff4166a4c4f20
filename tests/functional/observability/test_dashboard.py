"""The Grafana dashboard in deploy/ only queries series a running vault actually exposes."""

from __future__ import annotations

import json
import re
from pathlib import Path

import httpx
from prometheus_client.parser import text_string_to_metric_families

from support import Upstream, Vault
from support.audit import wait_until

DASHBOARD = Path(__file__).parents[3] / "deploy" / "grafana" / "vaultgate.json"
_SELECTOR = re.compile(r"\b(vaultgate_[a-z_]+)(?:\{([^}]*)\})?")


def _exposed(vault: Vault) -> dict[str, set[str]]:
    """Every sample name the vault's /metrics lists, with the label names it carries."""
    text = httpx.get(f"{vault.base_url}/metrics", trust_env=False).text
    names: dict[str, set[str]] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            names.setdefault(sample.name, set()).update(sample.labels)
    return names


def _expressions() -> list[str]:
    dashboard = json.loads(DASHBOARD.read_text())
    panels = dashboard["panels"]
    assert panels, "the dashboard has no panels"
    exprs = [target["expr"] for panel in panels for target in panel["targets"]]
    assert len(exprs) >= len(panels)
    return exprs


def test_every_dashboard_expression_names_an_exposed_series(
    sqlite_vault: Vault, upstream: Upstream, tmp_path: Path
) -> None:
    app_id, key = sqlite_vault.make_app_key()
    with sqlite_vault.admin() as admin:
        grant = admin.post(
            "/v1/secrets",
            json={
                "app_id": app_id,
                "name": "dash",
                "credential_type": "bearer",
                "credential": {"token": "sk-dashboard"},
                "allowed_hosts": [upstream.origin],
            },
        ).json()["grant_id"]
        # The sinks' series have a sample per sink: with one, the sink panels' series exist.
        sink = {"name": "dash", "kind": "file", "config": {"path": str(tmp_path / "dash.jsonl")}}
        assert admin.post("/v1/audit/sinks", json=sink).status_code == 201
    proxied = httpx.get(
        f"{sqlite_vault.base_url}/proxy/{grant}/x",
        headers={"Authorization": f"Bearer {key}"},
        trust_env=False,
    )
    assert proxied.status_code == 200
    exposed: dict[str, set[str]] = {}

    def outcome_committed() -> bool:  # the upstream series appears with the outcome event
        exposed.update(_exposed(sqlite_vault))
        return "vaultgate_upstream_seconds_bucket" in exposed

    wait_until(outcome_committed)
    seen = set()
    for expr in _expressions():
        found = _SELECTOR.findall(expr)
        assert found, f"no vaultgate series in {expr!r}"
        for name, matchers in found:
            assert name in exposed, f"{name} (in {expr!r}) is not exposed"
            for label in re.findall(r"([a-z_]+)\s*=~?", matchers):
                assert label in exposed[name], f"{name} has no label {label}"
            seen.add(name)
    assert "vaultgate_requests_total" in seen
