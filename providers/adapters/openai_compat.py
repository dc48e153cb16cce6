"""OpenAI-compatible chat completions (OpenAI, DeepSeek, xAI, OpenRouter, …).

The request and answer are already in the hub's format, so bytes pass through;
only the model name, the stream usage option and the usage chunk are touched.
"""

import base64
import json
import time

import httpx
from django.conf import settings

from providers.presets import get_preset

from . import audio, errors, transport
from .base import (ByteStream, ChatResult, Counts, ImageResult, UpstreamError, Usage, estimate_prompt_tokens,
                   estimate_tokens, sse)
from .images import image_tier, openai_family
from .media import fetch_image
from .translate import MALFORMED, string


def _headers(route, accept: str) -> dict:
    """Every call's headers: the credential (refused early if the API needs one and there is none) and the preset's."""
    preset = get_preset(route.preset)
    if preset.needs_key and not route.secret:
        raise errors.no_credential(route.provider_name)
    headers = {"content-type": "application/json", "accept": accept}
    if route.secret:
        headers["authorization"] = f"Bearer {route.secret}"
    headers.update(preset.extra_headers)
    return headers


def _payload(route, body: dict) -> bytes:
    return json.dumps(dict(body, model=route.upstream_name), separators=(",", ":")).encode()


def _request(route, body: dict, stream: bool) -> tuple[str, bytes, dict]:
    headers = _headers(route, "text/event-stream" if stream else "application/json")
    preset = get_preset(route.preset)
    body = dict(body, model=route.upstream_name)
    if stream and preset.stream_usage:
        # Ask for usage even if the client did not: a stream must be metered.
        body["stream_options"] = dict(body.get("stream_options") or {}, include_usage=True)
    # One output cap, under the name this API honours (an unknown name is ignored: no cap at all), never
    # above the model's: the hub's credit hold counts on it.
    limit = transport.max_tokens(route, body)
    body.pop("max_tokens", None)
    body.pop("max_completion_tokens", None)
    if limit:
        body[preset.max_tokens_field] = limit
    return f"{route.base_url}/chat/completions", json.dumps(body, separators=(",", ":")).encode(), headers


class OpenAICompatibleAdapter:
    async def chat(self, route, body: dict) -> ChatResult:
        url, payload, headers = _request(route, body, stream=False)
        response = await transport.send(route, url, payload, headers, errors.from_status, stream=False)
        try:
            data = json.loads(response.content)
            reported = Usage.from_openai(data.get("usage"))
            usage = Usage.or_estimate(reported, lambda: _estimate(body, data.get("choices") or []))
        except MALFORMED:
            raise UpstreamError(f"The provider '{route.provider_name}' sent an answer that is not valid JSON.",
                                code="upstream_invalid_response") from None
        if data.get("error") and not data.get("choices"):
            raise _failed(route, response.content)
        content = response.content
        if usage.invalid:
            # The client is shown what it is billed, not the provider's nonsense.
            content = json.dumps(dict(data, usage=usage.to_openai()), separators=(",", ":")).encode()
        return ChatResult(body=content, usage=usage)

    async def chat_stream(self, route, body: dict, include_usage: bool):
        url, payload, headers = _request(route, body, stream=True)
        response = await transport.send(route, url, payload, headers, errors.from_status, stream=True)
        return OpenAIStream(response, body, include_usage, route.provider_name, route.secret)

    async def embed(self, route, body: dict) -> ChatResult:
        return await _embed(route, body)

    async def speech(self, route, body: dict) -> ByteStream:
        return await _speech(route, body)

    def image_family(self, upstream_name: str):
        return openai_family(upstream_name)

    async def images(self, route, body: dict) -> ImageResult:
        return await _images(route, body)

    async def transcribe(self, route, body: dict) -> ChatResult:
        return await _transcribe(route, body)


