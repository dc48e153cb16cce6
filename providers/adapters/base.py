"""The one interface every provider adapter implements.

An adapter takes an OpenAI-format request body and a Route, talks to its
provider, and gives back OpenAI-format bytes plus the usage it counted. It
raises UpstreamError, whose `retryable` flag is all routing needs to know.
"""

import json
import math
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from decimal import Decimal
from email.utils import parsedate_to_datetime
from typing import Protocol

import httpx
from django.conf import settings

from providers.redaction import scrub

# No model reads or writes anywhere near this many tokens in one request (the largest context windows
# are around 10M): a count beyond it is a provider's bug or a hostile answer, not usage to bill.
MAX_TOKENS = 100_000_000
MAX_SECONDS = 1_000_000  # of audio in one request: over eleven days


@dataclass
class Usage:
    """Token counts in OpenAI's sense: `prompt_tokens` counts every input token,
    including those read from or written to a prompt cache, which are counted
    again in `cache_read_tokens` / `cache_write_tokens`.

    `invalid` says what was wrong with the counts a provider reported (not a
    whole number from 0 to MAX_TOKENS); such usage is never billed as reported:
    the adapter bills its estimate instead (`or_estimate`).
    """

    prompt_tokens: int = 0
    completion_tokens: int = 0
    estimated: bool = False
    cache_read_tokens: int = 0
    cache_write_tokens: int = 0
    image_input_tokens: int = 0  # part of the prompt that was images (gpt-image-1 edits)
    images: int = 0  # images generated, priced per image of `image_tier` ("<size>/<quality>")
    image_tier: str = ""
    seconds: Decimal = Decimal(0)  # audio transcribed, priced per second
    invalid: str = ""

    @classmethod
    def from_openai(cls, data: dict | None) -> "Usage | None":
        if not isinstance(data, dict):
            return None
        counts = Counts()
        return counts.usage(
            cls(
                counts.read(data, "prompt_tokens"),
                counts.read(data, "completion_tokens"),
                cache_read_tokens=counts.read(data.get("prompt_tokens_details"), "cached_tokens"),
            )
        )

    @staticmethod
    def or_estimate(reported: "Usage | None", estimate) -> "Usage":
        """`reported` if the provider's counts are sound, else `estimate()`, marked estimated and saying why."""
        if reported is not None and not reported.invalid:
            return reported
        usage = estimate()
        usage.estimated = True
        if reported is not None:
            usage.invalid = reported.invalid
        return usage

    def to_openai(self) -> dict:
        usage: dict[str, int | dict[str, int]] = {
            "prompt_tokens": self.prompt_tokens,
            "completion_tokens": self.completion_tokens,
            "total_tokens": self.prompt_tokens + self.completion_tokens,
        }
        if self.cache_read_tokens or self.cache_write_tokens:
            usage["prompt_tokens_details"] = {"cached_tokens": self.cache_read_tokens}
        return usage


class Counts:
    """Reads the numbers of one usage report from a provider, trusting none of them.

    Each adapter parses its provider's usage through one of these, so a string,
    a float such as 1e999, a negative or absurd count, or a non-object where an
    object belongs is noted (and read as 0) instead of raising mid-answer or
    reaching the database.
    """

    def __init__(self):
        self.bad: list[str] = []

    def read(self, data, name: str, limit: int = MAX_TOKENS) -> int:
        if data is None:
            return 0
        if not isinstance(data, dict):
            self.bad.append(f"{type(data).__name__} for an object")
            return 0
        value = data.get(name)
        number = whole_number(value, limit)
        if number is None:
            self.bad.append(f"{name}={value!r}"[:80])
            return 0
        return number

    def seconds(self, value) -> Decimal | None:
        """A reported duration in seconds, to the millisecond; None (and noted) if it is not one."""
        try:
            seconds = (
                Decimal(str(value)) if isinstance(value, (int, float, str)) and not isinstance(value, bool) else None
            )
        except ArithmeticError:
            seconds = None
        if seconds is None or not seconds.is_finite() or not 0 <= seconds <= MAX_SECONDS:
            self.bad.append(f"seconds={value!r}"[:80])
            return None
        return seconds.quantize(Decimal("0.001"))

    def usage(self, usage: Usage) -> Usage:
        if self.bad:
            usage.invalid = f"the provider reported an invalid usage ({', '.join(self.bad)})"
        return usage


def whole_number(value, limit: int = MAX_TOKENS) -> int | None:
    """`value` as a count from 0 to `limit` (missing or null: 0), or None if it is not one."""
    if value is None:
        return 0
    if isinstance(value, bool):
        return None
    if isinstance(value, float):
        value = int(value) if value.is_integer() else None  # 12.0 is a count; 1e999, NaN and 1.5 are not
    elif isinstance(value, str):
        value = int(value) if value.isascii() and value.isdigit() and len(value) <= 18 else None
    if isinstance(value, int) and 0 <= value <= limit:
        return value
    return None


