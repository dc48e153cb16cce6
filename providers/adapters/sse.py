"""Reading a provider's server-sent events (Anthropic, Gemini): (event, data) pairs."""

from collections.abc import AsyncIterator

import httpx
from django.conf import settings

from .base import UpstreamError


async def events(response: httpx.Response) -> AsyncIterator[tuple[str, str]]:
    """Yield (event name, data) for each event, as soon as it is complete.

    Comments and keep-alives are skipped; multi-line data is joined with "\\n"
    as the SSE specification says.
    """
    buffer, carried, limit = "", "", settings.HUB_UPSTREAM_MAX_EVENT_BYTES
    async for text in response.aiter_text():
        text, carried = carried + text, ""
        if "\r" in text:
            # Only the new text is normalised (the buffer already is); a \r\n split across two reads is
            # joined by carrying a trailing \r over.
            if text.endswith("\r"):
                text, carried = text[:-1], "\r"
            text = text.replace("\r\n", "\n")
        # Searched from just before the new text only: a long event costs its length, not its length squared.
        searched = max(0, len(buffer) - 1)
        buffer += text
        while (end := buffer.find("\n\n", searched)) >= 0:
            searched = 0
            block, buffer = buffer[:end], buffer[end + 2 :]
            name, data = "message", []
            for line in block.split("\n"):
                if line.startswith("data:"):
                    data.append(line[5:].removeprefix(" "))
                elif line.startswith("event:"):
                    name = line[6:].strip()
            if data:
                yield name, "\n".join(data)
        if len(buffer) > limit:
            # No end in sight: a provider that never sends a blank line is not buffered without bound.
            raise UpstreamError(
                f"A stream event from the provider exceeded {limit} bytes.", code="upstream_response_too_large"
            )
    if (buffer + carried).strip():
        # The provider closed the connection in the middle of an event.
        raise httpx.RemoteProtocolError("the event stream ended in the middle of an event")
