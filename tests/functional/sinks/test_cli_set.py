"""`vaultgate audit sinks set --config`: a sink's config changed from the CLI, the keys not named
kept, a key given as null removed, a bad value refused with the field named, and a change made by
someone else between the CLI's read and its write kept (If-Match, read again and merged)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner, Result

from functional.sinks.conftest import FAST
from support import Vault, run_vault
from support.certs import Authority
from vaultgate.cli.client import ApiClient
from vaultgate.cli.commands import cli


@pytest.fixture
def vault(tmp_path: Path, db_url: str) -> Iterator[Vault]:
    url = None if db_url.startswith("sqlite") else db_url
    with run_vault(tmp_path / "data", url, extra_env=FAST) as server:
        yield server


def _cli(vault: Vault, *args: str) -> Result:
    env = {"VAULTGATE_URL": vault.base_url, "VAULTGATE_ADMIN_KEY": vault.admin_key}
    return CliRunner().invoke(cli, ["audit", "sinks", *args], obj={"env": env})


def _config(vault: Vault, name: str) -> dict[str, Any]:
    with vault.admin() as admin:
        config: dict[str, Any] = admin.get(f"/v1/audit/sinks/{name}").json()["config"]
    return config


def test_set_config_changes_the_keys_named_and_keeps_the_rest(vault: Vault, tmp_path: Path) -> None:
    ca = Authority.create(tmp_path, "logs")
    tls = json.dumps({"tls": True, "ca_file": str(ca.pem)})
    added = _cli(vault, "add", "logs", "--syslog", "127.0.0.1:10514", "--config", tls)
    assert added.exit_code == 0, added.output
    assert _config(vault, "logs")["ca_file"] == str(ca.pem)

    moved = _cli(vault, "set", "logs", "--config", '{"host": "[::1]", "facility": 10}', "--json")
    assert moved.exit_code == 0, moved.output
    config = _config(vault, "logs")
    assert (config["host"], config["facility"]) == ("::1", 10)
    assert (config["port"], config["tls"], config["ca_file"]) == (10514, True, str(ca.pem))

    plain = _cli(vault, "set", "logs", "--config", '{"tls": false, "ca_file": null}')
    assert plain.exit_code == 0, plain.output
    config = _config(vault, "logs")
    assert config["tls"] is False and config.get("ca_file") is None
    assert config["port"] == 10514  # a port given stays given


@pytest.mark.parametrize(
    ("given", "named"),
    [('{"port": 0}', "config.port"), ('{"ca_file": "/etc/hostname"}', "config.ca_file")],
)
def test_a_bad_config_change_is_refused_naming_the_field_and_changes_nothing(
    vault: Vault, given: str, named: str
) -> None:
    assert _cli(vault, "add", "logs", "--syslog", "127.0.0.1:10514").exit_code == 0
    before = _config(vault, "logs")
    refused = _cli(vault, "set", "logs", "--config", given)
    assert refused.exit_code != 0
    assert named in refused.output
    assert _config(vault, "logs") == before


def test_set_config_takes_only_a_json_object(vault: Vault) -> None:
    assert _cli(vault, "add", "logs", "--syslog", "127.0.0.1:10514").exit_code == 0
    for given in ("[1]", "not json"):
        refused = _cli(vault, "set", "logs", "--config", given)
        assert refused.exit_code == 2 and "--config" in refused.output


def test_a_default_syslog_port_follows_tls_on_and_off(vault: Vault) -> None:
    with vault.admin() as admin:
        body = {"name": "logs", "kind": "syslog", "config": {"host": "127.0.0.1"}}
        assert admin.post("/v1/audit/sinks", json=body).status_code == 201
    assert _config(vault, "logs")["port"] == 514
    assert _cli(vault, "set", "logs", "--config", '{"tls": true}').exit_code == 0
    assert _config(vault, "logs")["port"] == 6514  # RFC 5425's port, as the API would choose
    assert _cli(vault, "set", "logs", "--config", '{"tls": false}').exit_code == 0
    assert _config(vault, "logs")["port"] == 514


def _racing(vault: Vault, monkeypatch: pytest.MonkeyPatch, times: int) -> list[int]:
    """After each of the CLI's first ``times`` reads of the sink, another admin changes its
    facility before the CLI's write: the read-modify-write race, made to happen every time."""
    real = ApiClient.exchange
    raced: list[int] = []

    def exchange(self: ApiClient, method: str, path: str, **kwargs: Any) -> Any:
        answer = real(self, method, path, **kwargs)
        if method == "GET" and len(raced) < times:
            raced.append(len(raced) + 1)
            config = {**answer[0]["config"], "facility": 10 + len(raced)}
            with vault.admin() as admin:
                changed = admin.patch(f"{path}", json={"config": config})
            assert changed.status_code == 200, changed.text
        return answer

    monkeypatch.setattr(ApiClient, "exchange", exchange)
    return raced


