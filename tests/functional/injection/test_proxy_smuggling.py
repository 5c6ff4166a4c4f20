"""Requests that would pass policy as one thing and run upstream as another, each next to its
allowed twin, in every mode that carries it, with the upstream's record as evidence.

A grant limited to ``GET`` on ``/v1/public/**`` must not be usable to DELETE or to reach
``/v1/admin`` through a method-override header, ``_method``, a ``..;`` segment or TRACE.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from support import Upstream, Vault
from support.audit import events, wait_until
from support.injection import Tenant, envelope_code, error_of, raw_http, sdk_call
from support.wire import WireUpstream, run_wire_upstream
from vaultgate.server.egress.hygiene import OVERRIDE_HEADERS

TOKEN = "canary-smuggling-Tz83Qw"
PROXY_ONLY_TOKEN = "canary-echoed-proxy-only-Lm52Xc"


def _audited(vault: Vault, grant: str, event: str, code: str, **match: Any) -> list[dict[str, Any]]:
    """The grant's ``event`` records with ``code`` (and the ``match`` fields), once there is one."""
    found: list[dict[str, Any]] = []

    def seen() -> bool:
        found[:] = [
            e
            for e in events(vault, grant_id=grant, event=event)
            if e["code"] == code and all(e.get(k) == v for k, v in match.items())
        ]
        return bool(found)

    wait_until(seen)
    return found


def _port(vault: Vault) -> int:
    return int(vault.base_url.rsplit(":", 1)[1])


@pytest.fixture(scope="module")
def open_grant(tenant: Tenant, shared_upstream: Upstream) -> str:
    return tenant.store(
        {"credential_type": "bearer", "credential": {"token": TOKEN}}, [shared_upstream.origin]
    )


@pytest.fixture(scope="module")
def get_only(tenant: Tenant, shared_upstream: Upstream) -> str:
    return tenant.store(
        {
            "credential_type": "bearer",
            "credential": {"token": TOKEN},
            "policy": {"allowed_methods": ["GET"], "allowed_paths": ["/v1/public/**"]},
        },
        [shared_upstream.origin],
    )


def _transparent(
    vault: Vault, tenant: Tenant, grant: str, method: str, path: str, **kwargs: Any
) -> httpx.Response:
    headers = {"Authorization": f"Bearer {tenant.key}", **kwargs.pop("headers", {})}
    return httpx.request(
        method,
        f"{vault.base_url}/proxy/{grant}{path}",
        headers=headers,
        trust_env=False,
        timeout=30,
        **kwargs,
    )


def _proxied(
    vault: Vault, tenant: Tenant, grant: str, method: str, url: str, **fields: Any
) -> httpx.Response:
    payload = {"method": method, "url": url, "grant_id": grant, **fields}
    return sdk_call(vault, tenant.key, "/sdk/proxy", payload)


def _token(vault: Vault, tenant: Tenant, grant: str, method: str, url: str) -> httpx.Response:
    payload = {"grant_id": grant, "request": {"method": method, "url": url}}
    return sdk_call(vault, tenant.key, "/sdk/token", payload)


# --- the fixed method allow-list -----------------------------------------------------------------

# TRACK is not in this list: the HTTP parser (httptools) knows no such method, so the server
# refuses it before the request is read, and so before any grant could be audited (see below).
REFUSED = ["TRACE", "PROPFIND", "MKCOL"]


@pytest.mark.parametrize("method", REFUSED)
def test_transparent_proxy_refuses_the_method_with_405_and_audits_it(
    method: str, shared_vault: Vault, tenant: Tenant, open_grant: str, origin: Upstream
) -> None:
    status, body = raw_http(
        _port(shared_vault),
        f"{method} /proxy/{open_grant}/v1/echo HTTP/1.1\n"
        f"Host: vault\nAuthorization: Bearer {tenant.key}",
    )
    assert status == 405, body
    assert envelope_code(body) == "method_refused"
    assert origin.requests == []
    _audited(shared_vault, open_grant, "grant:deny", "method_refused", method=method)
    # The allowed twin, same grant, same path.
    assert _transparent(shared_vault, tenant, open_grant, "GET", "/v1/echo").status_code == 200
    assert [r.method for r in origin.requests] == ["GET"]


@pytest.mark.parametrize("method", REFUSED)
def test_sdk_proxy_and_token_refuse_the_method_with_405(
    method: str, shared_vault: Vault, tenant: Tenant, open_grant: str, origin: Upstream
) -> None:
    url = f"{origin.origin}/v1/echo"
    proxied = _proxied(shared_vault, tenant, open_grant, method, url)
    token = _token(shared_vault, tenant, open_grant, method, url)
    for response in (proxied, token):
        assert response.status_code == 405, response.text
        assert error_of(response) == "method_refused"
        assert "GET" in response.headers["allow"]
        assert TOKEN not in response.text
    assert origin.requests == []
    assert _proxied(shared_vault, tenant, open_grant, "GET", url).status_code == 200
    assert _token(shared_vault, tenant, open_grant, "GET", url).status_code == 200
    assert len(origin.requests) == 1


