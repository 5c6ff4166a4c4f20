"""The pipeline against a real runtime (SQLite), when a rotation or a deletion lands between a
request's policy decision and the opening of its secret."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from pathlib import Path

import pytest

from vaultgate.injection.credential import Credential, CredentialType
from vaultgate.server.audit.sink import AuditSink
from vaultgate.server.auth.services import Actor
from vaultgate.server.bootstrap import initialise
from vaultgate.server.egress.guard import AddressGuard
from vaultgate.server.egress.pipeline import Pipeline, UseRequest
from vaultgate.server.egress.urls import parse_target
from vaultgate.server.errors import Forbidden
from vaultgate.server.runtime import Runtime
from vaultgate.server.secrets.models import SecretCreate
from vaultgate.server.secrets.services import SecretService
from vaultgate.server.settings import load_settings

ADMIN = Actor()
URL = "https://api.example.com/v1/a"


async def _public(host: str, port: int) -> list[str]:
    return ["93.184.216.34"]


class RacingSecrets(SecretService):
    """A SecretService that runs ``race`` (another admin's change) just before its first open."""

    race: Callable[[], None] | None = None

    def open(self, app_id: str, secret_id: str, version: int, ctype: CredentialType) -> Credential:
        race, self.race = self.race, None
        if race is not None:
            race()
        return super().open(app_id, secret_id, version, ctype)


@dataclass
class World:
    rt: Runtime
    secrets: RacingSecrets
    pipeline: Pipeline
    use: UseRequest
    secret_id: str


@pytest.fixture
async def world(tmp_path: Path) -> AsyncIterator[World]:
    settings = load_settings({"VAULTGATE_DATA_DIR": str(tmp_path / "data")})
    initialise(settings)
    rt = Runtime.build(settings)
    rt.audit.start()
    app = rt.keys.create_app(f"app-{uuid.uuid4().hex[:6]}", ADMIN)
    key, _ = rt.keys.create_key("app", "k", ADMIN, app_id=app["id"])
    body = SecretCreate(
        app_id=app["id"],
        name="s",
        credential_type="bearer",
        credential={"token": "old-value-1"},
        allowed_hosts=["api.example.com"],
    )
    created = rt.secrets.create(body, ADMIN)
    racing = RacingSecrets(
        rt.engine, rt.barrier, rt.catalogue, AuditSink(rt.audit_key), rt.clock, rt.cache
    )
    public = AddressGuard(resolve=_public)  # api.example.com without asking DNS
    pipeline = Pipeline(rt.grants, racing, rt.audit, rt.clock, guard=public)
    use = UseRequest(
        principal=rt.keys.authenticate(key),
        grant_id=created["grant_id"],
        method="GET",
        target=parse_target(URL),
        mode="proxy",
        caller=None,
        reason=None,
        client_ip="127.0.0.1",
        request_id="r1",
        display_url=URL,
    )
    try:
        yield World(rt, racing, pipeline, use, created["secret_id"])
    finally:
        rt.audit.stop()
        rt.engine.dispose()


async def test_a_rotation_after_the_decision_serves_the_new_value(world: World) -> None:
    world.rt.grants.resolve(world.use.grant_id)  # the decision's view: version 1, cached
    world.secrets.race = lambda: world.rt.secrets.rotate(
        world.secret_id, {"token": "new-value-2"}, ADMIN
    )
    auth = await world.pipeline.authorize(world.use)
    assert auth.credential["token"] == "new-value-2"
    assert auth.grant.secret_version == 2


async def test_a_deletion_after_the_decision_answers_revoked(world: World) -> None:
    world.secrets.race = lambda: world.rt.secrets.delete(world.secret_id, ADMIN)
    with pytest.raises(Forbidden) as refused:
        await world.pipeline.authorize(world.use)
    assert refused.value.code == "grant_revoked"


async def test_without_a_race_the_current_value_is_served(world: World) -> None:
    auth = await world.pipeline.authorize(world.use)
    assert auth.credential["token"] == "old-value-1"
    assert auth.grant.secret_version == 1
