"""The real app in process, on SQLite, with a clock the tests move, and a signed-in browser-ish
client that reads CSRF tokens out of the pages like a browser would."""

from __future__ import annotations

import re
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from html.parser import HTMLParser
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

    def prefilled(self, path: str, action: str) -> dict[str, Any]:
        """What a browser would send from the form posting to ``action`` on ``path``, as the
        page prefilled it (a name sent several times as a list)."""
        reader = _FormReader(action)
        reader.feed(self.client.get(path).text)
        sent: dict[str, Any] = {}
        for name, value in reader.fields:
            sent.setdefault(name, []).append(value)
        return {name: v[0] if len(v) == 1 else v for name, v in sent.items()}

    def make_app(self, name: str = "billing") -> str:
        return str(self.rt.keys.create_app(name, _actor())["id"])

    def stored_grant(self, token: str, *, name: str = "g", app: str = "billing") -> str:
        """The grant_id of an OpenAI secret stored through the portal's own form."""
        answer = self.post(
            "/portal/secrets/new/openai",
            {
                "app_id": self.make_app(app),
                "name": name,
                "credential.token": token,
                "allowed_hosts": "http://127.0.0.1:9",
            },
        )
        assert answer.status_code == 303, answer.text
        secret_id = answer.headers["location"].split("/")[3].split("?")[0]
        return str(self.rt.secrets.get(secret_id)["grant_id"])


class _FormReader(HTMLParser):
    """The successful controls of one form: inputs, checked boxes, selected options, textareas."""

    def __init__(self, action: str) -> None:
        super().__init__()
        self.action, self.inside = action, False
        self.fields: list[tuple[str, str]] = []
        self._select: str | None = None
        self._first: tuple[str, str] | None = None
        self._chosen = False
        self._textarea: str | None = None

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = {k: v or "" for k, v in attrs}
        if tag == "form":
            self.inside = a.get("action") == self.action
        elif not self.inside:
            return
        elif tag == "input":
            if "name" in a and (a.get("type") != "checkbox" or "checked" in a):
                self.fields.append((a["name"], a.get("value", "")))
        elif tag == "select":
            self._select, self._first, self._chosen = a.get("name"), None, False
        elif tag == "option" and self._select is not None:
            self._first = self._first or (self._select, a.get("value", ""))
            if "selected" in a:
                self.fields.append((self._select, a.get("value", "")))
                self._chosen = True
        elif tag == "textarea":
            self._textarea = a.get("name")
            self.fields.append((self._textarea or "", ""))

    def handle_data(self, data: str) -> None:
        if self._textarea is not None:
            name, text = self.fields.pop()
            self.fields.append((name, text + data))

    def handle_endtag(self, tag: str) -> None:
        if tag == "form":
            self.inside = False
        elif tag == "select" and self._select is not None:
            if not self._chosen and self._first is not None:  # a browser sends the first option
                self.fields.append(self._first)
            self._select = None
        elif tag == "textarea":
            self._textarea = None


def _actor() -> Any:
    from vaultgate.server.auth.services import Actor

    return Actor(portal_user="fixture")


@pytest.fixture
def clock() -> Clock:
    return Clock()


@contextmanager
def _portal(env: dict[str, str], clock: Clock) -> Iterator[Portal]:
    settings = load_settings(env)
    first = initialise(settings)
    rt = Runtime.build(settings, clock=clock)
    app = create_app(settings, runtime=rt)
    with TestClient(app, follow_redirects=False) as client:
        yield Portal(client, rt, clock, first.portal_user, first.portal_password)


@pytest.fixture
def portal(tmp_path: Path, clock: Clock) -> Iterator[Portal]:
    with _portal({"VAULTGATE_DATA_DIR": str(tmp_path / "data")}, clock) as made:
        yield made


@pytest.fixture
def signed_in(portal: Portal) -> Portal:
    answer = portal.login()
    assert answer.status_code == 303, answer.text
    return portal


@pytest.fixture
def signed_in_db(tmp_path: Path, clock: Clock, db_url: str) -> Iterator[Portal]:
    """``signed_in`` on each backend: SQLite, then a PostgreSQL database of the test's own."""
    env = {"VAULTGATE_DATA_DIR": str(tmp_path / "data")}
    if not db_url.startswith("sqlite"):
        env["VAULTGATE_DATABASE_URL"] = db_url
    with _portal(env, clock) as portal:
        answer = portal.login()
        assert answer.status_code == 303, answer.text
        yield portal
