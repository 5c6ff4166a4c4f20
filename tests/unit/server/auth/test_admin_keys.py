"""Admin keys in the key service: listing, and the last usable one kept from remote revocation."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest
import sqlalchemy as sa

from vaultgate.server.auth.services import Actor
from vaultgate.server.bootstrap import initialise
from vaultgate.server.errors import Conflict
from vaultgate.server.runtime import Runtime
from vaultgate.server.settings import load_settings
from vaultgate.server.storage import tables as t

PORTAL = Actor(portal_user="admin@vaultgate.local")


@pytest.fixture
def rt(tmp_path: Path, db_url: str) -> Iterator[Runtime]:
    env = {"VAULTGATE_DATA_DIR": str(tmp_path / "data")}
    if not db_url.startswith("sqlite"):
        env["VAULTGATE_DATABASE_URL"] = db_url
    settings = load_settings(env)
    initialise(settings)
    runtime = Runtime.build(settings)
    try:
        yield runtime
    finally:
        runtime.engine.dispose()


def _revocations(rt: Runtime) -> int:
    with rt.engine.connect() as conn:
        query = sa.select(sa.func.count()).where(t.audit_events.c.event == "key:revoke")
        return int(conn.execute(query).scalar() or 0)


def test_the_last_usable_admin_key_is_refused_and_nothing_changes(rt: Runtime) -> None:
    (only,) = rt.keys.list_admin_keys()
    with pytest.raises(Conflict) as caught:
        rt.keys.revoke_key(only["id"], PORTAL)
    assert caught.value.code == "last_admin_key"
    assert "admin-keys create" in caught.value.message
    assert rt.keys.list_admin_keys()[0]["revoked_at"] is None
    assert _revocations(rt) == 0


def test_an_expired_or_revoked_other_key_does_not_count(rt: Runtime) -> None:
    (first,) = rt.keys.list_admin_keys()
    _, gone = rt.keys.create_key("admin", "gone", PORTAL)
    rt.keys.revoke_key(gone["id"], PORTAL)  # allowed: `first` is still usable
    soon = rt.clock() + timedelta(seconds=1)
    _, expiring = rt.keys.create_key("admin", "expiring", PORTAL, expires_at=soon)
    with rt.engine.begin() as conn:  # it has expired since
        conn.execute(
            t.api_keys.update()
            .where(t.api_keys.c.id == expiring["id"])
            .values(expires_at=rt.clock() - timedelta(seconds=1))
        )
    with pytest.raises(Conflict):
        rt.keys.revoke_key(first["id"], PORTAL)


def test_with_another_usable_admin_key_the_revocation_goes_through(rt: Runtime) -> None:
    (first,) = rt.keys.list_admin_keys()
    rt.keys.create_key("admin", "second", PORTAL)
    rt.keys.revoke_key(first["id"], PORTAL)
    listed = {k["name"]: k for k in rt.keys.list_admin_keys()}
    assert listed["initial admin key"]["revoked_at"] is not None
    assert listed["second"]["revoked_at"] is None
    assert _revocations(rt) == 1


def test_a_local_command_may_revoke_the_last_one(rt: Runtime) -> None:
    (only,) = rt.keys.list_admin_keys()
    rt.keys.revoke_key(only["id"], Actor(portal_user="local"), allow_last_admin=True)
    assert rt.keys.list_admin_keys()[0]["revoked_at"] is not None


def test_admin_keys_are_listed_without_app_keys(rt: Runtime) -> None:
    app = rt.keys.create_app("a", PORTAL)
    _, app_key = rt.keys.create_key("app", "k", PORTAL, app_id=app["id"])
    assert [k["kind"] for k in rt.keys.list_admin_keys()] == ["admin"]
    assert "key_hash" not in rt.keys.list_admin_keys()[0]
    with pytest.raises(Exception, match="admin key"):
        rt.keys.get_admin_key(app_key["id"])
