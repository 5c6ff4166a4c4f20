"""Every client input gets a 4xx envelope naming the problem, and nothing half-written."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from support import Vault

CANARY = "sk-canary-bad-input-7f3a9c"


@pytest.fixture
def app_id(sqlite_vault: Vault) -> str:
    with sqlite_vault.admin() as admin:
        return str(admin.post("/v1/apps", json={"name": "bad-input"}).json()["id"])


def _secret(app_id: str, **overrides: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "app_id": app_id,
        "name": "s",
        "credential_type": "bearer",
        "credential": {"token": CANARY},
        "allowed_hosts": ["api.example.com"],
    }
    body.update(overrides)
    return {k: v for k, v in body.items() if v is not None}


BAD_SECRETS = [
    ("unknown field", {"colour": "red"}, 422, "colour"),
    ("missing credential", {"credential": None}, 422, "credential"),
    ("credential not an object", {"credential": "x"}, 422, "credential"),
    ("token wrong type", {"credential": {"token": 5}}, 422, "credential.token"),
    ("empty token", {"credential": {"token": ""}}, 422, "credential.token"),
    ("blank token", {"credential": {"token": "   "}}, 422, "credential.token"),
    ("oversized token", {"credential": {"token": "a" * (64 * 1024 + 1)}}, 422, "credential.token"),
    ("CR in token", {"credential": {"token": "a\rb"}}, 422, "credential.token"),
    ("LF in token", {"credential": {"token": "a\nb"}}, 422, "credential.token"),
    ("NUL in token", {"credential": {"token": "a\x00b"}}, 422, "credential.token"),
    (
        "unknown credential field",
        {"credential": {"token": "x", "extra": "y"}},
        422,
        "credential.extra",
    ),
    ("unknown credential type", {"credential_type": "kerberos"}, 422, "credential_type"),
    (
        "basic without password",
        {"credential_type": "basic", "credential": {"username": "u"}},
        422,
        "credential.password",
    ),
    (
        "CR in header name",
        {"injection": {"header": "X-A\rB", "format": "{token}"}},
        422,
        "injection.header",
    ),
    (
        "Host as header",
        {"injection": {"header": "Host", "format": "{token}"}},
        422,
        "injection.header",
    ),
    (
        "hop-by-hop header",
        {"injection": {"header": "Transfer-Encoding", "format": "{token}"}},
        422,
        "injection.header",
    ),
    (
        "unknown placeholder",
        {"injection": {"header": "X-Key", "format": "{password}"}},
        422,
        "injection.format",
    ),
    ("no hosts", {"allowed_hosts": []}, 422, "allowed_hosts"),
    ("bad host", {"allowed_hosts": ["https://a.com/path"]}, 422, "allowed_hosts[0]"),
    ("empty name", {"name": ""}, 422, "name"),
    ("name with newline", {"name": "a\nb"}, 422, "name"),
    ("unknown provider", {"provider": "no-such-api"}, 404, None),
    ("bad policy", {"policy": {"allowed_methods": ["FETCH"]}}, 422, "policy"),
]


@pytest.mark.parametrize(
    ("case", "overrides", "status", "field"), BAD_SECRETS, ids=[c[0] for c in BAD_SECRETS]
)
def test_bad_secret_bodies_get_an_envelope_naming_the_field(
    sqlite_vault: Vault,
    app_id: str,
    case: str,
    overrides: dict[str, Any],
    status: int,
    field: str | None,
) -> None:
    body = _secret(app_id)
    body.update(overrides)
    body = {k: v for k, v in body.items() if v is not None}
    with sqlite_vault.admin() as admin:
        response = admin.post("/v1/secrets", json=body)
        assert response.status_code == status, response.text
        detail = response.json()["detail"]
        assert detail["error"] and detail["message"]
        if field is not None:
            assert detail.get("field", "").startswith(field) or field in detail["message"]
        assert CANARY not in response.text
        assert admin.get("/v1/secrets", params={"app_id": app_id}).json()["items"] == []


def test_malformed_json_is_a_400(sqlite_vault: Vault) -> None:
    with sqlite_vault.admin() as admin:
        response = admin.post(
            "/v1/secrets", content=b"{not json", headers={"Content-Type": "application/json"}
        )
    assert response.status_code in (400, 422)
    assert response.json()["detail"]["error"]


def test_duplicate_secret_name_is_409_and_keeps_the_first(sqlite_vault: Vault, app_id: str) -> None:
    with sqlite_vault.admin() as admin:
        first = admin.post("/v1/secrets", json=_secret(app_id))
        assert first.status_code == 201
        second = admin.post("/v1/secrets", json=_secret(app_id))
        assert second.status_code == 409
        assert second.json()["detail"]["error"] == "duplicate_name"
        items = admin.get("/v1/secrets", params={"app_id": app_id}).json()["items"]
    assert [i["secret_id"] for i in items] == [first.json()["secret_id"]]


def test_unknown_app_and_grant_are_404(sqlite_vault: Vault) -> None:
    with sqlite_vault.admin() as admin:
        missing_app = admin.post(
            "/v1/secrets", json=_secret("00000000-0000-4000-8000-000000000000")
        )
        assert missing_app.status_code == 404
        assert missing_app.json()["detail"]["error"] == "app_not_found"
        grant = admin.get("/v1/grants/00000000-0000-4000-8000-000000000000")
        assert grant.status_code == 404
        assert grant.json()["detail"]["error"] == "grant_not_found"
        assert admin.post("/v1/apps/nope/keys", json={"name": "k"}).status_code == 404


def test_app_key_on_management_api_is_403(sqlite_vault: Vault) -> None:
    _, key = sqlite_vault.make_app_key()
    response = httpx.get(
        f"{sqlite_vault.base_url}/v1/apps",
        trust_env=False,
        headers={"Authorization": f"Bearer {key}"},
    )
    assert response.status_code == 403
    assert response.json()["detail"]["error"] == "forbidden"


@pytest.mark.parametrize(
    "header",
    [None, "Bearer nope", "Bearer vg_admin_short", "Basic abc", "Bearer vg_admin_" + "A" * 40],
)
def test_malformed_or_unknown_admin_key_is_401(sqlite_vault: Vault, header: str | None) -> None:
    headers = {"Authorization": header} if header else {}
    response = httpx.get(f"{sqlite_vault.base_url}/v1/apps", headers=headers, trust_env=False)
    assert response.status_code == 401
    assert response.json()["detail"]["error"] == "invalid_key"


def test_revoked_admin_key_is_401(sqlite_vault: Vault) -> None:
    with sqlite_vault.admin() as admin:
        created = admin.post("/v1/admin-keys", json={"name": "temp"}).json()
        assert admin.delete(f"/v1/keys/{created['id']}").status_code == 204
    response = httpx.get(
        f"{sqlite_vault.base_url}/v1/apps",
        trust_env=False,
        headers={"Authorization": f"Bearer {created['api_key']}"},
    )
    assert response.status_code == 401
    assert response.json()["detail"]["error"] == "key_revoked"


def test_oversized_body_is_413(sqlite_vault: Vault, app_id: str) -> None:
    with sqlite_vault.admin() as admin:
        response = admin.post(
            "/v1/secrets",
            content=b"x" * (2 * 1024 * 1024),
            headers={"Content-Type": "application/json"},
        )
    assert response.status_code == 413
    assert response.json()["detail"]["error"] == "body_too_large"


@pytest.mark.parametrize("body", [{"name": ""}, {}, {"name": 5}, {"name": "x", "extra": 1}, []])
def test_bad_app_bodies(sqlite_vault: Vault, body: Any) -> None:
    with sqlite_vault.admin() as admin:
        response = admin.post("/v1/apps", json=body)
        assert 400 <= response.status_code < 500
        assert response.json()["detail"]["error"]
        assert admin.get("/v1/apps").json()["items"] == []


@pytest.mark.parametrize("expires", ["yesterday", "2020-01-01T00:00:00Z", "2999-01-01T00:00:00"])
def test_bad_key_expiry(sqlite_vault: Vault, app_id: str, expires: str) -> None:
    with sqlite_vault.admin() as admin:
        response = admin.post(f"/v1/apps/{app_id}/keys", json={"name": "k", "expires_at": expires})
        assert response.status_code == 422
        assert response.json()["detail"]["field"] == "expires_at"
        assert admin.get(f"/v1/apps/{app_id}/keys").json()["items"] == []
