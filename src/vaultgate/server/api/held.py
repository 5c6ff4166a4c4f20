"""Answering a held call: the caller gets a 202 with the protocol's ``PendingApproval`` to poll."""

from __future__ import annotations

import json

from starlette.responses import Response

from vaultgate.server.egress.modes import Held


def held_response(held: Held) -> Response:
    return Response(
        json.dumps(held.pending, separators=(",", ":")),
        status_code=202,
        media_type="application/json",
        headers={"X-Request-ID": held.request_id, "Cache-Control": "no-store"},
    )
