"""The meter reads every provider's usage shape, whatever the chunking, and never guesses."""

from __future__ import annotations

import json
from decimal import Decimal

import pytest

from support.llm import SHAPES, TOKENS_IN, TOKENS_OUT, _anthropic, _gemini, _openai, _sse
from vaultgate.server.budgets import Pricing, Usage, UsageMeter, window_of
from vaultgate.server.budgets.meter import JSON_CAP
from vaultgate.server.budgets.pricing import Price, PricingError, parse_pricing

ANSWERS = {"openai": _openai, "anthropic": _anthropic, "gemini": _gemini}


def _body(shape: str, stream: bool) -> bytes:
    answer = ANSWERS[shape](stream)
    if stream:
        assert isinstance(answer, list)
        return b"".join(_sse(shape, answer))
    return json.dumps(answer).encode()


@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("stream", [False, True], ids=["json", "sse"])
@pytest.mark.parametrize("size", [1, 7, 10_000])
def test_every_shape_is_read_in_any_chunking(shape: str, stream: bool, size: int) -> None:
    body = _body(shape, stream)
    meter = UsageMeter("text/event-stream" if stream else "application/json; charset=utf-8")
    for at in range(0, len(body), size):
        meter.feed(body[at : at + size])
    usage = meter.usage()
    assert (usage.tokens_in, usage.tokens_out, usage.metered) == (TOKENS_IN, TOKENS_OUT, True)
    assert usage.model is not None


def test_a_gemini_json_array_of_chunks_takes_the_last_usage() -> None:
    chunks = _gemini(True)
    meter = UsageMeter("application/json")
    meter.feed(json.dumps(chunks).encode())
    assert meter.usage().tokens_out == TOKENS_OUT


def test_anthropic_cache_tokens_count_as_input() -> None:
    meter = UsageMeter("application/json")
    usage = {"input_tokens": 3, "cache_read_input_tokens": 40, "output_tokens": 5}
    meter.feed(json.dumps({"model": "claude-3-haiku", "usage": usage}).encode())
    assert (meter.usage().tokens_in, meter.usage().tokens_out) == (43, 5)


@pytest.mark.parametrize(
    ("kind", "body"),
    [
        ("application/json", b'{"id": 1}'),
        ("application/json", b"not json"),
        ("text/event-stream", b"data: [DONE]\n\ndata: {broken\n\n"),
        ("text/plain", b'{"usage": {"prompt_tokens": 5, "completion_tokens": 5}}'),
        ("application/json", b'{"usage": {"prompt_tokens": "5", "completion_tokens": -1}}'),
        ("application/json", b'{"usage": {"prompt_tokens": true}}'),
    ],
)
def test_no_usable_usage_counts_no_tokens(kind: str, body: bytes) -> None:
    meter = UsageMeter(kind)
    meter.feed(body)
    assert meter.usage() == Usage()


def test_a_body_past_the_cap_is_not_kept() -> None:
    meter = UsageMeter("application/json")
    meter.feed(b" " * JSON_CAP)
    meter.feed(b'{"usage": {"prompt_tokens": 1, "completion_tokens": 1}}')
    assert meter.usage().metered is False


def test_an_over_long_sse_line_is_skipped_not_buffered() -> None:
    meter = UsageMeter("text/event-stream")
    for _ in range(3):
        meter.feed(b"data: " + b"x" * (600 * 1024))
    meter.feed(b"\n\n" + _body("openai", True))
    assert meter.usage().tokens_in == TOKENS_IN
    assert len(meter._line) < 1024  # nothing of the long line is still held


def test_prices_match_the_longest_prefix_and_round_up() -> None:
    pricing = Pricing(
        {"gpt-4o": Price(Decimal("2.50"), Decimal(10)), "gpt-4": Price(Decimal(30), Decimal(60))}
    )
    assert pricing.cost(Usage(1_000_000, 0, "gpt-4o-2024-08-06")) == 2_500_000_000
    assert pricing.cost(Usage(0, 1, "GPT-4-0613")) == 60_000
    assert pricing.cost(Usage(1, 0, "models/gpt-4o")) == 2_500
    assert pricing.cost(Usage(1, 1, "llama-3")) is None
    cheap = Pricing({"m": Price(Decimal("0.0001"), Decimal(0))})
    assert cheap.cost(Usage(1, 0, "m")) == 1  # a fraction of a nano-USD is charged as one


@pytest.mark.parametrize(
    "document",
    [
        [],
        {"models": []},
        {"models": {"m": {"input": "1"}}},
        {"models": {"m": {"input": "-1", "output": "1"}}},
        {"models": {"m": {"input": 0.1, "output": "1"}}},
        {"models": {"m": {"input": "abc", "output": "1"}}},
    ],
)
def test_a_bad_price_table_is_refused_by_name(document: object) -> None:
    with pytest.raises(PricingError, match=r"prices\.json"):
        parse_pricing(document, "prices.json")


def test_windows_are_calendar_periods_in_utc() -> None:
    at = 1_796_083_200 + 3_723.5  # 2026-12-01T01:02:03.5Z
    assert window_of("hour", at) == (1_796_083_200 + 3_600, 1_796_083_200 + 7_200)
    assert window_of("day", at) == (1_796_083_200, 1_796_083_200 + 86_400)
    start, end = window_of("month", at)
    assert (start, end) == (1_796_083_200, 1_796_083_200 + 31 * 86_400)  # to 2027-01-01
