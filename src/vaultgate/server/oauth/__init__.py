"""OAuth 2.0 credentials: obtaining, sealing, caching and refreshing access tokens for secrets.

It owns the token-state table and the one-refresh-per-fleet lock; the protocol itself is Authlib's.
It must never let a client secret or refresh token leave the vault, nor print any token.
"""

from vaultgate.server.oauth.store import TokenStore
from vaultgate.server.oauth.tokens import OAUTH_TYPES, AccessToken, Holder, OAuthTokens

__all__ = ["OAUTH_TYPES", "AccessToken", "Holder", "OAuthTokens", "TokenStore"]
