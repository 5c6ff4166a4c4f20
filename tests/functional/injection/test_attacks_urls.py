"""Destination attacks: each is a clear 4xx, and neither "evil" nor the upstream hears anything.

The grant used is bound to the upstream only; "evil" is a second loopback server standing in for
an attacker, so any byte it receives is a credential sent to the wrong place.
"""

from __future__ import annotations

from collections.abc import Callable

import httpx
import pytest

from support import Upstream, Vault
from support.injection import Tenant, envelope_code, error_of, raw_http, sdk_call

BEARER = "canary-urls-bearer-Xk29Pq"

BadUrl = Callable[[int, int], str]  # (upstream port, evil port) -> URL

MALFORMED: dict[str, BadUrl] = {
    "userinfo": lambda u, e: f"http://127.0.0.1:{u}@127.0.0.1:{e}/x",
    "userinfo-password": lambda u, e: f"http://127.0.0.1:{u}:pw@127.0.0.1:{e}/x",
    "backslash-in-authority": lambda u, e: f"http://127.0.0.1:{e}\\@127.0.0.1:{u}/x",
    "backslash-after-scheme": lambda u, e: f"http:\\\\127.0.0.1:{e}/x",
    "percent-in-host": lambda u, e: f"http://127%2e0.0.1:{e}/x",
    "invalid-idna-a-label": lambda u, e: f"http://xn--a.example:{e}/x",
    "ideographic-dots": lambda u, e: f"http://127\u30020\u30020\u30021:{e}/x",
    "fullwidth-letters": lambda u, e: f"http://\uff4cocalhost:{e}/x",
    "crlf-in-path": lambda u, e: f"http://127.0.0.1:{u}/x\r\nHost: 127.0.0.1:{e}",
    "nul-in-path": lambda u, e: f"http://127.0.0.1:{u}/x\x00",
    "tab-in-host": lambda u, e: f"http://127.0.0.1\t:{e}/x",
    "zero-width-space": lambda u, e: f"http://127.0.0.1\u200b:{u}/x",
}


@pytest.fixture(scope="module")
def bearer_grant(tenant: Tenant, shared_upstream: Upstream) -> str:
    return tenant.store(
        {"credential_type": "bearer", "credential": {"token": BEARER}},
        [shared_upstream.origin, "api.openai.com"],
    )


def _nothing_sent(origin: Upstream, evil: Upstream) -> None:
    assert evil.requests == [], "the evil server received a request"
    assert origin.requests == []


@pytest.mark.parametrize("make_url", MALFORMED.values(), ids=list(MALFORMED))
def test_proxy_refuses_a_malformed_url(
    make_url: BadUrl,
    shared_vault: Vault,
    tenant: Tenant,
    bearer_grant: str,
    origin: Upstream,
    evil: Upstream,
) -> None:
    url = make_url(origin.port, evil.port)
    response = sdk_call(
        shared_vault,
        tenant.key,
        "/sdk/proxy",
        {"method": "GET", "url": url, "grant_id": bearer_grant},
    )
    assert response.status_code == 400, response.text
    assert error_of(response) == "invalid_url"
    assert BEARER not in response.text
    _nothing_sent(origin, evil)


@pytest.mark.parametrize("make_url", MALFORMED.values(), ids=list(MALFORMED))
def test_token_refuses_a_malformed_url(
    make_url: BadUrl,
    shared_vault: Vault,
    tenant: Tenant,
    bearer_grant: str,
    origin: Upstream,
    evil: Upstream,
) -> None:
    url = make_url(origin.port, evil.port)
    payload = {"grant_id": bearer_grant, "request": {"method": "GET", "url": url}}
    response = sdk_call(shared_vault, tenant.key, "/sdk/token", payload)
    assert response.status_code == 400, response.text
    assert error_of(response) == "invalid_url"
    assert BEARER not in response.text
    _nothing_sent(origin, evil)


@pytest.mark.parametrize(
    "make_url",
    [MALFORMED["userinfo"], MALFORMED["backslash-in-authority"], MALFORMED["percent-in-host"]],
    ids=["userinfo", "backslash", "percent"],
)
def test_transparent_target_header_refuses_a_malformed_origin(
    make_url: BadUrl,
    shared_vault: Vault,
    tenant: Tenant,
    bearer_grant: str,
    origin: Upstream,
    evil: Upstream,
) -> None:
    response = httpx.get(
        f"{shared_vault.base_url}/proxy/{bearer_grant}/x",
        headers={
            "Authorization": f"Bearer {tenant.key}",
            "X-Vaultgate-Target": make_url(origin.port, evil.port).removesuffix("/x"),
        },
        trust_env=False,
    )
    assert response.status_code == 400, response.text
    assert error_of(response) == "invalid_url"
    _nothing_sent(origin, evil)