def test_a_change_made_between_the_read_and_the_write_is_kept(
    vault: Vault, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert _cli(vault, "add", "logs", "--syslog", "127.0.0.1:10514").exit_code == 0
    raced = _racing(vault, monkeypatch, times=1)
    moved = _cli(vault, "set", "logs", "--config", '{"host": "[::1]"}')
    assert moved.exit_code == 0, moved.output
    assert raced == [1]
    config = _config(vault, "logs")
    assert config["host"] == "::1"  # this change
    assert config["facility"] == 11  # and the other admin's, made while this one was merging


def test_a_sink_that_keeps_changing_is_left_as_the_others_wrote_it(
    vault: Vault, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert _cli(vault, "add", "logs", "--syslog", "127.0.0.1:10514").exit_code == 0
    raced = _racing(vault, monkeypatch, times=100)
    refused = _cli(vault, "set", "logs", "--config", '{"host": "[::1]"}')
    assert refused.exit_code == 1
    assert "nothing was written, try again" in refused.output
    config = _config(vault, "logs")
    assert config["host"] == "127.0.0.1" and config["facility"] == 10 + len(raced)


def test_the_api_refuses_a_write_based_on_an_older_version(vault: Vault) -> None:
    assert _cli(vault, "add", "logs", "--syslog", "127.0.0.1:10514").exit_code == 0
    with vault.admin() as admin:
        read = admin.get("/v1/audit/sinks/logs")
        first = admin.patch("/v1/audit/sinks/logs", json={"enabled": False})
        assert first.status_code == 200 and first.headers["etag"] != read.headers["etag"]
        stale = admin.patch(
            "/v1/audit/sinks/logs",
            json={"enabled": True},
            headers={"If-Match": read.headers["etag"]},
        )
        assert stale.status_code == 412, stale.text
        assert stale.json()["detail"]["error"] == "sink_changed"
        assert admin.get("/v1/audit/sinks/logs").json()["enabled"] is False
        current = admin.get("/v1/audit/sinks/logs").headers["etag"]
        fresh = admin.patch(
            "/v1/audit/sinks/logs", json={"enabled": True}, headers={"If-Match": current}
        )
        assert fresh.status_code == 200, fresh.text
        assert fresh.json()["enabled"] is True


@pytest.mark.parametrize("tag", ["none", "weakened"])
def test_set_config_through_a_proxy_that_drops_or_weakens_the_tag(
    vault: Vault, monkeypatch: pytest.MonkeyPatch, tag: str
) -> None:
    """A vault from before entity tags sends none (the write is unconditional); a proxy that
    re-encodes an answer marks its tag weak (nginx with gzip), which still names the version."""
    assert _cli(vault, "add", "logs", "--syslog", "127.0.0.1:10514").exit_code == 0
    real = ApiClient.exchange

    def exchange(self: ApiClient, method: str, path: str, **kwargs: Any) -> Any:
        body, headers = real(self, method, path, **kwargs)
        if method == "GET":
            assert kwargs["headers"]["Accept-Encoding"] == "identity"
            headers = dict(headers)
            etag = headers.pop("etag")
            if tag == "weakened":
                headers["etag"] = f"W/{etag}"
        return body, headers

    monkeypatch.setattr(ApiClient, "exchange", exchange)
    moved = _cli(vault, "set", "logs", "--config", '{"facility": 5}')
    assert moved.exit_code == 0, moved.output
    assert _config(vault, "logs")["facility"] == 5


def test_a_sink_patch_answers_with_the_tag_a_later_read_gives(vault: Vault) -> None:
    assert _cli(vault, "add", "logs", "--syslog", "127.0.0.1:10514").exit_code == 0
    with vault.admin() as admin:
        patched = admin.patch("/v1/audit/sinks/logs", json={"alert_lead_seconds": 600})
        assert patched.status_code == 200, patched.text
        assert patched.headers["etag"] == admin.get("/v1/audit/sinks/logs").headers["etag"]


@pytest.mark.parametrize(
    ("host", "problem"),
    [("a..b", "1 to 63 characters"), (".logs", "1 to 63 characters"), ("a:b", "no ':'")],
)
def test_a_host_no_connection_could_look_up_is_refused(
    vault: Vault, host: str, problem: str
) -> None:
    """Such a name was stored, then made every delivery fail outside the sink's own state
    (idna's error escaped the sender): the sink showed no error and never delivered."""
    body = {"name": "logs", "kind": "syslog", "config": {"host": host}}
    with vault.admin() as admin:
        refused = admin.post("/v1/audit/sinks", json=body)
        assert refused.status_code == 422, refused.text
        assert refused.json()["detail"]["field"] == "config.host"
        assert problem in refused.json()["detail"]["message"]
        assert admin.get("/v1/audit/sinks").json()["items"] == []
