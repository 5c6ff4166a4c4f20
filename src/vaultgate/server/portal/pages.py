"""Rendering: one Jinja environment with autoescape on, and the filters the templates share.

Jinja loads with the first page rendered, not with the app: a worker that only proxies never
shows a page, and Jinja is about 1.6 MiB of its resident memory (``test_worker_imports``).
"""

from __future__ import annotations

import functools
from collections.abc import Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from starlette.responses import HTMLResponse

from vaultgate.server.providers.names import with_article

if TYPE_CHECKING:
    import jinja2

TEMPLATES = Path(__file__).parent / "templates"
STATIC = Path(__file__).parent / "static"


def _when(value: object) -> str:
    """A stored time as ``2025-01-31 14:05:09 UTC``; the raw text for anything else."""
    if value is None or value == "":
        return "never"
    if isinstance(value, str):
        try:
            value = datetime.fromisoformat(value)
        except ValueError:
            return str(value)
    if isinstance(value, datetime):
        if value.tzinfo is None:
            value = value.replace(tzinfo=UTC)
        return value.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S UTC")
    return str(value)


def _field_id(name: str) -> str:
    return "f-" + "".join(c if c.isalnum() else "-" for c in name)


@functools.cache
def environment() -> jinja2.Environment:
    """The portal's one Jinja environment, built on first use."""
    import jinja2

    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(TEMPLATES),
        # Every page escapes by default; nothing in the templates marks user text as safe.
        autoescape=True,
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters["when"] = _when
    env.filters["field_id"] = _field_id
    env.filters["with_article"] = with_article
    return env


def render_text(template: str, context: Mapping[str, Any]) -> str:
    return environment().get_template(template).render(**context)


def render(
    template: str,
    context: Mapping[str, Any],
    *,
    status: int = 200,
    headers: Mapping[str, str] | None = None,
) -> HTMLResponse:
    return HTMLResponse(
        render_text(template, context), status_code=status, headers=dict(headers or {})
    )


def too_large_page(limit: int) -> bytes:
    context = {
        "title": "Form too large",
        "status": 413,
        "user": None,
        "csrf": "",
        "nav": "",
        "notice": None,
        "errors": {
            "": f"That form was larger than {limit // 1024} KiB, so nothing was read "
            "or saved. A credential value may be at most 64 KiB."
        },
    }
    return render_text("error.html", context).encode()
