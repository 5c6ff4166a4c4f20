"""One vault, Authlib's authorization server and a recording upstream per test, and Debian's
headless Chromium through Playwright's async API (the official client's ``connect()`` runs on
the same event loop). Missing Chromium skips, except under CI, where it fails."""

from __future__ import annotations

import os
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest

from support import Upstream, Vault, run_upstream, run_vault
from support.oauth_authcode_server import AuthServer, run_authcode_server

CHROMIUM = Path(os.environ.get("VAULTGATE_TEST_CHROMIUM", "/usr/bin/chromium"))
ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-sync"]


@pytest.fixture
async def chromium() -> AsyncIterator[Any]:
    if not CHROMIUM.exists():
        message = f"Chromium not found at {CHROMIUM} (apt-get install chromium)"
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)
    from playwright.async_api import async_playwright

    async with async_playwright() as playwright:
        browser = await playwright.chromium.launch(executable_path=str(CHROMIUM), args=ARGS)
        try:
            yield browser
        finally:
            await browser.close()


@pytest.fixture
def vault(tmp_path: Path) -> Iterator[Vault]:
    with run_vault(tmp_path / "data") as server:
        yield server


@pytest.fixture
def auth() -> Iterator[AuthServer]:
    with run_authcode_server() as server:
        yield server


@pytest.fixture
def api() -> Iterator[Upstream]:
    with run_upstream() as server:
        yield server
