"""Syslog (RFC 5424 over TCP, octet-counted) and JSON-lines sinks after real proxied traffic,
their filters, the provider filter of the trail, and no credential in anything a sink got."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from functional.sinks.conftest import FAST
from support import Upstream, Vault, run_vault
from support.audit import wait_until
from support.receivers import RFC5424, as_json, syslog_listener

OPENAI_TOKEN = "sk-proj-canaryStreamAAAA1111bbbb2222cccc3333"
PLAIN_TOKEN = "plain-canary-token-Zx81Lq"


@pytest.fixture
def vault(tmp_path: Path, db_url: str) -> Iterator[Vault]:
    url = None if db_url.startswith("sqlite") else db_url
    with run_vault(tmp_path / "data", url, extra_env=FAST) as server:
        yield server


def _secret(vault: Vault, app_id: str, upstream: Upstream, **body: Any) -> str:
    payload = {"app_id": app_id, "allowed_hosts": [upstream.origin], **body}
    with vault.admin() as admin:
        created = admin.post("/v1/secrets", json=payload)
    assert created.status_code == 201, created.text
    return str(created.json()["grant_id"])


def test_syslog_and_jsonl_sinks_get_filtered_events_and_no_credential(
    vault: Vault, upstream: Upstream, tmp_path: Path
) -> None:
    trail = tmp_path / "sink" / "audit.jsonl"
    trail.parent.mkdir()
    app_id, key = vault.make_app_key()
    with syslog_listener() as listener, vault.admin() as admin:
        for sink in (
            {
                "name": "rsyslog",
                "kind": "syslog",
                "config": {"host": "127.0.0.1", "port": listener.port},
                "filter": {"events": ["grant:*"]},
            },
            {
                "name": "openai-file",
                "kind": "file",
                "config": {"path": str(trail)},
                "filter": {"providers": ["openai"], "outcomes": ["allowed", "denied"]},
            },
        ):
            assert admin.post("/v1/audit/sinks", json=sink).status_code == 201
        openai = _secret(
            vault,
            app_id,
            upstream,
            name="llm",
            provider="openai",
            credential={"token": OPENAI_TOKEN},
            policy={"allowed_methods": ["GET"]},
        )
        plain = _secret(
            vault,
            app_id,
            upstream,
            name="plain",
            credential_type="bearer",
            credential={"token": PLAIN_TOKEN},
        )
        headers = {"Authorization": f"Bearer {key}"}
        for grant in (openai, plain):
            answer = httpx.get(f"{vault.base_url}/proxy/{grant}/v1/models?q=1", headers=headers)
            assert answer.status_code == 200, answer.text
        denied = httpx.post(f"{vault.base_url}/proxy/{openai}/v1/models", headers=headers)
        assert denied.status_code == 403
        assert {r.headers["authorization"] for r in upstream.requests} == {
            f"Bearer {OPENAI_TOKEN}",
            f"Bearer {PLAIN_TOKEN}",
        }  # the canaries were really used

        def syslogged() -> list[dict[str, Any]]:
            return [as_json(m) for m in list(listener.messages)]

        # 2 uses, 2 outcomes, 1 denial; the secret creations are not grant:* events.
        wait_until(lambda: len(syslogged()) >= 5, tries=2400)
        wait_until(lambda: trail.exists() and len(trail.read_bytes().splitlines()) >= 2, tries=2400)
        by_trail = admin.get("/v1/audit", params={"provider": "openai", "limit": 100}).json()
        sinks = admin.get("/v1/audit/sinks").json()["items"]
        metrics = httpx.get(f"{vault.base_url}/metrics").text

    messages = list(listener.messages)
    for message in messages:
        parsed = RFC5424.match(message)
        assert parsed is not None, message
        event = as_json(message)
        assert parsed["msgid"].decode() == event["event"]
        assert (parsed["id"].decode(), int(parsed["seq"])) == (event["id"], event["seq"])
    got = syslogged()
    assert sorted(e["event"] for e in got) == sorted(
        ["grant:use", "grant:use", "grant:outcome", "grant:outcome", "grant:deny"]
    )
    assert [e["seq"] for e in got] == sorted(e["seq"] for e in got)  # in order
    deny = next(message for message in messages if b" grant:deny " in message)
    assert deny.startswith(b"<108>1 ")  # facility 13 (log audit), severity 4 (warning)

    lines = [json.loads(line) for line in trail.read_text().splitlines()]
    assert {(e["event"], e["outcome"], e["provider"]) for e in lines} == {
        ("grant:use", "allowed", "openai"),
        ("grant:deny", "denied", "openai"),
    }  # the provider filter kept openai's; the outcome filter dropped grant:outcome (ok)
    assert all(e["grant_id"] == openai for e in lines)
    trail_events = {(e["event"], e["grant_id"]) for e in by_trail["items"]}
    assert ("secret:create", None) not in trail_events
    assert {grant for _, grant in trail_events} == {openai}
    assert {s["name"]: s["state"]["lag_events"] for s in sinks}.keys() == {
        "rsyslog",
        "openai-file",
    }
    assert 'vaultgate_audit_sink_lag_events{sink="rsyslog"}' in metrics
    assert openai not in metrics and plain not in metrics  # no grant id as a label

    everything = b"".join(messages) + trail.read_bytes()
    for canary in (OPENAI_TOKEN, PLAIN_TOKEN, key):
        assert canary.encode() not in everything
