"""The retrieve-mode audit report is best effort in both twins: a lost report is logged only."""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

import httpx
import pytest

import vaultgate as vg

URL = "https://api.example.com/"
AUDIT_PATH = "/sdk/oauth/audit/api-call"


def unreachable_audit(vault: Any) -> httpx.MockTransport:
    """The fake vault, except that the audit report never gets through."""

    def handler(request: httpx.Request) -> httpx.Response:
        if request.url.path.endswith(AUDIT_PATH):
            raise httpx.ConnectError("connection refused", request=request)
        response: httpx.Response = vault.handler(request)
        return response

    return httpx.MockTransport(handler)


async def test_async_an_undelivered_report_is_logged_and_the_call_succeeds(
    vault: Any, make_vault: Callable[..., vg.AlterVault], caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.WARNING, logger="vaultgate"):
        async with make_vault(transport=unreachable_audit(vault)) as client:
            response = await client.request("GET", URL, grant_id=vault.grant_id)
    assert response.status_code == 200
    assert "audit report was not delivered" in caplog.text
    assert vault.canary not in caplog.text and vault.api_key not in caplog.text


def test_sync_an_undelivered_report_is_logged_and_the_call_succeeds(
    vault: Any, make_sync: Callable[..., vg.SyncVault], caplog: pytest.LogCaptureFixture
) -> None:
    lossy = unreachable_audit(vault)
    with caplog.at_level(logging.WARNING, logger="vaultgate"), make_sync(transport=lossy) as client:
        response = client.request("GET", URL, grant_id=vault.grant_id)
    assert response.status_code == 200
    assert "audit report was not delivered" in caplog.text
    assert vault.canary not in caplog.text and vault.api_key not in caplog.text


def test_sync_a_refused_report_is_logged_with_its_status(
    vault: Any, make_sync: Callable[..., vg.SyncVault], caplog: pytest.LogCaptureFixture
) -> None:
    vault.answers[AUDIT_PATH] = vault.error(503, "audit_unavailable")
    with caplog.at_level(logging.WARNING, logger="vaultgate"), make_sync() as client:
        response = client.request("GET", URL, grant_id=vault.grant_id)
    assert response.status_code == 200
    assert "refused the audit report: HTTP 503" in caplog.text


def test_sync_a_delivered_report_logs_nothing(
    vault: Any, make_sync: Callable[..., vg.SyncVault], caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.WARNING, logger="vaultgate"), make_sync() as client:
        client.request("GET", URL, grant_id=vault.grant_id)
    assert vault.bodies(AUDIT_PATH) and "audit report" not in caplog.text
