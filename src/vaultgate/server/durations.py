"""Durations as people type them: ``3600``, ``30s``, ``15m``, ``2h``, ``7d``.

One parser for the CLI (``--ttl``, ``--since``) and the portal's forms, so ``30m`` means the same
everywhere. The API itself keeps plain seconds (``ttl_seconds``): a wire format should not parse.
"""

from __future__ import annotations

import re
from typing import Final

DURATION_FORMAT: Final = "a number of seconds, or a number with s, m, h or d (30s, 15m, 2h, 7d)"

_DURATION: Final = re.compile(r"(\d{1,9})\s*([smhd]?)")
_UNIT: Final = {"": 1, "s": 1, "m": 60, "h": 3600, "d": 86400}


def parse_duration(text: str) -> int:
    """Whole seconds of ``text``; ``ValueError`` naming the accepted format otherwise."""
    match = _DURATION.fullmatch(text.strip().lower())
    if match is None:
        raise ValueError(f"{text!r} is not a duration: expected {DURATION_FORMAT}")
    return int(match[1]) * _UNIT[match[2]]