def retry_after_seconds(value, cap: float) -> str | None:
    """A provider's Retry-After (delta-seconds or an HTTP date) as whole seconds from 1 to `cap`, else None.

    The value is the provider's word, and routing keeps the route out for as long as it says: `1e999`,
    `NaN`, a negative number or a date in the year 9999 would cool a route down forever, or tell the
    client to come back never. Too long (infinite included) is held to the cap; NaN, negative or
    unreadable is dropped.
    """
    if value is None:
        return None
    text = str(value).strip()[:64]
    try:
        seconds = float(text)
    except ValueError:
        try:
            seconds = parsedate_to_datetime(text).timestamp() - time.time()
        except (TypeError, ValueError, IndexError, OverflowError):
            return None
    if math.isnan(seconds) or seconds <= 0:
        return None
    return str(max(1, math.ceil(min(seconds, max(cap, 1.0)))))  # infinite, far off: the cap


class UpstreamError(Exception):
    """A provider failed. `status` is what the hub answers with.

    Its text is often the provider's own words, which may quote the request's
    credential: it is scrubbed of anything shaped like a key as it is set, and
    of the exact credential by `without()`, before anyone answers, stores, logs
    or caches it.
    """

    def __init__(
        self,
        message: str,
        *,
        status: int = 502,
        type: str = "upstream_error",
        code: str | None = None,
        param: str | None = None,
        retryable: bool = False,
        retry_after: str | None = None,
    ):
        super().__init__()
        self.message, self.status, self.type = message, status, type
        self.code = scrub(str(code))[:100] if code is not None else None
        self.param = scrub(str(param))[:100] if param is not None else None
        self.retryable = retryable
        self.route = None  # the route (hub.catalogue.Route) whose call failed, set by hub/routing.py
        self.retry_after = retry_after_seconds(retry_after, settings.HUB_COOLDOWN_MAX_SECONDS)

    @property
    def message(self) -> str:
        return self._message

    @message.setter
    def message(self, text: str) -> None:
        self._message = scrub(str(text))
        self.args = (self._message,)

    def without(self, secret: str) -> "UpstreamError":
        """This error with every trace of the credential `secret` removed (see providers/redaction.py)."""
        if secret:
            self.message = scrub(self.message, secret)
            self.code = scrub(self.code, secret) if self.code else self.code
            self.param = scrub(self.param, secret) if self.param else self.param
        return self


@dataclass
class ChatResult:
    """A whole answer: its bytes, as the client gets them, and what it used."""

    body: bytes
    usage: Usage
    content_type: str = "application/json"


@dataclass
class ImageResult:
    """Generated images, base64, before the hub answers with them or with links to its copies.

    `images` are {"b64_json": …, "revised_prompt"?: …}; `extra` are the other
    top-level fields of OpenAI's answer to pass on (size, quality, usage, …).
    """

    images: list
    usage: Usage
    extra: dict


class ChatStream(Protocol):
    """Server-sent events, already framed for the client (b"data: …\\n\\n").

    `final_usage()` is what the provider reported, or an estimate of what was
    produced if it reported none (a cut or cancelled stream); `error` is set
    if the stream broke, after an error event was sent to the client.
    """

    error: UpstreamError | None
    first_token_at: float | None

    def __aiter__(self) -> AsyncIterator[bytes]: ...

    def final_usage(self) -> Usage: ...

    async def aclose(self) -> None: ...


class Adapter(Protocol):
    async def chat(self, route, body: dict) -> ChatResult: ...

    async def chat_stream(self, route, body: dict, include_usage: bool) -> ChatStream: ...


def message_text(message: dict) -> str:
    content = message.get("content")
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return " ".join(p.get("text", "") for p in content if isinstance(p, dict) and p.get("type") == "text")
    return ""


def estimate_tokens(text_length: int) -> int:
    # No tokenizer ships offline; ~4 characters a token is OpenAI's own rule of thumb.
    return math.ceil(text_length / 4)


def estimate_prompt_tokens(body: dict) -> int:
    messages = body.get("messages") or []
    chars = sum(
        len(message_text(m)) + len(json.dumps(m.get("tool_calls", ""))) for m in messages if isinstance(m, dict)
    )
    return estimate_tokens(chars) + 3 * len(messages)


def sse(data: dict | str) -> bytes:
    payload = data if isinstance(data, str) else json.dumps(data, separators=(",", ":"))
    return b"data: " + payload.encode() + b"\n\n"


class ByteStream:
    """A provider's binary answer (speech), relayed as it arrives; usage known before it starts.

    A cut is not reported in band (audio has no error event): the client gets
    what arrived, and `error` says what happened for the usage record.
    """

    def __init__(self, chunks, usage: Usage, content_type: str, on_close=None):
        self._chunks, self._usage, self.content_type, self._on_close = chunks, usage, content_type, on_close
        self.error: UpstreamError | None = None
        self.first_token_at: float | None = None

    async def __aiter__(self):
        try:
            async for chunk in self._chunks:
                if chunk:
                    if self.first_token_at is None:
                        self.first_token_at = time.monotonic()
                    yield chunk
        except httpx.HTTPError:
            self.error = UpstreamError(
                "The audio stream from the provider was cut off.", code="upstream_stream_incomplete"
            )

    def final_usage(self) -> Usage:
        return self._usage

    async def aclose(self) -> None:
        if self._on_close is not None:
            await self._on_close()
