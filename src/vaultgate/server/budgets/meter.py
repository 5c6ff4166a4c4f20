"""Reading token usage from an LLM API's answer while it is relayed, streamed or not.

The relay hands every chunk to ``UsageMeter.feed`` as it passes; nothing waits on the meter and
it never holds the stream. An SSE stream is parsed line by line as it arrives (the usage is in
its last events: OpenAI's ``include_usage`` chunk, Anthropic's ``message_start`` and
``message_delta``, Gemini's last ``usageMetadata``); a JSON answer is kept, up to a cap, only
to be parsed once it has ended. The shapes:

- OpenAI ``usage.prompt_tokens`` / ``completion_tokens`` (``total_tokens``), ``model``;
- Anthropic ``usage.input_tokens`` (plus cache reads and writes) / ``output_tokens``,
  ``model`` (in ``message_start.message`` when streamed);
- Gemini ``usageMetadata.promptTokenCount`` / ``candidatesTokenCount`` (plus
  ``thoughtsTokenCount``), ``modelVersion``; a JSON array of chunks is read too.

An answer with none of these counts as a request and no tokens.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any, Final

JSON_CAP: Final = 4 * 1024 * 1024  # a usage block past this is not looked for
LINE_CAP: Final = 1024 * 1024  # one SSE line longer than this is skipped, never buffered whole
MODEL_CAP: Final = 128


@dataclass(frozen=True, slots=True)
class Usage:
    """What one answer used; ``metered`` is False when it carried no usage at all."""

    tokens_in: int = 0
    tokens_out: int = 0
    model: str | None = None
    metered: bool = False

    def as_details(self) -> dict[str, object]:
        return {
            "tokens_in": self.tokens_in,
            "tokens_out": self.tokens_out,
            "model": self.model,
            "metered": self.metered,
        }


class UsageMeter:
    """Accumulates the usage of one response from its chunks."""

    def __init__(self, content_type: str | None) -> None:
        kind = (content_type or "").split(";", 1)[0].strip().lower()
        self._sse = kind == "text/event-stream"
        self._json = not self._sse and (kind.endswith("/json") or kind.endswith("+json"))
        self._kept: list[bytes] = []
        self._kept_size = 0
        self._line = b""
        self._skipping = False
        self._in: int | None = None
        self._out: int | None = None
        self._model: str | None = None

    def feed(self, chunk: bytes) -> None:
        if self._sse:
            self._feed_sse(chunk)
        elif self._json and self._kept_size + len(chunk) <= JSON_CAP:
            self._kept.append(chunk)
            self._kept_size += len(chunk)
        else:
            self._json = False  # too large to be worth reading: a request, no tokens

    def usage(self) -> Usage:
        """The usage seen so far (the whole of it once the response has ended)."""
        if self._json and self._kept:
            self._read_json(b"".join(self._kept))
            self._kept, self._json = [], False
        if self._in is None and self._out is None:
            return Usage(model=self._model)
        return Usage(self._in or 0, self._out or 0, self._model, metered=True)

    def _feed_sse(self, chunk: bytes) -> None:
        lines = (self._line + chunk).split(b"\n")
        self._line = lines.pop()
        if len(self._line) > LINE_CAP:
            self._line, self._skipping = b"", True
        for line in lines:
            if self._skipping:
                self._skipping = False  # the rest of an over-long line
                continue
            if line.startswith(b"data:"):
                self._read_event(line[5:].strip())

    def _read_event(self, data: bytes) -> None:
        if not data.startswith(b"{"):
            return  # "[DONE]", or not an object
        try:
            self._take(json.loads(data))
        except ValueError:
            return

    def _read_json(self, body: bytes) -> None:
        try:
            document = json.loads(body)
        except ValueError:
            return
        for item in document if isinstance(document, list) else [document]:
            self._take(item)

    def _take(self, obj: Any) -> None:
        if not isinstance(obj, dict):
            return
        if obj.get("type") == "message_start" and isinstance(obj.get("message"), dict):
            obj = obj["message"]  # Anthropic's stream opens with the message and its usage
        self._model_of(obj.get("model") or obj.get("modelVersion"))
        usage = obj.get("usage")
        if isinstance(usage, dict):
            self._openai_or_anthropic(usage)
        metadata = obj.get("usageMetadata")
        if isinstance(metadata, dict):
            self._gemini(metadata)

    def _openai_or_anthropic(self, usage: dict[str, Any]) -> None:
        if "prompt_tokens" in usage or "completion_tokens" in usage:
            self._set(_count(usage, "prompt_tokens"), _count(usage, "completion_tokens"))
            return
        cached = _count(usage, "cache_creation_input_tokens", "cache_read_input_tokens")
        tokens_in = _count(usage, "input_tokens")
        if tokens_in is not None or cached:
            tokens_in = (tokens_in or 0) + (cached or 0)
        self._set(tokens_in, _count(usage, "output_tokens"))

    def _gemini(self, metadata: dict[str, Any]) -> None:
        out = _count(metadata, "candidatesTokenCount", "thoughtsTokenCount")
        self._set(_count(metadata, "promptTokenCount"), out)

    def _set(self, tokens_in: int | None, tokens_out: int | None) -> None:
        # Later events carry running totals (Anthropic's message_delta, each Gemini chunk).
        if tokens_in is not None:
            self._in = tokens_in
        if tokens_out is not None:
            self._out = tokens_out

    def _model_of(self, value: object) -> None:
        if isinstance(value, str) and value and value.isprintable():
            self._model = value[:MODEL_CAP]


def _count(source: dict[str, Any], *names: str) -> int | None:
    """The sum of the named counts that are present and sane, None when none is."""
    found = [
        value for name in names if type(value := source.get(name)) is int and 0 <= value < 2**40
    ]
    return sum(found) if found else None
