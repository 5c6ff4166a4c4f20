"""Secrets and their grants: validation, sealing through the barrier, versions, clones, revocation.

Plaintext exists here only between the request body and ``Barrier.seal_secret``; it is never
stored, logged or returned.
"""
