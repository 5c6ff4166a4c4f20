"""HTTP: the management API, the SDK (Alter protocol) API, the transparent proxy, health.

Handlers parse, call one service method and serialise; they hold no business rules.
"""
