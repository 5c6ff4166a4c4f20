"""Protocol attacks: the caller's own credentials, framing tricks, oversized bodies, forged or
replayed signatures, another app's grant, and a proxy-only grant asked for its credential."""

from __future__ import annotations

import json
import time

import alter_sdk
import httpx
import pytest

from support import Upstream, Vault
from support.injection import (
    SHAPES,
    Shape,
    Tenant,
    envelope_code,
    error_of,
    raw_http,
    sdk_call,
    shape_ids,
)
from vaultgate import AlterVault
from vaultgate import RestrictedGrantRequiresProxyError as OurRestrictedError

CALLER_OWN = {
    "Authorization": "Bearer caller-own-token",
    "Cookie": "session=caller-cookie",
    "Proxy-Authorization": "Basic caller-proxy",
    "X-Api-Key": "caller-own-api-key",
}
TEN_MIB = 10 * 1024 * 1024


def _port(vault: Vault) -> int:
    return int(vault.base_url.rsplit(":", 1)[1])


def _no_caller_credential(got_headers: list[tuple[str, str]]) -> None:
    text = repr(got_headers)
    for value in ("caller-own-token", "caller-cookie", "caller-proxy", "caller-own-api-key"):
        assert value not in text, f"{value} reached the upstream"


@pytest.mark.parametrize("shape", SHAPES, ids=shape_ids())
def test_proxy_mode_strips_the_callers_own_credentials(
    shape: Shape, shared_vault: Vault, tenant: Tenant, grants: dict[str, str], origin: Upstream
) -> None:
    payload = {
        "method": "GET",
        "url": f"{origin.origin}/v1/echo",
        "grant_id": grants[shape.id],
        "headers": CALLER_OWN,
    }
    response = sdk_call(shared_vault, tenant.key, "/sdk/proxy", payload)
    assert response.status_code == 200, response.text
    got = origin.last()
    _no_caller_credential(got.raw_headers)
    assert "cookie" not in got.headers
    for name, value in shape.headers.items():
        assert got.headers[name] == value


@pytest.mark.parametrize("shape", SHAPES, ids=shape_ids())
def test_transparent_proxy_strips_the_callers_own_credentials(
    shape: Shape, shared_vault: Vault, tenant: Tenant, grants: dict[str, str], origin: Upstream
) -> None:
    headers = {**CALLER_OWN, "Authorization": f"Bearer {tenant.key}"}
    response = httpx.get(
        f"{shared_vault.base_url}/proxy/{grants[shape.id]}/v1/echo",
        headers=headers,
        trust_env=False,
    )
    assert response.status_code == 200, response.text
    got = origin.last()
    _no_caller_credential(got.raw_headers)
    assert tenant.key not in repr(got.raw_headers)
    assert "cookie" not in got.headers and "proxy-authorization" not in got.headers


async def test_retrieve_mode_overrides_the_callers_authorization(
    shared_vault: Vault, tenant: Tenant, grants: dict[str, str], origin: Upstream
) -> None:
    async with AlterVault(api_key=tenant.key, base_url=shared_vault.base_url) as vault:
        await vault.request(
            "GET",
            f"{origin.origin}/v1/echo",
            grant_id=grants["bearer"],
            headers={"Authorization": "Bearer caller-own-token", "Cookie": "s=caller-cookie"},
        )
    got = origin.last()
    _no_caller_credential(got.raw_headers)
    assert got.headers["authorization"] == f"Bearer {SHAPES[0].secrets[0]}"


# --- framing and size --------------------------------------------------------------------------


def test_content_length_with_transfer_encoding_is_refused(
    shared_vault: Vault, tenant: Tenant, grants: dict[str, str], origin: Upstream
) -> None:
    body = b"5\r\nhello\r\n0\r\n\r\n"
    status, answer = raw_http(
        _port(shared_vault),
        f"POST /proxy/{grants['bearer']}/v1/echo HTTP/1.1\n"
        f"Host: vault\nAuthorization: Bearer {tenant.key}\n"
        "Content-Length: 5\nTransfer-Encoding: chunked",
        body,
    )
    assert status == 400, answer
    assert origin.requests == []


def test_a_declared_oversized_body_is_refused_before_it_is_read(
    shared_vault: Vault, tenant: Tenant, grants: dict[str, str], origin: Upstream
) -> None:
    status, answer = raw_http(
        _port(shared_vault),
        f"POST /proxy/{grants['bearer']}/v1/echo HTTP/1.1\n"
        f"Host: vault\nAuthorization: Bearer {tenant.key}\nContent-Length: {TEN_MIB + 1}",
    )
    assert status == 413
    assert envelope_code(answer) == "body_too_large"
    assert origin.requests == []


