"""The fixed method list, the override headers and query names, the dot-segment parameters."""

from __future__ import annotations

import pytest

from vaultgate.server.egress.hygiene import (
    ALLOWED_METHODS,
    OVERRIDE_HEADERS,
    check_method,
    check_override_query,
    check_request,
    without_overrides,
)
from vaultgate.server.egress.urls import normalize_path
from vaultgate.server.errors import Forbidden, InvalidInput, MethodNotAllowed
from vaultgate.server.policy import Policy


@pytest.mark.parametrize("method", ["TRACE", "trace", "TRACK", "CONNECT", "PROPFIND", "DEBUG"])
def test_methods_off_the_list_are_405_with_allow(method: str) -> None:
    with pytest.raises(MethodNotAllowed) as caught:
        check_method(method)
    assert caught.value.status == 405 and caught.value.code == "method_refused"
    assert caught.value.headers["Allow"].split(", ") == sorted(
        ALLOWED_METHODS, key=["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"].index
    )


@pytest.mark.parametrize("method", sorted(ALLOWED_METHODS))
def test_the_listed_methods_pass(method: str) -> None:
    check_method(method)
    check_method(method.lower())


def test_every_override_header_is_removed_whatever_its_case() -> None:
    headers = [(name.upper(), "x") for name in OVERRIDE_HEADERS] + [("X-Kept", "1")]
    assert without_overrides(headers) == [("X-Kept", "1")]


@pytest.mark.parametrize(
    "query", ["_method=DELETE", "a=1&_METHOD=PUT", "%5Fmethod=x", "x-http-method=D"]
)
def test_method_in_the_query_is_refused_only_where_methods_are_limited(query: str) -> None:
    with pytest.raises(Forbidden) as caught:
        check_override_query(query, restricts_methods=True)
    assert caught.value.code == "method_override_refused"
    check_override_query(query, restricts_methods=False)


def test_an_ordinary_query_passes_a_method_limited_grant() -> None:
    check_override_query("method=GET&_methods=x&a=_method", restricts_methods=True)


def test_check_request_reads_the_whole_lineage() -> None:
    limited, open_ = Policy(allowed_methods=["GET"]), Policy()
    check_request("GET", "_method=DELETE", [open_])
    with pytest.raises(Forbidden):
        check_request("GET", "_method=DELETE", [open_, limited])
    with pytest.raises(MethodNotAllowed):
        check_request("TRACE", "", [open_])


@pytest.mark.parametrize(
    "path",
    [
        "/a/..;/b",
        "/a/.;/b",
        "/a/..;jsessionid=1/b",
        "/a/%2e%2e;/b",
        "/a/..%3b/b",
        "/a/..%3Bx",
        "/..;",
    ],
)
def test_a_dot_segment_with_a_parameter_is_invalid(path: str) -> None:
    with pytest.raises(InvalidInput) as caught:
        normalize_path(path)
    assert caught.value.code == "invalid_path"


@pytest.mark.parametrize("path", ["/a;v=1/b", "/a/...;/b", "/a/b;", "/a/..x;/b", "/a/%3B/b"])
def test_a_parameter_elsewhere_is_kept(path: str) -> None:
    assert ";" in normalize_path(path) or "%3B" in normalize_path(path)