@pytest.mark.parametrize("path", ["/sdk/token", "/sdk/proxy", "/v1/apps", "/healthz"])
def test_trace_to_the_vault_itself_is_405_everywhere(path: str, shared_vault: Vault) -> None:
    response = httpx.request("TRACE", shared_vault.base_url + path, trust_env=False)
    assert response.status_code == 405
    assert error_of(response) == "method_refused"
    assert "GET" in response.headers["allow"]


def test_track_is_405_everywhere_and_reaches_nothing(
    shared_vault: Vault, tenant: Tenant, open_grant: str, origin: Upstream
) -> None:
    for path in (f"/proxy/{open_grant}/v1/echo", "/sdk/proxy", "/v1/apps"):
        status, body = raw_http(
            _port(shared_vault),
            f"TRACK {path} HTTP/1.1\nHost: vault\nAuthorization: Bearer {tenant.key}",
        )
        assert status == 405, body
        assert envelope_code(body) == "method_refused"
    assert origin.requests == []
    assert _transparent(shared_vault, tenant, open_grant, "GET", "/v1/echo").status_code == 200


def test_connect_reaches_nothing(
    shared_vault: Vault, tenant: Tenant, open_grant: str, origin: Upstream
) -> None:
    status, _ = raw_http(
        _port(shared_vault),
        f"CONNECT 127.0.0.1:{origin.port} HTTP/1.1\n"
        f"Host: 127.0.0.1:{origin.port}\nAuthorization: Bearer {tenant.key}",
    )
    assert 400 <= status < 500
    status, _ = raw_http(
        _port(shared_vault),
        f"CONNECT /proxy/{open_grant}/v1/echo HTTP/1.1\n"
        f"Host: vault\nAuthorization: Bearer {tenant.key}",
    )
    assert 400 <= status < 500
    assert origin.requests == []


def test_the_grants_method_list_is_enforced_by_the_transparent_proxy(
    shared_vault: Vault, tenant: Tenant, get_only: str, origin: Upstream
) -> None:
    for method in ("POST", "DELETE", "PUT"):
        response = _transparent(shared_vault, tenant, get_only, method, "/v1/public/x")
        assert response.status_code == 403, response.text
        assert error_of(response) == "method_not_allowed"
    assert origin.requests == []
    assert _transparent(shared_vault, tenant, get_only, "GET", "/v1/public/x").status_code == 200
    assert [r.method for r in origin.requests] == ["GET"]


# --- override and rewrite headers ----------------------------------------------------------------

NAMED = ["X-HTTP-Method-Override", "X-HTTP-Method", "X-Method-Override"]
NAMED += ["X-Original-URL", "X-Rewrite-URL"]
KIN = sorted(OVERRIDE_HEADERS - {name.lower() for name in NAMED})


def _value(name: str) -> str:
    return "DELETE" if "method" in name.lower() else "/v1/admin/delete-everything"


@pytest.mark.parametrize("name", NAMED + KIN)
def test_an_override_header_never_reaches_the_upstream(
    name: str, shared_vault: Vault, tenant: Tenant, get_only: str, origin: Upstream
) -> None:
    headers = {name: _value(name), "X-Ordinary": "kept"}
    response = _transparent(shared_vault, tenant, get_only, "GET", "/v1/public/x", headers=headers)
    assert response.status_code == 200, response.text
    url = f"{origin.origin}/v1/public/x"
    proxied = _proxied(shared_vault, tenant, get_only, "GET", url, headers=headers)
    assert proxied.status_code == 200, proxied.text
    assert len(origin.requests) == 2
    for got in origin.requests:
        assert name.lower() not in got.headers
        assert _value(name) not in repr(got.raw_headers)
        assert got.headers["x-ordinary"] == "kept"  # the allowed twin, in the same request


# --- ;-parameters on dot segments ----------------------------------------------------------------

DOT_PARAMETERS = ["/v1/public/..;/admin", "/v1/public/.;/x", "/v1/public/..;jsessionid=x/admin"]
DOT_PARAMETERS += ["/v1/public/%2e%2e;/admin", "/v1/public/..%3Bx/admin", "/v1/public/..%3b/admin"]


@pytest.mark.parametrize("path", DOT_PARAMETERS)
def test_a_dot_segment_with_a_parameter_is_refused_in_every_mode(
    path: str, shared_vault: Vault, tenant: Tenant, get_only: str, origin: Upstream
) -> None:
    status, body = raw_http(
        _port(shared_vault),
        f"GET /proxy/{get_only}{path} HTTP/1.1\nHost: vault\nAuthorization: Bearer {tenant.key}",
    )
    assert status == 400, body
    assert envelope_code(body) == "invalid_path"
    url = origin.origin + path
    for response in (
        _proxied(shared_vault, tenant, get_only, "GET", url),
        _token(shared_vault, tenant, get_only, "GET", url),
    ):
        assert response.status_code == 400, response.text
        assert error_of(response) == "invalid_path"
    assert origin.requests == []
    for mode in ("transparent", "proxy", "retrieve"):
        _audited(shared_vault, get_only, "grant:deny", "invalid_path", mode=mode)


