"""What ``AlterVault`` and ``SyncVault`` share: checked settings, the signer, client options.

The twins differ only in how they send (an async or a blocking httpx client, and the awaits), so
everything decided before or after a send lives here once.
"""

from __future__ import annotations

import datetime
import logging
import time
from collections.abc import Mapping
from typing import Any

import httpx

from . import _audit
from ._calls import Call
from ._config import check_api_key, check_caller, redact_key, resolve_base_url
from ._lane import REPLAY_EXTENSION
from ._models import CallerType
from ._protocol import TOKEN_PATH, USER_AGENT, Signer, TokenGrant, no_cookies
from ._reports import Outbox
from ._transport import GRANT_EXTENSION

# httpx's own logger and line: provider calls skip httpx's client (see ``_provider_request``)
# but log what it logged, the URL before injection.
_httpx_logger = logging.getLogger("httpx")
MAX_KEPT_URLS = 32

Transport = httpx.BaseTransport | httpx.AsyncBaseTransport


class BaseVault:
    """Two HTTP clients: one to the vault, carrying the API key, and one to providers, which
    never does. Neither follows redirects. Outcome reports go through ``_outbox`` (see _reports).
    """

    _outbox: Outbox
    _vault: httpx.Client | httpx.AsyncClient  # the twin's own client to the vault

    def __init__(
        self,
        api_key: str,
        *,
        caller: str | None,
        caller_type: CallerType,
        base_url: str | None,
        timeout: float,
        env: Mapping[str, str] | None,
    ) -> None:
        key = check_api_key(api_key)
        self.base_url = resolve_base_url(base_url, env)
        self.timeout = timeout
        self._signer = Signer(key, check_caller(caller), str(caller_type))
        self._upstream_timeout = httpx.Timeout(timeout).as_dict()
        self._vault_urls: dict[str, httpx.URL] = {}  # parsed once: a URL parse costs per call
        self._upstream_headers = httpx.Headers()  # the twin sets its provider client's

    def __repr__(self) -> str:
        key = redact_key(self._key)
        return f"{type(self).__name__}(base_url={self.base_url!r}, api_key={key!r})"

    @property
    def pending_reports(self) -> int:
        """Outcome reports handed over by ``request()`` and not yet delivered (or given up)."""
        return self._outbox.pending

    @property
    def dropped_reports(self) -> int:
        """Outcome reports never sent because ``max_pending_reports`` were already pending."""
        return self._outbox.dropped

    @property
    def failed_reports(self) -> int:
        """Outcome reports sent but not accepted: the vault was unreachable or refused them."""
        return self._outbox.failed

    @property
    def _key(self) -> str:
        return self._signer.api_key

    def _vault_options(self, transport: Transport | None) -> dict[str, Any]:
        """Keyword arguments of the httpx client that talks to the vault."""
        return {
            "base_url": self.base_url,
            "headers": self._signer.default_headers(),
            "timeout": self.timeout,
            "transport": transport,
            "trust_env": False,
            "cookies": no_cookies(),
        }

    def _vault_request(
        self,
        client: httpx.Client | httpx.AsyncClient,
        path: str,
        payload: Mapping[str, Any] | bytes | None,
        *,
        method: str = "POST",
        caller: str | None = None,
        timeout: float | None = None,
    ) -> httpx.Request:
        """A signed vault request; a token fetch or a read-only ``GET`` carries the way to sign
        it again (fresh nonce), so a lane may resend it after a stale keep-alive (see _lane)."""

        url = self._vault_urls.get(path)
        if url is None:
            url = httpx.URL(f"{str(client.base_url).rstrip('/')}{path}")
            if "?" not in path and len(self._vault_urls) < MAX_KEPT_URLS:
                self._vault_urls[path] = url  # the fixed paths: token, proxy, reports, verbs

        def build() -> httpx.Request:
            return self._signer.build(
                client, path, payload, method=method, caller=caller, timeout=timeout, url=url
            )

        request = build()
        if path == TOKEN_PATH or method == "GET":
            request.extensions[REPLAY_EXTENSION] = build
        return request

    def _report_request(self, path: str, body: bytes, call: Call) -> httpx.Request:
        """An outcome report (``AUDIT_PATH``) or a batch of them (``BATCH_PATH``)."""
        return self._vault_request(
            self._vault, path, body, caller=call.caller, timeout=call.timeout
        )

    def _provider_request(self, call: Call) -> httpx.Request:
        """The provider request before injection, built without httpx's client: its redirect,
        auth and cookie steps do nothing here (none is followed, sent or kept) but cost CPU."""
        return call.provider_request(self._upstream_headers, self._upstream_timeout)

    @staticmethod
    def _provider_answer(
        response: httpx.Response, request: httpx.Request, started: float
    ) -> httpx.Response:
        """What httpx's client adds to a read answer: its request, elapsed time, the log line."""
        response.request = request
        response.elapsed = datetime.timedelta(seconds=time.perf_counter() - started)
        _httpx_logger.info(
            'HTTP Request: %s %s "%s %d %s"',
            request.method,
            request.url,
            response.http_version,
            response.status_code,
            response.reason_phrase,
        )
        return response

    def _upstream_options(self, injecting: Transport) -> dict[str, Any]:
        """Keyword arguments of the httpx client that talks to providers.

        Injection happens in the transport; see _transport. A given transport is also why env
        proxies do not apply to provider calls (pass a proxying transport instead).
        """
        return {
            "headers": {"User-Agent": USER_AGENT},
            "timeout": self.timeout,
            "transport": injecting,
            "trust_env": False,
            "cookies": no_cookies(),
        }

    def _report(
        self,
        call: Call,
        grant: TokenGrant,
        outgoing: httpx.Request,
        response: httpx.Response | None,
        started: float,
    ) -> None:
        """Hand the retrieve-mode report to the background sender; the caller never waits.

        The grant leaves the request first, so nothing queued keeps the credential.
        """
        outgoing.extensions.pop(GRANT_EXTENSION, None)
        latency_ms = int((time.monotonic() - started) * 1000)
        self._outbox.put(_audit.report(call, grant, outgoing, response, latency_ms), call)