def _failed(route, content: bytes) -> UpstreamError:
    """Some proxies (OpenRouter, gateways of gateways) report a failure as a 200 with an error body: not an
    answer to relay and bill, and its words may quote the credential. The same for every endpoint."""
    message, code, _ = errors.upstream_message(content)
    return UpstreamError(f"The provider '{route.provider_name}' failed: {message}".rstrip(": "),
                         code=code if isinstance(code, str) and code else "upstream_error",
                         retryable=True).without(route.secret)


def _is_error(data, answer_key: str) -> bool:
    """Whether a 200's parsed JSON body is an error rather than an answer (which carries `answer_key`)."""
    return isinstance(data, dict) and bool(data.get("error")) and answer_key not in data


def _error_body(content: bytes, answer_key: str) -> bool:
    try:
        return _is_error(json.loads(content), answer_key)
    except (ValueError, RecursionError):
        return False


def _invalid(route) -> UpstreamError:
    return UpstreamError(f"The provider '{route.provider_name}' sent an answer that is not valid JSON.",
                         code="upstream_invalid_response")


async def _images(route, body: dict) -> ImageResult:
    """Generations (JSON) and edits (multipart), always asking for base64: the hub serves links to its own copy."""
    params = dict(body["params"], model=route.upstream_name, prompt=body["prompt"], n=body["n"])
    if body.get("user"):
        params["user"] = body["user"]
    if openai_family(route.upstream_name).name != "gpt-image":  # gpt-image models answer base64 and refuse the field
        params["response_format"] = "b64_json"
    headers = _headers(route, "application/json")
    if body["edit"]:
        images = body["images"]
        files = [("image" if len(images) == 1 else "image[]", image) for image in images]
        if body.get("mask"):
            files.append(("mask", body["mask"]))
        response = await transport.send(route, f"{route.base_url}/images/edits", None, headers, errors.from_status,
                                        stream=False, form={k: str(v) for k, v in params.items()}, files=files)
    else:
        response = await transport.send(route, f"{route.base_url}/images/generations",
                                        json.dumps(params, separators=(",", ":")).encode(), headers,
                                        errors.from_status, stream=False)
    try:
        data = json.loads(response.content)
        if _is_error(data, "data"):
            raise _failed(route, response.content)
        items = data["data"]
        if not isinstance(items, list):
            raise TypeError
    except MALFORMED:
        raise _invalid(route) from None
    images = []
    for item in items:
        b64 = item.get("b64_json") if isinstance(item, dict) else None
        if not b64 and isinstance(item, dict) and isinstance(item.get("url"), str):  # it ignored response_format
            _, raw = await fetch_image(item["url"])
            b64 = base64.b64encode(raw).decode()
        try:
            # The hub keeps the image and links to its copy: what it decodes must be base64 (a number or
            # an object there was a 500), and what it passes on beside it, text.
            base64.b64decode(string(b64, "b64_json"), validate=True)
            image = {"b64_json": b64}
            if item.get("revised_prompt"):
                image["revised_prompt"] = string(item["revised_prompt"], "revised_prompt")
        except MALFORMED:
            raise _invalid(route) from None
        if not b64:
            raise _invalid(route)
        images.append(image)
    reported, counts = data.get("usage"), Counts()
    size, quality = data.get("size") or body["size"], data.get("quality") or body["quality"]
    usage = counts.usage(Usage(counts.read(reported, "input_tokens"), counts.read(reported, "output_tokens"),
                               images=len(images), image_tier=image_tier(str(size), str(quality)),
                               image_input_tokens=counts.read((reported or {}).get("input_tokens_details")
                                                              if isinstance(reported, dict) else None,
                                                              "image_tokens")))
    if usage.invalid:
        # The images themselves are counted by the hub and billed as such; only the tokens are unknown.
        usage.prompt_tokens = usage.completion_tokens = usage.image_input_tokens = 0
        usage.estimated = True
    extra = {k: data[k] for k in ("background", "output_format", "quality", "size", "usage") if k in data}
    return ImageResult(images, usage, extra)


