"""ConverseStream's AWS event-stream binary frames -> OpenAI chat.completion.chunk events (botocore decodes)."""

import json
from typing import Any

from botocore.eventstream import EventStreamBuffer, ParserError

from ..base import UpstreamError
from ..translate import TranslatedStream
from .errors import aws_error, invalid
from .response import FINISH, usage


def event_payload(payload: bytes, provider: str) -> dict:
    """An event frame's JSON payload ({} for none, or for JSON that is not an object)."""
    try:
        data = json.loads(payload) if payload else {}
    except ValueError:
        raise invalid(provider) from None
    return data if isinstance(data, dict) else {}


class BedrockStream(TranslatedStream):
    """ConverseStream's event-stream frames (contentBlock*, messageStop, metadata) as OpenAI chunks."""

    async def translate(self):
        provider = self.route.provider_name
        yield self.writer.role()
        frames = EventStreamBuffer()
        tools: dict[object, int] = {}  # contentBlockIndex (as the provider sent it) -> OpenAI tool call index
        finished = usage_sent = False
        try:
            async for data in self.response.aiter_bytes():
                frames.add_data(data)
                for frame in frames:
                    # botocore-stubs type a message's headers as int; botocore parses them into a dict.
                    headers: dict[str, Any] = frame.headers  # type: ignore[assignment]
                    payload = frame.payload
                    kind = headers.get(":message-type")
                    if kind == "exception":
                        message = event_payload(payload, provider).get("message") or ""
                        raise aws_error(headers.get(":exception-type", ""), 0, str(message), provider)
                    if kind == "error":
                        raise aws_error(headers.get(":error-code", ""), 0, headers.get(":error-message", ""), provider)
                    event, event_type = event_payload(payload, provider), headers.get(":event-type")
                    index = event.get("contentBlockIndex")
                    if event_type == "contentBlockStart" and "toolUse" in (event.get("start") or {}):
                        use = event["start"]["toolUse"]
                        tools[index] = len(tools)
                        yield self.writer.tool_call_start(tools[index], use.get("toolUseId"), use.get("name"))
                    elif event_type == "contentBlockDelta":
                        delta = event.get("delta") or {}
                        if delta.get("text"):
                            yield self.writer.text(delta["text"])
                        elif "toolUse" in delta and index in tools:
                            yield self.writer.tool_arguments(tools[index], delta["toolUse"].get("input") or "")
                    elif event_type == "messageStop":
                        finished = True
                        yield self.writer.finish(FINISH.get(event.get("stopReason") or "", "stop"))
                    elif event_type == "metadata":
                        self.usage = usage(event.get("usage"))
                        if self.usage is not None and finished:
                            usage_sent = True
                            yield self.writer.usage(self.final_usage())
        except ParserError:
            raise UpstreamError(
                f"The provider '{provider}' sent a malformed event stream.", code="upstream_invalid_response"
            ) from None
        if not finished:
            raise UpstreamError(
                f"The stream from the provider '{provider}' ended early.", code="upstream_stream_incomplete"
            )
        if not usage_sent:
            yield self.writer.usage(self.final_usage())
