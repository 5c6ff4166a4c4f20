"""The portal loads with its first page and answers as when its routes were in the app's router.

Twin apps over one runtime: one holds the portal as `PortalMount`, the other includes the
portal's router directly (how the app held it before). Every address below must get the same
answer from both, portal or not, and an API route next to it is untouched.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

from vaultgate.server.portal import site
from vaultgate.server.portal.mount import PortalMount

CSRF = re.compile(rb'name="csrf" value="[^"]+"')
ASKED = [
    ("GET", "/portal"),
    ("GET", "/portal/"),
    ("GET", "/portal/login"),
    ("HEAD", "/portal/login"),
    ("PUT", "/portal/login"),
    ("POST", "/portal/no-such-page"),
    ("GET", "/portal/no-such-page"),
    ("GET", "/portal/apps/"),
    ("GET", "/portal/static/portal.js"),
    ("GET", "/portal/static/missing.js"),
    ("GET", "/portalx"),
    ("GET", "/api/ping"),
    ("GET", "/api/ping/"),
    ("GET", "/nothing"),
]


def _app(portal: Any, *, lazy: bool) -> FastAPI:
    app = FastAPI()
    app.state.runtime = portal.rt
    app.add_api_route("/api/ping", lambda: {"pong": True}, methods=["GET"])
    if lazy:
        app.router.routes.append(PortalMount(app))
    else:
        app.include_router(site.build(app))
    return app


@pytest.fixture
def twins(portal: Any) -> Iterator[tuple[TestClient, TestClient, PortalMount]]:
    lazy, eager = _app(portal, lazy=True), _app(portal, lazy=False)
    [mount] = [r for r in lazy.router.routes if isinstance(r, PortalMount)]
    with (
        TestClient(lazy, follow_redirects=False) as one,
        TestClient(eager, follow_redirects=False) as other,
    ):
        yield one, other, mount


def _answer(
    client: TestClient, method: str, path: str
) -> tuple[int, str | None, str | None, bytes]:
    got = client.request(method, path)
    body = CSRF.sub(b"csrf", got.content)  # a fresh token per page
    return got.status_code, got.headers.get("location"), got.headers.get("content-type"), body


@pytest.mark.parametrize(("method", "path"), ASKED)
def test_every_address_gets_the_answer_the_included_routes_gave(
    twins: tuple[TestClient, TestClient, PortalMount], method: str, path: str
) -> None:
    lazy, eager, _ = twins
    assert _answer(lazy, method, path) == _answer(eager, method, path)


def test_the_portal_loads_with_its_first_page_only(
    twins: tuple[TestClient, TestClient, PortalMount],
) -> None:
    lazy, _, mount = twins
    assert lazy.get("/api/ping").json() == {"pong": True}
    assert lazy.get("/portalx").status_code == 404
    assert not hasattr(lazy.app.state, "portal")  # type: ignore[attr-defined]
    assert lazy.get("/portal/login").status_code == 200
    assert lazy.app.state.portal is not None  # type: ignore[attr-defined]
    assert mount.router() is mount.router()  # built once


def test_a_portal_page_is_named_for_url_for(
    twins: tuple[TestClient, TestClient, PortalMount],
) -> None:
    lazy, eager, _ = twins
    for client in (lazy, eager):
        path = client.app.url_path_for("portal-static", path="portal.js")  # type: ignore[attr-defined]
        assert path == "/portal/static/portal.js"