async def _transcribe(route, body: dict) -> ChatResult:
    """Transcriptions and translations: the upload relayed as multipart; the answer relayed as it came, or,
    for text, SRT and VTT, asked as JSON (which says how much audio was billed) and rendered here."""
    path = "translations" if body["task"] == "translate" else "transcriptions"
    asked = body.get("response_format") or "json"
    ask = audio.upstream_format(route.upstream_name, asked)
    form = {name: str(body[name]) for name in ("language", "prompt", "temperature") if body.get(name) is not None}
    form["model"] = route.upstream_name
    if "response_format" in body or ask != asked:
        form["response_format"] = ask
    if body.get("timestamp_granularities"):
        form["timestamp_granularities[]"] = body["timestamp_granularities"]
    response = await transport.send(route, f"{route.base_url}/audio/{path}", None, _headers(route, "*/*"),
                                    errors.from_status, stream=False, form=form, files=[("file", body["file"])])
    content, content_type = response.content, response.headers.get("content-type") or "application/json"
    if "json" in content_type and _error_body(content, "text"):
        raise _failed(route, content)
    usage = audio.transcription_usage(content, content_type, body)
    if ask != asked:
        try:
            content, content_type = audio.rerender(content, asked, task=body["task"])
        except MALFORMED:
            raise _invalid(route) from None
    return ChatResult(content, usage, content_type)


async def _embed(route, body: dict) -> ChatResult:
    response = await transport.send(route, f"{route.base_url}/embeddings", _payload(route, body),
                                    _headers(route, "application/json"), errors.from_status, stream=False)
    try:
        data = json.loads(response.content)
        if _is_error(data, "data"):
            raise _failed(route, response.content)
        usage = Usage.from_openai(data.get("usage"))
        if not isinstance(data.get("data"), list):
            raise ValueError
    except MALFORMED:
        raise UpstreamError(f"The provider '{route.provider_name}' sent an answer that is not valid JSON.",
                            code="upstream_invalid_response") from None
    usage = Usage.or_estimate(usage, lambda: Usage(estimate_tokens(len(json.dumps(body.get("input")))), 0))
    content = response.content
    if usage.invalid:
        content = json.dumps(dict(data, usage=usage.to_openai()), separators=(",", ":")).encode()
    return ChatResult(body=content, usage=usage)


SPEECH_ERROR_BYTES = 65536  # of a non-audio answer read to say what went wrong
AUDIO_TYPES = {"mp3": "audio/mpeg", "opus": "audio/opus", "aac": "audio/aac", "flac": "audio/flac",
               "wav": "audio/wav", "pcm": "audio/pcm"}


async def _speech(route, body: dict) -> ByteStream:
    response = await transport.send(route, f"{route.base_url}/audio/speech", _payload(route, body),
                                    _headers(route, "*/*"), errors.from_status, stream=True)
    content_type = response.headers.get("content-type") or AUDIO_TYPES.get(body.get("response_format") or "mp3")
    if content_type.split(";")[0].strip().lower() in ("application/json", "text/plain", "text/html"):
        # Audio was asked for: a JSON (or text) 200 is a proxy's error, its words perhaps quoting the credential.
        try:
            content = b""
            async for chunk in response.aiter_bytes():
                content += chunk
                if len(content) > SPEECH_ERROR_BYTES:
                    break
        finally:
            await response.aclose()
        if _error_body(content, "audio"):
            raise _failed(route, content)
        raise UpstreamError(f"The provider '{route.provider_name}' sent {content_type.split(';')[0]}, not audio.",
                            code="upstream_invalid_response")
    # Speech is billed per input character, whatever arrives.
    return ByteStream(response.aiter_raw(), Usage(len(body["input"]), 0), content_type, response.aclose)


def _estimate(body: dict, choices: list) -> Usage:
    chars = 0
    for choice in choices:
        message = choice.get("message") or {}
        chars += len(message.get("content") or "")
        for call in message.get("tool_calls") or []:
            chars += len((call.get("function") or {}).get("arguments") or "")
    return Usage(estimate_prompt_tokens(body), estimate_tokens(chars), estimated=True)


