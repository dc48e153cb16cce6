"""The Bedrock adapter: signed HTTP calls, around the pure translations of its sibling modules."""

import asyncio

import httpx

from .. import media, transport
from ..base import ChatResult, Counts
from . import embeddings, request, response
from .errors import error_from_response
from .signing import signed_request
from .stream import BedrockStream


class BedrockAdapter:
    """Chat completions through Converse / ConverseStream, and Titan embeddings, every request SigV4-signed."""

    async def embed(self, route, body: dict) -> ChatResult:
        """Titan text embeddings (InvokeModel), one request per input; Titan counts the tokens."""
        vectors, tokens, counts = [], 0, Counts()
        for text in embeddings.embedding_texts(body):
            payload = request.encode(embeddings.embedding_request(text, body))
            url, headers = signed_request(route, "invoke", payload)
            answer = await transport.send(route, url, payload, headers, error_from_response, stream=False)
            vector, counted = embeddings.embedding_answer(answer.content, counts, route.provider_name)
            vectors.append(vector)
            tokens += counted
        return embeddings.embedding_result(vectors, tokens, counts, body, route.upstream_name, route.provider_name)

    async def _send(self, route, body: dict, operation: str) -> httpx.Response:
        urls = request.image_urls(body.get("messages") or [])
        images = dict(zip(urls, await asyncio.gather(*(media.fetch_image(url) for url in urls)), strict=True))
        payload = request.encode(request.build_request(route, body, images))
        url, headers = signed_request(route, operation, payload)
        return await transport.send(route, url, payload, headers, error_from_response, stream=operation != "converse")

    async def chat(self, route, body: dict) -> ChatResult:
        answer = await self._send(route, body, "converse")
        return response.chat_result(answer.content, body, route.upstream_name, route.provider_name)

    async def chat_stream(self, route, body: dict, include_usage: bool):
        return BedrockStream(await self._send(route, body, "converse-stream"), route, body, include_usage)
