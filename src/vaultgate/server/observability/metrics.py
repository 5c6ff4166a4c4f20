"""Every Prometheus series the vault exposes, defined in one place.

Cost on the request path: the decision histogram is the only metric a request touches itself
(one ``observe``), and grant-cache hits are plain integers on the pipeline. Request outcomes,
upstream latencies and audit batches are counted by the audit writer's thread when it commits
the events that record them, so the audit trail and the metrics agree on what happened and the
request never waits for either. What can be read when scraped (queue depth, failed batches,
dropped events, cache hits, approvals pending) is read then, from the runtime that answers.

Labels are bounded: a mode, an outcome and a reason code from a closed vocabulary (anything
else is "other"). No grant id, URL, caller or free text is ever a label value.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import TYPE_CHECKING, Any, Final

import sqlalchemy as sa
from prometheus_client import REGISTRY, CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from vaultgate.server.policy.decide import DENIAL_STATUS
from vaultgate.server.storage.engine import reading

if TYPE_CHECKING:
    from vaultgate.server.audit.events import AuditEvent
    from vaultgate.server.runtime import Runtime

MODES: Final = frozenset({"retrieve", "proxy", "transparent"})

# The reason codes a request's audit record can carry: the policy's denials (wire codes of the
# official protocol) and the vault's own refusals and upstream failures.
REASON_CODES: Final = frozenset(DENIAL_STATUS) | {
    "allowed",
    "approval_required",
    "audit_unavailable",
    "blocked_destination",
    "body_too_large",
    "changing_grant",
    "client_disconnected",
    "concurrency_limit_exceeded",
    "constraint_not_narrowing",
    "credential_revoked",
    "forbidden",
    "grant_expired",
    "grant_not_found",
    "grant_revoked",
    "injection_failed",
    "invalid_body",
    "invalid_header",
    "invalid_method",
    "invalid_path",
    "invalid_url",
    "method_override_refused",
    "redact_discharge_failed",
    "replayed_request",
    "request_rule_denied",
    "stale_request",
    "step_up_required",
    "unsupported_request_rule",
    "upstream_body_too_large",
    "upstream_error",
    "upstream_timeout",
    "websocket_not_supported",
}

# The request path's own audit events, and the outcome label each one reads as.
_REQUEST_EVENTS: Final = {"grant:use": "allowed", "grant:deny": "denied"}

REQUESTS = Counter(
    "vaultgate_requests",
    "Requests decided on a grant, by mode, outcome (allowed, denied) and reason code.",
    ["mode", "outcome", "code"],
)
UPSTREAM_SECONDS = Histogram(
    "vaultgate_upstream_seconds",
    "Upstream call latency as recorded in the outcome event, by mode and outcome (ok, error).",
    ["mode", "outcome"],
)
DECISION_SECONDS = Histogram(
    "vaultgate_decision_seconds",
    "Time from loading the grant to the policy and destination verdict.",
    buckets=(0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.5),
)
AUDIT_COMMIT_SECONDS = Histogram(
    "vaultgate_audit_commit_seconds",
    "Duration of one audit batch's transaction (chain, admission, commit).",
    buckets=(0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 5.0),
)
AUDIT_BATCH_EVENTS = Histogram(
    "vaultgate_audit_batch_events",
    "Events written per committed audit batch.",
    buckets=(1, 2, 5, 10, 25, 50, 100, 250, 500),
)
OAUTH_OUTCOMES: Final = frozenset({"ok", "refused", "unreachable"})
OAUTH_REFRESHES = Counter(
    "vaultgate_oauth_refreshes",
    "OAuth token requests sent to providers, by outcome (ok, refused, unreachable).",
    ["outcome"],
)
for _outcome in sorted(OAUTH_OUTCOMES):  # exposed at 0 from the start, so rate() has a base
    OAUTH_REFRESHES.labels(_outcome)


def reason(code: str | None) -> str:
    """``code`` when it is in the closed vocabulary, else "other" (never free text)."""
    if code is None:
        return "none"
    return code if code in REASON_CODES else "other"


def _mode(mode: str | None) -> str:
    return mode if mode in MODES else "other"


# The labelled children the writer thread counts into, by label values: prometheus_client's
# labels() takes a lock and checks its arguments on every call, once or twice per event.
_REQUEST_CHILDREN: dict[tuple[str, str, str], Any] = {}
_UPSTREAM_CHILDREN: dict[tuple[str, str], Any] = {}


def committed(events: Iterable[AuditEvent], seconds: float) -> None:
    """Count what a committed audit batch records; called on the audit writer's thread."""
    count = 0
    for event in events:
        count += 1
        outcome = _REQUEST_EVENTS.get(event.event)
        if outcome is not None:
            labels = (_mode(event.mode), outcome, reason(event.code))
            child = _REQUEST_CHILDREN.get(labels)
            if child is None:
                child = _REQUEST_CHILDREN[labels] = REQUESTS.labels(*labels)
            child.inc()
        elif event.event == "grant:outcome" and event.latency_ms is not None:
            pair = (_mode(event.mode), event.outcome)
            timer = _UPSTREAM_CHILDREN.get(pair)
            if timer is None:
                timer = _UPSTREAM_CHILDREN[pair] = UPSTREAM_SECONDS.labels(*pair)
            timer.observe(event.latency_ms / 1000)
    AUDIT_COMMIT_SECONDS.observe(seconds)
    AUDIT_BATCH_EVENTS.observe(count)


