"""The budget fields of a grant's policy form, on SQLite and PostgreSQL: set, change, remove,
refused input on its field with nothing stored, a clone's own budget, and the same audit event
as the API's PATCH."""

from __future__ import annotations

import html
import re
from typing import Any

import pytest
import sqlalchemy as sa

from vaultgate.server.auth.services import Actor
from vaultgate.server.storage.tables import audit_events

CANARY = "sk-budget-form-canary-7f3e"
KIND, AMOUNT, PER, ALERT = (
    "policy.budget.kind",
    "policy.budget.amount",
    "policy.budget.per",
    "policy.budget.alert_at_percent",
)
FIXTURE = Actor(portal_user="fixture")


def _grant(portal: Any, app: str = "billing") -> str:
    return str(portal.stored_grant(CANARY, name="budgeted", app=app))


def _save(portal: Any, grant_id: str, **fields: str) -> Any:
    return portal.post(f"/portal/grants/{grant_id}/policy", fields)


def _form(**budget: str) -> dict[str, str]:
    names = {"kind": KIND, "amount": AMOUNT, "per": PER, "alert": ALERT}
    return {names[k]: v for k, v in budget.items()}


def _policy(portal: Any, grant_id: str) -> dict[str, Any]:
    return dict(portal.rt.grants.get(grant_id)["policy"])


def _updates(portal: Any, grant_id: str) -> list[dict[str, Any]]:
    c = audit_events.c
    with portal.rt.engine.connect() as conn:
        rows = conn.execute(
            sa.select(c.event, c.outcome, c.portal_user, c.key_id, c.details)
            .where(c.grant_id == grant_id, c.event == "grant:update")
            .order_by(c.seq)
        ).all()
    return [dict(r._mapping) for r in rows]


def _selected(page: str, name: str) -> str:
    select = re.search(rf'<select [^>]*name="{re.escape(name)}".*?</select>', page, re.S)
    assert select, name
    chosen = re.search(r'<option value="([^"]*)" selected>', select[0])
    return chosen[1] if chosen else ""


def _value(page: str, name: str) -> str:
    found = re.search(rf'<input [^>]*name="{re.escape(name)}" [^>]*value="([^"]*)"', page)
    assert found, name
    return found[1]


@pytest.mark.parametrize(
    ("fields", "stored"),
    [
        (
            _form(kind="requests", amount="1000", per="hour"),
            {"requests": 1000, "per": "hour", "alert_at_percent": 80},
        ),
        (
            _form(kind="tokens", amount="100000", per="day", alert="50"),
            {"tokens": 100000, "per": "day", "alert_at_percent": 50},
        ),
        (
            _form(kind="usd", amount="5.00", per="month", alert="90"),
            {"usd": "5.00", "per": "month", "alert_at_percent": 90},
        ),
    ],
    ids=["requests", "tokens", "usd"],
)
def test_a_budget_of_each_kind_is_set_from_the_form_and_prefilled(
    signed_in_db: Any, fields: dict[str, str], stored: dict[str, Any]
) -> None:
    grant_id = _grant(signed_in_db)
    answer = _save(signed_in_db, grant_id, **fields, **{"policy.callers": "agent-1"})
    assert answer.status_code == 303, answer.text
    assert _policy(signed_in_db, grant_id) == {"callers": ["agent-1"], "budget": stored}
    page = signed_in_db.client.get(answer.headers["location"]).text
    kind = fields[KIND]
    assert _selected(page, KIND) == kind
    assert _value(page, AMOUNT) == fields[AMOUNT]
    assert _selected(page, PER) == fields[PER]
    assert _value(page, ALERT) == str(stored["alert_at_percent"])
    limit = fields[AMOUNT] if kind != "usd" else "5.000000"
    assert f"<strong>{limit} {kind} per {fields[PER]}</strong>" in page  # the usage panel
    assert CANARY not in page


