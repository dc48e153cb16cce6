"""The built-in demo provider: deterministic, free, no network.

It echoes the last user message, streams word by word and reports usage, so a
fresh install can be tried (and apps tested) without any provider account.
Tokens are counted as words: prompt = words in all messages + 3 per message.
"""

import asyncio
import base64
import hashlib
import json
import math
import struct
import time
import uuid
import zlib

from . import audio
from .base import ByteStream, ChatResult, ImageResult, UpstreamError, Usage, message_text, sse
from .images import FAMILIES, image_tier
from .translate import embedding_inputs, embeddings

IMAGE_SIDE = 64  # pixels: small, whatever size was asked
TRANSCRIPT = "Hello from the hub's demo transcriber."
TRANSLATION = "Hello from the hub's demo translator."


def png(seed: bytes, side: int = IMAGE_SIDE) -> bytes:
    """A valid RGB PNG: a diagonal gradient between two colours taken from SHA-256(seed)."""
    digest = hashlib.sha256(seed).digest()
    start, end = digest[:3], digest[3:6]
    rows = []
    for y in range(side):
        row = bytearray(b"\x00")  # filter type: none
        for x in range(side):
            t = (x + y) / (2 * side - 2)
            row += bytes(round(a + (b - a) * t) for a, b in zip(start, end, strict=True))
        rows.append(bytes(row))

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    header = struct.pack(">IIBBBBB", side, side, 8, 2, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", header)
        + chunk(b"IDAT", zlib.compress(b"".join(rows)))
        + chunk(b"IEND", b"")
    )


WORD_DELAY = 0.01


def _reply(body: dict) -> tuple[list[str], str, Usage]:
    messages = [m for m in body.get("messages") or [] if isinstance(m, dict)]
    last_user = next((message_text(m) for m in reversed(messages) if m.get("role") == "user"), "")
    words = f"Hello from the hub's demo model! You said: {last_user}".split()
    limit = body.get("max_completion_tokens") or body.get("max_tokens")
    finish = "stop"
    if isinstance(limit, int) and 0 < limit < len(words):
        words, finish = words[:limit], "length"
    prompt = sum(len(message_text(m).split()) + 3 for m in messages)
    return words, finish, Usage(prompt, len(words))


class DemoAdapter:
    async def chat(self, route, body: dict) -> ChatResult:
        words, finish, usage = _reply(body)
        answer = {
            "id": f"chatcmpl-demo{uuid.uuid4().hex[:24]}",
            "object": "chat.completion",
            "created": int(time.time()),
            "model": route.upstream_name,
            "choices": [
                {
                    "index": 0,
                    "message": {"role": "assistant", "content": " ".join(words), "refusal": None},
                    "logprobs": None,
                    "finish_reason": finish,
                }
            ],
            "usage": usage.to_openai(),
        }
        return ChatResult(body=json.dumps(answer).encode(), usage=usage)

    async def chat_stream(self, route, body: dict, include_usage: bool):
        return DemoStream(route, body, include_usage)

    async def speech(self, route, body: dict) -> ByteStream:
        """A short 8 kHz mono WAV (a tone, 0.1 s per word), in a few chunks; other formats get WAV too."""
        samples = bytes(128 + (40 if (i // 8) % 2 else -40) for i in range(800 * max(len(body["input"].split()), 1)))
        header = (
            b"RIFF"
            + struct.pack("<I", 36 + len(samples))
            + b"WAVEfmt "
            + struct.pack("<IHHIIHH", 16, 1, 1, 8000, 8000, 1, 8)
            + b"data"
            + struct.pack("<I", len(samples))
        )
        audio = header + samples

        async def chunks():
            for start in range(0, len(audio), 4096):
                await asyncio.sleep(0)
                yield audio[start : start + 4096]

        return ByteStream(chunks(), Usage(len(body["input"]), 0), "audio/wav")

    def image_family(self, upstream_name: str):
        return FAMILIES["demo"]

    async def images(self, route, body: dict) -> ImageResult:
        """n small PNGs, deterministic from the prompt (and, for an edit, the first image)."""
        seed = body["prompt"].encode()
        if body["images"]:
            seed += hashlib.sha256(body["images"][0][1]).digest()
        images = []
        for i in range(body["n"]):
            image = {"b64_json": base64.b64encode(png(seed + str(i).encode())).decode()}
            if body.get("style") or body["params"].get("style"):
                image["revised_prompt"] = body["prompt"]
            images.append(image)
        await asyncio.sleep(0)
        usage = Usage(images=len(images), image_tier=image_tier(body["size"], body["quality"]))
        return ImageResult(images, usage, {})

    async def transcribe(self, route, body: dict) -> ChatResult:
        """A fixed transcript (or translation), as long as the upload, in the format asked for."""
        seconds = body.get("seconds")
        duration = float(seconds) if seconds is not None else 1.0
        translate = body["task"] == "translate"
        content, content_type = audio.render(
            TRANSLATION if translate else TRANSCRIPT,
            duration,
            body.get("response_format") or "json",
            task=body["task"],
            words="word" in (body.get("timestamp_granularities") or ()),
        )
        return ChatResult(content, audio.transcription_usage(content, content_type, body), content_type)

    async def embed(self, route, body: dict) -> ChatResult:
        """Deterministic unit vectors from each input's SHA-256; a token is a word (or a token id)."""
        dimensions = body.get("dimensions") or 16
        vectors, tokens = [], 0
        for item in embedding_inputs(body):
            text = item if isinstance(item, str) else " ".join(map(str, item))
            tokens += len(item) if isinstance(item, list) else len(text.split())
            digest = b""
            while len(digest) < dimensions:
                digest += hashlib.sha256(digest + text.encode()).digest()
            raw = [b / 127.5 - 1 for b in digest[:dimensions]]
            norm = math.sqrt(sum(x * x for x in raw)) or 1.0
            vectors.append([round(x / norm, 6) for x in raw])
        usage = Usage(tokens, 0)
        return ChatResult(
            body=embeddings(
                model=route.upstream_name, vectors=vectors, usage=usage, encoding_format=body.get("encoding_format")
            ),
            usage=usage,
        )


class DemoStream:
    def __init__(self, route, body: dict, include_usage: bool):
        self._words, self._finish, self._usage = _reply(body)
        self._include_usage = include_usage
        self._base = {
            "id": f"chatcmpl-demo{uuid.uuid4().hex[:24]}",
            "object": "chat.completion.chunk",
            "created": int(time.time()),
            "model": route.upstream_name,
        }
        self._sent = 0
        self.error: UpstreamError | None = None
        self.first_token_at: float | None = None

    def _chunk(self, delta: dict, finish=None) -> bytes:
        chunk = dict(self._base, choices=[{"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish}])
        if self._include_usage:
            chunk["usage"] = None
        return sse(chunk)

    async def __aiter__(self):
        yield self._chunk({"role": "assistant", "content": ""})
        for i, word in enumerate(self._words):
            await asyncio.sleep(WORD_DELAY)
            if self.first_token_at is None:
                self.first_token_at = time.monotonic()
            self._sent = i + 1
            yield self._chunk({"content": word if i == 0 else " " + word})
        yield self._chunk({}, self._finish)
        if self._include_usage:
            yield sse(dict(self._base, choices=[], usage=self._usage.to_openai()))
        yield b"data: [DONE]\n\n"

    def final_usage(self) -> Usage:
        # A stream cut short is billed for the words it actually sent.
        return Usage(self._usage.prompt_tokens, self._sent)

    async def aclose(self) -> None:
        return None
