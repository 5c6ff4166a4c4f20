"""A loopback upstream that answers in the shapes of three LLM APIs, plain JSON and SSE.

- OpenAI ``POST /v1/chat/completions``: ``usage`` in the JSON; streamed (``"stream": true``)
  with ``stream_options.include_usage``, the usage rides in the last chunk before ``[DONE]``;
- Anthropic ``POST /v1/messages``: ``usage`` in the JSON; streamed, ``message_start`` carries
  the input tokens and ``message_delta`` the output tokens;
- Gemini ``POST /v1beta/models/{model}:generateContent`` (JSON) and
  ``:streamGenerateContent?alt=sse`` (every chunk carries ``usageMetadata``, the last the total);
- ``POST /no-usage``: a JSON answer without any usage.

Every answer uses ``TOKENS_IN`` + ``TOKENS_OUT`` tokens; streams are sent in several chunks with
a flush after each, in chunked encoding, so the vault relays them as they come.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

TOKENS_IN = 30
TOKENS_OUT = 20
MODELS = {
    "openai": "gpt-4o-mini",
    "anthropic": "claude-3-5-haiku-20241022",
    "gemini": "gemini-2.0-flash",
}
SHAPES = ("openai", "anthropic", "gemini")


@dataclass
class LlmUpstream:
    port: int
    calls: list[str] = field(default_factory=list)  # the paths answered, in order

    @property
    def origin(self) -> str:
        return f"http://127.0.0.1:{self.port}"


def request_of(shape: str, stream: bool) -> tuple[str, dict[str, Any]]:
    """The path and JSON body a client of ``shape`` sends (streamed or not)."""
    model = MODELS[shape]
    messages = [{"role": "user", "content": "hello"}]
    if shape == "openai":
        body: dict[str, Any] = {"model": model, "messages": messages}
        if stream:
            body |= {"stream": True, "stream_options": {"include_usage": True}}
        return "/v1/chat/completions", body
    if shape == "anthropic":
        body = {"model": model, "max_tokens": 64, "messages": messages}
        return "/v1/messages", body | ({"stream": True} if stream else {})
    verb = "streamGenerateContent?alt=sse" if stream else "generateContent"
    return f"/v1beta/models/{model}:{verb}", {"contents": [{"parts": [{"text": "hello"}]}]}


def _openai(stream: bool) -> list[dict[str, Any]] | dict[str, Any]:
    usage = {
        "prompt_tokens": TOKENS_IN,
        "completion_tokens": TOKENS_OUT,
        "total_tokens": TOKENS_IN + TOKENS_OUT,
    }
    base = {"id": "chatcmpl-1", "created": 0, "model": MODELS["openai"]}
    if not stream:
        message = {"role": "assistant", "content": "hi"}
        choice = {"index": 0, "message": message, "finish_reason": "stop"}
        return base | {"object": "chat.completion", "choices": [choice], "usage": usage}
    chunks = [
        base
        | {
            "object": "chat.completion.chunk",
            "choices": [{"index": 0, "delta": {"content": word}, "finish_reason": None}],
            "usage": None,
        }
        for word in ("h", "i")
    ]
    return [*chunks, base | {"object": "chat.completion.chunk", "choices": [], "usage": usage}]


def _anthropic(stream: bool) -> list[dict[str, Any]] | dict[str, Any]:
    model = MODELS["anthropic"]
    if not stream:
        return {
            "id": "msg_1",
            "type": "message",
            "role": "assistant",
            "model": model,
            "content": [{"type": "text", "text": "hi"}],
            "stop_reason": "end_turn",
            "usage": {"input_tokens": TOKENS_IN, "output_tokens": TOKENS_OUT},
        }
    start = {
        "id": "msg_1",
        "type": "message",
        "role": "assistant",
        "model": model,
        "content": [],
        "usage": {"input_tokens": TOKENS_IN, "output_tokens": 1},
    }
    return [
        {"type": "message_start", "message": start},
        {"type": "content_block_start", "index": 0, "content_block": {"type": "text", "text": ""}},
        {"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": "hi"}},
        {"type": "content_block_stop", "index": 0},
        {
            "type": "message_delta",
            "delta": {"stop_reason": "end_turn"},
            "usage": {"output_tokens": TOKENS_OUT},
        },
        {"type": "message_stop"},
    ]


def _gemini(stream: bool) -> list[dict[str, Any]] | dict[str, Any]:
    def chunk(out: int, text: str) -> dict[str, Any]:
        return {
            "candidates": [{"content": {"parts": [{"text": text}], "role": "model"}}],
            "usageMetadata": {
                "promptTokenCount": TOKENS_IN,
                "candidatesTokenCount": out,
                "totalTokenCount": TOKENS_IN + out,
            },
            "modelVersion": MODELS["gemini"],
        }

    if not stream:
        return chunk(TOKENS_OUT, "hi")
    return [chunk(5, "h"), chunk(12, "i"), chunk(TOKENS_OUT, "!")]


_ANSWERS = {"openai": _openai, "anthropic": _anthropic, "gemini": _gemini}


def _shape_of(path: str) -> str | None:
    if path.startswith("/v1/chat/completions"):
        return "openai"
    if path.startswith("/v1/messages"):
        return "anthropic"
    if path.startswith("/v1beta/models/"):
        return "gemini"
    return None


def _sse(shape: str, events: list[dict[str, Any]]) -> list[bytes]:
    frames = []
    for event in events:
        name = f"event: {event['type']}\n" if shape == "anthropic" else ""
        frames.append(f"{name}data: {json.dumps(event)}\n\n".encode())
    if shape == "openai":
        frames.append(b"data: [DONE]\n\n")
    return frames


def _handler(upstream: LlmUpstream) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, *args: Any) -> None:
            pass

        def do_POST(self) -> None:
            length = int(self.headers.get("content-length") or 0)
            body = json.loads(self.rfile.read(length) or b"{}")
            upstream.calls.append(self.path)
            shape = _shape_of(self.path)
            if shape is None:
                self._json({"id": "x", "answer": "no usage here"})
                return
            stream = body.get("stream") is True or "streamGenerateContent" in self.path
            answer = _ANSWERS[shape](stream)
            if stream:
                assert isinstance(answer, list)
                self._stream(_sse(shape, answer))
            else:
                self._json(answer)

        def _json(self, document: object) -> None:
            payload = json.dumps(document).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(payload)))
            self.end_headers()
            self.wfile.write(payload)

        def _stream(self, frames: list[bytes]) -> None:
            self.send_response(200)
            self.send_header("Content-Type", "text/event-stream")
            self.send_header("Transfer-Encoding", "chunked")
            self.end_headers()
            for frame in frames:
                # Split each frame in two so the vault's parser sees lines cut mid-way.
                for part in (frame[: len(frame) // 2], frame[len(frame) // 2 :]):
                    self.wfile.write(f"{len(part):x}\r\n".encode() + part + b"\r\n")
                    self.wfile.flush()
            self.wfile.write(b"0\r\n\r\n")
            self.wfile.flush()

    return Handler


@contextmanager
def run_llm_upstream() -> Iterator[LlmUpstream]:
    upstream = LlmUpstream(port=0)
    server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(upstream))
    upstream.port = server.server_address[1]
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield upstream
    finally:
        server.shutdown()
        server.server_close()
