"""The ASGI application: ``create_app(settings)`` wires the runtime into the HTTP layer."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI

from vaultgate.server import portal
from vaultgate.server.api import (
    approvals,
    budgets,
    errors,
    health,
    management,
    oauth_apps,
    proxy,
    sdk,
    sdk_agents,
    sdk_approvals,
    sdk_connect,
    sdk_grants,
    sdk_keys,
    sinks,
)
from vaultgate.server.api.hotpath import VaultApp
from vaultgate.server.api.limits import BodyLimit
from vaultgate.server.runtime import Runtime
from vaultgate.server.settings import Settings, load_settings

MANAGEMENT_BODY_LIMIT = 1024 * 1024


def create_app(settings: Settings, *, runtime: Runtime | None = None) -> FastAPI:
    """Build the app; the runtime (database, keys) opens here so a bad key fails at start."""
    rt = runtime or Runtime.build(settings)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        await rt.start()
        try:
            yield
        finally:
            await rt.close()

    app = VaultApp(
        title="vaultgate", version="0.1.0", lifespan=lifespan, docs_url="/docs", redoc_url=None
    )
    app.state.runtime = rt
    errors.install(app)
    app.include_router(health.router)
    app.include_router(management.router)
    app.include_router(sdk.router)
    app.include_router(sdk_grants.router)
    app.include_router(approvals.router)
    app.include_router(sdk_approvals.router)
    app.include_router(sdk_keys.router)
    app.include_router(sdk_agents.router)
    app.include_router(budgets.router)
    app.include_router(sinks.router)
    app.include_router(oauth_apps.router)
    app.include_router(sdk_connect.router)
    app.router.routes.extend(proxy.routes)
    app.add_middleware(
        BodyLimit,
        default_limit=MANAGEMENT_BODY_LIMIT,
        large_limit=settings.max_request_body,
        large_prefixes=("/sdk/", "/proxy/"),
    )
    portal.install(app)  # so the portal's guard is the outer layer for /portal
    # In front of it all: the request path's routes bypass the whole stack (api/hotpath.py).
    app.put_in_front(body_limit=settings.max_request_body, tracing=rt.tracing)
    return app


def app_from_environment() -> FastAPI:
    """The app of one worker process, configured from ``VAULTGATE_*`` (``serve --workers N``)."""
    import os

    settings = load_settings(os.environ)
    # The supervisor migrated the schema before it started any worker (`prepare_storage`).
    return create_app(settings, runtime=Runtime.build(settings, migrated=True))