def test_a_budget_is_changed_and_the_form_saved_as_prefilled_keeps_it(signed_in_db: Any) -> None:
    grant_id = _grant(signed_in_db)
    first = _save(signed_in_db, grant_id, **_form(kind="tokens", amount="500", per="day"))
    assert first.status_code == 303, first.text
    changed = _save(signed_in_db, grant_id, **_form(kind="usd", amount="0.25", per="hour"))
    assert changed.status_code == 303, changed.text
    budget = {"usd": "0.25", "per": "hour", "alert_at_percent": 80}
    assert _policy(signed_in_db, grant_id)["budget"] == budget
    # Saving another change from the page as it was filled in keeps the budget as it is.
    path = f"/portal/grants/{grant_id}"
    sent = {**signed_in_db.prefilled(path, f"{path}/policy"), "policy.callers": "agent-2"}
    assert signed_in_db.post(f"{path}/policy", sent).status_code == 303
    assert _policy(signed_in_db, grant_id) == {"callers": ["agent-2"], "budget": budget}


def test_choosing_none_removes_the_budget(signed_in_db: Any) -> None:
    grant_id = _grant(signed_in_db)
    _save(signed_in_db, grant_id, **_form(kind="requests", amount="10", per="day"))
    # The amount left in its field does not matter once "none" is chosen.
    answer = _save(
        signed_in_db, grant_id, **_form(kind="", amount="10", per="day"), **{"policy.callers": "a"}
    )
    assert answer.status_code == 303, answer.text
    assert _policy(signed_in_db, grant_id) == {"callers": ["a"]}
    page = signed_in_db.client.get(f"/portal/grants/{grant_id}").text
    assert _selected(page, KIND) == ""
    assert "Budget and usage" not in page


@pytest.mark.parametrize(
    ("fields", "field", "says"),
    [
        (_form(kind="tokens", amount="lots", per="day"), AMOUNT, "valid integer"),
        (_form(kind="tokens", amount="0", per="day"), AMOUNT, "greater than or equal to 1"),
        (_form(kind="requests", amount="1.5", per="day"), AMOUNT, "valid integer"),
        (_form(kind="usd", amount="-1", per="day"), AMOUNT, "more than 0"),
        (_form(kind="usd", amount="1.0000001", per="day"), AMOUNT, "at most 6 decimal places"),
        (_form(kind="usd", amount="five", per="day"), AMOUNT, "amount in USD"),
        (_form(kind="tokens", amount="", per="day"), AMOUNT, "give the number of tokens"),
        (_form(kind="tokens", amount="10", per="week"), PER, "'hour', 'day' or 'month'"),
        (_form(kind="tokens", amount="10", per=""), PER, "Field required"),
        (_form(kind="tokens", amount="10", per="day", alert="0"), ALERT, "greater than"),
        (_form(kind="tokens", amount="10", per="day", alert="101"), ALERT, "less than"),
        (_form(kind="tokens", amount="10", per="day", alert="most"), ALERT, "valid integer"),
        (_form(kind="euros", amount="10", per="day"), KIND, "choose none, requests"),
    ],
    ids=[
        "words-for-tokens",
        "zero-tokens",
        "fraction-of-a-request",
        "negative-usd",
        "usd-7-decimals",
        "words-for-usd",
        "no-amount",
        "per-week",
        "no-per",
        "alert-0",
        "alert-101",
        "words-for-alert",
        "unknown-kind",
    ],
)
def test_bad_budget_input_is_refused_on_its_field_and_nothing_is_stored(
    signed_in_db: Any, fields: dict[str, str], field: str, says: str
) -> None:
    grant_id = _grant(signed_in_db)
    _save(signed_in_db, grant_id, **_form(kind="requests", amount="7", per="hour"))
    before, events = _policy(signed_in_db, grant_id), _updates(signed_in_db, grant_id)
    # The other fields are fine and would change the policy: none of it may stick.
    answer = _save(signed_in_db, grant_id, **fields, **{"policy.callers": "agent-9"})
    assert answer.status_code == 422, answer.text
    assert answer.headers["content-type"].startswith("text/html")
    fid = "f-policy-" + "".join(c if c.isalnum() else "-" for c in field)
    error = re.search(rf'<p class="error" id="{fid}-error">([^<]*)</p>', answer.text)
    assert error, f"no error next to {field}"
    assert says in html.unescape(error[1])
    assert f'href="#{fid}"' in answer.text  # the summary at the top leads to the field
    assert re.search(rf'id="{fid}"[^>]*aria-invalid="true"', answer.text)
    assert _policy(signed_in_db, grant_id) == before
    assert _updates(signed_in_db, grant_id) == events
    if fields[AMOUNT]:  # what was typed is kept for correcting it
        assert _value(answer.text, AMOUNT) == fields[AMOUNT]
    assert CANARY not in answer.text


