"""streamGenerateContent?alt=sse events -> OpenAI chat.completion.chunk events."""

import json

from .. import sse, translate
from ..base import UpstreamError
from .errors import error_from_response, invalid
from .response import finish, tool_call, usage


class GeminiStream(translate.TranslatedStream):
    """Each event is a whole GenerateContentResponse holding the new part(s) of candidate 0;
    function calls arrive whole; the last event has finishReason and the usage."""

    async def translate(self):
        provider, writer = self.route.provider_name, self.writer
        yield writer.role()
        finish_reason, calls = None, 0
        async for _, data in sse.events(self.response):
            try:
                event = json.loads(data)
            except ValueError:
                raise invalid(provider, "sent a malformed stream event") from None
            if not isinstance(event, dict):
                continue
            if isinstance(event.get("error"), dict):
                raise error_from_response(int(event["error"].get("code") or 500), data.encode(), {}, provider)
            self.usage = usage(event.get("usageMetadata")) or self.usage
            candidates = event.get("candidates") or []
            if not candidates and (event.get("promptFeedback") or {}).get("blockReason"):
                finish_reason = "content_filter"
            for candidate in candidates[:1]:
                for part in (candidate.get("content") or {}).get("parts") or []:
                    if part.get("thought"):
                        continue
                    if "functionCall" in part:
                        call = tool_call(calls, part)
                        extra = {"extra_content": call["extra_content"]} if "extra_content" in call else None
                        yield writer.tool_call_start(calls, call["id"], call["function"]["name"], extra)
                        yield writer.tool_arguments(calls, call["function"]["arguments"])
                        calls += 1
                    elif part.get("text"):
                        yield writer.text(part["text"])
                if candidate.get("finishReason"):
                    finish_reason = finish(candidate["finishReason"], calls > 0)
        if finish_reason is None:
            raise UpstreamError(
                f"The stream from the provider '{provider}' ended early.", code="upstream_stream_incomplete"
            )
        yield writer.finish(finish_reason)
        yield writer.usage(self.final_usage())
