"""The official client's Connect: ``create_connect_session`` and ``poll_connect_session``
(HMAC-signed like the rest of ``/sdk``), and the vault-hosted pages the end user's browser
visits: the consent link, then the provider's redirect back (``/connect/callback``)."""

from __future__ import annotations

import html

import anyio.to_thread
from fastapi import APIRouter, Request
from starlette.responses import HTMLResponse, RedirectResponse, Response

from vaultgate.server.api.deps import runtime
from vaultgate.server.api.sdk import _authenticate, _json, _payload, _str_field
from vaultgate.server.errors import VaultError
from vaultgate.server.oauth.connect import ConnectPageError
from vaultgate.server.oauth.requests import parse_session_request

router = APIRouter(tags=["connect"])
_NO_STORE = {"Cache-Control": "no-store"}


@router.post("/sdk/oauth/connect/session")
async def create_session(request: Request) -> Response:
    rt, principal, body, _ = await _authenticate(request)
    req = parse_session_request(_payload(body))
    made = await anyio.to_thread.run_sync(rt.connect.create_session, str(principal.app_id), req)
    return _json(made, headers=_NO_STORE)


@router.post("/sdk/oauth/connect/session/poll")
async def poll_session(request: Request) -> Response:
    rt, principal, body, _ = await _authenticate(request)
    token = _str_field(_payload(body), "session_token", cap=200) or ""
    answer = await anyio.to_thread.run_sync(rt.connect.poll, str(principal.app_id), token)
    return _json(answer, headers=_NO_STORE)


def _page(status: int, title: str, body_html: str) -> HTMLResponse:
    doc = (
        '<!doctype html><html lang="en"><head><meta charset="utf-8">'
        f"<title>{html.escape(title)}</title></head>"
        f"<body><main><h1>{html.escape(title)}</h1>{body_html}</main></body></html>"
    )
    headers = {
        **_NO_STORE,
        "Content-Security-Policy": "default-src 'none'; form-action 'none'; frame-ancestors 'none'",
        "Referrer-Policy": "no-referrer",
        "X-Frame-Options": "DENY",
    }
    return HTMLResponse(doc, status_code=status, headers=headers)


def _problem(status: int, message: str) -> HTMLResponse:
    return _page(status, "Not connected", f'<p role="alert">{html.escape(message)}</p>')


@router.get("/connect/callback", include_in_schema=False)
async def callback(request: Request) -> Response:
    params = {k: v for k, v in request.query_params.items() if k in ("code", "state", "error")}
    try:
        outcome = await runtime(request).connect.callback(params)
    except ConnectPageError as exc:
        return _problem(exc.status, exc.message)
    except VaultError as exc:
        return _problem(exc.status, exc.message)
    if outcome.ok and outcome.return_url:
        return RedirectResponse(outcome.return_url, status_code=303, headers=_NO_STORE)
    if not outcome.ok:
        return _problem(400, outcome.message)
    text = html.escape(outcome.message) + " You can close this window."
    return _page(200, "Connected", f'<p role="status">{text}</p>')


@router.get("/connect/{link}", include_in_schema=False)
async def consent_link(link: str, request: Request, provider: str | None = None) -> Response:
    connect = runtime(request).connect
    try:
        offered = await anyio.to_thread.run_sync(connect.providers_for_link, link)
        if provider is None and len(offered) > 1:
            items = "".join(
                f'<li><a href="/connect/{html.escape(link)}?provider={html.escape(p)}">'
                f"Connect {html.escape(p)}</a></li>"
                for p in offered
            )
            return _page(200, "Choose an account to connect", f"<ul>{items}</ul>")
        url = await anyio.to_thread.run_sync(connect.begin, link, provider or offered[0])
    except ConnectPageError as exc:
        return _problem(exc.status, exc.message)
    except VaultError as exc:
        return _problem(exc.status, exc.message)
    return RedirectResponse(url, status_code=302, headers=_NO_STORE)
