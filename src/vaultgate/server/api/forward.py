"""Where the forwarding names used to live; the request path is egress's now (egress/modes.py).

Kept so that callers written against these names keep working; new code imports from egress.
"""

from vaultgate.server.egress.inject import inject
from vaultgate.server.egress.modes import admit, flatten, forward_buffered, target_of, with_query
from vaultgate.server.egress.relay import failure_code

__all__ = [
    "admit",
    "failure_code",
    "flatten",
    "forward_buffered",
    "inject",
    "target_of",
    "with_query",
]