def test_the_form_without_its_csrf_token_changes_nothing(signed_in_db: Any) -> None:
    grant_id = _grant(signed_in_db)
    answer = signed_in_db.client.post(
        f"/portal/grants/{grant_id}/policy", data=_form(kind="tokens", amount="9", per="day")
    )
    assert answer.status_code == 403
    assert _policy(signed_in_db, grant_id) == {}
    assert _updates(signed_in_db, grant_id) == []


def test_the_change_is_audited_as_the_apis_patch_is(signed_in_db: Any) -> None:
    portal = signed_in_db
    by_form, by_api = _grant(portal, "by-form"), _grant(portal, "by-api")
    answer = _save(portal, by_form, **_form(kind="usd", amount="12.5", per="month", alert="75"))
    assert answer.status_code == 303, answer.text
    key, made = portal.rt.keys.create_key("admin", "budget-form-test", FIXTURE)
    policy = {"budget": {"usd": "12.5", "per": "month", "alert_at_percent": 75}}
    patched = portal.client.patch(
        f"/v1/grants/{by_api}", json={"policy": policy}, headers={"Authorization": f"Bearer {key}"}
    )
    assert patched.status_code == 200, patched.text
    [form_event], [api_event] = _updates(portal, by_form), _updates(portal, by_api)
    assert form_event == {**api_event, "portal_user": portal.email, "key_id": None}
    assert api_event["key_id"] == made["id"]
    assert form_event["details"] == {"policy": policy}
    assert _policy(portal, by_form) == _policy(portal, by_api)


def test_a_clone_edits_its_own_budget_and_shows_the_inherited_one(signed_in_db: Any) -> None:
    portal = signed_in_db
    parent = _grant(portal)
    _save(portal, parent, **_form(kind="tokens", amount="1000", per="day"))
    made = portal.post(f"/portal/grants/{parent}/clone", {"name": "nightly"})
    assert made.status_code == 303, made.text
    clone = made.headers["location"].split("/")[3].split("?")[0]
    page = portal.client.get(f"/portal/grants/{clone}").text
    assert _selected(page, KIND) == "tokens" and _value(page, AMOUNT) == "1000"  # its own copy
    assert "Inherited from" in page and "its ancestors' budgets bind it too" in page

    lowered = _save(portal, clone, **_form(kind="tokens", amount="100", per="day"))
    assert lowered.status_code == 303, lowered.text
    assert _policy(portal, clone)["budget"]["tokens"] == 100
    assert _policy(portal, parent)["budget"]["tokens"] == 1000
    page = portal.client.get(f"/portal/grants/{clone}").text
    assert "<strong>100 tokens per day</strong>" in page
    assert "Inherited from" in page and "<strong>1000 tokens per day</strong>" in page

    # A clone may only narrow: a larger budget, another unit, or none at all is refused.
    for fields in (
        _form(kind="tokens", amount="5000", per="day"),
        _form(kind="requests", amount="10", per="day"),
        _form(kind=""),
    ):
        refused = _save(portal, clone, **fields)
        assert refused.status_code == 422, (fields, refused.text)
        assert 'id="f-policy-policy-budget-kind-error"' in refused.text
        assert "a clone may only narrow" in refused.text
        assert _policy(portal, clone)["budget"]["tokens"] == 100


def test_saving_the_form_keeps_the_approval_rule_it_has_no_fields_for(signed_in_db: Any) -> None:
    portal = signed_in_db
    grant_id = _grant(portal)
    rule = {"requires_approval": {"methods": ["POST"], "approvers": ["ann@example.com"]}}
    portal.rt.grants.update_policy(grant_id, rule, FIXTURE)
    kept = _policy(portal, grant_id)["requires_approval"]
    answer = _save(portal, grant_id, **_form(kind="requests", amount="3", per="day"))
    assert answer.status_code == 303, answer.text
    assert _policy(portal, grant_id) == {
        "requires_approval": kept,
        "budget": {"requests": 3, "per": "day", "alert_at_percent": 80},
    }
