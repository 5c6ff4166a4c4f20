"""Traces: one OpenTelemetry span per request, with children for decide, audit commit, upstream.

Off unless ``VAULTGATE_OTLP_ENDPOINT`` is set: a worker without tracing never imports the
OpenTelemetry SDK, and each ``span()`` on the request path then costs one context-variable read.
With it on, the SDK's batch processor exports over OTLP/HTTP off the request's task; a
caller's W3C ``traceparent`` is continued, and the upstream call forwards the vault's own
span as the parent, so a trace reads caller -> vault -> provider.

The tracer in use is carried in a context variable set by the request's span, not in a module
global: two apps in one process (tests, an embedding host) each trace to their own endpoint.

Spans carry the method, the mode, the route shape and statuses, never a URL's query, a header
value or a credential.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterable, Iterator, MutableSequence
from contextvars import ContextVar
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import SpanExporter
    from opentelemetry.trace import Span, Tracer

_TRACER: ContextVar[Tracer | None] = ContextVar("vaultgate_tracer", default=None)
_NOOP = contextlib.nullcontext()
_TRACE_HEADERS = frozenset({"traceparent", "tracestate"})


class Tracing:
    """The process's tracer provider, exporting to one OTLP/HTTP endpoint."""

    def __init__(
        self,
        endpoint: str,
        *,
        service_name: str = "vaultgate",
        exporter: SpanExporter | None = None,
    ) -> None:
        # Imported here so that a vault without tracing does not load the SDK at all.
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
        from opentelemetry.sdk.resources import Resource
        from opentelemetry.sdk.trace import TracerProvider
        from opentelemetry.sdk.trace.export import BatchSpanProcessor
        from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

        resource = Resource.create({"service.name": service_name})
        self.provider: TracerProvider = TracerProvider(resource=resource)
        self.provider.add_span_processor(
            BatchSpanProcessor(exporter or OTLPSpanExporter(endpoint=endpoint))
        )
        self.tracer: Tracer = self.provider.get_tracer("vaultgate")
        self._propagator = TraceContextTextMapPropagator()

    @contextlib.contextmanager
    def request(
        self, method: str, path: str, headers: Iterable[tuple[bytes, bytes]]
    ) -> Iterator[Span]:
        """The request's span, a child of the caller's ``traceparent`` when it sent one."""
        from opentelemetry.trace import SpanKind

        carrier = {
            name.decode("latin-1"): value.decode("latin-1")
            for name, value in headers
            if name in (b"traceparent", b"tracestate")
        }
        parent = self._propagator.extract(carrier) if carrier else None
        attributes = {"http.request.method": method, "vaultgate.route": route_of(path)}
        token = _TRACER.set(self.tracer)
        try:
            with self.tracer.start_as_current_span(
                f"{method} {route_of(path)}",
                context=parent,
                kind=SpanKind.SERVER,
                attributes=attributes,
                record_exception=False,
            ) as span:
                yield span
        finally:
            _TRACER.reset(token)

    def force_flush(self) -> bool:
        return self.provider.force_flush()

    def shutdown(self) -> None:
        self.provider.shutdown()


def span(name: str, **attributes: Any) -> contextlib.AbstractContextManager[Any]:
    """A child span of the current request's, or nothing at all when tracing is off."""
    tracer = _TRACER.get()
    if tracer is None:
        return _NOOP
    # Exceptions are not recorded as events: a span carries codes and statuses, never the text
    # or the traceback of an error.
    return tracer.start_as_current_span(name, attributes=attributes or None, record_exception=False)


def outgoing(headers: MutableSequence[tuple[str, str]]) -> None:
    """Make the current span the upstream's parent: replace the caller's trace headers.

    With tracing off the caller's own ``traceparent`` goes on untouched, as any header does.
    """
    if _TRACER.get() is None:
        return
    from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

    carrier: dict[str, str] = {}
    TraceContextTextMapPropagator().inject(carrier)  # the current span: the upstream call's
    headers[:] = [(n, v) for n, v in headers if n.lower() not in _TRACE_HEADERS]
    headers.extend(carrier.items())


def route_of(path: str) -> str:
    """The route's shape, so that span names stay few: grant ids and upstream paths are cut."""
    if path.startswith("/proxy/"):
        return "/proxy/{grant_id}/{path}"
    if path.startswith("/portal/"):
        return "/portal/..."
    if path.startswith("/v1/"):
        parts = path.split("/")
        return "/".join(parts[:3]) + ("/..." if len(parts) > 3 else "")
    return path
