"""Allowed-host entry syntax and host parameter values."""

from __future__ import annotations

import pytest

from vaultgate.server.providers.hosts import check_host_entry, check_host_template, is_dns_name


@pytest.mark.parametrize(
    "entry",
    [
        "api.openai.com",
        "localhost",
        "api.example.com:8443",
        "*.twilio.com",
        "https://api.example.com",
        "http://127.0.0.1:8080",
    ],
)
def test_well_formed_entries_pass(entry: str) -> None:
    check_host_entry(entry)


@pytest.mark.parametrize(
    "entry",
    [
        "",
        "api.example.com/v1",
        "https://api.example.com/",
        "user@api.example.com",
        "*.com",
        "*.*.example.com",
        "api.*.example.com",
        "api.example.com:0",
        "api.example.com:99999",
        "ws://api.example.com",
        "-api.example.com",
        "api..example.com",
        "api_example.com",
    ],
)
def test_malformed_entries_fail(entry: str) -> None:
    with pytest.raises(ValueError):
        check_host_entry(entry)


def test_templates_may_use_only_declared_params() -> None:
    assert check_host_template("{a}-dsn.{b}.example.com", {"a", "b"}) == ("a", "b")
    with pytest.raises(ValueError, match="undeclared"):
        check_host_template("{a}.example.com", set())
    with pytest.raises(ValueError):
        check_host_template("{a}.example.com/x", {"a"})


@pytest.mark.parametrize("value", ["acme", "us3.datadoghq.com", "a-1", "A1"])
def test_dns_names(value: str) -> None:
    assert is_dns_name(value)


@pytest.mark.parametrize("value", ["", "a/b", "a@b", "a:1", "a_b", "a b", "-a", "a.", "a" * 64])
def test_not_dns_names(value: str) -> None:
    assert not is_dns_name(value)


def test_a_name_longer_than_253_characters_is_not_a_dns_name() -> None:
    assert not is_dns_name(".".join(["a" * 50] * 6))
