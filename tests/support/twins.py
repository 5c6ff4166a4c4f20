"""The same call through the official client and through both twins of the project's SDK.

``three(key)`` opens ``alter_sdk.App``, ``vaultgate.AlterVault`` and ``vaultgate.SyncVault`` on
one key (all pointed at ``ALTER_BASE_URL``); ``Client.call("keys.derive", ...)`` awaits the
answer whichever it is, and ``Client.catch`` returns the error raised. ``plain`` turns a pydantic
model or one of the SDK's dataclasses into the same JSON-like value, so answers compare as data.
"""

from __future__ import annotations

import dataclasses
import inspect
from collections.abc import AsyncIterator, Iterable
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from uuid import UUID

import alter_sdk
from pydantic import BaseModel

import vaultgate


@dataclass
class Client:
    name: str
    sdk: Any

    @property
    def ours(self) -> bool:
        return self.name != "official"

    async def call(self, verb: str, *args: Any, **kwargs: Any) -> Any:
        target = self.sdk
        for part in verb.split("."):
            target = getattr(target, part)
        answer = target(*args, **kwargs)
        return await answer if inspect.isawaitable(answer) else answer

    async def catch(self, verb: str, *args: Any, **kwargs: Any) -> Exception:
        try:
            answer = await self.call(verb, *args, **kwargs)
        except Exception as exc:
            return exc
        raise AssertionError(f"{self.name}.{verb} answered {answer!r} instead of raising")


@asynccontextmanager
async def three(key: str) -> AsyncIterator[list[Client]]:
    async with AsyncExitStack() as stack:
        official = await stack.enter_async_context(alter_sdk.App(api_key=key))
        ours = await stack.enter_async_context(vaultgate.AlterVault(api_key=key))
        sync = stack.enter_context(vaultgate.SyncVault(api_key=key))
        yield [Client("official", official), Client("async", ours), Client("sync", sync)]


def plain(value: Any) -> Any:
    """JSON-like data: lists for tuples, strings for UUIDs and datetimes (in UTC ISO form)."""
    if isinstance(value, BaseModel):
        return plain(value.model_dump())
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return plain({f.name: getattr(value, f.name) for f in dataclasses.fields(value)})
    if isinstance(value, dict):
        return {k: plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [plain(v) for v in value]
    if isinstance(value, UUID):
        return str(value)
    if isinstance(value, datetime):
        return value.isoformat()
    return value


def masked(value: Any, volatile: Iterable[str]) -> Any:
    """``plain(value)`` with the ``volatile`` keys (ids, times) replaced, at any depth."""
    skip = set(volatile)
    data = plain(value)

    def walk(node: Any) -> Any:
        if isinstance(node, dict):
            return {k: "<volatile>" if k in skip else walk(v) for k, v in node.items()}
        if isinstance(node, list):
            return [walk(v) for v in node]
        return node

    return walk(data)


def error_shape(exc: Exception) -> dict[str, Any]:
    """What both clients' errors must agree on: the class name, the code and the wire fields.

    The official client keeps the wire code in ``details["error"]``; the SDK's ``code`` is it.
    """
    details = dict(getattr(exc, "details", None) or {})
    details.pop("status_code", None)
    code = getattr(exc, "code", None) if isinstance(exc, vaultgate.VaultgateError) else None
    return {
        "class": type(exc).__name__,
        "error": code if isinstance(exc, vaultgate.VaultgateError) else details.get("error"),
        "fields": {k: v for k, v in details.items() if k not in ("error", "message")},
    }
