"""Entity tags for optimistic concurrency: a read hands out a tag, a write names the tag it was
based on, and a write based on a version that is no longer stored is refused (412), not merged.

A tag is the digest of the resource's canonical JSON, so every node of a fleet computes the same
tag for the same stored value without a version column. ``If-Match`` is parsed as RFC 9110 13.1.1
says: ``*`` or a list of entity tags, compared strongly (a weak tag never matches).
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Sequence
from typing import Any

from vaultgate.server.errors import InvalidInput


def entity_tag(doc: Any) -> str:
    """The strong tag of ``doc``: the same for equal JSON values, whatever their key order."""
    canonical = json.dumps(doc, sort_keys=True, separators=(",", ":"), default=str)
    return '"' + hashlib.sha256(canonical.encode()).hexdigest()[:32] + '"'


# One list member of If-Match (RFC 9110 8.8.3 and 5.6.1): an entity tag, weak or strong, whose
# opaque part may hold any visible character but a quote (a comma included), then a comma or
# the end. Empty members (", ,") are allowed by the list syntax.
_MEMBER = re.compile(r'[ \t]*(?:((?:W/)?"[\x21\x23-\x7e\x80-\xff]*")[ \t]*)?(?:,|$)')


def if_match(headers: Sequence[str]) -> frozenset[str] | None:
    """The tags the ``If-Match`` header lines accept (several lines are one list, RFC 9110
    5.3); None when they set no condition (none sent, or ``*``, which any existing resource
    meets: a missing one is a 404 before this is asked)."""
    if not headers:
        return None
    value = ", ".join(headers)
    if value.strip() == "*":
        return None
    tags: set[str] = set()
    at = 0
    while at < len(value):
        member = _MEMBER.match(value, at)
        if member is None or member.end() == at:
            raise InvalidInput(
                'If-Match: expected "*" or quoted entity tags such as "3f2a...", as the ETag '
                "header of a read gave them",
                code="invalid_if_match",
                field="If-Match",
            )
        if member.group(1):
            tags.add(member.group(1))
        at = member.end()
    if not tags:
        raise InvalidInput(
            "If-Match: empty; send the ETag of a read", code="invalid_if_match", field="If-Match"
        )
    return frozenset(tags)