def test_an_endless_streamed_body_is_cut_off_with_413(
    shared_vault: Vault, tenant: Tenant, grants: dict[str, str], origin: Upstream
) -> None:
    def endless() -> object:
        chunk = b"x" * 65536
        for _ in range(TEN_MIB // len(chunk) + 8):
            yield chunk

    response = httpx.post(
        f"{shared_vault.base_url}/proxy/{grants['bearer']}/v1/echo",
        content=endless(),  # type: ignore[arg-type]
        headers={"Authorization": f"Bearer {tenant.key}"},
        trust_env=False,
        timeout=60,
    )
    assert response.status_code == 413, response.text
    assert error_of(response) == "body_too_large"
    # The stream went to the grant's own upstream as it came (that is what streaming means);
    # the vault cut it off there and the caller learns why.


def test_an_oversized_sdk_proxy_body_is_refused(
    shared_vault: Vault, tenant: Tenant, grants: dict[str, str], origin: Upstream
) -> None:
    status, answer = raw_http(
        _port(shared_vault),
        "POST /sdk/proxy HTTP/1.1\nHost: vault\nContent-Type: application/json\n"
        f"x-api-key: {tenant.key}\nContent-Length: {TEN_MIB + 1}",
    )
    assert status == 413
    assert envelope_code(answer) == "body_too_large"


# --- signatures ----------------------------------------------------------------------------------


def _token_payload(grant: str, origin: Upstream) -> dict[str, object]:
    return {"grant_id": grant, "request": {"method": "GET", "url": f"{origin.origin}/x"}}


@pytest.mark.parametrize(
    ("tamper", "code"),
    [
        ({"X-Alter-Signature": "0" * 64}, "invalid_signature"),
        ({"X-Alter-Signature": "not-hex"}, "invalid_signature"),
        ({"X-Alter-Signature": ""}, "missing_signature"),
        ({"X-Alter-Timestamp": "soon"}, "invalid_signature"),
        ({"X-Alter-Content-SHA256": "0" * 64}, "content_hash_mismatch"),
        ({"X-Alter-Caller": "someone-else"}, "invalid_signature"),
    ],
    ids=["wrong", "malformed", "missing", "bad-timestamp", "body-hash", "unsigned-caller"],
)
def test_a_bad_signature_is_401_and_releases_nothing(
    tamper: dict[str, str],
    code: str,
    shared_vault: Vault,
    tenant: Tenant,
    grants: dict[str, str],
    origin: Upstream,
) -> None:
    payload = _token_payload(grants["bearer"], origin)
    response = sdk_call(shared_vault, tenant.key, "/sdk/token", payload, extra_headers=tamper)
    assert response.status_code == 401, response.text
    assert error_of(response) == code
    assert "access_token" not in response.text
    assert SHAPES[0].secrets[0] not in response.text


# -301 is one second past the 300 s window and stays past it: the whole-second stamp and the time
# the request takes only age it further. A future stamp shrinks by that time instead (the stamp is
# truncated, then the call travels), so +301 was accepted whenever the two passed one second, as
# on a loaded machine; +330 is past the window by more than any such delay.
@pytest.mark.parametrize("skew", [-301, 330, -86400])
def test_a_stale_or_future_timestamp_is_401(
    skew: int, shared_vault: Vault, tenant: Tenant, grants: dict[str, str], origin: Upstream
) -> None:
    payload = _token_payload(grants["bearer"], origin)
    now = int(time.time()) + skew
    response = sdk_call(shared_vault, tenant.key, "/sdk/token", payload, now=now)
    assert response.status_code == 401, response.text
    assert error_of(response) == "stale_request"


def test_a_replayed_request_is_401_the_second_time(
    shared_vault: Vault, tenant: Tenant, grants: dict[str, str], origin: Upstream
) -> None:
    payload = _token_payload(grants["bearer"], origin)
    now, nonce = int(time.time()), "a" * 32
    first = sdk_call(shared_vault, tenant.key, "/sdk/token", payload, now=now, nonce=nonce)
    again = sdk_call(shared_vault, tenant.key, "/sdk/token", payload, now=now, nonce=nonce)
    assert first.status_code == 200, first.text
    assert again.status_code == 401
    assert error_of(again) == "replayed_request"
    assert "access_token" not in again.text


def test_a_replay_with_a_fresh_nonce_header_put_in_front_is_401(
    shared_vault: Vault, tenant: Tenant, grants: dict[str, str], origin: Upstream
) -> None:
    """A repeated header counts once, the first: the signature and the replay check agree."""
    from vaultgate.injection.signing import sign_request

    body = json.dumps(_token_payload(grants["bearer"], origin)).encode()
    now, nonce = int(time.time()), "c" * 32
    signed = sign_request(tenant.key, "POST", "/sdk/token", body, now=now, nonce=nonce)
    headers = [*signed.items(), ("x-api-key", tenant.key), ("content-type", "application/json")]
    url = shared_vault.base_url + "/sdk/token"
    first = httpx.post(url, content=body, headers=headers, trust_env=False)
    replay = [("X-Alter-Nonce", "f" * 32), *headers]
    again = httpx.post(url, content=body, headers=replay, trust_env=False)
    assert first.status_code == 200, first.text
    assert again.status_code == 401, again.text
    assert "access_token" not in again.text


def test_a_signature_made_with_another_key_is_401(
    shared_vault: Vault, tenant: Tenant, grants: dict[str, str], origin: Upstream
) -> None:
    _, other_key = shared_vault.make_app_key("signer")
    payload = _token_payload(grants["bearer"], origin)
    body = json.dumps(payload).encode()
    from vaultgate.injection.signing import sign_request

    headers = sign_request(
        other_key, "POST", "/sdk/token", body, now=int(time.time()), nonce="b" * 32
    )
    response = httpx.post(
        f"{shared_vault.base_url}/sdk/token",
        content=body,
        headers={**headers, "x-api-key": tenant.key},
        trust_env=False,
    )
    assert response.status_code == 401
    assert error_of(response) == "invalid_signature"


# --- tenancy -------------------------------------------------------------------------------------


def test_another_apps_grant_answers_exactly_like_a_missing_one(
    shared_vault: Vault, tenant: Tenant, grants: dict[str, str], origin: Upstream
) -> None:
    _, intruder = shared_vault.make_app_key("intruder")
    missing = "6f1c1a57-3f64-4b43-9a3e-2a7c2d0b9e11"
    answers: dict[str, list[tuple[int, object]]] = {}
    for grant in (grants["bearer"], missing):
        url = f"{origin.origin}/x"
        token = sdk_call(
            shared_vault,
            intruder,
            "/sdk/token",
            {"grant_id": grant, "request": {"method": "GET", "url": url}},
        )
        proxied = sdk_call(
            shared_vault, intruder, "/sdk/proxy", {"method": "GET", "url": url, "grant_id": grant}
        )
        transparent = httpx.get(
            f"{shared_vault.base_url}/proxy/{grant}/x",
            headers={"Authorization": f"Bearer {intruder}"},
            trust_env=False,
        )
        answers[grant] = [(r.status_code, r.json()) for r in (token, proxied, transparent)]
    assert answers[grants["bearer"]] == answers[missing]
    assert all(status == 404 for status, _ in answers[missing])
    assert all(body["detail"]["error"] == "grant_not_found" for _, body in answers[missing])  # type: ignore[index]
    assert origin.requests == []


async def test_official_client_maps_another_apps_grant_to_grant_not_found(
    shared_vault: Vault,
    grants: dict[str, str],
    origin: Upstream,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    _, intruder = shared_vault.make_app_key("intruder-official")
    monkeypatch.setenv("ALTER_BASE_URL", shared_vault.base_url)
    async with alter_sdk.App(api_key=intruder) as app:
        with pytest.raises(alter_sdk.GrantNotFoundError):
            await app.request("GET", f"{origin.origin}/x", grant_id=grants["bearer"])
        with pytest.raises(alter_sdk.GrantNotFoundError):
            await app.proxy_request("GET", f"{origin.origin}/x", grant_id=grants["bearer"])
    assert origin.requests == []


# --- proxy-only grants ---------------------------------------------------------------------------

PROXY_ONLY_TOKEN = "canary-proxy-only-Jd84Wc"


@pytest.fixture(scope="module")
def proxy_only_grant(tenant: Tenant, shared_upstream: Upstream) -> str:
    return tenant.store(
        {
            "credential_type": "bearer",
            "credential": {"token": PROXY_ONLY_TOKEN},
            "policy": {"proxy_only": True},
        },
        [shared_upstream.origin],
    )


async def test_a_proxy_only_grant_never_answers_token_requests(
    shared_vault: Vault,
    tenant: Tenant,
    proxy_only_grant: str,
    origin: Upstream,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("ALTER_BASE_URL", shared_vault.base_url)
    async with alter_sdk.App(api_key=tenant.key) as app:
        with pytest.raises(alter_sdk.RestrictedGrantRequiresProxyError):
            await app.request("GET", f"{origin.origin}/x", grant_id=proxy_only_grant)
        assert origin.requests == []
        result = await app.proxy_request("GET", f"{origin.origin}/x", grant_id=proxy_only_grant)
    assert result.status_code == 200
    assert origin.last().headers["authorization"] == f"Bearer {PROXY_ONLY_TOKEN}"
    raw = sdk_call(shared_vault, tenant.key, "/sdk/token", _token_payload(proxy_only_grant, origin))
    assert error_of(raw) == "restricted_grant_requires_proxy"
    assert PROXY_ONLY_TOKEN not in raw.text


async def test_our_sdk_raises_the_same_for_a_proxy_only_grant(
    shared_vault: Vault, tenant: Tenant, proxy_only_grant: str, origin: Upstream
) -> None:
    async with AlterVault(api_key=tenant.key, base_url=shared_vault.base_url) as vault:
        with pytest.raises(OurRestrictedError):
            await vault.request("GET", f"{origin.origin}/x", grant_id=proxy_only_grant)
    assert origin.requests == []
