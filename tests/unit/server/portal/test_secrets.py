"""The Managed Secrets tab: adding, showing, rotating and deleting, and every kind of bad input."""

from __future__ import annotations

import html
import re

import sqlalchemy as sa

from vaultgate.server.storage.tables import audit_events

CANARY = "sk-CANARY-7f3a9c0e1d2b"
GRANT = re.compile(r'id="new-grant-id">([0-9a-f-]{36})<')


def _openai(portal, app_id, **extra):
    data = {
        "app_id": app_id,
        "name": "openai-prod",
        "credential.token": CANARY,
        "allowed_hosts": "http://127.0.0.1:9",
    }
    return portal.post("/portal/secrets/new/openai", {**data, **extra})


def test_add_a_provider_secret_shows_its_grant_and_snippets(signed_in):
    app_id = signed_in.make_app()
    answer = _openai(signed_in, app_id)
    assert answer.status_code == 303
    page = signed_in.client.get(answer.headers["location"])
    grant_id = GRANT.search(page.text)[1]
    [stored] = signed_in.rt.secrets.list(app_id)
    assert signed_in.rt.secrets.get(stored["secret_id"])["grant_id"] == grant_id
    assert stored["allowed_hosts"] == ["http://127.0.0.1:9"]
    text = html.unescape(page.text)
    assert "from vaultgate import AlterVault, HttpMethod" in text
    assert f'grant_id="{grant_id}"' in text
    assert f"/proxy/{grant_id}/" in text
    assert CANARY not in page.text


def test_the_action_is_audited_with_the_portal_user(signed_in):
    _openai(signed_in, signed_in.make_app())
    with signed_in.rt.engine.connect() as conn:
        row = conn.execute(
            sa.select(audit_events.c.portal_user, audit_events.c.source_ip).where(
                audit_events.c.event == "secret:create"
            )
        ).one()
    assert row.portal_user == signed_in.email
    assert row.source_ip == "testclient"


def test_empty_form_shows_every_error_and_saves_nothing(signed_in):
    app_id = signed_in.make_app()
    answer = signed_in.post("/portal/secrets/new/custom", {})
    assert answer.status_code == 422
    for field in (
        "f-name-error",
        "f-app-id-error",
        "f-credential-type-error",
        "f-allowed-hosts-error",
    ):
        assert f'id="{field}"' in answer.text, field
    assert signed_in.rt.secrets.list(app_id) == []


def test_value_is_never_sent_back_after_an_error(signed_in):
    app_id = signed_in.make_app()
    answer = _openai(signed_in, app_id, allowed_hosts="not a host!")
    assert answer.status_code == 422
    assert 'id="f-allowed-hosts-error"' in answer.text
    assert CANARY not in answer.text
    assert 'value="not a host!"' not in answer.text  # textareas hold their text as content
    assert "not a host!" in answer.text  # the non-secret field is kept for correction
    assert signed_in.rt.secrets.list(app_id) == []


def test_provider_key_format_is_checked(signed_in):
    app_id = signed_in.make_app()
    answer = _openai(signed_in, app_id, **{"credential.token": "pk-wrong-service-key"})
    assert answer.status_code == 422
    assert re.search(
        r'id="f-credential-token-error">[^<]*does not look like an OpenAI key', answer.text
    )
    assert "pk-wrong-service-key" not in answer.text
    assert 'data-pattern="^sk-"' in answer.text  # the same check runs in the page before saving


def test_oversized_value_is_refused_next_to_its_field(signed_in):
    app_id = signed_in.make_app()
    big = "sk-" + "A" * (100 * 1024)
    answer = _openai(signed_in, app_id, **{"credential.token": big})
    assert answer.status_code == 422
    assert "longer than 64 KiB" in answer.text
    assert "AAAAAAAAAA" not in answer.text
    assert signed_in.rt.secrets.list(app_id) == []


