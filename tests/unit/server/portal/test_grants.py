"""Grant pages: policy edits with errors next to the field, clones with a TTL, revocation."""

from __future__ import annotations

from datetime import timedelta

CANARY = "sk-grants-canary-1a2b3c"


def _grant(portal) -> str:
    return str(portal.stored_grant(CANARY))


def test_policy_is_saved_from_the_form(signed_in):
    grant_id = _grant(signed_in)
    answer = signed_in.post(
        f"/portal/grants/{grant_id}/policy",
        {
            "policy.allowed_methods": ["GET", "POST"],
            "policy.allowed_paths": "/v1/*\n/v2/models",
            "policy.schedule.timezone": "Europe/Paris",
            "policy.schedule.windows": "mon-fri 09:00-17:00",
            "policy.ip_allow": "10.0.0.0/8",
            "policy.callers": "agent-1",
            "policy.rate_limit.requests": "10",
            "policy.rate_limit.per_seconds": "60",
            "policy.proxy_only": "on",
        },
    )
    assert answer.status_code == 303
    policy = signed_in.rt.grants.get(grant_id)["policy"]
    assert policy["allowed_methods"] == ["GET", "POST"]
    assert policy["allowed_paths"] == ["/v1/*", "/v2/models"]
    assert policy["schedule"] == {
        "timezone": "Europe/Paris",
        "windows": [
            {"days": ["mon", "tue", "wed", "thu", "fri"], "start": "09:00", "end": "17:00"}
        ],
    }
    assert policy["rate_limit"] == {"requests": 10, "per_seconds": 60}
    assert policy["proxy_only"] is True
    page = signed_in.client.get(f"/portal/grants/{grant_id}")
    assert "mon,tue,wed,thu,fri 09:00-17:00" in page.text  # prefilled for the next edit


def test_invalid_zone_is_shown_next_to_the_zone(signed_in):
    grant_id = _grant(signed_in)
    answer = signed_in.post(
        f"/portal/grants/{grant_id}/policy",
        {"policy.schedule.timezone": "Mars/Olympus", "policy.schedule.windows": "mon 09:00-10:00"},
    )
    assert answer.status_code == 422
    assert 'id="f-policy-policy-schedule-timezone-error"' in answer.text
    assert "IANA time zone" in answer.text
    assert "Mars/Olympus" in answer.text  # kept in the field for correction
    assert signed_in.rt.grants.get(grant_id)["policy"] == {}


def test_invalid_cidr_is_shown_next_to_the_addresses(signed_in):
    grant_id = _grant(signed_in)
    answer = signed_in.post(
        f"/portal/grants/{grant_id}/policy", {"policy.ip_allow": "10.0.0.0/8\n300.1.2.3/8"}
    )
    assert answer.status_code == 422
    assert 'id="f-policy-policy-ip-allow-error"' in answer.text
    assert signed_in.rt.grants.get(grant_id)["policy"] == {}


def test_malformed_window_is_explained(signed_in):
    grant_id = _grant(signed_in)
    answer = signed_in.post(
        f"/portal/grants/{grant_id}/policy",
        {"policy.schedule.timezone": "UTC", "policy.schedule.windows": "weekdays 9-5"},
    )
    assert answer.status_code == 422
    assert 'id="f-policy-policy-schedule-windows-error"' in answer.text
    assert "mon-fri 09:00-17:00" in answer.text


def test_clone_with_a_ttl(signed_in):
    grant_id = _grant(signed_in)
    answer = signed_in.post(
        f"/portal/grants/{grant_id}/clone",
        {"name": "nightly", "ttl_seconds": "2h", "policy.allowed_methods": "GET"},
    )
    assert answer.status_code == 303
    clone_id = answer.headers["location"].split("/")[3].split("?")[0]
    clone = signed_in.rt.grants.get(clone_id)
    assert clone["parent_grant_id"] == grant_id
    assert clone["expires_at"] == signed_in.clock.now + timedelta(hours=2)
    assert clone["policy"]["allowed_methods"] == ["GET"]
    page = signed_in.client.get(answer.headers["location"])
    assert "Clone created" in page.text and clone_id in page.text


