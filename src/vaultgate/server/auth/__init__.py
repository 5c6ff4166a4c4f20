"""Who is calling: API keys (admin and app), SDK request signatures, portal users.

Keys are stored only as keyed hashes and never logged; nothing here decrypts a secret.
"""
