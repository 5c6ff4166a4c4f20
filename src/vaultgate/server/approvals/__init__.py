"""Human approvals: holding a risky call, people deciding it, sending it exactly once.

It owns the held request (sealed, never stored in plaintext), the gates and their decisions, and
the single execution; it must never send a held call twice, nor before its last gate approved.
"""
