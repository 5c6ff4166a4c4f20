"""Traces exported over OTLP/HTTP to a collector on loopback: the span tree of real requests.

The collector is a real HTTP server decoding the protobuf the SDK's exporter sends; the vault
runs with ``VAULTGATE_OTLP_ENDPOINT`` pointing at it, and its shutdown flushes what the batch
processor still holds, so the test reads every span once the vault has stopped.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import pytest
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

from support import Upstream, free_port, run_vault
from vaultgate import AlterVault

CANARY = "sk-canary-traces-5d2e07"
CALLER_TRACE = "4bf92f3577b34da6a3ce929d0e0e4736"
CALLER_SPAN = "00f067aa0ba902b7"


@dataclass
class Span:
    name: str
    trace_id: str
    span_id: str
    parent_id: str
    attributes: dict[str, Any]


@dataclass
class Collector:
    port: int
    spans: list[Span] = field(default_factory=list)
    raw: list[bytes] = field(default_factory=list)

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1/traces"

    def named(self, name: str) -> list[Span]:
        return [s for s in self.spans if s.name == name]


def _value(any_value: Any) -> Any:
    kind = any_value.WhichOneof("value")
    return getattr(any_value, kind) if kind else None


@pytest.fixture
def collector() -> Iterator[Collector]:
    found = Collector(free_port())

    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args: Any) -> None:
            pass

        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers["Content-Length"]))
            found.raw.append(body)
            request = ExportTraceServiceRequest()
            request.ParseFromString(body)
            for resource in request.resource_spans:
                for scope in resource.scope_spans:
                    for s in scope.spans:
                        found.spans.append(
                            Span(
                                s.name,
                                s.trace_id.hex(),
                                s.span_id.hex(),
                                s.parent_span_id.hex(),
                                {a.key: _value(a.value) for a in s.attributes},
                            )
                        )
            self.send_response(200)
            self.send_header("Content-Type", "application/x-protobuf")
            self.send_header("Content-Length", "0")
            self.end_headers()

    server = ThreadingHTTPServer(("127.0.0.1", found.port), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield found
    finally:
        server.shutdown()
        server.server_close()


def _grant(admin: httpx.Client, app_id: str, upstream: Upstream) -> str:
    created = admin.post(
        "/v1/secrets",
        json={
            "app_id": app_id,
            "name": "traced",
            "credential_type": "bearer",
            "credential": {"token": CANARY},
            "allowed_hosts": [upstream.origin],
            "policy": {"allowed_methods": ["GET"]},
        },
    )
    assert created.status_code == 201, created.text
    return str(created.json()["grant_id"])


def test_a_proxied_request_is_one_span_tree_continued_from_the_caller_and_forwarded(
    tmp_path: Path, upstream: Upstream, collector: Collector
) -> None:
    traceparent = f"00-{CALLER_TRACE}-{CALLER_SPAN}-01"
    with run_vault(tmp_path, extra_env={"VAULTGATE_OTLP_ENDPOINT": collector.endpoint}) as vault:
        app_id, key = vault.make_app_key()
        with vault.admin() as admin:
            grant_id = _grant(admin, app_id, upstream)
        response = httpx.get(
            f"{vault.base_url}/proxy/{grant_id}/v1/models?limit=2",
            headers={"Authorization": f"Bearer {key}", "traceparent": traceparent},
            trust_env=False,
        )
        assert response.status_code == 200, response.text
        denied = httpx.post(
            f"{vault.base_url}/proxy/{grant_id}/v1/models",
            headers={"Authorization": f"Bearer {key}"},
            content=b"{}",
            trust_env=False,
        )
        assert denied.status_code == 403
    # The vault has stopped: its shutdown exported every span still batched.

    roots = [
        s for s in collector.named("GET /proxy/{grant_id}/{path}") if s.trace_id == CALLER_TRACE
    ]
    assert len(roots) == 1, [s.name for s in collector.spans]
    root = roots[0]
    assert root.parent_id == CALLER_SPAN  # the caller's trace, continued
    assert root.attributes["http.response.status_code"] == 200
    children = {s.name: s for s in collector.spans if s.parent_id == root.span_id}
    assert set(children) == {"vaultgate.decide", "vaultgate.audit.commit", "vaultgate.upstream"}
    assert all(s.trace_id == CALLER_TRACE for s in children.values())
    upstream_span = children["vaultgate.upstream"]
    assert upstream_span.attributes["http.response.status_code"] == 200
    assert upstream_span.attributes["server.address"] == "127.0.0.1"

    # The upstream saw the vault's span as its parent, in the caller's trace; not the caller's.
    sent = upstream.last().headers["traceparent"]
    assert sent == f"00-{CALLER_TRACE}-{upstream_span.span_id}-01"
    assert len(upstream.requests) == 1  # the denied POST reached nothing

    # The denied request is its own trace: a root with a decide child and no upstream call.
    posts = collector.named("POST /proxy/{grant_id}/{path}")
    assert len(posts) == 1 and posts[0].parent_id == ""
    assert posts[0].attributes["http.response.status_code"] == 403
    under_post = {s.name for s in collector.spans if s.parent_id == posts[0].span_id}
    assert under_post == {"vaultgate.decide"}

    # Neither the credential nor the grant id or the upstream path's query is in any span.
    exported = b"".join(collector.raw)
    for leaked in (CANARY.encode(), grant_id.encode(), b"limit=2", key.encode()):
        assert leaked not in exported


async def test_a_retrieve_mode_call_traces_decide_and_audit_commit(
    tmp_path: Path, upstream: Upstream, collector: Collector
) -> None:
    with run_vault(tmp_path, extra_env={"VAULTGATE_OTLP_ENDPOINT": collector.endpoint}) as vault:
        app_id, key = vault.make_app_key()
        with vault.admin() as admin:
            grant_id = _grant(admin, app_id, upstream)
        async with AlterVault(api_key=key, base_url=vault.base_url) as sdk:
            answer = await sdk.request("GET", f"{upstream.origin}/v1/models", grant_id=grant_id)
        assert answer.status_code == 200
    roots = collector.named("POST /sdk/token")
    assert len(roots) == 1
    assert roots[0].attributes["http.response.status_code"] == 200
    children = {s.name for s in collector.spans if s.parent_id == roots[0].span_id}
    assert children == {"vaultgate.decide", "vaultgate.audit.commit"}  # the SDK calls upstream
    assert CANARY.encode() not in b"".join(collector.raw)


def test_without_an_endpoint_the_sdk_and_exporter_are_not_loaded(tmp_path: Path) -> None:
    # (FastAPI itself imports the small OpenTelemetry API; the SDK is what tracing adds.)
    import subprocess
    import sys

    script = (
        "import sys\n"
        "from vaultgate.server.app import create_app\n"
        "from vaultgate.server.bootstrap import initialise\n"
        "from vaultgate.server.settings import load_settings\n"
        f"s = load_settings({{'VAULTGATE_DATA_DIR': {str(tmp_path)!r}}})\n"
        "initialise(s)\n"
        "create_app(s)\n"
        "sdk = ('opentelemetry.sdk', 'opentelemetry.exporter')\n"
        "print(any(m.startswith(sdk) for m in sys.modules))\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, check=True, timeout=120
    )
    assert out.stdout.strip() == "False"


def test_a_bad_endpoint_is_a_clear_settings_error() -> None:
    from vaultgate.server.settings import SettingsError, load_settings

    with pytest.raises(SettingsError, match="VAULTGATE_OTLP_ENDPOINT"):
        load_settings({"VAULTGATE_OTLP_ENDPOINT": "collector:4318"})
    assert load_settings({}).otlp_endpoint is None
