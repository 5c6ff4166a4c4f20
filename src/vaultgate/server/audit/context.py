"""``X-Alter-Context``: the caller's audit context (tool, run id, thread id, parent, metadata).

The official client sends compact JSON of a flat ``{str: str}`` object of at most 20 keys, keys of
at most 64 characters, values of at most 512, 4096 bytes in all (``Agent.trace()`` and the MCP and
LangChain helpers fill ``agent``, ``parent_agent``, ``run_id``, ``thread_id``, ``tool``,
``tool_call_id``, ``framework``, and free metadata keys). It is signed, so it is what the key
holder asserted; it is stored in the use event's ``details.context`` (control characters escaped
by the audit writer) and filterable in ``GET /v1/audit``. Anything past the client's own bounds
is refused, not truncated, so what is stored is exactly what was signed.
"""

from __future__ import annotations

import json

from vaultgate.server.errors import InvalidInput

HEADER = "x-alter-context"
MAX_BYTES = 4096
MAX_KEYS = 20
MAX_KEY = 64
MAX_VALUE = 512
# The keys GET /v1/audit filters on (query parameter = context key).
FILTERABLE = ("run_id", "thread_id", "tool")


def _refuse(problem: str) -> InvalidInput:
    return InvalidInput(f"X-Alter-Context: {problem}", code="invalid_context", field=HEADER)


def parse_context(raw: str | None) -> dict[str, str] | None:
    """The context a request carries, or None without one; 400 ``invalid_context`` if malformed."""
    if raw is None or raw == "":
        return None
    if len(raw.encode("utf-8", "surrogatepass")) > MAX_BYTES:
        raise _refuse(f"longer than {MAX_BYTES} bytes")
    try:
        data = json.loads(raw)
    except ValueError:
        raise _refuse("not JSON") from None
    if not isinstance(data, dict):
        raise _refuse("must be a JSON object of strings")
    if len(data) > MAX_KEYS:
        raise _refuse(f"more than {MAX_KEYS} keys")
    for key, value in data.items():
        if not key or len(key) > MAX_KEY:
            raise _refuse(f"keys must be 1 to {MAX_KEY} characters")
        if not isinstance(value, str) or len(value) > MAX_VALUE:
            raise _refuse(f"values must be strings of at most {MAX_VALUE} characters")
    return data or None
