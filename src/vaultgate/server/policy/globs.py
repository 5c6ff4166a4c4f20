"""Path globs of ``allowed_paths``: matching a normalised path, and one glob covering another.

Grammar, segment by segment (a glob always starts with ``/``):

* a segment of exactly ``**`` matches zero or more whole segments;
* ``*`` anywhere else matches any run of characters inside one segment (possibly empty);
* every other character is literal (``?``, ``[`` and ``]`` have no special meaning).

So ``/v1/*/messages`` matches ``/v1/abc/messages``, and ``/v1/**`` matches ``/v1``, ``/v1/`` and
everything below it.
"""

from __future__ import annotations

import re
from functools import cache, lru_cache

MAX_GLOB_LENGTH = 512


def glob_problem(glob: str) -> str | None:
    """Why ``glob`` is not a valid path glob, or None when it is."""
    if not glob.startswith("/"):
        return "must start with '/'"
    if len(glob) > MAX_GLOB_LENGTH:
        return f"must be at most {MAX_GLOB_LENGTH} characters"
    if any(ch.isspace() or ord(ch) < 0x20 or ord(ch) == 0x7F for ch in glob):
        return "must not contain whitespace or control characters"
    if "?" in glob or "#" in glob:
        return "matches the path only; '?' and '#' are not allowed"
    for segment in glob.split("/")[1:]:
        if segment in (".", ".."):
            return "must be normalised (no '.' or '..' segments)"
        if "**" in segment and segment != "**":
            return "'**' must be a whole segment"
    return None


def _segments(glob: str) -> tuple[str, ...]:
    return tuple(glob.split("/")[1:])


@lru_cache(maxsize=4096)
def compile_glob(glob: str) -> re.Pattern[str]:
    """The anchored regular expression that ``glob`` stands for (cached: decide() is hot)."""
    parts = ["^"]
    for segment in _segments(glob):
        if segment == "**":
            parts.append("(?:/[^/]*)*")
        else:
            parts.append("/" + "[^/]*".join(re.escape(piece) for piece in segment.split("*")))
    parts.append("$")
    return re.compile("".join(parts))


def glob_matches(glob: str, path: str) -> bool:
    return compile_glob(glob).match(path) is not None


def _segment_covers(parent: str, child: str) -> bool:
    """Whether every segment text matched by ``child`` is matched by ``parent`` (never '**')."""
    if parent == "*":
        return True
    if "*" not in child:
        return compile_glob("/" + parent).match("/" + child) is not None
    # Wildcard inside both segments: deciding containment exactly is not worth the risk; only an
    # identical pattern is known to be covered.
    return parent == child


def glob_covers(parent: str, child: str) -> bool:
    """Whether every path matched by ``child`` is matched by ``parent``.

    Conservative: it may answer False for a child that is in fact covered, never True for one that
    is not, so a clone can never widen its parent's paths.
    """
    p_segs, c_segs = _segments(parent), _segments(child)

    @cache
    def covers(i: int, j: int) -> bool:
        if i == len(p_segs):
            return j == len(c_segs)
        if p_segs[i] == "**":
            # The parent's ** absorbs nothing, or the child's next segment (whatever it matches).
            return covers(i + 1, j) or (j < len(c_segs) and covers(i, j + 1))
        if j == len(c_segs) or c_segs[j] == "**":
            return False
        return _segment_covers(p_segs[i], c_segs[j]) and covers(i + 1, j + 1)

    return covers(0, 0)