def test_a_parameter_on_an_ordinary_segment_is_forwarded(
    shared_vault: Vault, tenant: Tenant, get_only: str, origin: Upstream
) -> None:
    path = "/v1/public/item;version=2/x"
    assert _transparent(shared_vault, tenant, get_only, "GET", path).status_code == 200
    assert _proxied(shared_vault, tenant, get_only, "GET", origin.origin + path).status_code == 200
    assert [r.path for r in origin.requests] == [path, path]


# --- _method in the query ------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["_method", "_METHOD", "%5Fmethod", "X-HTTP-Method-Override"])
def test_method_in_the_query_is_refused_on_a_grant_that_limits_methods(
    name: str, shared_vault: Vault, tenant: Tenant, get_only: str, origin: Upstream
) -> None:
    path = f"/v1/public/x?{name}=DELETE"
    transparent = _transparent(shared_vault, tenant, get_only, "GET", path)
    proxied = _proxied(shared_vault, tenant, get_only, "GET", origin.origin + path)
    by_params = _proxied(
        shared_vault,
        tenant,
        get_only,
        "GET",
        origin.origin + "/v1/public/x",
        query_params={name.replace("%5F", "_"): "DELETE"},
    )
    token = _token(shared_vault, tenant, get_only, "GET", origin.origin + path)
    for response in (transparent, proxied, by_params, token):
        assert response.status_code == 403, response.text
        assert error_of(response) == "method_override_refused"
    assert origin.requests == []


def test_method_in_the_query_of_an_unrestricted_grant_is_the_callers_business(
    shared_vault: Vault, tenant: Tenant, open_grant: str, origin: Upstream
) -> None:
    response = _transparent(shared_vault, tenant, open_grant, "GET", "/v1/echo?_method=DELETE")
    assert response.status_code == 200, response.text
    assert origin.last().path == "/v1/echo?_method=DELETE"


# --- a proxy_only credential echoed back ---------------------------------------------------------


@pytest.fixture(scope="module")
def reflector() -> Iterator[WireUpstream]:
    with run_wire_upstream() as server:
        yield server


@pytest.fixture(scope="module")
def echo_grants(tenant: Tenant, reflector: WireUpstream) -> dict[str, str]:
    def store(token: str, policy: dict[str, Any]) -> str:
        body = {"credential_type": "bearer", "credential": {"token": token}, "policy": policy}
        return tenant.store(body, [reflector.origin])

    return {
        "proxy_only": store(PROXY_ONLY_TOKEN, {"proxy_only": True}),
        "ordinary": store(TOKEN, {}),
    }


def test_an_echoed_proxy_only_credential_is_redacted_and_alerted(
    shared_vault: Vault, tenant: Tenant, echo_grants: dict[str, str], reflector: WireUpstream
) -> None:
    grant = echo_grants["proxy_only"]
    transparent = _transparent(shared_vault, tenant, grant, "GET", "/reflect")
    proxied = _proxied(shared_vault, tenant, grant, "GET", f"{reflector.origin}/reflect")
    assert transparent.status_code == 200 and proxied.status_code == 200, proxied.text
    relayed = base64.b64decode(proxied.json()["body_b64"])
    for body, echo in (
        (transparent.content, transparent.headers["x-echo"]),
        (relayed, proxied.json()["headers"]["x-echo"]),
    ):
        assert PROXY_ONLY_TOKEN not in body.decode() and PROXY_ONLY_TOKEN not in echo
        assert ["authorization", "Bearer [redacted]"] in json.loads(body)
        assert "Bearer [redacted]" in echo
    assert reflector.requests[-1].header("authorization") == f"Bearer {PROXY_ONLY_TOKEN}"
    for mode in ("transparent", "proxy"):
        alert = _audited(shared_vault, grant, "grant:alert", "credential_echoed", mode=mode)
        assert PROXY_ONLY_TOKEN not in json.dumps(alert)


def test_an_ordinary_grant_gets_its_upstreams_answer_untouched(
    shared_vault: Vault, tenant: Tenant, echo_grants: dict[str, str], reflector: WireUpstream
) -> None:
    """Without proxy_only the app may hold the credential anyway: the answer is not rewritten."""
    response = _transparent(shared_vault, tenant, echo_grants["ordinary"], "GET", "/reflect")
    assert response.status_code == 200
    assert ["authorization", f"Bearer {TOKEN}"] in response.json()
