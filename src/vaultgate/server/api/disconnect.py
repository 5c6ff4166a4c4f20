"""A client that goes away cancels its request, upstream connection included.

An ASGI app learns of a disconnect only by calling ``receive``, and a handler waiting for an
upstream's answer does not: without this, a caller that gave up leaves its upstream request
running (and a pooled connection held) until the upstream answers or times out.

The server's protocol knows at once (``connection_lost``), so it tells the request instead of
a watcher task per request asking (which cost about 40 µs a request, measured): the forwarding
handlers run under `cancel_on_disconnect`, which leaves its task on the scope, and the protocol
(`api/connections.py`) calls `abandon` on the scope of a request whose answer was not complete.
Under another ASGI server nothing calls `abandon` and requests simply run to their end.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any, Final

_TASK: Final = "vaultgate.task"
_LEFT: Final = "vaultgate.client_left"


def abandon(scope: MutableMapping[str, Any]) -> None:
    """The client of ``scope``'s request has gone: cancel the request if it is still running."""
    task = scope.get(_TASK)
    if isinstance(task, asyncio.Task) and not task.done():
        scope[_LEFT] = True
        task.cancel()


async def cancel_on_disconnect(
    call: Callable[[], Awaitable[None]], scope: MutableMapping[str, Any]
) -> None:
    """Run ``call``, cancelled by `abandon`; return quietly when that is why it stopped."""
    task = asyncio.current_task()
    assert task is not None
    scope[_TASK] = task
    try:
        await call()
    except asyncio.CancelledError:
        # Ours when the client left; anyone else's (a shutdown) goes on up.
        if scope.get(_LEFT) and task.uncancel() == 0:
            return
        raise
    finally:
        scope.pop(_TASK, None)