@pytest.mark.parametrize(
    "url",
    ["https://api.\u043epenai.com/v1/models", "https://xn--pi-6kc.openai.com/v1/models"],
    ids=["cyrillic-o", "punycode-look-alike"],
)
def test_a_look_alike_host_is_not_an_allowed_host(
    url: str, shared_vault: Vault, tenant: Tenant, bearer_grant: str, evil: Upstream
) -> None:
    for path in ("/sdk/proxy", "/sdk/token"):
        payload = (
            {"method": "GET", "url": url, "grant_id": bearer_grant}
            if path == "/sdk/proxy"
            else {"grant_id": bearer_grant, "request": {"method": "GET", "url": url}}
        )
        response = sdk_call(shared_vault, tenant.key, path, payload)
        assert response.status_code == 422, response.text
        assert error_of(response) == "blocked_destination"
        assert BEARER not in response.text
    assert evil.requests == []


def test_another_origin_by_target_header_is_blocked(
    shared_vault: Vault, tenant: Tenant, bearer_grant: str, origin: Upstream, evil: Upstream
) -> None:
    response = httpx.get(
        f"{shared_vault.base_url}/proxy/{bearer_grant}/x",
        headers={"Authorization": f"Bearer {tenant.key}", "X-Vaultgate-Target": evil.origin},
        trust_env=False,
    )
    assert response.status_code == 422, response.text
    assert error_of(response) == "blocked_destination"
    _nothing_sent(origin, evil)


def test_an_upstream_redirect_is_returned_not_followed(
    shared_vault: Vault, tenant: Tenant, bearer_grant: str, origin: Upstream, evil: Upstream
) -> None:
    url = f"{origin.origin}/redirect-to/{evil.port}"
    proxied = sdk_call(
        shared_vault,
        tenant.key,
        "/sdk/proxy",
        {"method": "GET", "url": url, "grant_id": bearer_grant},
    )
    assert proxied.status_code == 200, proxied.text
    assert proxied.json()["status_code"] == 302
    assert proxied.json()["headers"]["location"] == f"{evil.origin}/stolen"
    transparent = httpx.get(
        f"{shared_vault.base_url}/proxy/{bearer_grant}/redirect-to/{evil.port}",
        headers={"Authorization": f"Bearer {tenant.key}"},
        trust_env=False,
    )
    assert transparent.status_code == 302
    assert transparent.headers["location"] == f"{evil.origin}/stolen"
    assert len(origin.requests) == 2
    assert evil.requests == []


# --- allowed_paths and path escapes ----------------------------------------------------------


@pytest.fixture(scope="module")
def narrow_grant(tenant: Tenant, shared_upstream: Upstream) -> str:
    return tenant.store(
        {
            "credential_type": "bearer",
            "credential": {"token": BEARER},
            "policy": {"allowed_paths": ["/v1/public/**"]},
        },
        [shared_upstream.origin],
    )


ESCAPES = {
    "dot-dot": ("/v1/public/../admin", 403, "path_not_allowed"),
    "encoded-dots": ("/v1/public/%2e%2e/admin", 403, "path_not_allowed"),
    "upper-encoded-dots": ("/v1/public/%2E%2E/admin", 403, "path_not_allowed"),
    "mixed-dots": ("/v1/public/.%2E/admin", 403, "path_not_allowed"),
    "double-slash-dots": ("/v1/public//../../admin", 403, "path_not_allowed"),
    "encoded-slash": ("/v1/public/..%2fadmin", 400, "invalid_path"),
    "backslash": ("/v1/public/..\\admin", 400, "invalid_path"),
    "above-root": ("/v1/public/../../../../admin", 400, "invalid_path"),
}


@pytest.mark.parametrize(("path", "status", "code"), ESCAPES.values(), ids=list(ESCAPES))
def test_a_path_escape_is_refused_in_proxy_mode(
    path: str,
    status: int,
    code: str,
    shared_vault: Vault,
    tenant: Tenant,
    narrow_grant: str,
    origin: Upstream,
) -> None:
    url = f"{origin.origin}{path}"
    response = sdk_call(
        shared_vault,
        tenant.key,
        "/sdk/proxy",
        {"method": "GET", "url": url, "grant_id": narrow_grant},
    )
    assert response.status_code == status, response.text
    assert error_of(response) == code
    assert origin.requests == []


@pytest.mark.parametrize(("path", "status", "code"), ESCAPES.values(), ids=list(ESCAPES))
def test_a_path_escape_is_refused_by_the_transparent_proxy(
    path: str,
    status: int,
    code: str,
    shared_vault: Vault,
    tenant: Tenant,
    narrow_grant: str,
    origin: Upstream,
) -> None:
    port = int(shared_vault.base_url.rsplit(":", 1)[1])
    got, body = raw_http(
        port,
        f"GET /proxy/{narrow_grant}{path} HTTP/1.1\n"
        f"Host: 127.0.0.1:{port}\nAuthorization: Bearer {tenant.key}",
    )
    assert got == status, body
    assert envelope_code(body) == code
    assert origin.requests == []


def test_dot_segments_that_stay_inside_are_normalised_then_allowed(
    shared_vault: Vault, tenant: Tenant, narrow_grant: str, origin: Upstream
) -> None:
    url = f"{origin.origin}/v1/admin/../public/./%69tem"
    response = sdk_call(
        shared_vault,
        tenant.key,
        "/sdk/proxy",
        {"method": "GET", "url": url, "grant_id": narrow_grant},
    )
    assert response.status_code == 200, response.text
    assert origin.last().path == "/v1/public/item"
