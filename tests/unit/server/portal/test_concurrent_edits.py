"""Two edits based on the same version, at once: exactly one is written, the other is a 412,
on SQLite and PostgreSQL. The tag is compared under the row's lock, in the write's transaction.

The second edit is started from inside the first one's check (the hook below) and given two
seconds to finish. With the check under the lock it cannot: it waits on the lock, so the first
edit commits and the second then sees the new version and is refused. With the check outside
the lock, the second edit would finish inside the hook and both would be written.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

import pytest

from unit.server.portal.test_stale_policy_form import _grant
from vaultgate.server.auth.services import Actor
from vaultgate.server.errors import PreconditionFailed
from vaultgate.server.secrets import grants as grants_module
from vaultgate.server.sinks import store as store_module
from vaultgate.server.sinks.models import SinkCreate, SinkUpdate

FIXTURE = Actor(portal_user="fixture")
PATIENCE = 2.0  # seconds the second edit is given while the first holds the lock


def _race(
    monkeypatch: pytest.MonkeyPatch,
    module: Any,
    name: str,
    first: Callable[[], Any],
    second: Callable[[], Any],
) -> list[str]:
    outcomes: list[str] = []

    def attempt(edit: Callable[[], Any]) -> None:
        try:
            edit()
        except PreconditionFailed:
            outcomes.append("412")
        else:
            outcomes.append("written")

    real = getattr(module, name)
    started: list[threading.Thread] = []

    def hooked(*args: Any) -> str:
        tag: str = real(*args)
        if not started:  # the first edit's check: start the second and give it its chance
            started.append(threading.Thread(target=attempt, args=(second,)))
            started[0].start()
            started[0].join(PATIENCE)
        return tag

    monkeypatch.setattr(module, name, hooked)
    attempt(first)
    started[0].join()
    return outcomes


def test_two_policy_edits_of_one_version_write_one(
    signed_in_db: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    rt = signed_in_db.rt
    grant_id = _grant(signed_in_db)
    tag = grants_module.policy_etag(rt.grants.get(grant_id)["policy"])

    def edit(caller: str) -> Callable[[], Any]:
        return lambda: rt.grants.update_policy(
            grant_id, {"callers": [caller]}, FIXTURE, expected={tag}
        )

    outcomes = _race(monkeypatch, grants_module, "policy_etag", edit("first"), edit("second"))
    # The first edit is written; the second, held by the lock until then, is refused (which of
    # the two threads reports first after the commit is up to the scheduler).
    assert sorted(outcomes) == ["412", "written"]
    assert rt.grants.get(grant_id)["policy"] == {"callers": ["first"]}


def test_two_sink_edits_of_one_version_write_one(
    signed_in_db: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    rt = signed_in_db.rt
    config = {"host": "127.0.0.1", "port": 10514}
    rt.sinks.create(
        SinkCreate.model_validate({"name": "logs", "kind": "syslog", "config": config}), FIXTURE
    )
    tag = store_module.settings_etag(rt.sinks.find("logs"))

    def edit(facility: int) -> Callable[[], Any]:
        body = SinkUpdate.model_validate({"config": {**config, "facility": facility}})
        return lambda: rt.sinks.update("logs", body, FIXTURE, expected={tag})

    outcomes = _race(monkeypatch, store_module, "settings_etag", edit(3), edit(4))
    assert sorted(outcomes) == ["412", "written"]
    assert rt.sinks.find("logs").config["facility"] == 3
