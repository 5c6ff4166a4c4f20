"""The proxy's limits come from ``VAULTGATE_*`` variables, each checked with its name."""

from __future__ import annotations

import pytest

from vaultgate.server.settings import Settings, SettingsError, load_settings


def test_the_defaults_hold_without_variables() -> None:
    assert load_settings({}) == Settings()


def test_each_limit_is_read_from_its_variable() -> None:
    settings = load_settings(
        {
            "VAULTGATE_UPSTREAM_CONNECTIONS": "100",
            "VAULTGATE_UPSTREAM_CONNECTIONS_PER_HOST": "8",
            "VAULTGATE_MAX_INFLIGHT_PER_GRANT": "16",
            "VAULTGATE_FIRST_BYTE_TIMEOUT": "30",
            "VAULTGATE_READ_TIMEOUT": "2.5",
            "VAULTGATE_HEADER_TIMEOUT": "4",
            "VAULTGATE_MAX_CONNECTIONS": "512",
        }
    )
    assert (settings.upstream_connections, settings.upstream_connections_per_host) == (100, 8)
    assert settings.max_inflight_per_grant == 16 and settings.max_connections == 512
    assert (settings.first_byte_timeout, settings.read_timeout) == (30.0, 2.5)
    assert settings.header_timeout == 4.0


@pytest.mark.parametrize(
    ("variable", "raw", "says"),
    [
        ("VAULTGATE_MAX_INFLIGHT_PER_GRANT", "many", "expected an integer"),
        ("VAULTGATE_MAX_CONNECTIONS", "0", "greater than 0"),
        ("VAULTGATE_HEADER_TIMEOUT", "soon", "a number of seconds"),
        ("VAULTGATE_FIRST_BYTE_TIMEOUT", "-1", "greater than 0"),
    ],
)
def test_a_bad_value_names_its_variable(variable: str, raw: str, says: str) -> None:
    with pytest.raises(SettingsError) as caught:
        load_settings({variable: raw})
    assert variable in str(caught.value) and says in str(caught.value)
