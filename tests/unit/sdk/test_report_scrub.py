"""The outcome report's scrub (`_audit.scrubbed`): its one-look fast path masks exactly what
walking the body field by field masks, secrets that JSON escapes included, and what it returns
is the report's JSON as sent."""

from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from vaultgate._audit import _scrub, scrubbed
from vaultgate._errors import REDACTED

CANARY = "sk-canary-scrub-Qv71"

_text = st.text(max_size=30)
_bodies = st.recursive(
    st.none() | st.booleans() | st.integers() | _text,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(_text, inner, max_size=4),
    max_leaves=12,
)


def _report(echo: str) -> dict[str, Any]:
    return {
        "method": "GET",
        "url": "https://api.example.com/v1",
        "request_headers": {"user-agent": "vaultgate-python", "x-echo": echo},
        "response_status": 200,
        "response_body": f'{{"you_sent": "{echo}"}}',
        "reason": None,
    }


def test_a_secret_echoed_anywhere_is_masked_in_keys_and_values() -> None:
    body = {**_report(CANARY), CANARY: [f"prefix {CANARY} suffix", {"deep": CANARY}]}
    text = scrubbed(body, (CANARY,)).decode()
    assert CANARY not in text
    assert text.count(REDACTED) == 5  # x-echo, the response body, the key, both in the list


def test_a_report_without_a_secret_comes_back_as_it_was() -> None:
    body = _report("nothing to hide")
    assert json.loads(scrubbed(body, (CANARY,))) == body


@pytest.mark.parametrize("secrets", [(CANARY,), ()])
def test_the_report_is_a_copy_the_callers_body_cannot_change_later(
    secrets: tuple[str, ...],
) -> None:
    # The report is sent in the background after request() returns: a caller reusing its
    # request body must change neither what is reported nor, with a secret, what is masked.
    sent = {"messages": [{"role": "user", "content": "hello"}]}
    report = scrubbed({"request_body": sent}, secrets)
    sent["messages"].append({"role": "user", "content": CANARY})
    first = {"messages": [{"role": "user", "content": "hello"}]}
    assert json.loads(report) == {"request_body": first}


def test_secrets_that_json_escapes_are_masked_too() -> None:
    # '"', '\\' and control characters read differently in JSON text than in the string: the
    # one look at the text cannot prove their absence, so the body is walked.
    for secret in ('tok"en-canary', "tok\\en-canary", "tok\x01en-canary", "tok\nen-canary"):
        body = _report(secret)
        out = json.loads(scrubbed(body, (secret,)))
        assert secret not in out["request_headers"]["x-echo"]
        assert secret not in out["response_body"]
        assert REDACTED in out["request_headers"]["x-echo"]


def test_a_value_json_cannot_render_is_named_not_rendered_and_still_masked() -> None:
    body = {"request_body": {"raw": CANARY, "odd": {CANARY}}}
    out = json.loads(scrubbed(body, (CANARY,)))
    assert out["request_body"] == {"raw": REDACTED, "odd": "<set not representable in JSON>"}


def test_non_ascii_text_is_sent_as_utf8_and_a_lone_surrogate_as_an_escape() -> None:
    body = _report("héllo ✓")
    assert scrubbed(body, (CANARY,)).decode("utf-8") == json.dumps(
        body, separators=(",", ":"), ensure_ascii=False
    )
    lone = {"request_body": "a\ud800b", "echo": CANARY}
    sent = scrubbed(lone, (CANARY,))
    assert sent.isascii() and json.loads(sent) == {"request_body": "a\ud800b", "echo": REDACTED}
    clean = {"request_body": "a\ud800b"}
    assert json.loads(scrubbed(clean, (CANARY,))) == clean


def test_empty_secrets_mask_nothing() -> None:
    body = _report("x")
    assert json.loads(scrubbed(body, ("",))) == body


@given(body=_bodies, secrets=st.lists(st.text(min_size=1, max_size=6), max_size=3))
def test_the_fast_path_masks_exactly_what_the_walk_masks(body: Any, secrets: list[str]) -> None:
    wrapped = {"body": body}
    fast = json.loads(scrubbed(wrapped, tuple(secrets)))
    walked = _scrub(wrapped, tuple(secrets))
    assert json.dumps(fast, sort_keys=True) == json.dumps(walked, sort_keys=True)
