"""The refusal texts name the near miss and the flag that fixes it."""

from __future__ import annotations

import pytest

from vaultgate.server.egress import AddressGuard, parse_allowed_host, parse_target
from vaultgate.server.egress.refusals import PRIVATE_DESTINATION, host_refusal
from vaultgate.server.errors import Unprocessable


def refusal(url: str, *hosts: str) -> str:
    return host_refusal(parse_target(url), [parse_allowed_host(h) for h in hosts])


def test_only_the_scheme_differs() -> None:
    assert refusal("http://localhost:8080/x", "localhost:8080", "api.example.com") == (
        "http://localhost:8080 is not allowed; the grant allows https://localhost:8080 "
        "(a bare --host means https only) — add an http:// origin with --host "
        "http://localhost:8080"
    )


def test_the_port_differs_too() -> None:
    # `--host localhost` means https://localhost:443; the service listens on plain http 8080.
    message = refusal("http://localhost:8080/x", "localhost")
    assert message == (
        "http://localhost:8080 is not allowed; the grant allows https://localhost — add an "
        "http:// origin with --host http://localhost:8080"
    )


def test_https_asked_where_http_is_allowed() -> None:
    message = refusal("https://svc.internal/x", "http://svc.internal")
    assert "the grant allows http://svc.internal —" in message
    assert "bare --host" not in message and "--host https://svc.internal" in message


def test_a_wildcard_counts_as_the_same_host() -> None:
    message = refusal("http://eu.example.com/x", "*.example.com")
    assert "the grant allows https://*.example.com" in message


@pytest.mark.parametrize("hosts", [(), ("api.example.com",), ("*.example.com",)])
def test_other_hosts_are_not_listed(hosts: tuple[str, ...]) -> None:
    message = refusal("http://localhost:8080/x", *hosts)
    assert message == "http://localhost:8080 is not an allowed destination of this grant"


def test_the_guard_names_the_server_flag_and_not_the_address() -> None:
    with pytest.raises(Unprocessable) as caught:
        AddressGuard().vet(["10.1.2.3"])
    assert caught.value.message == PRIVATE_DESTINATION
    assert "--allow-private-destinations" in PRIVATE_DESTINATION
    assert "10.1.2.3" not in caught.value.message
