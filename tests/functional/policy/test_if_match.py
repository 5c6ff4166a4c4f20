"""A grant's policy edited by two clients at once: ``GET`` hands out an ``ETag``, a ``PATCH`` with
``If-Match`` naming an older version is a 412 that writes nothing (no policy change, no
``grant:update`` event), and the same PATCH naming the current version goes through.

The attack is the ordinary read-modify-write race: an admin tool reads the policy, someone
narrows it meanwhile (adds an approval rule), and the tool's write would silently widen it back.
"""

from __future__ import annotations

from typing import Any

import pytest

from support import Upstream, Vault
from support.audit import events
from support.injection import Tenant

TOKEN = "canary-ifmatch-Qw7Ze2"
APPROVAL = {"requires_approval": {"methods": ["POST"], "approvers": ["ann@example.com"]}}


def _store(tenant: Tenant, origin: Upstream) -> str:
    body: dict[str, Any] = {
        "credential_type": "bearer",
        "credential": {"token": TOKEN},
        "policy": {"allowed_methods": ["GET", "POST"]},
    }
    return tenant.store(body, [origin.origin])


def _updates(vault: Vault, grant: str) -> int:
    return len(events(vault, grant_id=grant, event="grant:update"))


def test_a_write_based_on_an_older_policy_is_refused_and_writes_nothing(
    shared_vault: Vault, tenant: Tenant, origin: Upstream
) -> None:
    grant = _store(tenant, origin)
    with shared_vault.admin() as admin:
        read = admin.get(f"/v1/grants/{grant}")
        tag = read.headers["etag"]
        assert tag.startswith('"') and tag.endswith('"')
        # Someone else narrows the policy after that read.
        narrowed = {**read.json()["policy"], **APPROVAL}
        other = admin.patch(f"/v1/grants/{grant}", json={"policy": narrowed})
        assert other.status_code == 200, other.text
        assert other.headers["etag"] != tag
        before = _updates(shared_vault, grant)

        # The first tool writes what it read plus its own change, naming the version it read.
        stale = {**read.json()["policy"], "callers": ["agent-1"]}
        refused = admin.patch(
            f"/v1/grants/{grant}", json={"policy": stale}, headers={"If-Match": tag}
        )
        assert refused.status_code == 412, refused.text
        detail = refused.json()["detail"]
        assert detail["error"] == "policy_changed"
        assert "changed since it was read" in detail["message"]
        assert refused.headers["etag"] == other.headers["etag"]
        assert TOKEN not in refused.text
        assert admin.get(f"/v1/grants/{grant}").json()["policy"] == other.json()["policy"]
        assert _updates(shared_vault, grant) == before

        # Its twin: read again, re-apply on top of the current version, name that one.
        current = admin.get(f"/v1/grants/{grant}")
        merged = {**current.json()["policy"], "callers": ["agent-1"]}
        saved = admin.patch(
            f"/v1/grants/{grant}",
            json={"policy": merged},
            headers={"If-Match": current.headers["etag"]},
        )
        assert saved.status_code == 200, saved.text
        kept = other.json()["policy"]["requires_approval"]
        assert saved.json()["policy"]["requires_approval"] == kept
        assert saved.json()["policy"]["callers"] == ["agent-1"]
        assert saved.headers["etag"] == admin.get(f"/v1/grants/{grant}").headers["etag"]
        assert _updates(shared_vault, grant) == before + 1


@pytest.mark.parametrize(
    ("if_match", "status"),
    [
        ("*", 200),  # any existing version
        (None, 200),  # no condition: as before
        ('W/"whatever"', 412),  # a weak tag never matches strongly
        ('"0123", "4567"', 412),  # none of them is the stored version
        ('"a,b"', 412),  # a comma inside the quotes is part of a (foreign) tag, not a list
        ("0123", 400),  # not a quoted tag
    ],
)
def test_if_match_forms(
    shared_vault: Vault, tenant: Tenant, origin: Upstream, if_match: str | None, status: int
) -> None:
    grant = _store(tenant, origin)
    headers = {} if if_match is None else {"If-Match": if_match}
    with shared_vault.admin() as admin:
        answer = admin.patch(
            f"/v1/grants/{grant}", json={"policy": {"callers": ["x"]}}, headers=headers
        )
        assert answer.status_code == status, answer.text
        stored = admin.get(f"/v1/grants/{grant}").json()["policy"]
    assert (stored.get("callers") == ["x"]) is (status == 200)
    if status == 400:
        assert answer.json()["detail"]["error"] == "invalid_if_match"
        assert "If-Match" in answer.json()["detail"]["message"]


def test_a_list_naming_the_current_version_matches(
    shared_vault: Vault, tenant: Tenant, origin: Upstream
) -> None:
    grant = _store(tenant, origin)
    with shared_vault.admin() as admin:
        tag = admin.get(f"/v1/grants/{grant}").headers["etag"]
        answer = admin.patch(
            f"/v1/grants/{grant}",
            json={"policy": {"callers": ["y"]}},
            headers={"If-Match": f'"stale", {tag}'},
        )
    assert answer.status_code == 200, answer.text


def test_a_weakened_tag_never_matches_and_several_lines_are_one_list(
    shared_vault: Vault, tenant: Tenant, origin: Upstream
) -> None:
    grant = _store(tenant, origin)
    with shared_vault.admin() as admin:
        tag = admin.get(f"/v1/grants/{grant}").headers["etag"]
        weak = admin.patch(
            f"/v1/grants/{grant}",
            json={"policy": {"callers": ["w"]}},
            headers={"If-Match": f"W/{tag}"},  # If-Match compares strongly (RFC 9110 13.1.1)
        )
        assert weak.status_code == 412, weak.text
        lines = admin.patch(
            f"/v1/grants/{grant}",
            json={"policy": {"callers": ["z"]}},
            headers=[("If-Match", '"stale"'), ("If-Match", tag)],
        )
        assert lines.status_code == 200, lines.text
        bad_line = admin.patch(
            f"/v1/grants/{grant}",
            json={"policy": {"callers": ["q"]}},
            headers=[("If-Match", lines.headers["etag"]), ("If-Match", "unquoted")],
        )
        assert bad_line.status_code == 400, bad_line.text
        assert admin.get(f"/v1/grants/{grant}").json()["policy"]["callers"] == ["z"]
