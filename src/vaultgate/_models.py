"""The small value types of the SDK's public surface."""

from __future__ import annotations

from enum import StrEnum


class HttpMethod(StrEnum):
    """HTTP methods for ``request``/``proxy_request``/``stream``; plain strings work too."""

    GET = "GET"
    POST = "POST"
    PUT = "PUT"
    PATCH = "PATCH"
    DELETE = "DELETE"
    HEAD = "HEAD"
    OPTIONS = "OPTIONS"


class CallerType(StrEnum):
    """What kind of workload the ``caller`` names, as the vault's audit trail records it."""

    AGENT = "agent"
    SERVICE = "service"