class OpenAIStream:
    def __init__(self, response: httpx.Response, body: dict, include_usage: bool, provider: str, secret: str = ""):
        self._response = response
        self._secret = secret
        self._body = body
        self._include_usage = include_usage
        self._provider = provider
        self._chars = 0
        self._done = False
        self._finished = False
        self.usage: Usage | None = None
        self.error: UpstreamError | None = None
        self.first_token_at: float | None = None

    async def __aiter__(self):
        buffer, carried, limit = b"", b"", settings.HUB_UPSTREAM_MAX_EVENT_BYTES
        try:
            async for chunk in self._response.aiter_raw():
                chunk, carried = carried + chunk, b""
                if b"\r" in chunk:
                    if chunk.endswith(b"\r"):  # its \n comes in the next read: \r\n is normalised whole
                        chunk, carried = chunk[:-1], b"\r"
                    chunk = chunk.replace(b"\r\n", b"\n")
                searched = max(0, len(buffer) - 1)  # only the new bytes: a long event costs its length once
                buffer += chunk
                out = []
                while (end := buffer.find(b"\n\n", searched)) >= 0:
                    searched = 0
                    event, buffer = buffer[: end + 2], buffer[end + 2 :]
                    try:
                        kept = self._on_event(event)
                    except MALFORMED:
                        # JSON, but not the shape of a chunk ("choices": "abc"): as malformed as "data: abc".
                        self.error, kept = self._malformed(), None
                    if kept:
                        out.append(kept)
                    if self.error is not None and not kept:
                        break
                if out:
                    yield b"".join(out)
                if self.error is None and len(buffer) > limit:
                    # A provider that never ends its event is not buffered without bound.
                    self.error = transport.too_large(self._provider, limit, "a stream event")
                if self.error is not None or self._done:
                    break
        except httpx.HTTPError as exc:
            self.error = errors.from_transport(exc, self._provider)
            self.error.message = f"The stream from the provider '{self._provider}' was cut off."
        if not self._done and self.error is None and not self._finished:
            self.error = UpstreamError(f"The stream from the provider '{self._provider}' ended early.",
                                       code="upstream_stream_incomplete")
        if self.error is not None:
            yield sse({"error": {"message": self.error.message, "type": self.error.type, "param": None,
                                 "code": self.error.code}})

    def _on_event(self, event: bytes) -> bytes | None:
        data = b""
        for line in event.split(b"\n"):
            if line.startswith(b"data:"):
                data += line[5:].strip()
        if not data:
            return event  # comments and keep-alives pass as they are
        if data == b"[DONE]":
            self._done = True
            return event
        try:
            chunk = json.loads(data)
        except (ValueError, RecursionError):
            self.error = self._malformed()
            return None
        if not isinstance(chunk, dict):
            return event
        if "error" in chunk:
            # Not relayed as it came (it may quote the credential): the client gets the hub's error event below.
            message, code, _ = errors.upstream_message(data)
            self.error = UpstreamError(message or "The provider reported an error mid-stream.",
                                       code=code).without(self._secret)
            return None
        choices = chunk.get("choices") or []
        for choice in choices:
            delta = choice.get("delta") or {}
            size = len(delta.get("content") or "")
            for call in delta.get("tool_calls") or []:
                size += len((call.get("function") or {}).get("arguments") or "")
            if size and self.first_token_at is None:
                self.first_token_at = time.monotonic()
            self._chars += size
            if choice.get("finish_reason"):
                self._finished = True
        usage = Usage.from_openai(chunk.get("usage"))
        if usage is not None:
            self.usage = usage
            if not self._include_usage and not choices:
                return None  # the client did not ask for the usage chunk
            if usage.invalid:
                # Shown what it is billed: the estimate, not the provider's nonsense.
                return sse(dict(chunk, usage=self.final_usage().to_openai()))
        return event

    def _malformed(self) -> UpstreamError:
        return UpstreamError(f"The provider '{self._provider}' sent a malformed stream event.",
                             code="upstream_invalid_response")

    def final_usage(self) -> Usage:
        return Usage.or_estimate(self.usage, lambda: Usage(estimate_prompt_tokens(self._body),
                                                           estimate_tokens(self._chars)))

    async def aclose(self) -> None:
        await self._response.aclose()
