"""What no request takes past the vault, whatever its grant allows.

A credential-injecting proxy decides policy on the method and path it sees. Anything that makes the
upstream act on another method or path (an override header, ``_method`` in the query, a ``..;``
segment that Tomcat, Jetty and Spring read as ``..``) would let a request through policy as one
thing and have it run as another, so it is stripped or refused here, for every mode.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Final
from urllib.parse import parse_qsl

from vaultgate.server.errors import Forbidden, MethodNotAllowed
from vaultgate.server.policy.methods import METHODS
from vaultgate.server.policy.models import Policy

# The only methods the vault forwards, on every path. TRACE and TRACK echo the request (with the
# injected credential) back to the caller; CONNECT would turn the vault into a tunnel; WebDAV and
# other extension methods are outside what a policy's ``allowed_methods`` can even name.
ALLOWED_METHODS: Final = frozenset(METHODS)
ALLOW_HEADER: Final = ", ".join(METHODS)

# Request headers that frameworks and front proxies read as "the real method" or "the real path":
# Rails/Rack, Laravel/Symfony, Express method-override, Spring's HiddenHttpMethodFilter and
# ForwardedHeaderFilter, IIS URL Rewrite, Envoy, nginx setups. Policy is decided on the request line
# the vault sends, so none of these may travel with it. Lower case, compared case-insensitively.
OVERRIDE_HEADERS: Final = frozenset(
    {
        # method overrides
        "x-http-method-override",
        "x-http-method",
        "x-method-override",
        "x-original-method",
        "x-forwarded-method",
        "x-real-method",
        # URL rewrites
        "x-original-url",
        "x-original-uri",
        "x-original-path",
        "x-rewrite-url",
        "x-rewrite-uri",
        "x-override-url",
        "x-forwarded-uri",
        "x-forwarded-url",
        "x-forwarded-path",
        "x-forwarded-prefix",
        "x-envoy-original-path",
        "x-envoy-original-url",
    }
)

# Query parameters that Rails, Laravel, Symfony and method-override middlewares take as the method.
OVERRIDE_QUERY: Final = frozenset(
    {"_method", "x-http-method-override", "x-http-method", "x-method-override"}
)


def check_method(method: str) -> None:
    """``MethodNotAllowed`` (405) unless ``method`` is on the fixed allow-list."""
    if method.upper() not in ALLOWED_METHODS:
        raise MethodNotAllowed(
            f"the vault never forwards {method[:16]!r} requests; allowed: {ALLOW_HEADER}",
            headers={"Allow": ALLOW_HEADER},
        )


def check_override_query(query: str, restricts_methods: bool) -> None:
    """``_method`` and its kin in the query are refused (403) where the grant limits methods.

    A grant without a method list allows every method anyway, so there is nothing to bypass and a
    query parameter of that name is the caller's business.
    """
    if not restricts_methods or not query:
        return
    for name, _ in parse_qsl(query, keep_blank_values=True):
        if name.lower() in OVERRIDE_QUERY:
            raise Forbidden(
                f"the query parameter {name[:32]!r} overrides the method at many upstreams; "
                "it is refused on a grant that limits methods",
                code="method_override_refused",
            )


def without_overrides(headers: Iterable[tuple[str, str]]) -> list[tuple[str, str]]:
    """``headers`` minus every method-override and URL-rewrite header."""
    return [(name, value) for name, value in headers if name.lower() not in OVERRIDE_HEADERS]


def check_request(method: str, query: str, policies: Iterable[Policy]) -> None:
    """The pipeline's hygiene check, before policy: the method, then the query's overrides."""
    check_method(method)
    check_override_query(query, any(p.allowed_methods is not None for p in policies))
