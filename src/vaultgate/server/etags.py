"""Entity tags for optimistic concurrency: a read hands out a tag, a write names the tag it was
based on, and a write based on a version that is no longer stored is refused (412), not merged.

A tag is the digest of the resource's canonical JSON, so every node of a fleet computes the same
tag for the same stored value without a version column. ``If-Match`` is parsed as RFC 9110 13.1.1
says: ``*`` or a list of entity tags, compared strongly (a weak tag never matches).
"""

from __future__ import annotations

import hashlib
import json
from typing import Any

from vaultgate.server.errors import InvalidInput


def entity_tag(doc: Any) -> str:
    """The strong tag of ``doc``: the same for equal JSON values, whatever their key order."""
    canonical = json.dumps(doc, sort_keys=True, separators=(",", ":"), default=str)
    return '"' + hashlib.sha256(canonical.encode()).hexdigest()[:32] + '"'


def if_match(header: str | None) -> frozenset[str] | None:
    """The tags an ``If-Match`` header accepts; None when it sets no condition (absent, or ``*``,
    which any existing resource meets: a missing one is a 404 before this is asked)."""
    if header is None or header.strip() == "*":
        return None
    tags = [part.strip() for part in header.split(",") if part.strip()]
    for tag in tags:
        opaque = tag.removeprefix("W/")
        if len(opaque) < 2 or opaque[0] != '"' or opaque[-1] != '"' or '"' in opaque[1:-1]:
            raise InvalidInput(
                'If-Match: expected "*" or quoted entity tags such as "3f2a...", as the ETag '
                "header of a read gave them",
                code="invalid_if_match",
                field="If-Match",
            )
    if not tags:
        raise InvalidInput("If-Match: empty; send the ETag of a read", code="invalid_if_match")
    return frozenset(tags)
