from __future__ import annotations

from vaultgate import CallerType, HttpMethod


def test_http_methods_are_their_own_names() -> None:
    assert [m.value for m in HttpMethod] == [
        "GET",
        "POST",
        "PUT",
        "PATCH",
        "DELETE",
        "HEAD",
        "OPTIONS",
    ]
    assert HttpMethod.GET == "GET"
    assert f"{HttpMethod.PATCH}" == "PATCH"


def test_caller_types_match_the_protocol_values() -> None:
    assert CallerType.SERVICE == "service"
    assert CallerType.AGENT == "agent"
