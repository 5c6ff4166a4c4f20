"""A client that goes away cancels its request, upstream connection included (pure ASGI).

An ASGI app learns of a disconnect only by calling ``receive``, and a handler waiting for an
upstream's answer does not: without this, a caller that gave up leaves its upstream request
running (and a pooled connection held) until the upstream answers or times out. One watcher task
per request reads ``receive`` once the body is in and cancels the request when the client leaves.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

from starlette.types import Message, Receive, Scope, Send

_DISCONNECT: Message = {"type": "http.disconnect"}


def _expects_body(scope: Scope) -> bool:
    for name, value in scope["headers"]:
        if name == b"transfer-encoding" or (name == b"content-length" and value != b"0"):
            return True
    return False


class _Watch:
    """The handler's ``receive`` and ``send``, and the watcher that shares the real ones."""

    def __init__(self, scope: Scope, receive: Receive, send: Send) -> None:
        self._receive = receive
        self._send = send
        self._body_read = asyncio.Event()
        self._gone = asyncio.Event()
        self._empty_body: Message | None = None
        self.answered = False
        self.left = False
        if not _expects_body(scope):
            # There is no body to read: the handler is told so, and the watcher starts at once.
            self._empty_body = {"type": "http.request", "body": b"", "more_body": False}
            self._body_read.set()

    async def receive(self) -> Message:
        if self._empty_body is not None:
            message, self._empty_body = self._empty_body, None
            return message
        if self._body_read.is_set():
            await self._gone.wait()  # only the watcher reads now
            return _DISCONNECT
        message = await self._receive()
        if message["type"] == "http.disconnect":
            self._gone.set()
        elif not message.get("more_body", False):
            self._body_read.set()
        return message

    async def send(self, message: Message) -> None:
        if message["type"] == "http.response.body" and not message.get("more_body", False):
            self.answered = True
        await self._send(message)

    async def until_gone(self, task: asyncio.Task[object]) -> None:
        await self._body_read.wait()
        while (await self._receive())["type"] == "http.request":
            pass  # the empty body of a request that declared none
        # The server also reports a finished response as a disconnect: nothing to cancel then.
        if not self.answered:
            self.left = True
            self._gone.set()
            task.cancel()


async def cancel_on_disconnect(
    call: Callable[[Receive, Send], Awaitable[None]], scope: Scope, receive: Receive, send: Send
) -> None:
    """Run ``call`` with a watched ``receive`` and ``send``; return quietly if the client left."""
    task = asyncio.current_task()
    assert task is not None
    watch = _Watch(scope, receive, send)
    watcher = asyncio.ensure_future(watch.until_gone(task))
    try:
        await call(watch.receive, watch.send)
    except asyncio.CancelledError:
        # Ours when the watcher saw the client leave; anyone else's (shutdown) goes on up.
        if watch.left and task.uncancel() == 0:
            return
        raise
    finally:
        watcher.cancel()
