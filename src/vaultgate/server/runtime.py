"""Everything a running node holds, built once from Settings and handed to the API layer.

Nodes keep no state of their own beyond caches: several can serve one PostgreSQL database.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

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
from vaultgate.server.keys_at_rest import check_against_database, load_keyring
from vaultgate.server.policy import RateLimiter
from vaultgate.server.providers import Catalogue, load_catalogue
from vaultgate.server.secrets.cache import GrantCache
from vaultgate.server.secrets.grants import GrantService
from vaultgate.server.secrets.services import SecretService
from vaultgate.server.settings import Settings
from vaultgate.server.storage.engine import create_engine, migrate


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

    @classmethod
    def build(
        cls, settings: Settings, *, clock: Clock = utcnow, engine: Engine | None = None
    ) -> Runtime:
        """Open the database and the key set; refuses (MasterKeyError) a key that does not fit."""
        keyring = load_keyring(settings)
        engine = engine or create_engine(settings.db_url)
        migrate(engine)
        check_against_database(engine, keyring)
        barrier = Barrier(keyring)
        audit_key = barrier.derive_key(AUDIT_CHAIN)
        sink = AuditSink(audit_key)
        writer = AuditWriter(engine, audit_key)
        cache = GrantCache(settings.cache_ttl)
        catalogue = load_catalogue()
        keys = KeyService(engine, barrier.derive_key(API_KEY_HASH), sink, clock, settings.cache_ttl)
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
            pipeline=Pipeline(grants, secrets, writer, RateLimiter(), clock, guard=guard),
            upstream=UpstreamClient(guard),
            sdk_auth=SdkAuthenticator(keys, NonceCache(), time.time),
            catalogue=catalogue,
            cache=cache,
            clock=clock,
            session_key=barrier.derive_key(PORTAL_SESSION),
            audit_key=audit_key,
            timeouts=UpstreamTimeouts(connect=settings.connect_timeout, read=settings.read_timeout),
            guard=guard,
            key_controls=KeyControls(engine, keys, clock, settings.cache_ttl),
        )

    async def start(self) -> None:
        self.audit.start()
        await self.upstream.start()

    async def close(self) -> None:
        await self.upstream.close()
        self.audit.stop()
        self.engine.dispose()
