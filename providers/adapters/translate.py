"""Building blocks for adapters that translate another API to OpenAI's format.

`completion()` builds a non-streamed chat.completion; `ChunkWriter` frames the
chunks of a stream exactly as OpenAI does (same id, created and model on every
chunk; `usage: null` on each when the client asked for usage, then one usage
chunk with empty choices). `TranslatedStream` is the ChatStream an adapter gets
by writing one async generator of chunks.
"""

import base64
import json
import math
import struct
import time
import uuid
from contextlib import contextmanager

import httpx

from . import errors
from .base import UpstreamError, Usage, estimate_prompt_tokens, estimate_tokens, sse

# What reading a provider's answer raises when it is not the shape its API documents: a string where an
# object was due (AttributeError), a list as a key (TypeError), a missing field (KeyError), nesting deeper
# than the parser goes (RecursionError), 1e999 made an int (OverflowError), a number as text (Malformed).
MALFORMED = (ValueError, TypeError, AttributeError, KeyError, IndexError, RecursionError, OverflowError, struct.error)


class Malformed(TypeError):
    """A provider's value of the wrong type, caught before it reaches a client as OpenAI's format."""


@contextmanager
def reading(provider: str):
    """Reading a whole answer: whatever is not its documented shape is the provider's invalid answer (a 502
    upstream_invalid_response, recorded), not the hub's crash (a 500) nor a wrong shape passed on."""
    try:
        yield
    except MALFORMED:
        raise UpstreamError(
            f"The provider '{provider}' sent an answer that is not in its API's format.",
            code="upstream_invalid_response",
        ) from None


def string(value, what: str = "text") -> str:
    """A provider's string, "" for none: a number, list or object is not text."""
    if value is None:
        return ""
    if not isinstance(value, str):
        raise Malformed(f"{what} is a {type(value).__name__}, not a string")
    return value


def arguments(value) -> str:
    """A tool call's input as OpenAI's arguments: a JSON object, which is what clients parse them as."""
    if value is None:
        value = {}
    if not isinstance(value, dict):
        raise Malformed(f"tool input is a {type(value).__name__}, not an object")
    return json.dumps(value, ensure_ascii=False)


def completion_id() -> str:
    return f"chatcmpl-{uuid.uuid4().hex[:29]}"


def tool_call(index: int, call_id: str, name: str, arguments: str) -> dict:
    return {
        "id": string(call_id, "tool call id"),
        "type": "function",
        "function": {"name": string(name, "tool name"), "arguments": string(arguments, "tool arguments")},
    }


def completion(
    *, model: str, content: str | None, finish_reason: str, usage: Usage, tool_calls: list[dict] | None = None
) -> bytes:
    return completion_choices(model=model, choices=[(content, tool_calls, finish_reason)], usage=usage)


def completion_choices(*, model: str, choices: list[tuple], usage: Usage) -> bytes:
    """A chat.completion with one choice per (content, tool_calls, finish_reason) (n > 1)."""
    out = []
    for index, (content, tool_calls, finish_reason) in enumerate(choices):
        message = {"role": "assistant", "content": None if content is None else string(content), "refusal": None}
        if tool_calls:
            message["tool_calls"] = tool_calls
        out.append({"index": index, "message": message, "logprobs": None, "finish_reason": finish_reason})
    body = {
        "id": completion_id(),
        "object": "chat.completion",
        "created": int(time.time()),
        "model": model,
        "choices": out,
        "usage": usage.to_openai(),
    }
    return json.dumps(body, separators=(",", ":")).encode()


