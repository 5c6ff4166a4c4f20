"""Audit streaming: sinks configured in the database, fed from the audit table by a cursor each.

It owns the ``audit_sinks`` rows, their delivery loop and the wire formats (signed webhook,
RFC 5424 syslog, JSON lines); it must never add work to the request path, never skip an event a
sink has not acknowledged, and never return a sink's webhook secret.
"""

from vaultgate.server.sinks.delivery import Deliverer
from vaultgate.server.sinks.models import EventFilter, SinkCreate, SinkUpdate
from vaultgate.server.sinks.store import SinkStore

__all__ = ["Deliverer", "EventFilter", "SinkCreate", "SinkStore", "SinkUpdate"]
