"""The grant page's policy form saved after the policy changed elsewhere (API, CLI, another tab):
refused with the page showing the current policy, nothing written; saved from a fresh page, it
goes through. On SQLite and PostgreSQL.

Without the check the stale form would be a silent lost update: it resends every field as the
page showed it, so a change made meanwhile (callers narrowed, a time window, a rate limit) would
be widened back without anyone seeing it.
"""

from __future__ import annotations

import html
import re
from typing import Any

import sqlalchemy as sa

from vaultgate.server.auth.services import Actor
from vaultgate.server.portal.views.grants import STALE_FORM
from vaultgate.server.storage.tables import audit_events

CANARY = "sk-stale-form-canary-3c1d"
FIXTURE = Actor(portal_user="fixture")
APPROVAL = {"requires_approval": {"methods": ["POST"], "approvers": ["ann@example.com"]}}


def _grant(portal: Any) -> str:
    return str(portal.stored_grant(CANARY, name="edited-twice"))


def _updates(portal: Any, grant_id: str) -> int:
    query = sa.select(sa.func.count()).where(
        audit_events.c.grant_id == grant_id, audit_events.c.event == "grant:update"
    )
    with portal.rt.engine.connect() as conn:
        return int(conn.execute(query).scalar_one())


def test_a_form_loaded_before_another_change_is_refused_and_shows_the_change(
    signed_in_db: Any,
) -> None:
    portal = signed_in_db
    grant_id = _grant(portal)
    path = f"/portal/grants/{grant_id}"
    loaded = portal.prefilled(path, f"{path}/policy")
    assert loaded["policy_etag"].startswith('"')

    # Meanwhile, the API narrows the callers and adds an approval rule.
    portal.rt.grants.update_policy(grant_id, {"callers": ["ops-bot"], **APPROVAL}, FIXTURE)
    changed = portal.rt.grants.get(grant_id)["policy"]
    before = _updates(portal, grant_id)

    stale = portal.post(
        f"{path}/policy",
        {**loaded, "policy.rate_limit.requests": "5", "policy.rate_limit.per_seconds": "60"},
    )
    assert stale.status_code == 409, stale.text
    assert STALE_FORM in html.unescape(stale.text)
    assert "ops-bot" in stale.text  # the form now shows the current callers
    assert CANARY not in stale.text
    assert portal.rt.grants.get(grant_id)["policy"] == changed
    assert _updates(portal, grant_id) == before

    # The twin: the page as it is now, the same change, saved.
    fresh = portal.prefilled(path, f"{path}/policy")
    assert fresh["policy_etag"] != loaded["policy_etag"]
    sent = {**fresh, "policy.rate_limit.requests": "5", "policy.rate_limit.per_seconds": "60"}
    saved = portal.post(f"{path}/policy", sent)
    assert saved.status_code == 303, saved.text
    policy = portal.rt.grants.get(grant_id)["policy"]
    assert policy["callers"] == ["ops-bot"]
    assert policy["rate_limit"] == {"requests": 5, "per_seconds": 60}
    assert policy["requires_approval"] == changed["requires_approval"]  # not on the form: kept
    assert _updates(portal, grant_id) == before + 1


def test_a_refused_field_keeps_the_version_the_page_was_loaded_from(signed_in_db: Any) -> None:
    """A 422 redisplay carries the tag of the page first loaded, not of the policy as it is when
    the page is redisplayed: fixing the field and saving still notices a change made meanwhile."""
    portal = signed_in_db
    grant_id = _grant(portal)
    path = f"/portal/grants/{grant_id}"
    loaded = portal.prefilled(path, f"{path}/policy")
    bad = portal.post(f"{path}/policy", {**loaded, "policy.ip_allow": "300.1.2.3/8"})
    assert bad.status_code == 422
    shown = re.search(r'name="policy_etag" value="([^"]*)"', bad.text)
    assert shown and html.unescape(shown[1]) == loaded["policy_etag"]
    portal.rt.grants.update_policy(grant_id, {"callers": ["ops-bot"]}, FIXTURE)
    again = portal.post(f"{path}/policy", {**loaded, "policy.ip_allow": "10.0.0.0/8"})
    assert again.status_code == 409
    assert portal.rt.grants.get(grant_id)["policy"] == {"callers": ["ops-bot"]}


def test_fields_the_form_cannot_show_come_from_the_stored_policy_only(signed_in_db: Any) -> None:
    """``keep``: a kept field is the stored one, read under the lock; one sent anyway is not
    taken (nor is one the stored policy lacks added)."""
    portal = signed_in_db
    grant_id = _grant(portal)
    sent = {"callers": ["a"], **APPROVAL}
    kept = ("requires_approval",)
    portal.rt.grants.update_policy(grant_id, sent, FIXTURE, keep=kept)
    assert portal.rt.grants.get(grant_id)["policy"] == {"callers": ["a"]}
    portal.rt.grants.update_policy(grant_id, {"callers": ["b"], **APPROVAL}, FIXTURE)
    stored = portal.rt.grants.get(grant_id)["policy"]["requires_approval"]
    other = {"requires_approval": {"methods": ["GET"], "approvers": ["bob@example.com"]}}
    portal.rt.grants.update_policy(grant_id, {"callers": ["c"], **other}, FIXTURE, keep=kept)
    assert portal.rt.grants.get(grant_id)["policy"] == {
        "callers": ["c"],
        "requires_approval": stored,
    }
