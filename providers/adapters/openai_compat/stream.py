"""An OpenAI-compatible stream, relayed: bytes pass through; usage, errors and bounds are checked on the way."""

import json
import time

import httpx
from django.conf import settings

from .. import errors, transport
from ..base import UpstreamError, Usage, estimate_prompt_tokens, estimate_tokens, sse
from ..translate import MALFORMED


class OpenAIStream:
    """The provider's SSE relayed as it came, event by event: usage read, errors and malformed events caught."""

    def __init__(self, response: httpx.Response, body: dict, include_usage: bool, provider: str, secret: str = ""):
        self._response = response
        self._secret = secret
        self._body = body
        self._include_usage = include_usage
        self._provider = provider
        self._chars = 0
        self._done = False
        self._finished = False
        self.usage: Usage | None = None
        self.error: UpstreamError | None = None
        self.first_token_at: float | None = None

    async def __aiter__(self):
        buffer, carried, limit = b"", b"", settings.HUB_UPSTREAM_MAX_EVENT_BYTES
        try:
            async for chunk in transport.raw_chunks(self._response):
                chunk, carried = carried + chunk, b""
                if b"\r" in chunk:
                    if chunk.endswith(b"\r"):  # its \n comes in the next read: \r\n is normalised whole
                        chunk, carried = chunk[:-1], b"\r"
                    chunk = chunk.replace(b"\r\n", b"\n")
                searched = max(0, len(buffer) - 1)  # only the new bytes: a long event costs its length once
                buffer += chunk
                out = []
                while (end := buffer.find(b"\n\n", searched)) >= 0:
                    searched = 0
                    event, buffer = buffer[: end + 2], buffer[end + 2 :]
                    try:
                        kept = self._on_event(event)
                    except MALFORMED:
                        # JSON, but not the shape of a chunk ("choices": "abc"): as malformed as "data: abc".
                        self.error, kept = self._malformed(), None
                    if kept:
                        out.append(kept)
                    if self.error is not None and not kept:
                        break
                if out:
                    yield b"".join(out)
                if self.error is None and len(buffer) > limit:
                    # A provider that never ends its event is not buffered without bound.
                    self.error = transport.too_large(self._provider, limit, "a stream event")
                if self.error is not None or self._done:
                    break
        except httpx.HTTPError as exc:
            self.error = errors.from_transport(exc, self._provider)
            self.error.message = f"The stream from the provider '{self._provider}' was cut off."
        if not self._done and self.error is None and not self._finished:
            self.error = UpstreamError(
                f"The stream from the provider '{self._provider}' ended early.", code="upstream_stream_incomplete"
            )
        if self.error is not None:
            yield sse(
                {
                    "error": {
                        "message": self.error.message,
                        "type": self.error.type,
                        "param": None,
                        "code": self.error.code,
                    }
                }
            )

    def _on_event(self, event: bytes) -> bytes | None:
        data = b""
        for line in event.split(b"\n"):
            if line.startswith(b"data:"):
                data += line[5:].strip()
        if not data:
            return event  # comments and keep-alives pass as they are
        if data == b"[DONE]":
            self._done = True
            return event
        try:
            chunk = json.loads(data)
        except (ValueError, RecursionError):
            self.error = self._malformed()
            return None
        if not isinstance(chunk, dict):
            return event
        if "error" in chunk:
            # Not relayed as it came (it may quote the credential): the client gets the hub's error event below.
            message, code, _ = errors.upstream_message(data)
            self.error = UpstreamError(message or "The provider reported an error mid-stream.", code=code).without(
                self._secret
            )
            return None
        choices = chunk.get("choices") or []
        for choice in choices:
            delta = choice.get("delta") or {}
            size = len(delta.get("content") or "")
            for call in delta.get("tool_calls") or []:
                size += len((call.get("function") or {}).get("arguments") or "")
            if size and self.first_token_at is None:
                self.first_token_at = time.monotonic()
            self._chars += size
            if choice.get("finish_reason"):
                self._finished = True
        usage = Usage.from_openai(chunk.get("usage"))
        if usage is not None:
            self.usage = usage
            if not self._include_usage and not choices:
                return None  # the client did not ask for the usage chunk
            if usage.invalid:
                # Shown what it is billed: the estimate, not the provider's nonsense.
                return sse(dict(chunk, usage=self.final_usage().to_openai()))
        return event

    def _malformed(self) -> UpstreamError:
        return UpstreamError(
            f"The provider '{self._provider}' sent a malformed stream event.", code="upstream_invalid_response"
        )

    def final_usage(self) -> Usage:
        return Usage.or_estimate(
            self.usage, lambda: Usage(estimate_prompt_tokens(self._body), estimate_tokens(self._chars))
        )

    async def aclose(self) -> None:
        await self._response.aclose()
