"""Everything a running node holds, built once from Settings and handed to the API layer.

Nodes keep no state of their own beyond caches: several can serve one PostgreSQL database.
"""

from __future__ import annotations

import functools
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from sqlalchemy.engine import Engine

from vaultgate.server.audit.sink import AuditSink
from vaultgate.server.audit.writer import AuditWriter
from vaultgate.server.auth.key_controls import KeyControls
from vaultgate.server.auth.sdk import NonceCache, SdkAuthenticator
from vaultgate.server.auth.services import KeyService
from vaultgate.server.clock import Clock, utcnow
from vaultgate.server.crypto import API_KEY_HASH, AUDIT_CHAIN, PORTAL_SESSION, Barrier
from vaultgate.server.egress.client import UpstreamClient, UpstreamTimeouts
from vaultgate.server.egress.guard import AddressGuard
from vaultgate.server.egress.pipeline import Pipeline
from vaultgate.server.fleet.admission import Admitter
from vaultgate.server.fleet.changes import Changes
from vaultgate.server.keys_at_rest import check_against_database, load_keyring
from vaultgate.server.providers import Catalogue, load_catalogue
from vaultgate.server.secrets.cache import GrantCache
from vaultgate.server.secrets.grants import GrantService
from vaultgate.server.secrets.services import SecretService
from vaultgate.server.settings import Settings
from vaultgate.server.storage.engine import create_engine, migrate

if TYPE_CHECKING:
    from vaultgate.server.approvals.services import ApprovalService
    from vaultgate.server.oauth.apps import OAuthAppService
    from vaultgate.server.oauth.connect import ConnectService


@dataclass
class Runtime:
    settings: Settings
    engine: Engine
    barrier: Barrier
    audit: AuditWriter
    keys: KeyService
    secrets: SecretService
    grants: GrantService
    pipeline: Pipeline
    upstream: UpstreamClient
    sdk_auth: SdkAuthenticator
    catalogue: Catalogue
    cache: GrantCache
    clock: Clock
    session_key: bytes
    audit_key: bytes
    timeouts: UpstreamTimeouts
    guard: AddressGuard
    key_controls: KeyControls
    changes: Changes = field(default_factory=Changes)

    @classmethod
    def build(
        cls, settings: Settings, *, clock: Clock = utcnow, engine: Engine | None = None
    ) -> Runtime:
        """Open the database and the key set; refuses (MasterKeyError) a key that does not fit."""
        keyring = load_keyring(settings)
        engine = engine or create_engine(settings.db_url, durability=settings.durability)
        migrate(engine)
        check_against_database(engine, keyring)
        barrier = Barrier(keyring)
        audit_key = barrier.derive_key(AUDIT_CHAIN)
        sink = AuditSink(audit_key)
        changes = Changes()
        writer = AuditWriter(engine, audit_key, admitter=Admitter(changes))
        cache = GrantCache(settings.cache_ttl, changes)
        catalogue = load_catalogue()
        hash_key = barrier.derive_key(API_KEY_HASH)
        keys = KeyService(engine, hash_key, sink, clock, settings.cache_ttl, changes)
        secrets = SecretService(
            engine,
            barrier,
            catalogue,
            sink,
            clock,
            cache,
            reload_barrier=lambda: Barrier(load_keyring(settings)),
        )
        grants = GrantService(engine, sink, clock, cache)
        guard = AddressGuard(settings.allow_private_destinations)
        return cls(
            settings=settings,
            engine=engine,
            barrier=barrier,
            audit=writer,
            keys=keys,
            secrets=secrets,
            grants=grants,
            pipeline=Pipeline(grants, secrets, writer, clock, guard=guard, keys=keys),
            upstream=UpstreamClient.from_settings(guard, settings),
            sdk_auth=SdkAuthenticator(keys, NonceCache(), time.time),
            catalogue=catalogue,
            cache=cache,
            clock=clock,
            session_key=barrier.derive_key(PORTAL_SESSION),
            audit_key=audit_key,
            timeouts=UpstreamTimeouts.from_settings(settings),
            guard=guard,
            key_controls=KeyControls(engine, keys, clock, settings.cache_ttl),
            changes=changes,
        )

    @functools.cached_property
    def approvals(self) -> ApprovalService:
        # Built on first use, from the parts above; imported here because the executor needs
        # this module's Runtime (and api.forward) to send a call.
        from vaultgate.server.approvals.executor import execute
        from vaultgate.server.approvals.notify import Notifier
        from vaultgate.server.approvals.services import ApprovalService

        settings = self.settings
        service = ApprovalService(
            self.engine,
            self.barrier,
            self.audit_key,
            self.clock,
            portal_base=settings.public_url or f"http://{settings.host}:{settings.port}",
            lease_seconds=settings.connect_timeout + settings.read_timeout + 60,
        )
        service.executor = lambda request_id: execute(self, request_id)
        service.notifier = Notifier(
            settings.approval_webhook_url,
            settings.approval_webhook_secret,
            backoff=settings.approval_webhook_backoff_ms / 1000,
        )
        return service

    @property
    def public_base(self) -> str:
        settings = self.settings
        return settings.public_url or f"http://{settings.host}:{settings.port}"

    @functools.cached_property
    def oauth_apps(self) -> OAuthAppService:
        from vaultgate.server.oauth.apps import OAuthAppService

        return OAuthAppService(
            self.engine,
            self.barrier,
            AuditSink(self.audit_key),
            self.clock,
            callback_url=f"{self.public_base}/connect/callback",
            # Plain-http endpoints only where private destinations are allowed (tests, dev).
            allow_http=bool(self.settings.allow_private_destinations),
        )

    @functools.cached_property
    def connect(self) -> ConnectService:
        from vaultgate.server.oauth.connect import ConnectService

        return ConnectService(
            self.engine,
            self.barrier,
            AuditSink(self.audit_key),
            self.clock,
            self.oauth_apps,
            self.secrets,
            self.guard,
            public_base=self.public_base,
        )

    async def start(self) -> None:
        self.changes.start(self.engine)
        _ = self.approvals  # built once, before any request thread could race to build two
        self.audit.start()
        await self.upstream.start()

    async def close(self) -> None:
        await self.upstream.close()
        self.audit.stop()
        self.changes.stop()
        self.engine.dispose()
