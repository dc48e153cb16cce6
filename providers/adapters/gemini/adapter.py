"""The Gemini adapter: the HTTP calls, around the pure translations of its sibling modules."""

import asyncio

from .. import media, transport
from ..base import ChatResult, ImageResult
from ..images import FAMILIES
from . import embeddings, images, request, response
from .errors import error_from_response
from .stream import GeminiStream


async def _fetched_images(body: dict) -> dict:
    """URL -> (mime, bytes) of the request's http(s) images, fetched at once."""
    urls = request.image_urls([m for m in body.get("messages") or [] if isinstance(m, dict)])
    return dict(zip(urls, await asyncio.gather(*(media.fetch_image(url) for url in urls)), strict=True))


class GeminiAdapter:
    """Chat completions, token counts, embeddings and native image generation through the Gemini API."""

    async def _send(self, route, body: dict, stream: bool):
        headers = request.headers(route)
        native = request.build_request(route, body, stream, await _fetched_images(body))
        return await transport.send(
            route, request.url(route, stream), request.encode(native), headers, error_from_response, stream=stream
        )

    async def chat(self, route, body: dict) -> ChatResult:
        answer = await self._send(route, body, stream=False)
        return response.chat_result(answer.content, body, route.upstream_name, route.provider_name)

    async def chat_stream(self, route, body: dict, include_usage: bool):
        return GeminiStream(await self._send(route, body, stream=True), route, body, include_usage)

    async def count_tokens(self, route, body: dict, chat: dict, client_headers: dict) -> int:
        """Gemini's own count of a Messages request's input, from the chat body it translates to (hub/messages.py)."""
        native = request.count_request(route, chat, await _fetched_images(chat))
        answer = await transport.send(
            route,
            request.url(route, False, "countTokens"),
            request.encode(native),
            request.headers(route),
            error_from_response,
            stream=False,
        )
        return response.count_result(answer.content, route.provider_name)

    async def embed(self, route, body: dict) -> ChatResult:
        headers = request.headers(route)
        native = embeddings.embedding_request(request.model_name(route), body)
        answer = await transport.send(
            route,
            request.url(route, False, "batchEmbedContents"),
            request.encode(native),
            headers,
            error_from_response,
            stream=False,
        )
        return embeddings.embedding_result(answer.content, body, route.upstream_name, route.provider_name)

    def image_family(self, upstream_name: str):
        return FAMILIES["gemini"]

    async def images(self, route, body: dict) -> ImageResult:
        """One generateContent call per image, all at once; fewer images than asked rather than none."""
        headers = request.headers(route)
        payload = request.encode(images.image_request(body))

        async def one():
            answer = await transport.send(
                route, request.url(route, False), payload, headers, error_from_response, stream=False
            )
            return images.image_answer(answer.content, route.provider_name)

        # Like OpenAI: the images made are billed by Gemini, so they are answered (and billed); only if every
        # call failed is the request a failure (and free).
        results = await asyncio.gather(*(one() for _ in range(body["n"])), return_exceptions=True)
        answers = [r for r in results if not isinstance(r, BaseException)]
        if not answers:
            raise next(r for r in results if isinstance(r, BaseException))
        usage = images.images_usage([counted for _, counted in answers], body["size"], body["quality"])
        return ImageResult([{"b64_json": data} for data, _ in answers], usage, {})
