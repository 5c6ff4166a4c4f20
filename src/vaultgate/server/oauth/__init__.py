"""OAuth 2.0: machine credentials (obtaining, sealing, caching and refreshing access tokens)
and end-user Connect (OAuth apps, consent with PKCE and state, code exchange: apps.py,
connect.py, exchange.py, storing.py).

It owns the token-state table and the one-refresh-per-fleet lock; the protocol itself is Authlib's.
It must never let a client secret or refresh token leave the vault, nor print any token.
"""

from vaultgate.server.oauth.store import TokenStore
from vaultgate.server.oauth.tokens import OAUTH_TYPES, AccessToken, Holder, OAuthTokens

__all__ = ["OAUTH_TYPES", "AccessToken", "Holder", "OAuthTokens", "TokenStore"]