class ChunkWriter:
    """OpenAI chat.completion.chunk events, framed as SSE bytes."""

    def __init__(self, model: str, include_usage: bool):
        self.base = {
            "id": completion_id(),
            "object": "chat.completion.chunk",
            "created": int(time.time()),
            "model": model,
        }
        self.include_usage = include_usage
        self.chars = 0  # content and tool arguments sent, to estimate usage if none is reported

    def _chunk(self, delta: dict, finish_reason: str | None = None) -> bytes:
        chunk = dict(
            self.base, choices=[{"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish_reason}]
        )
        if self.include_usage:
            chunk["usage"] = None
        return sse(chunk)

    def role(self) -> bytes:
        return self._chunk({"role": "assistant", "content": ""})

    def text(self, text: str) -> bytes:
        self.chars += len(string(text))
        return self._chunk({"content": text})

    def tool_call_start(self, index: int, call_id: str, name: str, extra: dict | None = None) -> bytes:
        """`extra`: provider fields OpenAI's format carries beside a call (e.g. Gemini's extra_content)."""
        call = {
            "index": index,
            "id": string(call_id, "tool call id"),
            "type": "function",
            "function": {"name": string(name, "tool name"), "arguments": ""},
        }
        return self._chunk({"tool_calls": [dict(call, **(extra or {}))]})

    def tool_arguments(self, index: int, fragment: str) -> bytes:
        self.chars += len(string(fragment, "tool arguments"))
        return self._chunk({"tool_calls": [{"index": index, "function": {"arguments": fragment}}]})

    def finish(self, finish_reason: str) -> bytes:
        return self._chunk({}, finish_reason)

    def usage(self, usage: Usage) -> bytes:
        """The usage chunk, or nothing if the client did not ask for it."""
        return sse(dict(self.base, choices=[], usage=usage.to_openai())) if self.include_usage else b""

    @staticmethod
    def done() -> bytes:
        return b"data: [DONE]\n\n"

    @staticmethod
    def error(error: UpstreamError) -> bytes:
        return sse({"error": {"message": error.message, "type": error.type, "param": error.param, "code": error.code}})


class TranslatedStream:
    """A ChatStream over an adapter's own generator of SSE bytes.

    The adapter subclasses it and writes `translate()`, an async generator that
    reads the provider's stream and yields `self.writer.…` bytes, sets
    `self.usage` when the provider reports it, and raises UpstreamError when
    the provider fails mid-stream. This class adds [DONE], the error event,
    first-token timing, the usage estimate and closing the upstream response.
    """

    def __init__(self, response, route, body: dict, include_usage: bool):
        self.response = response  # an httpx.Response opened with stream=True, or None
        self.route = route
        self.body = body
        self.writer = ChunkWriter(route.upstream_name, include_usage)
        self.usage: Usage | None = None
        self.error: UpstreamError | None = None
        self.first_token_at: float | None = None

    async def translate(self):  # pragma: no cover - abstract
        raise NotImplementedError
        yield b""

    async def __aiter__(self):
        try:
            async for chunk in self.translate():
                if chunk:
                    if self.first_token_at is None and self.writer.chars:
                        self.first_token_at = time.monotonic()
                    yield chunk
        except UpstreamError as error:
            self.error = error.without(self.route.secret)  # a mid-stream error event may quote the credential
        except MALFORMED:
            # The provider's event parsed but is not the shape its API documents ("delta": "abc", "text": 42).
            self.error = UpstreamError(
                f"The provider '{self.route.provider_name}' sent a malformed stream event.",
                code="upstream_invalid_response",
            )
        except httpx.HTTPError as exc:
            self.error = errors.from_transport(exc, self.route.provider_name)
            self.error.message = f"The stream from the provider '{self.route.provider_name}' was cut off."
        if self.error is not None:
            yield self.writer.error(self.error)
            return
        yield self.writer.done()

    def final_usage(self) -> Usage:
        return Usage.or_estimate(
            self.usage, lambda: Usage(estimate_prompt_tokens(self.body), estimate_tokens(self.writer.chars))
        )

    async def aclose(self) -> None:
        if self.response is not None:
            await self.response.aclose()


def embeddings(*, model: str, vectors: list[list[float]], usage: Usage, encoding_format: str | None) -> bytes:
    """An OpenAI embeddings list; base64 is little-endian float32, as OpenAI sends it (and the SDK asks for)."""

    def encode(vector):
        if not isinstance(vector, list) or not all(
            isinstance(x, (int, float)) and not isinstance(x, bool) and math.isfinite(x) for x in vector
        ):
            raise Malformed("an embedding is not a list of finite numbers")
        if encoding_format == "base64":
            return base64.b64encode(struct.pack(f"<{len(vector)}f", *vector)).decode()
        return vector

    body = {
        "object": "list",
        "model": model,
        "data": [{"object": "embedding", "index": i, "embedding": encode(v)} for i, v in enumerate(vectors)],
        "usage": {"prompt_tokens": usage.prompt_tokens, "total_tokens": usage.prompt_tokens},
    }
    return json.dumps(body, separators=(",", ":")).encode()


def embedding_inputs(body: dict) -> list:
    """The request's input as a list: strings, or lists of token ids."""
    value = body.get("input")
    if isinstance(value, str) or (isinstance(value, list) and value and isinstance(value[0], int)):
        return [value]
    return list(value or [])