def test_one_megabyte_value_is_refused_with_a_page(signed_in):
    app_id = signed_in.make_app()
    answer = _openai(signed_in, app_id, **{"credential.token": "sk-" + "B" * (1024 * 1024)})
    assert answer.status_code == 413
    assert answer.headers["content-type"].startswith("text/html")
    assert "nothing was read or saved" in answer.text
    assert "BBBBBBBBBB" not in answer.text
    assert signed_in.rt.secrets.list(app_id) == []


def test_markup_in_names_is_escaped_everywhere(signed_in):
    app_id = signed_in.make_app("<b>app</b>")
    evil = '<script>alert("x")</script>'
    answer = _openai(signed_in, app_id, name=evil)
    assert answer.status_code == 303
    pages = [
        signed_in.client.get(answer.headers["location"]),
        signed_in.client.get(f"/portal/secrets?app_id={app_id}"),
        signed_in.client.get("/portal/apps"),
        signed_in.client.get("/portal/audit"),
    ]
    for page in pages:
        assert page.status_code == 200
        assert evil not in page.text and "<b>app</b>" not in page.text
    assert "&lt;script&gt;alert(&#34;x&#34;)&lt;/script&gt;" in pages[0].text
    failed = signed_in.post("/portal/secrets/new/custom", {"app_id": app_id, "name": evil})
    assert evil not in failed.text


def test_custom_secret_with_rules(signed_in):
    app_id = signed_in.make_app()
    answer = signed_in.post(
        "/portal/secrets/new/custom",
        {
            "app_id": app_id,
            "name": "internal",
            "credential_type": "api_key",
            "credential.token": CANARY,
            "injection.header": "X-Token",
            "injection.format": "Key {token}",
            "injection.additional[0].target": "query",
            "injection.additional[0].name": "key",
            "injection.additional[0].value": "{token}",
            "allowed_hosts": "api.internal.example",
        },
    )
    assert answer.status_code == 303, answer.text
    [stored] = signed_in.rt.secrets.list(app_id)
    assert stored["injection"]["header"] == "X-Token"
    assert stored["injection"]["additional"] == [
        {"target": "query", "name": "key", "value": "{token}"}
    ]


def test_custom_rule_errors_land_next_to_the_rule(signed_in):
    app_id = signed_in.make_app()
    answer = signed_in.post(
        "/portal/secrets/new/custom",
        {
            "app_id": app_id,
            "name": "internal",
            "credential_type": "bearer",
            "credential.token": CANARY,
            "injection.header": "Host",
            "allowed_hosts": "api.x.example",
        },
    )
    assert answer.status_code == 422
    assert 'id="f-injection-header-error"' in answer.text
    assert CANARY not in answer.text


def test_rotate_and_delete(signed_in):
    app_id = signed_in.make_app()
    location = _openai(signed_in, app_id).headers["location"]
    secret_id = location.split("/")[3].split("?")[0]
    rotated = signed_in.post(
        f"/portal/secrets/{secret_id}/rotate", {"credential.token": "sk-rotated-value"}
    )
    assert rotated.status_code == 303
    assert signed_in.rt.secrets.get(secret_id)["version"] == 2
    empty = signed_in.post(f"/portal/secrets/{secret_id}/rotate", {})
    assert empty.status_code == 422
    assert signed_in.rt.secrets.get(secret_id)["version"] == 2
    deleted = signed_in.post(f"/portal/secrets/{secret_id}/delete", {})
    assert deleted.status_code == 303
    assert "Deleted" in signed_in.client.get(deleted.headers["location"]).text
    assert signed_in.rt.secrets.list(app_id) == []
    gone = signed_in.client.get(f"/portal/secrets/{secret_id}")
    assert gone.status_code == 404
    assert "not found" in gone.text


def test_picker_searches_the_catalogue(signed_in):
    page = signed_in.client.get("/portal/secrets/new?q=openai")
    assert "/portal/secrets/new/openai" in page.text
    assert "/portal/secrets/new/stripe" not in page.text
    everything = signed_in.client.get("/portal/secrets/new")
    assert "/portal/secrets/new/stripe" in everything.text
