"""The real app in process, on SQLite, with a clock the tests move, and a signed-in browser-ish
client that reads CSRF tokens out of the pages like a browser would."""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi.testclient import TestClient

from vaultgate.server.app import create_app
from vaultgate.server.bootstrap import initialise
from vaultgate.server.runtime import Runtime
from vaultgate.server.settings import load_settings

CSRF = re.compile(r'name="csrf" value="([^"]+)"')


class Clock:
    def __init__(self) -> None:
        self.now = datetime(2030, 1, 7, 9, 0, tzinfo=UTC)

    def __call__(self) -> datetime:
        return self.now

    def advance(self, **delta: float) -> None:
        self.now += timedelta(**delta)


@dataclass
class Portal:
    """A TestClient plus the first user's credentials and the runtime behind the app."""

    client: TestClient
    rt: Runtime
    clock: Clock
    email: str
    password: str

    def csrf(self, path: str = "/portal/login") -> str:
        page = self.client.get(path)
        match = CSRF.search(page.text)
        assert match, f"no CSRF token on {path} ({page.status_code})"
        return match[1]

    def login(self, email: str | None = None, password: str | None = None) -> httpx.Response:
        data = {
            "csrf": self.csrf(),
            "email": email or self.email,
            "password": self.password if password is None else password,
        }
        return self.client.post("/portal/login", data=data)

    def post(
        self, path: str, data: dict[str, Any], *, csrf_from: str = "/portal/apps"
    ) -> httpx.Response:
        return self.client.post(path, data={"csrf": self.csrf(csrf_from), **data})

    def make_app(self, name: str = "billing") -> str:
        return str(self.rt.keys.create_app(name, _actor())["id"])


def _actor() -> Any:
    from vaultgate.server.auth.services import Actor

    return Actor(portal_user="fixture")


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def portal(tmp_path: Path, clock: Clock) -> Iterator[Portal]:
    settings = load_settings({"VAULTGATE_DATA_DIR": str(tmp_path / "data")})
    first = initialise(settings)
    rt = Runtime.build(settings, clock=clock)
    app = create_app(settings, runtime=rt)
    with TestClient(app, follow_redirects=False) as client:
        yield Portal(client, rt, clock, first.portal_user, first.portal_password)


@pytest.fixture
def signed_in(portal: Portal) -> Portal:
    answer = portal.login()
    assert answer.status_code == 303, answer.text
    return portal
