"""Anthropic's Messages API passed through: a client that speaks it keeps what only it has (cache_control,
thinking, server tools, beta features). The body goes as the client sent it, but for the model's name and
the hub's credential; the answer comes back as Anthropic sent it, its usage read for billing on the way."""

import json
import re
import time

import httpx

from .. import errors, sse, transport
from ..base import ChatResult, UpstreamError, Usage, estimate_prompt_tokens, estimate_tokens
from ..messages.response import error_body, error_status
from ..translate import Malformed, reading
from . import request
from .errors import error_from_response, map_error
from .response import usage as usage_of

# anthropic-version and anthropic-beta values are dates and feature names: nothing else is passed on.
HEADER_VALUE = re.compile(r"^[A-Za-z0-9_.,=: -]{1,500}$")
# Fields of a Messages request that count_tokens also takes (it refuses the others).
COUNTED = ("messages", "system", "tools", "tool_choice", "thinking", "mcp_servers")


def forwarded_headers(route, client: dict, stream: bool) -> dict:
    """The route's headers, with the client's anthropic-version, and its anthropic-beta added to the route's."""
    headers = request.headers(route, stream)
    version = client.get("anthropic-version", "")
    if HEADER_VALUE.match(version):
        headers["anthropic-version"] = version.strip()
    beta = client.get("anthropic-beta", "")
    if HEADER_VALUE.match(beta):
        names = [n.strip() for n in f"{headers.get('anthropic-beta', '')},{beta}".split(",") if n.strip()]
        headers["anthropic-beta"] = ",".join(dict.fromkeys(names))
    return headers


def native_body(route, body: dict, stream: bool) -> bytes:
    native = dict(body, model=route.upstream_name)
    native.pop("stream", None)
    if stream:
        native["stream"] = True
    return request.encode(native)


def count_url(route) -> str:
    return request.url(route) + "/count_tokens"


def count_body(route, body: dict) -> bytes:
    return request.encode({"model": route.upstream_name, **{k: body[k] for k in COUNTED if k in body}})


def whole_result(content: bytes, body: dict, chat: dict, provider: str) -> ChatResult:
    """The answer as it came, and its usage (the estimate if the counts are missing or unsound)."""
    with reading(provider):
        data = json.loads(content)
        if not isinstance(data, dict) or not isinstance(data.get("content"), list):
            raise Malformed("not a Message")
        reported = data.get("usage")
        counted = usage_of(reported) if isinstance(reported, dict) else None
        chars = sum(len(json.dumps(b)) for b in data["content"])
        used = Usage.or_estimate(counted, lambda: Usage(estimate_prompt_tokens(chat), estimate_tokens(chars)))
    return ChatResult(body=content, usage=used)


def count_result(content: bytes, provider: str) -> int:
    with reading(provider):
        value = json.loads(content).get("input_tokens")
        if isinstance(value, bool) or not isinstance(value, int) or value < 0:
            raise Malformed("input_tokens is not a count")
    return value


def frame(name: str, data: str) -> bytes:
    return f"event: {name}\ndata: {data}\n\n".encode()


class NativeStream:
    """Anthropic's events relayed as they came but for errors, which are the hub's (scrubbed) words."""

    content_type = "text/event-stream"

    def __init__(self, response, route, chat: dict):
        self.response, self.route, self.chat = response, route, chat
        self.start_usage: dict | None = None
        self.delta_usage: dict = {}
        self.chars = 0
        self.error: UpstreamError | None = None
        self.first_token_at: float | None = None

    def internal_error_event(self, message: str) -> bytes:
        return frame("error", json.dumps(error_body(500, message)))

    async def __aiter__(self):
        provider = self.route.provider_name
        try:
            async for name, data in sse.events(self.response):
                event = json.loads(data)
                if not isinstance(event, dict):
                    raise Malformed("an event is not an object")
                kind = event.get("type") or name
                if kind == "error":
                    error = event.get("error")
                    raise map_error(error if isinstance(error, dict) else {}, None, None, provider)
                self._count(kind, event)
                yield frame(name, data if "\n" not in data else json.dumps(event))
                if kind == "message_stop":
                    return
            raise UpstreamError(
                f"The stream from the provider '{provider}' ended early.", code="upstream_stream_incomplete"
            )
        except UpstreamError as error:
            self.error = error.without(self.route.secret)
        except (ValueError, TypeError, AttributeError, KeyError, RecursionError):
            self.error = UpstreamError(
                f"The provider '{provider}' sent a malformed stream event.", code="upstream_invalid_response"
            )
        except httpx.HTTPError as exc:
            self.error = errors.from_transport(exc, provider)
            self.error.message = f"The stream from the provider '{provider}' was cut off."
        yield frame("error", json.dumps(error_body(error_status(self.error.status), self.error.message)))

    def _count(self, kind: str, event: dict) -> None:
        if kind == "message_start":
            message = event.get("message")
            self.start_usage = (message.get("usage") if isinstance(message, dict) else None) or {}
        elif kind == "content_block_delta":
            delta = event.get("delta") or {}
            size = sum(
                len(v) for k, v in delta.items() if k in ("text", "partial_json", "thinking") and isinstance(v, str)
            )
            if size and self.first_token_at is None:
                self.first_token_at = time.monotonic()
            self.chars += size
        elif kind == "message_delta" and isinstance(event.get("usage"), dict):
            # Cumulative counts; newer API versions repeat the input counts in it.
            self.delta_usage = {k: v for k, v in event["usage"].items() if v is not None}

    def final_usage(self) -> Usage:
        start = self.start_usage if isinstance(self.start_usage, dict) else None
        if start is not None and self.delta_usage:
            reported = usage_of({**start, **self.delta_usage})
        elif start is not None:
            # Cut before message_delta: the input is the provider's count, the output an estimate.
            reported = usage_of(start)
            if not reported.invalid:
                reported.completion_tokens, reported.estimated = estimate_tokens(self.chars), True
                return reported
        else:
            reported = None
        return Usage.or_estimate(
            reported, lambda: Usage(estimate_prompt_tokens(self.chat), estimate_tokens(self.chars))
        )

    async def aclose(self) -> None:
        await self.response.aclose()


async def messages(route, body: dict, chat: dict, client_headers: dict, stream: bool):
    """POST the client's Messages body to the route: a ChatResult of Anthropic's JSON, or a NativeStream."""
    headers = forwarded_headers(route, client_headers, stream)
    response = await transport.send(
        route, request.url(route), native_body(route, body, stream), headers, error_from_response, stream=stream
    )
    if stream:
        return NativeStream(response, route, chat)
    return whole_result(response.content, body, chat, route.provider_name)


async def count_tokens(route, body: dict, client_headers: dict) -> int:
    headers = forwarded_headers(route, client_headers, stream=False)
    response = await transport.send(
        route, count_url(route), count_body(route, body), headers, error_from_response, stream=False
    )
    return count_result(response.content, route.provider_name)
