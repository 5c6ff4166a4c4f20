"""The whole Connect flow as a user meets it: the unmodified official client's ``connect()``
opens the vault's consent link in the browser (headless Chromium here), the user presses
Authorize on the provider's page (Authlib's server on loopback), and ``connect()`` returns the
grant, which then injects the provider's access token. The portal shows the account under its
end user, and no page carries a secret."""

from __future__ import annotations

import asyncio
import webbrowser
from typing import Any

import alter_sdk
import pytest
from alter_sdk import HttpMethod

from support import Upstream, Vault
from support.connect_flow import CLIENT_SECRET, connectable_app
from support.oauth_authcode_server import AuthServer

pytestmark = pytest.mark.browser


async def consent_in(browser: Any, links: asyncio.Queue[str]) -> str:
    """Open the link connect() handed to the browser and press Authorize; the final page text."""
    link = await asyncio.wait_for(links.get(), timeout=60)
    context = await browser.new_context()
    try:
        page = await context.new_page()
        await page.goto(link)
        await page.get_by_role("button", name="Authorize").click()
        await page.get_by_role("heading", name="Connected").wait_for(timeout=30_000)
        return str(await page.content())
    finally:
        await context.close()


async def portal_html(browser: Any, vault: Vault, grant_id: str) -> str:
    context = await browser.new_context()
    try:
        page = await context.new_page()
        await page.goto(vault.base_url + "/portal/login")
        await page.get_by_label("Email").fill(vault.portal_user)
        await page.get_by_label("Password").fill(vault.portal_password)
        await page.get_by_role("button", name="Sign in").click()
        await page.get_by_role("heading", name="Managed secrets").wait_for()
        html = []
        for path in ("/portal/secrets", f"/portal/grants/{grant_id}"):
            answer = await page.goto(vault.base_url + path)
            assert answer is not None and answer.status == 200, path
            html.append(str(await page.content()))
        await page.goto(vault.base_url + "/portal/oauth")
        await page.get_by_role("heading", name="Connected accounts by end user").wait_for()
        html.append(str(await page.content()))
        return "\n".join(html)
    finally:
        await context.close()


async def test_connect_in_a_real_browser_makes_a_grant_that_injects(
    chromium: Any,
    vault: Vault,
    auth: AuthServer,
    api: Upstream,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("ALTER_BASE_URL", vault.base_url)
    c = connectable_app(vault, auth, api)
    links: asyncio.Queue[str] = asyncio.Queue()

    def open_in_test_browser(url: str, *args: object, **kwargs: object) -> bool:
        links.put_nowait(url)  # connect() hands the link to "the default browser": ours
        return True

    monkeypatch.setattr(webbrowser, "open", open_in_test_browser)
    async with alter_sdk.App(api_key=c.tenant.key, user_token_getter=lambda: "user-1") as app:
        consented = asyncio.create_task(consent_in(chromium, links))
        results = await app.connect(providers=["github"], timeout=90, poll_interval=0.2)
        done_page = await consented
        assert len(results) == 1
        grant = results[0]
        assert (grant.provider_id, grant.account_identifier) == ("github", "octocat")
        response = await app.request(
            HttpMethod.GET, f"{api.origin}/user/repos", provider="github", app_user_id="user-1"
        )
        assert response.status_code == 200
    issued = auth.issued()
    assert len(issued) == 1
    assert api.last().headers["authorization"] == f"Bearer {issued[0].access_token}"
    assert auth.token_count("authorization_code") == 1
    portal = await portal_html(chromium, vault, grant.grant_id)
    assert "octocat" in portal and "user-1" in portal and grant.grant_id in portal
    for value in (CLIENT_SECRET, issued[0].access_token, str(issued[0].refresh_token)):
        assert value not in portal
        assert value not in done_page
