from __future__ import annotations

import ipaddress
from pathlib import Path

import pytest

from vaultgate.server.settings import SettingsError, load_settings, safe_url


def test_environment_is_read_from_the_mapping_given() -> None:
    settings = load_settings(
        {
            "VAULTGATE_DATA_DIR": "/srv/vault",
            "VAULTGATE_PORT": "9000",
            "VAULTGATE_ALLOW_PRIVATE_DESTINATIONS": "127.0.0.0/8, 10.1.0.0/16",
            "VAULTGATE_TRUSTED_PROXIES": "192.168.1.1",
        }
    )
    assert settings.data_dir == Path("/srv/vault")
    assert settings.port == 9000
    assert settings.allow_private_destinations == (
        ipaddress.ip_network("127.0.0.0/8"),
        ipaddress.ip_network("10.1.0.0/16"),
    )
    assert settings.trusted_proxies == (ipaddress.ip_network("192.168.1.1/32"),)
    assert settings.db_url == f"sqlite:///{Path('/srv/vault/vaultgate.db').resolve()}"
    assert settings.key_file == Path("/srv/vault/master.key")


def test_flags_win_over_the_environment() -> None:
    settings = load_settings(
        {"VAULTGATE_PORT": "9000", "VAULTGATE_HOST": "0.0.0.0"},
        port=9100,
        host=None,
        allow_private_destinations=["::1/128"],
    )
    assert settings.port == 9100
    assert settings.host == "0.0.0.0"
    assert settings.allow_private_destinations == (ipaddress.ip_network("::1/128"),)


@pytest.mark.parametrize(
    ("env", "flags", "named"),
    [
        ({"VAULTGATE_PORT": "eighty"}, {}, "VAULTGATE_PORT"),
        ({"VAULTGATE_PORT": "70000"}, {}, "port"),
        (
            {"VAULTGATE_ALLOW_PRIVATE_DESTINATIONS": "not-a-cidr"},
            {},
            "VAULTGATE_ALLOW_PRIVATE_DESTINATIONS",
        ),
        ({}, {"trusted_proxies": ["10.0.0.300/8"]}, "--trusted-proxies"),
        ({"VAULTGATE_EVENT_LOOP": "trio"}, {}, "VAULTGATE_EVENT_LOOP"),
    ],
)
def test_bad_settings_name_the_variable_or_flag(
    env: dict[str, str], flags: dict[str, object], named: str
) -> None:
    with pytest.raises(SettingsError, match=named):
        load_settings(env, **flags)


def test_repr_hides_the_master_key_and_the_database_password() -> None:
    settings = load_settings(
        {
            "VAULTGATE_MASTER_KEY": "c2VjcmV0LW1hc3Rlci1rZXktbWF0ZXJpYWwtMzItYnl0ZXM=",
            "VAULTGATE_DATABASE_URL": "postgresql://vault:hunter2@db.internal/vault",
        }
    )
    shown = repr(settings)
    assert "c2VjcmV0" not in shown
    assert "hunter2" not in shown
    assert "db.internal" in shown
    assert safe_url("sqlite:///x.db") == "sqlite:///x.db"


def test_the_event_loop_is_asyncio_unless_uvloop_is_chosen() -> None:
    # asyncio's loop relays an early answer before a reset; uvloop may not (egress/sockets.py).
    assert load_settings({}).event_loop == "asyncio"
    assert load_settings({"VAULTGATE_EVENT_LOOP": " UVLoop "}).event_loop == "uvloop"
    assert load_settings({"VAULTGATE_EVENT_LOOP": "auto"}).event_loop == "auto"
