"""The vault server: management API, SDK API, transparent proxy and portal.

Installed with ``vaultgate[server]``; the SDK (``vaultgate``) must never import it.
"""
