"""Anthropic's SSE events -> OpenAI chat.completion.chunk events."""

import json
import uuid

from .. import sse
from ..base import UpstreamError, Usage, estimate_tokens
from ..translate import TranslatedStream
from .errors import map_error
from .response import FINISH
from .response import usage as usage_of


class AnthropicStream(TranslatedStream):
    """Anthropic's SSE events (message_start, content_block_*, message_delta, message_stop) as OpenAI chunks."""

    def __init__(self, response, route, body: dict, include_usage: bool):
        super().__init__(response, route, body, include_usage)
        self.start_usage: dict | None = None  # message_start's usage: the input is known from the start

    async def translate(self):
        provider = self.route.provider_name
        tools: dict[int, int] = {}  # content block index -> OpenAI tool index (tool_use blocks only)
        sent_arguments: set[int] = set()
        finish = "stop"
        async for name, data in sse.events(self.response):
            if name == "ping":
                continue
            try:
                event = json.loads(data)
                kind = event.get("type") or name
            except (ValueError, AttributeError):
                raise UpstreamError(
                    f"The provider '{provider}' sent a malformed stream event.", code="upstream_invalid_response"
                ) from None
            if kind == "message_start":
                message = event.get("message")
                self.start_usage = (message.get("usage") if isinstance(message, dict) else None) or {}
                yield self.writer.role()
            elif kind == "content_block_start":
                block, index = event.get("content_block") or {}, event.get("index")
                if block.get("type") == "tool_use":
                    tools[index] = len(tools)
                    yield self.writer.tool_call_start(
                        tools[index], block.get("id") or f"call_{uuid.uuid4().hex[:24]}", block.get("name") or ""
                    )
                elif block.get("type") == "text" and block.get("text"):
                    yield self.writer.text(block["text"])
            elif kind == "content_block_delta":
                delta, index = event.get("delta") or {}, event.get("index")
                if delta.get("type") == "text_delta" and delta.get("text"):
                    yield self.writer.text(delta["text"])
                elif delta.get("type") == "input_json_delta" and delta.get("partial_json") and index in tools:
                    sent_arguments.add(index)
                    yield self.writer.tool_arguments(tools[index], delta["partial_json"])
            elif kind == "content_block_stop":
                index = event.get("index")
                if index in tools and index not in sent_arguments:
                    # A tool without arguments streams no JSON at all; OpenAI clients expect an object.
                    yield self.writer.tool_arguments(tools[index], "{}")
            elif kind == "message_delta":
                finish = FINISH.get((event.get("delta") or {}).get("stop_reason") or "", "stop")
                # The delta's usage is cumulative; newer versions repeat the input counts in it.
                delta_usage = event.get("usage") if isinstance(event.get("usage"), dict) else {}
                start = self.start_usage if isinstance(self.start_usage, dict) else {}
                self.usage = usage_of({**start, **{k: v for k, v in delta_usage.items() if v is not None}})
            elif kind == "message_stop":
                yield self.writer.finish(finish)
                yield self.writer.usage(self.final_usage())
                return
            elif kind == "error":
                error = event.get("error") if isinstance(event.get("error"), dict) else {}
                raise map_error(error, None, None, provider)
        raise UpstreamError(
            f"The stream from the provider '{provider}' ended early.", code="upstream_stream_incomplete", retryable=True
        )

    def final_usage(self) -> Usage:
        if self.usage is None and self.start_usage is not None:
            # Cut before message_delta: the input count is the provider's, the output an estimate.
            usage = usage_of(self.start_usage)
            if not usage.invalid:
                usage.completion_tokens, usage.estimated = estimate_tokens(self.writer.chars), True
                return usage
            self.usage = usage  # not sound: the whole estimate, saying why
        return super().final_usage()