def test_clone_wider_than_its_parent_is_refused(signed_in):
    grant_id = _grant(signed_in)
    signed_in.rt.grants.update_policy(grant_id, {"allowed_methods": ["GET"]}, _actor())
    answer = signed_in.post(
        f"/portal/grants/{grant_id}/clone", {"policy.allowed_methods": ["GET", "DELETE"]}
    )
    assert answer.status_code == 422
    clone_form = answer.text.split("/clone")[1]
    assert "a clone may only narrow" in clone_form
    assert (
        len(signed_in.rt.secrets.get(signed_in.rt.grants.get(grant_id)["secret_id"])["grants"]) == 1
    )


def test_bad_ttl_is_refused(signed_in):
    grant_id = _grant(signed_in)
    answer = signed_in.post(f"/portal/grants/{grant_id}/clone", {"ttl_seconds": "soon"})
    assert answer.status_code == 422
    assert 'id="f-clone-ttl-seconds-error"' in answer.text


def test_revoke(signed_in):
    grant_id = _grant(signed_in)
    answer = signed_in.post(f"/portal/grants/{grant_id}/revoke", {})
    assert answer.status_code == 303
    assert signed_in.rt.grants.get(grant_id)["status"] == "revoked"
    page = signed_in.client.get(answer.headers["location"])
    assert "Revoked" in page.text
    assert "Save the policy" not in page.text


def test_unknown_grant_is_a_page_not_json(signed_in):
    answer = signed_in.client.get("/portal/grants/00000000-0000-4000-8000-000000000000")
    assert answer.status_code == 404
    assert answer.headers["content-type"].startswith("text/html")


def _actor():
    from vaultgate.server.auth.services import Actor

    return Actor(portal_user="fixture")


def test_the_grant_page_charts_its_budget_usage(signed_in):
    from vaultgate.server.budgets import Ledger, Spend
    from vaultgate.server.policy.models import parse_policy

    grant_id = _grant(signed_in)
    page = signed_in.client.get(f"/portal/grants/{grant_id}")
    assert "Budget and usage" not in page.text  # no budget, no chart
    doc = {"budget": {"tokens": 1000, "per": "day"}}
    signed_in.rt.grants.update_policy(grant_id, doc, _actor_of_fixture())
    budget = parse_policy(doc).budget
    at = signed_in.rt.clock().timestamp()
    with signed_in.rt.engine.begin() as conn:
        ledger = Ledger(conn)
        assert ledger.use(at, ((grant_id, budget),)) is None
        ledger.spend(at, ((grant_id, budget),), Spend(300, 150, 0))
        ledger.flush()
    page = signed_in.client.get(f"/portal/grants/{grant_id}")
    assert page.status_code == 200
    assert "<strong>1000 tokens per day</strong>" in page.text
    assert '<span class="budget-spent">450</span>' in page.text
    assert '<span class="budget-remaining">550</span>' in page.text
    assert '<svg role="img"' in page.text and 'height="45"' in page.text  # 45% of the bar
    assert "<td>1</td><td>300</td><td>150</td><td>0.000000</td><td>45%</td>" in page.text
    assert CANARY not in page.text
    # Saving another change from the page as prefilled keeps the budget it shows.
    path = f"/portal/grants/{grant_id}"
    sent = {**signed_in.prefilled(path, f"{path}/policy"), "policy.callers": "agent-1"}
    saved = signed_in.post(f"{path}/policy", sent)
    assert saved.status_code == 303
    assert signed_in.rt.grants.get(grant_id)["policy"]["budget"]["tokens"] == 1000


def _actor_of_fixture():
    from vaultgate.server.auth.services import Actor

    return Actor(portal_user="fixture")
