"""The OpenAI-compatible adapter: the HTTP calls, around the pure functions of its sibling modules."""

import asyncio
import json

from .. import errors, transport
from ..base import ByteStream, ChatResult, ImageResult, Usage
from ..images import openai_family
from ..media import fetch_image
from . import audio, images, request, response
from .stream import OpenAIStream


class OpenAICompatibleAdapter:
    """Chat, embeddings, speech, images and transcriptions, relayed to an OpenAI-compatible API."""

    async def chat(self, route, body: dict) -> ChatResult:
        url, payload, headers = request.chat_request(route, body, stream=False)
        answer = await transport.send(route, url, payload, headers, errors.from_status, stream=False)
        return response.chat_result(route, body, answer.content)

    async def chat_stream(self, route, body: dict, include_usage: bool):
        url, payload, headers = request.chat_request(route, body, stream=True)
        answer = await transport.send(route, url, payload, headers, errors.from_status, stream=True)
        return OpenAIStream(answer, body, include_usage, route.provider_name, route.secret)

    async def embed(self, route, body: dict) -> ChatResult:
        answer = await transport.send(
            route,
            f"{route.base_url}/embeddings",
            request.payload(route, body),
            request.headers(route, "application/json"),
            errors.from_status,
            stream=False,
        )
        return response.embedding_result(route, body, answer.content)

    async def speech(self, route, body: dict) -> ByteStream:
        answer = await transport.send(
            route,
            f"{route.base_url}/audio/speech",
            request.payload(route, body),
            request.headers(route, "*/*"),
            errors.from_status,
            stream=True,
        )
        content_type = audio.speech_type(answer.headers.get("content-type"), body)
        if not audio.is_audio(content_type):
            try:
                content = b""
                async for chunk in answer.aiter_bytes():
                    content += chunk
                    if len(content) > audio.SPEECH_ERROR_BYTES:
                        break
            finally:
                await answer.aclose()
            raise audio.not_audio(route, content, content_type)
        # Speech is billed per input character, whatever arrives.
        return ByteStream(transport.raw_chunks(answer), Usage(len(body["input"]), 0), content_type, answer.aclose)

    def image_family(self, upstream_name: str):
        return openai_family(upstream_name)

    async def images(self, route, body: dict) -> ImageResult:
        """Generations (JSON) and edits (multipart)."""
        params, headers = images.image_params(route, body), request.headers(route, "application/json")
        if body["edit"]:
            files = [("image" if len(body["images"]) == 1 else "image[]", image) for image in body["images"]]
            if body.get("mask"):
                files.append(("mask", body["mask"]))
            answer = await transport.send(
                route,
                f"{route.base_url}/images/edits",
                None,
                headers,
                errors.from_status,
                stream=False,
                form={k: str(v) for k, v in params.items()},
                files=files,
            )
        else:
            answer = await transport.send(
                route,
                f"{route.base_url}/images/generations",
                json.dumps(params, separators=(",", ":")).encode(),
                headers,
                errors.from_status,
                stream=False,
            )
        data, items = images.image_answer(route, answer.content)
        urls = images.image_urls(items)
        fetched = {
            url: raw for url, (_, raw) in zip(urls, await asyncio.gather(*(fetch_image(u) for u in urls)), strict=True)
        }
        return images.image_result(route, body, data, items, fetched)

    async def transcribe(self, route, body: dict) -> ChatResult:
        """Transcriptions and translations: the upload relayed as multipart."""
        path, form, ask = audio.transcription_request(route, body)
        answer = await transport.send(
            route,
            f"{route.base_url}/audio/{path}",
            None,
            request.headers(route, "*/*"),
            errors.from_status,
            stream=False,
            form=form,
            files=[("file", body["file"])],
        )
        content_type = answer.headers.get("content-type") or "application/json"
        return audio.transcription_result(route, body, answer.content, content_type, ask)
