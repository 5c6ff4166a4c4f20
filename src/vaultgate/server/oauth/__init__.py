"""OAuth 2.0: machine credentials (token state, one refresh per fleet)
and end-user Connect (apps, consent, code exchange)."""
