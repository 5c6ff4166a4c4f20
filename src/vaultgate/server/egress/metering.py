"""The relay's hook for budgets: meter an answer as it passes, settle its spend before it ends.

Only an answer whose grant (or an ancestor) has a budget is metered; any other costs nothing
here. Settling awaits the outcome's durable record before the last bytes go to the caller, so
a client that has read the whole answer and asks again is decided on a spend that includes it,
whichever worker or node takes the next request.
"""

from __future__ import annotations

import logging

from vaultgate.server.budgets import UsageMeter
from vaultgate.server.egress.pipeline import Authorized, Pipeline, UseRequest
from vaultgate.server.errors import VaultError

log = logging.getLogger(__name__)


def meter_for(auth: Authorized, headers: list[tuple[str, str]]) -> UsageMeter | None:
    if not auth.metered:
        return None
    kind = next((v for n, v in headers if n.lower() == "content-type"), None)
    return UsageMeter(kind)


async def settle(
    pipeline: Pipeline,
    use: UseRequest,
    auth: Authorized,
    meter: UsageMeter,
    *,
    status: int,
    latency_ms: int,
    bytes_out: int,
) -> None:
    """Record the metered outcome and wait for it; a failure is logged, never raised.

    The answer is already on its way: refusing it now would only lose what was paid for. A
    record that timed out may still be written, so it is not queued a second time.
    """
    usage = meter.usage()
    try:
        await pipeline.settle_outcome(
            use, auth, status=status, latency_ms=latency_ms, bytes_out=bytes_out, usage=usage
        )
    except VaultError as exc:
        log.warning("the spend of request %s could not be recorded: %s", use.request_id, exc.code)
