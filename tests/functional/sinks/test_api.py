"""``/v1/audit/sinks`` on both databases: CRUD, a 4xx naming the field for every bad input, the
webhook secret write-only (never in an answer, the trail or an error), the CLI over it."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from click.testing import CliRunner

from support import Vault, run_vault
from support.audit import wait_until
from support.certs import Authority
from vaultgate.cli.commands import cli

SECRET = "sink-secret-canary-Hq93LmZp"


@pytest.fixture
def vault(tmp_path: Path, db_url: str) -> Iterator[Vault]:
    url = None if db_url.startswith("sqlite") else db_url
    with run_vault(tmp_path / "data", url) as server:
        yield server


def _webhook(**overrides: Any) -> dict[str, Any]:
    return {
        "name": "siem",
        "kind": "webhook",
        "config": {"url": "https://siem.example.com/hook"},
        "secret": SECRET,
        **overrides,
    }


def test_a_sink_is_created_listed_changed_and_deleted_its_secret_never_shown(
    vault: Vault,
) -> None:
    with vault.admin() as admin:
        created = admin.post("/v1/audit/sinks", json=_webhook(filter={"events": ["alert:*"]}))
        assert created.status_code == 201, created.text
        body = created.json()
        assert body["secret_set"] is True and body["filter"]["events"] == ["alert:*"]
        assert body["state"] == {
            "cursor": body["state"]["cursor"],
            "lag_events": 0,
            "lag_seconds": 0.0,
            "attempts": 0,
            "last_error": None,
            "next_attempt_at": None,
            "delivered_at": None,
        }
        changed = admin.patch(
            "/v1/audit/sinks/siem",
            json={"enabled": False, "secret": SECRET[::-1], "alert_lead_seconds": 7200},
        )
        assert changed.status_code == 200, changed.text
        assert (changed.json()["enabled"], changed.json()["alert_lead_seconds"]) == (False, 7200)
        listed = admin.get("/v1/audit/sinks")
        assert [s["name"] for s in listed.json()["items"]] == ["siem"]
        by_id = admin.get(f"/v1/audit/sinks/{body['id']}")
        trail = admin.get("/v1/audit/export").text
        assert admin.delete("/v1/audit/sinks/siem").status_code == 204
        assert admin.get("/v1/audit/sinks/siem").status_code == 404
        events = admin.get("/v1/audit", params={"event": "sink:update"}).json()["items"]
    assert events[0]["details"]["secret_set"] is True
    for text in (created.text, changed.text, listed.text, by_id.text, trail):
        assert SECRET not in text and SECRET[::-1] not in text


def _syslog(**config: Any) -> dict[str, Any]:
    return {"name": "s", "kind": "syslog", "config": {"host": "127.0.0.1", **config}}


@pytest.mark.parametrize(
    ("body", "status", "field"),
    [
        (_webhook(name="Bad Name"), 422, None),
        (_webhook(kind="carrier-pigeon"), 422, None),
        (_webhook(secret=None), 422, "secret"),
        (_webhook(secret="short"), 422, None),
        (_webhook(config={"url": "http://siem.example.com/hook"}), 422, "config.url"),
        (_webhook(config={"url": "https://u:p@siem.example.com/"}), 422, "config.url"),
        (_webhook(config={"url": "https://siem.example.com:99999/"}), 422, "config.url"),
        (_webhook(config={}), 422, "config.url"),
        ({"name": "f", "kind": "file", "config": {"path": "relative.jsonl"}}, 422, "config.path"),
        ({"name": "s", "kind": "syslog", "config": {"host": "h", "port": 0}}, 422, "config.port"),
        (_syslog(tls=True, ca_file="relative/ca.pem"), 422, "config.ca_file"),
        (_syslog(tls=True, ca_file="/nonexistent/ca.pem"), 422, "config.ca_file"),
        (_syslog(ca_file="/etc/ssl/certs/ca-certificates.crt"), 422, "config.ca_file"),  # no tls
        (_syslog(server_name="logs.internal"), 422, "config.server_name"),  # no tls
        (_syslog(tls="maybe"), 422, "config.tls"),
        (_syslog(tls=True, insecure=True), 422, "config.insecure"),  # there is no such switch
        (_webhook(filter={"outcomes": ["maybe"]}), 422, None),
        (_webhook(extra=1), 422, None),
    ],
)
def test_bad_sink_input_is_a_4xx_naming_the_problem(
    sqlite_vault: Vault, body: dict[str, Any], status: int, field: str | None
) -> None:
    with sqlite_vault.admin() as admin:
        answer = admin.post("/v1/audit/sinks", json=body)
    assert answer.status_code == status, answer.text
    assert SECRET not in answer.text
    if field is not None:
        assert answer.json()["detail"]["field"] == field


CA_CANARY = "ca-file-canary-Vb27QwEr"


def test_a_ca_file_that_is_not_a_readable_pem_bundle_is_a_422_naming_it_at_create_and_update(
    sqlite_vault: Vault, tmp_path: Path
) -> None:
    folder = tmp_path / "pki"
    folder.mkdir()
    not_pem = folder / "notes.txt"
    not_pem.write_text(f"password={CA_CANARY}\n")
    key_only = folder / "key.pem"
    key_only.write_text(f"-----BEGIN PRIVATE KEY-----\n{CA_CANARY}\n-----END PRIVATE KEY-----\n")
    empty = folder / "empty.pem"
    empty.write_bytes(b"")
    good = Authority.create(folder, "logs").pem
    with sqlite_vault.admin() as admin:
        answers = [
            admin.post("/v1/audit/sinks", json=_syslog(tls=True, ca_file=str(path)))
            for path in (folder, not_pem, key_only, empty)
        ]
        created = admin.post("/v1/audit/sinks", json=_syslog(tls=True, ca_file=str(good)))
        assert created.status_code == 201, created.text  # the allowed twin
        bad = {"host": "127.0.0.1", "tls": True, "ca_file": str(not_pem)}
        changed = admin.patch("/v1/audit/sinks/s", json={"config": bad})
        kept = admin.get("/v1/audit/sinks/s").json()["config"]
    messages = [answer.json()["detail"]["message"] for answer in answers]
    assert messages == [
        "config.ca_file: cannot be read (IsADirectoryError)",
        "config.ca_file: not a PEM file of CA certificates",
        "config.ca_file: not a PEM file of CA certificates",
        "config.ca_file: not a PEM file of CA certificates",
    ]
    for answer in (*answers, changed):
        assert answer.status_code == 422, answer.text
        assert answer.json()["detail"]["field"] == "config.ca_file"
        assert CA_CANARY not in answer.text
    assert kept["ca_file"] == str(good) and kept["port"] == 6514  # RFC 5425's, unless given


def test_a_duplicate_name_is_a_409_and_http_is_allowed_only_to_a_private_allowed_address(
    sqlite_vault: Vault,
) -> None:
    with sqlite_vault.admin() as admin:
        assert admin.post("/v1/audit/sinks", json=_webhook()).status_code == 201
        again = admin.post("/v1/audit/sinks", json=_webhook())
        assert again.status_code == 409 and again.json()["detail"]["field"] == "name"
        local = _webhook(name="local", config={"url": "http://127.0.0.1:9/hook"})
        assert admin.post("/v1/audit/sinks", json=local).status_code == 201  # 127/8 allowed
        assert admin.patch("/v1/audit/sinks/nope", json={}).status_code == 404


def test_the_cli_adds_and_lists_sinks_reading_the_secret_from_stdin(sqlite_vault: Vault) -> None:
    env = {"VAULTGATE_URL": sqlite_vault.base_url, "VAULTGATE_ADMIN_KEY": sqlite_vault.admin_key}
    runner = CliRunner()
    added = runner.invoke(
        cli,
        [
            "audit",
            "sinks",
            "add",
            "siem",
            "--webhook",
            "http://127.0.0.1:9/h",
            "--secret-stdin",
            "--event",
            "grant:deny",
            "--json",
        ],
        input=SECRET + "\n",
        obj={"env": env},
    )
    assert added.exit_code == 0, added.output
    assert SECRET not in added.output and '"secret_set": true' in added.output
    listed = runner.invoke(cli, ["audit", "sinks", "list"], obj={"env": env})
    assert listed.exit_code == 0 and "siem" in listed.output and "LAG_EVENTS" in listed.output
    by_provider = runner.invoke(
        cli, ["audit", "list", "--provider", "openai", "--json"], obj={"env": env}
    )
    assert by_provider.exit_code == 0 and by_provider.output.strip() == "[]"


def test_the_portal_shows_each_sinks_delivery_state_and_needs_a_session(
    sqlite_vault: Vault,
) -> None:
    with sqlite_vault.admin() as admin:
        stuck = {"name": "stuck", "kind": "syslog", "config": {"host": "127.0.0.1", "port": 9}}
        assert admin.post("/v1/audit/sinks", json=stuck).status_code == 201
        assert admin.post("/v1/apps", json={"name": "after"}).status_code == 201  # to deliver
        wait_until(lambda: admin.get("/v1/audit/sinks/stuck").json()["state"]["attempts"] > 0)
    with httpx.Client(base_url=sqlite_vault.base_url, trust_env=False) as anonymous:
        assert anonymous.get("/portal/audit/sinks").status_code == 303
    with httpx.Client(base_url=sqlite_vault.base_url, trust_env=False, timeout=30) as browser:
        login = browser.get("/portal/login")
        token = re.search(r'name="csrf" value="([^"]+)"', login.text)
        assert token
        form = {
            "csrf": token[1],
            "email": sqlite_vault.portal_user,
            "password": sqlite_vault.portal_password,
        }
        assert browser.post("/portal/login", data=form).status_code == 303
        page = browser.get("/portal/audit/sinks")
    assert page.status_code == 200
    row = page.text.split('id="sink-stuck"', 1)[1].split("</tr>", 1)[0]
    assert "syslog" in row and "retrying" in row and "ConnectionRefusedError" in row
