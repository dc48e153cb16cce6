"""The Anthropic adapter: the HTTP calls, around the pure translations of its sibling modules."""

from .. import transport
from ..base import ChatResult
from . import native, request, response
from .errors import error_from_response
from .stream import AnthropicStream


class AnthropicAdapter:
    """Chat completions, whole and streamed, through the Messages API; and Messages requests as they are."""

    async def _send(self, route, body: dict, stream: bool):
        payload = request.encode(request.build_request(route, body, stream=stream))
        return await transport.send(
            route, request.url(route), payload, request.headers(route, stream), error_from_response, stream=stream
        )

    async def chat(self, route, body: dict) -> ChatResult:
        answer = await self._send(route, body, stream=False)
        return response.chat_result(answer.content, body, route.upstream_name, route.provider_name)

    async def chat_stream(self, route, body: dict, include_usage: bool):
        return AnthropicStream(await self._send(route, body, stream=True), route, body, include_usage)

    async def messages(self, route, body: dict, chat: dict, client_headers: dict, stream: bool):
        """A Messages request passed through as the client sent it (hub/messages.py)."""
        return await native.messages(route, body, chat, client_headers, stream)

    async def count_tokens(self, route, body: dict, chat: dict, client_headers: dict) -> int:
        """Anthropic's own count of a Messages request's input tokens."""
        return await native.count_tokens(route, body, client_headers)
