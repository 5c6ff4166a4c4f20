"""Code shared by the SDK and the server: credentials, injection rules, SigV4, request signing.

It needs nothing but the standard library and httpx, and must never import from `vaultgate.server`.
"""
