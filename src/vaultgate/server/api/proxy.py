"""The transparent proxy: ``ANY /proxy/{grant_id}/{path}``, streamed both ways (DESIGN 4.2).

Any HTTP client works by pointing its base URL here and using its app key as the bearer token;
the key is removed and the grant's credential injected on the way out. This handler parses the
request and serialises the answer; the request path itself is `egress.modes.transparent`.
"""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response, StreamingResponse
from starlette.routing import Route

from vaultgate.server.api.deps import bearer, client_ip, runtime
from vaultgate.server.api.held import held_response
from vaultgate.server.api.limits import WEBSOCKET_REFUSAL
from vaultgate.server.audit.events import new_id
from vaultgate.server.auth.keys import Principal
from vaultgate.server.egress.modes import Held, ProxyCall, transparent
from vaultgate.server.egress.relay import Answer
from vaultgate.server.errors import Forbidden, InvalidInput, NotSupported
from vaultgate.server.runtime import Runtime

METHODS = ["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"]


def _principal(rt: Runtime, headers: dict[str, str]) -> Principal:
    presented = bearer(headers.get("authorization")) or headers.get("x-api-key")
    principal = rt.keys.authenticate(presented)
    if principal.app_id is None:
        raise Forbidden("the proxy takes an app key, not an admin key", code="forbidden")
    return principal


def grant_id_of(path: str) -> str:
    """``/proxy/{grant_id}[/...]`` -> grant_id (routing is done by hand: see hotpath.py)."""
    return path[len("/proxy/") :].split("/", 1)[0]


def _header_pairs(request: Request) -> tuple[list[tuple[str, str]], dict[str, str]]:
    """Every header decoded once: in order (to forward) and by name, the first of a repeat.

    Starlette's ``request.headers`` decodes every header again on each lookup; this handler
    makes about a dozen.
    """
    pairs = [
        (name.decode("latin-1"), value.decode("latin-1"))
        for name, value in request.scope["headers"]
    ]
    first: dict[str, str] = {}
    for name, value in pairs:
        first.setdefault(name, value)
    return pairs, first


def _rest(request: Request, grant_id: str) -> str:
    raw_path = request.scope.get("raw_path") or request.scope["path"].encode()
    prefix = f"/proxy/{grant_id}".encode()
    return raw_path.decode("latin-1")[len(prefix) :] if raw_path.startswith(prefix) else "/"


def _call(rt: Runtime, request: Request) -> ProxyCall:
    pairs, headers = _header_pairs(request)
    principal = _principal(rt, headers)
    if "upgrade" in headers:
        # Served as a WebSocket scope when the ASGI server upgrades (hotpath.py); this is the
        # same answer when it hands the upgrade request over as plain HTTP.
        raise NotSupported(WEBSOCKET_REFUSAL, code="websocket_not_supported")
    if "content-length" in headers and "transfer-encoding" in headers:
        raise InvalidInput(
            "Content-Length together with Transfer-Encoding is refused", code="ambiguous_length"
        )
    grant_id = grant_id_of(request.scope["path"])
    forwarded = headers.get("x-forwarded-for")
    return ProxyCall(
        principal=principal,
        grant_id=grant_id,
        method=request.method,
        rest=_rest(request, grant_id),
        query=request.scope.get("query_string", b"").decode("latin-1"),
        pairs=pairs,
        headers=headers,
        client_ip=client_ip(request.scope.get("client"), forwarded, rt.settings.trusted_proxies),
        request_id=headers.get("x-request-id") or new_id(),
        body=request.stream(),
    )


async def handle(request: Request) -> Response:
    # What it raises is answered by the front door (hotpath.py) or, on the routes FastAPI
    # documents, by its exception handlers: both are api/errors.py's one mapping.
    call = _call(runtime(request), request)
    answer = await transparent(runtime(request), request.scope, call)
    if isinstance(answer, Held):
        return held_response(answer)
    return _serialised(answer, call.request_id)


def _serialised(answer: Answer, request_id: str) -> Response:
    response: Response
    if isinstance(answer.body, bytes):
        response = Response(answer.body, status_code=answer.status)
    else:
        response = StreamingResponse(answer.body, status_code=answer.status)
    # Content-Length among them, as the upstream sent it (or as the redaction left it).
    raw = [(k.lower().encode("latin-1"), v.encode("latin-1")) for k, v in answer.headers]
    raw.append((b"x-request-id", request_id.encode()))
    response.raw_headers = raw
    return response


routes = [
    Route("/proxy/{grant_id}/{path:path}", handle, methods=METHODS),
    Route("/proxy/{grant_id}", handle, methods=METHODS),
]
