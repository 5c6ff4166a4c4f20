"""`vaultgate audit sinks set --config`: a sink's config changed from the CLI, the keys not named
kept, a key given as null removed, and a bad value refused with the field named."""

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
