"""The HTTP methods a policy may name, and the one parser of a method list (grant and approval)."""

from __future__ import annotations

METHODS = ("GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS")


def distinct_methods(value: object) -> object:
    """The list upper-cased and de-duplicated in order; a non-list is left to pydantic."""
    if not isinstance(value, list):
        return value
    out: list[str] = []
    for item in value:
        method = item.upper() if isinstance(item, str) else None
        if method not in METHODS:
            raise ValueError("each method must be one of " + ", ".join(METHODS))
        if method not in out:
            out.append(method)
    return out
