"""Alerts: expiries ahead, denial spikes, a broken chain, a sink falling behind.

It owns the ``alert_marks`` rows and the alerting loop (one elected process); an alert is an
``alert:*`` audit event, so it flows through the sinks and stays in the trail. It must never
raise the same alert twice for one object and window, and never carry a credential.
"""

from vaultgate.server.alerts.expiry import EXPIRY_SOURCES, Expiring, ExpirySource
from vaultgate.server.alerts.services import Alerter, AlertSettings

__all__ = ["EXPIRY_SOURCES", "AlertSettings", "Alerter", "Expiring", "ExpirySource"]
