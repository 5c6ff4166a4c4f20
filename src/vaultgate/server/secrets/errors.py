"""The request path's reads of the store, failing as "unavailable" (503) rather than a 500.

A database that is gone is not the client's fault and not a bug: the request is refused with
``storage_unavailable`` and the client may retry, exactly as when the audit trail cannot be written.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager

from sqlalchemy.exc import InterfaceError, OperationalError

from vaultgate.server.errors import Unavailable

log = logging.getLogger(__name__)


def storage_unavailable() -> Unavailable:
    return Unavailable("the vault's store cannot be read; try again", code="storage_unavailable")


@contextmanager
def store_reads() -> Iterator[None]:
    """Turn a lost connection or an unreadable database inside the block into a 503."""
    try:
        yield
    except (OperationalError, InterfaceError) as exc:
        # The driver's first line only: SQLAlchemy's str() would append bound parameters.
        inner = getattr(exc, "orig", None) or exc
        log.warning("store read failed: %s", type(inner).__name__)
        raise storage_unavailable() from None
