"""Reading a provider's server-sent events (Anthropic, Gemini): (event, data) pairs."""

from typing import AsyncIterator

import httpx


async def events(response: httpx.Response) -> AsyncIterator[tuple[str, str]]:
    """Yield (event name, data) for each event, as soon as it is complete.

    Comments and keep-alives are skipped; multi-line data is joined with "\\n"
    as the SSE specification says.
    """
    buffer = ""
    async for text in response.aiter_text():
        buffer += text
        if "\r" in buffer:
            # Normalised on the whole buffer: a \r\n may be split across two reads.
            buffer = buffer.replace("\r\n", "\n")
        while (end := buffer.find("\n\n")) >= 0:
            block, buffer = buffer[:end], buffer[end + 2:]
            name, data = "message", []
            for line in block.split("\n"):
                if line.startswith("data:"):
                    data.append(line[5:].removeprefix(" "))
                elif line.startswith("event:"):
                    name = line[6:].strip()
            if data:
                yield name, "\n".join(data)
    if buffer.strip():
        # The provider closed the connection in the middle of an event.
        raise httpx.RemoteProtocolError("the event stream ended in the middle of an event")
