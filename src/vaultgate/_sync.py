"""``SyncVault``: the blocking twin of ``AlterVault``, line for line; ``_protocol`` is shared."""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from types import TracebackType
from typing import Any

import httpx

from . import _audit
from ._calls import RESERVED_HEADERS, Call, Params
from ._config import check_api_key, check_caller, redact_key, resolve_base_url
from ._errors import NetworkError, error_from_httpx
from ._models import CallerType
from ._protocol import (
    AUDIT_PATH,
    PROXY_PATH,
    TOKEN_PATH,
    USER_AGENT,
    Signer,
    TokenGrant,
    no_cookies,
    proxy_payload,
    proxy_response,
    raise_for_provider,
    raise_for_stream,
    token_payload,
)
from ._transport import GRANT_EXTENSION, SyncInjectingTransport

logger = logging.getLogger("vaultgate")


class SyncVault:
    """Use stored credentials by grant id: ``with SyncVault(api_key=...) as vault``.

    Two HTTP clients: one to the vault, carrying the API key, and one to providers, which
    never does. Neither follows redirects.
    """

    def __init__(
        self,
        api_key: str,
        *,
        caller: str | None = None,
        caller_type: CallerType = CallerType.SERVICE,
        base_url: str | None = None,
        timeout: float = 30.0,
        transport: httpx.BaseTransport | None = None,
        upstream_transport: httpx.BaseTransport | None = None,
        env: Mapping[str, str] | None = None,
    ) -> None:
        key = check_api_key(api_key)
        self.base_url = resolve_base_url(base_url, env)
        self.timeout = timeout
        self._signer = Signer(key, check_caller(caller), str(caller_type))
        self._vault = httpx.Client(
            base_url=self.base_url,
            headers=self._signer.default_headers(),
            timeout=timeout,
            transport=transport,
            trust_env=False,
            cookies=no_cookies(),
        )
        # Injection happens in the transport; see _transport. A given transport is also why
        # env proxies do not apply to provider calls (pass a proxying transport instead).
        inner = upstream_transport or httpx.HTTPTransport()
        self._upstream = httpx.Client(
            headers={"User-Agent": USER_AGENT},
            timeout=timeout,
            transport=SyncInjectingTransport(inner),
            trust_env=False,
            cookies=no_cookies(),
        )

    def __repr__(self) -> str:
        return (
            f"SyncVault(base_url={self.base_url!r}, api_key={redact_key(self._signer.api_key)!r})"
        )

    def __enter__(self) -> SyncVault:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def close(self) -> None:
        self._vault.close()
        self._upstream.close()

    def request(
        self,
        method: str,
        url: str | httpx.URL,
        *,
        grant_id: str,
        reason: str | None = None,
        json: Any = None,
        params: Params | None = None,
        headers: Mapping[str, str] | None = None,
        content: bytes | str | None = None,
        timeout: float | None = None,
        caller: str | None = None,
    ) -> httpx.Response:
        """Retrieve mode: fetch the credential, inject it here, call the provider, report."""
        call = Call.make(
            method,
            url,
            grant_id=grant_id,
            reason=reason,
            json=json,
            params=params,
            headers=headers,
            content=content,
            timeout=timeout,
            caller=caller,
        )
        call.require_https()
        answer = self._send_vault(TOKEN_PATH, token_payload(call), call)
        grant = TokenGrant.parse(answer, api_key=self._key)
        outgoing = call.provider_request(self._upstream)
        outgoing.extensions[GRANT_EXTENSION] = grant
        started = time.monotonic()
        try:
            response = self._send(self._upstream, outgoing, "provider")
        except NetworkError:
            self._report(call, grant, outgoing, None, started)
            raise
        self._report(call, grant, outgoing, response, started)
        return raise_for_provider(response, grant.secrets)

    def proxy_request(
        self,
        method: str,
        url: str | httpx.URL,
        *,
        grant_id: str,
        reason: str | None = None,
        json: Any = None,
        params: Params | None = None,
        headers: Mapping[str, str] | None = None,
        content: bytes | str | None = None,
        timeout: float | None = None,
        caller: str | None = None,
    ) -> httpx.Response:
        """Proxy mode: the vault injects and calls the provider; the credential stays there."""
        call = Call.make(
            method,
            url,
            grant_id=grant_id,
            reason=reason,
            json=json,
            params=params,
            headers=headers,
            content=content,
            timeout=timeout,
            caller=caller,
            reserved=RESERVED_HEADERS,
        )
        answer = self._send_vault(PROXY_PATH, proxy_payload(call), call)
        response = proxy_response(answer, call, api_key=self._key)
        return raise_for_provider(response, (self._key,))

    @contextmanager
    def stream(
        self,
        method: str,
        url: str | httpx.URL,
        *,
        grant_id: str,
        reason: str | None = None,
        json: Any = None,
        params: Params | None = None,
        headers: Mapping[str, str] | None = None,
        content: bytes | str | None = None,
        timeout: float | None = None,
        caller: str | None = None,
    ) -> Iterator[httpx.Response]:
        """Transparent proxy: a streaming response the vault forwards event by event."""
        call = Call.make(
            method,
            url,
            grant_id=grant_id,
            reason=reason,
            json=json,
            params=params,
            headers=headers,
            content=content,
            timeout=timeout,
            caller=caller,
            reserved=RESERVED_HEADERS,
        )
        request = call.stream_request(
            self.base_url, self._key, user_agent=USER_AGENT, timeout=self.timeout
        )
        response = self._send(self._vault, request, "vault", stream=True)
        try:
            if response.status_code >= 400:
                response.read()
                raise_for_stream(response, self._key)
            yield response
        finally:
            response.close()

    @property
    def _key(self) -> str:
        return self._signer.api_key

    def _send_vault(self, path: str, payload: dict[str, Any], call: Call) -> httpx.Response:
        request = self._signer.build(
            self._vault, path, payload, caller=call.caller, timeout=call.timeout
        )
        return self._send(self._vault, request, "vault")

    @staticmethod
    def _send(
        client: httpx.Client, request: httpx.Request, where: str, *, stream: bool = False
    ) -> httpx.Response:
        failure: NetworkError | None = None
        try:
            return client.send(request, stream=stream)
        except httpx.TransportError as exc:
            failure = error_from_httpx(exc, where)
        # Raised outside the handler so no httpx exception (holding the request) is chained.
        raise failure

    def _report(
        self,
        call: Call,
        grant: TokenGrant,
        outgoing: httpx.Request,
        response: httpx.Response | None,
        started: float,
    ) -> None:
        """Awaited, but best effort like the official client: a failure is logged, never raised."""
        outgoing.extensions.pop(GRANT_EXTENSION, None)
        latency_ms = int((time.monotonic() - started) * 1000)
        body = _audit.report(call, grant, outgoing, response, latency_ms)
        try:
            answer = self._send_vault(AUDIT_PATH, body, call)
        except NetworkError as exc:
            logger.warning("vaultgate: the audit report was not delivered: %s", exc)
            return
        if not answer.is_success:
            logger.warning(
                "vaultgate: the vault refused the audit report: HTTP %d", answer.status_code
            )