class RuntimeCollector(Collector):
    """What is read at scrape time from the runtime that answers the scrape."""

    def __init__(self, rt: Runtime) -> None:
        self._rt = rt

    def collect(self) -> Iterator[Metric]:
        writer = self._rt.audit
        yield GaugeMetricFamily(
            "vaultgate_audit_queue_depth",
            "Audit events waiting for the writer (fresh and retried).",
            value=writer.queued(),
        )
        yield CounterMetricFamily(
            "vaultgate_audit_failed_batches",
            "Audit batches whose transaction failed.",
            value=writer.stats.failed_batches,
        )
        yield CounterMetricFamily(
            "vaultgate_audit_dropped_events",
            "Fire-and-forget audit events that could not be stored and were dropped.",
            value=writer.stats.dropped,
        )
        cache = CounterMetricFamily(
            "vaultgate_grant_cache_lookups",
            "Grant lookups on the request path, by result (hit, miss).",
            labels=["result"],
        )
        cache.add_metric(["hit"], self._rt.pipeline.cache_hits)
        cache.add_metric(["miss"], self._rt.pipeline.cache_misses)
        yield cache
        yield from _pool(self._rt)
        yield GaugeMetricFamily(
            "vaultgate_approvals_pending",
            "Approval requests waiting for a decision (read from the database).",
            value=self._approvals_pending(),
        )

    def _approvals_pending(self) -> int:
        from vaultgate.server.storage.tables import approval_requests as R

        query = sa.select(sa.func.count()).select_from(R).where(R.c.status == "pending")
        with reading(self._rt.engine) as conn:
            return int(conn.execute(query).scalar_one())


def _pool(rt: Runtime) -> Iterator[Metric]:
    use = rt.upstream.pool_use()
    connections = GaugeMetricFamily(
        "vaultgate_upstream_connections",
        "Upstream connections of this process's pool, by state (in_use, idle).",
        labels=["state"],
    )
    connections.add_metric(["in_use"], use.in_use)
    connections.add_metric(["idle"], use.idle)
    yield connections
    yield GaugeMetricFamily(
        "vaultgate_upstream_connections_waiting",
        "Forwarded requests waiting for a pool connection (the pool or a host's share full).",
        value=use.waiting,
    )
    yield GaugeMetricFamily(
        "vaultgate_upstream_connections_limit",
        "The pool's size, all upstreams together (VAULTGATE_UPSTREAM_CONNECTIONS).",
        value=use.limit,
    )


def exposition(rt: Runtime) -> bytes:
    """The scrape body: the process-wide series, then the runtime's scrape-time ones."""
    local = CollectorRegistry(auto_describe=False)
    local.register(RuntimeCollector(rt))
    from vaultgate.server.observability.sink_metrics import SinkCollector  # imports sinks/

    local.register(SinkCollector(rt))
    return generate_latest(REGISTRY) + generate_latest(local)
