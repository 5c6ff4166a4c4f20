"""Connect under attack, each next to its allowed twin: a forged ``state``, a replayed ``state``,
a code injected into another session (PKCE refuses the wrong verifier), an expired link; and
canaries: no client secret, code, refresh or access token in logs, audit, answers or pages."""

from __future__ import annotations

import logging

import alter_sdk
import pytest
from alter_sdk import HttpMethod

from support.connect_flow import CLIENT_SECRET, Connectable, authorize, query, visit


def callback_with(callback_url: str, **params: str) -> str:
    base = callback_url.split("?", 1)[0]
    merged = {**query(callback_url), **params}
    return base + "?" + "&".join(f"{k}={v}" for k, v in merged.items())


async def test_a_forged_state_is_refused_and_the_real_one_still_works(
    connectable: Connectable,
) -> None:
    c = connectable
    async with alter_sdk.App(api_key=c.tenant.key) as app:
        session = await app.create_connect_session(allowed_providers=["github"])
        back = authorize(session.connect_url)
        forged = visit(callback_with(back, state="forged-state-value"))
        assert forged.status_code == 400
        assert "state matches no connection in progress" in forged.text
        assert c.auth.token_count("authorization_code") == 0
        # The allowed twin: the state the vault issued.
        assert visit(back).status_code == 200
        results = await app.poll_connect_session(session.session_token, poll_interval=0.1)
    assert results[0].account_identifier == "octocat"
    assert c.auth.token_count("authorization_code") == 1


async def test_a_replayed_state_is_refused_after_its_one_use(connectable: Connectable) -> None:
    c = connectable
    async with alter_sdk.App(api_key=c.tenant.key) as app:
        session = await app.create_connect_session(allowed_providers=["github"])
        back = authorize(session.connect_url)
        assert visit(back).status_code == 200
        replay = visit(back)
        assert replay.status_code == 400
        assert "already used" in replay.text
        results = await app.poll_connect_session(session.session_token, poll_interval=0.1)
    assert len(results) == 1
    assert c.auth.token_count("authorization_code") == 1  # the replay never reached the provider


async def test_a_code_injected_into_another_session_fails_pkce(connectable: Connectable) -> None:
    """The attacker's code (issued for session A's challenge) arrives with victim session B's
    state: the vault sends B's verifier, the provider refuses, B ends in a typed error."""
    c = connectable
    async with alter_sdk.App(api_key=c.tenant.key) as app:
        a = await app.create_connect_session(allowed_providers=["github"], user_token="attacker")
        b = await app.create_connect_session(allowed_providers=["github"], user_token="victim")
        back_a, back_b = authorize(a.connect_url), authorize(b.connect_url)
        injected = visit(callback_with(back_b, code=query(back_a)["code"]))
        assert injected.status_code == 400
        assert "refused the authorization code (invalid_grant)" in injected.text
        with pytest.raises(alter_sdk.ConnectFlowError) as raised:
            await app.poll_connect_session(b.session_token, poll_interval=0.1)
        assert raised.value.details["error_code"] == "invalid_grant"
        # The allowed twin: A's code with A's state and verifier.
        assert visit(back_a).status_code == 200
        results = await app.poll_connect_session(a.session_token, poll_interval=0.1)
        assert results[0].account_identifier == "octocat"
        with pytest.raises(alter_sdk.GrantNotFoundError):
            await app.request(
                HttpMethod.GET, f"{c.api.origin}/u", provider="github", app_user_id="victim"
            )
    assert c.auth.token_count("authorization_code") == 2
    first, second = (r.get("code_verifier") for r in c.auth.token_requests)
    assert first and second and first != second  # one verifier per session


async def test_a_declined_consent_is_the_clients_denied_error(connectable: Connectable) -> None:
    c = connectable
    async with alter_sdk.App(api_key=c.tenant.key) as app:
        session = await app.create_connect_session(allowed_providers=["github"])
        back = authorize(session.connect_url).replace("code=", "x=")
        # What Authlib's server sends for Cancel: error=access_denied with the state.
        declined = visit(callback_with(back, error="access_denied"))
        assert declined.status_code == 400
        with pytest.raises(alter_sdk.ConnectDeniedError):
            await app.poll_connect_session(session.session_token, poll_interval=0.1)


async def test_nothing_secret_leaks_into_logs_audit_answers_or_pages(
    connectable: Connectable, caplog: pytest.LogCaptureFixture
) -> None:
    c = connectable
    caplog.set_level(logging.DEBUG)
    answers: list[str] = []
    async with alter_sdk.App(api_key=c.tenant.key) as app:
        session = await app.create_connect_session(allowed_providers=["github"], user_token="u-9")
        back = authorize(session.connect_url)
        code = query(back)["code"]
        page = visit(back)
        answers.append(page.text)
        results = await app.poll_connect_session(session.session_token, poll_interval=0.1)
        answers.append(repr(results))
        token = await app.request(HttpMethod.GET, f"{c.api.origin}/u", grant_id=results[0].grant_id)
        assert token.status_code == 200
    issued = c.auth.issued()[0]
    with c.vault.admin() as admin:
        for path in ("/v1/oauth-apps", "/v1/oauth-connections", "/v1/secrets", "/v1/audit"):
            answers.append(admin.get(path).text)
        answers.append(admin.get("/v1/audit/export").text)
        answers.append(admin.get(f"/v1/grants/{results[0].grant_id}").text)
        answers.append(admin.delete(f"/v1/oauth-connections/{results[0].grant_id}").text)
    # Every log line of the process but the test's own HTTP client (httpx and httpcore, which
    # log the callback URL it visits) and the provider's server (werkzeug, authlib.oauth2).
    theirs = ("httpx", "httpcore.", "werkzeug", "authlib.oauth2.")
    logs = "\n".join(
        r.getMessage() + repr(r.args)
        for r in caplog.records
        if not (r.name.startswith(theirs) and not r.name.startswith(("httpx2", "httpcore2")))
    )
    assert any(r.name.startswith("httpcore2") for r in caplog.records)  # the vault's client
    canaries = {
        "client secret": CLIENT_SECRET,
        "code": code,
        "access token": issued.access_token,
        "refresh token": str(issued.refresh_token),
    }
    for name, value in canaries.items():
        for text in (*answers, logs):
            assert value not in text, f"the {name} leaked"
