"""Liveness, readiness and Prometheus metrics."""

from __future__ import annotations

import sqlalchemy as sa
from fastapi import APIRouter, Request
from prometheus_client import CONTENT_TYPE_LATEST
from starlette.responses import Response

from vaultgate.server.api.deps import runtime
from vaultgate.server.api.errors import envelope_response
from vaultgate.server.crypto import aad_for
from vaultgate.server.observability.metrics import exposition
from vaultgate.server.storage.engine import reading

router = APIRouter(tags=["health"])


@router.get("/healthz")
def healthz() -> dict[str, str]:
    return {"status": "ok"}


@router.get("/readyz")
def readyz(request: Request) -> Response:
    rt = runtime(request)
    try:
        with reading(rt.engine) as conn:
            conn.execute(sa.text("SELECT 1"))
        probe = aad_for("readyz", "readyz", 0)
        if rt.barrier.open_secret(rt.barrier.seal_secret(b"ok", aad=probe), aad=probe) != b"ok":
            raise RuntimeError("barrier")
    except Exception:  # readiness reports, it does not raise
        return envelope_response(503, "not_ready", "the database or the master key is not usable")
    return Response('{"status":"ready"}', media_type="application/json")


@router.get("/metrics", include_in_schema=False)
def metrics(request: Request) -> Response:
    # Sync: the scrape reads the database (approvals pending), so it runs off the event loop.
    return Response(exposition(runtime(request)), media_type=CONTENT_TYPE_LATEST)
