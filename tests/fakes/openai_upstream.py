"""A fake OpenAI API server for tests, speaking OpenAI's real wire format.

Raw ASGI app (stdlib only) served by uvicorn on 127.0.0.1:<ephemeral port> in a
daemon thread with its own event loop (tests/fakes/server.py). Usage::

    fake = FakeOpenAI().start()
    client = openai.OpenAI(base_url=fake.base_url, api_key="sk-upstream-test")
    ...
    fake.stop()

Behaviour is chosen by the request's ``model`` (see ``_ERRORS`` and ``_chat``):
``fake-error-<status>``, ``fake-hang``, ``fake-slow``, ``fake-cut``,
``fake-no-usage``, ``fake-malformed``, ``fake-tool``, ``fake-long`` (10,000 words, cut at the cap it is
sent), ``fake-overrun`` (100 words more than the cap it is sent); any other model is normal. Chat honours
``n`` (``n`` choices, billed ``n`` times the output) and bills as prompt, like OpenAI, the tools, functions and
response format too (a token per 4 bytes of their JSON).
A chat whose last user text is ``echo:<status>`` or ``echo:stream`` answers an
error quoting the Authorization header (tests/fakes/server.py ``echo_of``); so does
the model ``fake-echo-<status>``, on every endpoint (``fake-echo-200``: the error sent as a 200).
``reported_usage`` (raw JSON text, e.g. ``'{"prompt_tokens": 1e999}'``) replaces the usage
every chat answer reports, to play a provider that miscounts.

Media routes: ``/v1/images/generations`` (JSON), ``/v1/images/edits``,
``/v1/audio/transcriptions`` and ``/v1/audio/translations`` (multipart, recorded
with ``form`` and ``files``). Images are ``png_of(...)`` (tests/fakes/media.py);
dall-e ``url`` images are served, without auth, at ``/fake-images/<id>.png``.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import itertools
import json
import math
import struct
import time
import uuid

from tests.fakes.media import audio_duration, parse_multipart, png_of
from tests.fakes.server import (
    CutStream,
    FakeUpstream,
    RecordedRequest,
    echo_message,
    echo_of,
    json_object,
    until_disconnect,
)

MODEL_IDS = ["gpt-4o-mini", "gpt-4o", "fake-slow", "fake-tool"]
LONG_ANSWER_WORDS = 10_000  # fake-long's answer when it is sent no cap
OVERRUN_WORDS = 100  # what fake-overrun writes past the cap it is sent
# Fields OpenAI bills as prompt besides the messages.
_PROMPT_FIELDS = ("tools", "functions", "response_format")
TOOL_ARGUMENTS = '{"city": "Paris"}'
# How OpenAI streams tool-call arguments: small fragments of the JSON string.
_TOOL_ARG_PIECES = ['{"', "city", '":', ' "', "Paris", '"}']
assert "".join(_TOOL_ARG_PIECES) == TOOL_ARGUMENTS


_REPORTED = "fake-reported-usage"


def _error(message: str, type_: str, code: str | None = None, param: str | None = None) -> dict:
    # OpenAI always sends all four keys, null when not applicable.
    return {"error": {"message": message, "type": type_, "param": param, "code": code}}


# model -> (status, body, extra headers). Messages mimic OpenAI's real ones.
_ERRORS: dict[str, tuple[int, dict, list[tuple[bytes, bytes]]]] = {
    "fake-error-400": (
        400,
        _error(
            "This model's maximum context length is 8192 tokens. However, your messages resulted in "
            "9000 tokens. Please reduce the length of the messages.",
            "invalid_request_error",
            "context_length_exceeded",
            "messages",
        ),
        [],
    ),
    # Many of OpenAI's own 400s carry no code.
    "fake-error-400-no-code": (
        400,
        _error(
            "Invalid 'messages[0].name': string too long. Expected a string with maximum length 64.",
            "invalid_request_error",
            None,
            "messages[0].name",
        ),
        [],
    ),
    "fake-error-401": (
        401,
        _error(
            "Incorrect API key provided: sk-....0401. You can find your API key at "
            "https://platform.openai.com/account/api-keys.",
            "invalid_request_error",
            "invalid_api_key",
        ),
        [],
    ),
    "fake-error-403": (
        403,
        _error("Project does not have access to model `fake-error-403`.", "invalid_request_error", "model_not_found"),
        [],
    ),
    "fake-error-404": (
        404,
        _error(
            "The model `fake-error-404` does not exist or you do not have access to it.",
            "invalid_request_error",
            "model_not_found",
        ),
        [],
    ),
    # OpenAI's rate-limit errors use the limit kind ("requests"/"tokens") as type.
    "fake-error-429": (
        429,
        _error(
            "Rate limit reached for fake-error-429 on requests per min (RPM): Limit 3, Used 3, "
            "Requested 1. Please try again in 7s.",
            "requests",
            "rate_limit_exceeded",
        ),
        [(b"retry-after", b"7")],
    ),
    # A hostile or broken proxy's retry-after: forever, never, nonsense.
    **{
        f"fake-error-429-retry-after:{value}": (
            429,
            _error("Rate limit reached.", "requests", "rate_limit_exceeded"),
            [(b"retry-after", value.encode())],
        )
        for value in ("1e999", "99999999999999999999", "-5", "NaN", "inf", "Fri, 31 Dec 9999 23:59:59 GMT", "soon")
    },
    "fake-error-content-policy": (
        400,
        _error(
            "Your request was rejected as a result of our safety system.",
            "invalid_request_error",
            "content_policy_violation",
        ),
        [],
    ),
    "fake-error-500": (
        500,
        _error("The server had an error while processing your request. Sorry about that!", "server_error"),
        [],
    ),
    "fake-error-503": (503, _error("The engine is currently overloaded, please try again later", "server_error"), []),
}


# Images: output tokens per image by quality (gpt-image-1, 1024x1024), input tokens per input image (edits).
IMAGE_OUTPUT_TOKENS = {"low": 272, "medium": 1056, "high": 4160, "auto": 1056}
IMAGE_INPUT_TOKENS = 65
# Audio: OpenAI's upload limit (tests may patch it), the fake's texts, the response formats.
MAX_AUDIO_BYTES = 26214400
TRANSCRIPTS = {"transcribe": "Hello from the fake transcriber.", "translate": "Hello from the fake translator."}
AUDIO_FORMATS = ("json", "text", "srt", "verbose_json", "vtt")


# "error:<kind>" in the last user message (tests/conformance/cases.py).
_ERROR_KINDS = {
    "auth": "fake-error-401",
    "rate_limit": "fake-error-429",
    "overloaded": "fake-error-503",
    "context_length": "fake-error-400",
    "content_policy": "fake-error-content-policy",
    "server": "fake-error-500",
}


def speech_of(text: str) -> bytes:
    """The fake's audio for a text: an MP3-looking header and bytes from its SHA-256."""
    return b"ID3\x04\x00" + hashlib.sha256(text.encode()).digest() * 64


def embedding_of(item, dimensions: int) -> list[float]:
    """The fake's vector for an input: a few float32-exact numbers from its SHA-256."""
    text = item if isinstance(item, str) else " ".join(map(str, item))
    digest = hashlib.sha256(text.encode()).digest()
    return [(digest[i % 32] - 128) / 128 for i in range(dimensions)]


def _images(content) -> int:
    if not isinstance(content, list):
        return 0
    return sum(1 for p in content if isinstance(p, dict) and p.get("type") == "image_url")


def _text(content) -> str:
    """Text of a message's content: a string, or a list of {"type":"text"} parts."""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return " ".join(p.get("text", "") for p in content if isinstance(p, dict) and p.get("type") == "text")
    return ""


def _timestamp(seconds: float, separator: str) -> str:
    """HH:MM:SS<separator>mmm, as in SRT (",") and WebVTT (".") cues."""
    ms = round(seconds * 1000)
    hours, ms = divmod(ms, 3_600_000)
    minutes, ms = divmod(ms, 60_000)
    secs, ms = divmod(ms, 1000)
    return f"{hours:02d}:{minutes:02d}:{secs:02d}{separator}{ms:03d}"


class FakeOpenAI(FakeUpstream):
    thread_name, base_path = "fake-openai", "/v1"
    requests: list[RecordedRequest]

    def __init__(self, api_key: str | None = "sk-upstream-test"):
        super().__init__()
        self.api_key = api_key
        self.disconnects: list[str] = []
        self._seen_disconnects = 0
        self._ids = itertools.count(1)
        self.hosted_images: dict[str, bytes] = {}  # id -> PNG served at /fake-images/<id>.png
        self.reported_usage: str | None = None  # raw JSON for chat's "usage", as a miscounting provider sends

    # ----------------------------------------------------------- lifecycle
    def reset(self) -> None:
        with self._lock:
            super().reset()
            self.disconnects.clear()
            self._seen_disconnects = 0
            self.hosted_images.clear()
            self.reported_usage = None

    def wait_for_disconnect(self, timeout: float = 5.0, request_id: str | None = None) -> bool:
        """Block until a disconnect is recorded that no earlier call has returned for
        (so one that happened just before the call still counts), or, with
        ``request_id``, until that request is in ``disconnects``."""
        with self._lock:
            if request_id is not None:
                ok = self._lock.wait_for(lambda: request_id in self.disconnects, timeout)
            else:
                ok = self._lock.wait_for(lambda: len(self.disconnects) > self._seen_disconnects, timeout)
            if ok:
                self._seen_disconnects = len(self.disconnects)
            return ok

    def _record_disconnect(self, rid: str) -> None:
        with self._lock:
            self.disconnects.append(rid)
            self._lock.notify_all()

    # ----------------------------------------------------------- ASGI entry
    async def handle(self, scope, receive, send, body, headers) -> None:
        rid = f"req-{next(self._ids)}"  # also the x-request-id response header
        form, files = {}, []
        if headers.get("content-type", "").startswith("multipart/form-data"):
            try:
                form, files = parse_multipart(headers["content-type"], body)
            except ValueError:
                pass  # recorded as is; the route answers it like a form without fields
        self._record(
            RecordedRequest(scope["method"], scope["path"], headers, json_object(body), body, rid, form, files)
        )
        await self._route(scope, receive, send, rid, headers, body, form, files)

    async def _route(self, scope, receive, send, rid, headers, body, form: dict, files: list) -> None:
        method, path = scope["method"], scope["path"]
        if method == "GET" and path.startswith("/fake-images/"):
            # Where dall-e "url" images live: public, like OpenAI's signed blob URLs.
            image = self.hosted_images.get(path.removeprefix("/fake-images/").removesuffix(".png"))
            if image is None:
                return await self._send(
                    send,
                    rid,
                    404,
                    b'<?xml version="1.0" encoding="utf-8"?><Error>'
                    b"<Code>BlobNotFound</Code><Message>The specified blob does not exist."
                    b"</Message></Error>",
                    b"application/xml",
                )
            return await self._send(send, rid, 200, image, b"image/png")
        if self.api_key is not None:
            auth = headers.get("authorization", "")
            if not auth:
                return await self._json(
                    send,
                    rid,
                    401,
                    _error(
                        "You didn't provide an API key. You need to provide your API key in an "
                        "Authorization header using Bearer auth (i.e. Authorization: Bearer YOUR_KEY).",
                        "invalid_request_error",
                    ),
                )
            if auth != f"Bearer {self.api_key}":
                given = auth.removeprefix("Bearer ").strip()
                # OpenAI masks the key, showing only its first and last characters.
                return await self._json(
                    send,
                    rid,
                    401,
                    _error(
                        f"Incorrect API key provided: {given[:3]}....{given[-4:]}. You can find your "
                        "API key at https://platform.openai.com/account/api-keys.",
                        "invalid_request_error",
                        "invalid_api_key",
                    ),
                )
        if method == "GET" and path == "/v1/models":
            return await self._json(send, rid, 200, {"object": "list", "data": [self._model(m) for m in MODEL_IDS]})
        if method == "GET" and path.startswith("/v1/models/"):
            mid = path.removeprefix("/v1/models/")
            if mid in MODEL_IDS:
                return await self._json(send, rid, 200, self._model(mid))
            return await self._json(
                send,
                rid,
                404,
                _error(f"The model '{mid}' does not exist", "invalid_request_error", "model_not_found", "model"),
            )
        if method == "POST" and path == "/v1/chat/completions":
            req = json_object(body) or {}
            messages = req.get("messages") if isinstance(req.get("messages"), list) else []
            echo = echo_of(_text(messages[-1].get("content"))) if messages and isinstance(messages[-1], dict) else None
            if isinstance(req.get("model"), str) and req["model"].startswith("fake-echo-"):
                echo = req["model"].removeprefix("fake-echo-")  # for a request the test does not write (a probe)
            if echo is not None:
                return await self._echo(send, rid, echo, headers.get("authorization", ""), bool(req.get("stream")))
            return await self._chat(receive, send, rid, body)
        model = (json_object(body) or {}).get("model") if not form else (form.get("model") or [None])[0]
        if method == "POST" and isinstance(model, str) and model.startswith("fake-echo-"):
            # Every other endpoint's echo (fake-echo-200: a proxy's error sent as a 200 JSON body).
            return await self._echo(
                send, rid, model.removeprefix("fake-echo-"), headers.get("authorization", ""), False
            )
        if method == "POST" and path == "/v1/embeddings":
            return await self._embeddings(send, rid, body)
        if method == "POST" and path == "/v1/audio/speech":
            return await self._speech(send, rid, body)
        if method == "POST" and path == "/v1/images/generations":
            req = json_object(body)
            if req is None:
                return await self._json(
                    send,
                    rid,
                    400,
                    _error(
                        "We could not parse the JSON body of your request. (HINT: This likely means you "
                        "aren't using your HTTP library correctly. The OpenAI API expects a JSON payload, "
                        "but what was sent was not valid JSON.)",
                        "invalid_request_error",
                    ),
                )
            return await self._images(send, rid, req, None)
        if method == "POST" and path == "/v1/images/edits":
            images = [f.data for f in files if f.name in ("image", "image[]")]
            return await self._images(send, rid, {k: v[0] for k, v in form.items()}, images)
        if method == "POST" and path in ("/v1/audio/transcriptions", "/v1/audio/translations"):
            task = "transcribe" if path.endswith("transcriptions") else "translate"
            return await self._audio(send, rid, task, len(body), form, files)
        # OpenAI's answer for unknown routes.
        return await self._json(send, rid, 404, _error(f"Invalid URL ({method} {path})", "invalid_request_error"))

    async def _embeddings(self, send, rid, body) -> None:
        """Deterministic vectors (embedding_of); usage = words, or token ids, like OpenAI's count."""
        req = json.loads(body)
        if req.get("model") in _ERRORS:
            status, err, extra = _ERRORS[req["model"]]
            return await self._json(send, rid, status, err, extra)
        value = req.get("input")
        items = [value] if isinstance(value, str) or (value and isinstance(value[0], int)) else value or []
        tokens = sum(len(i) if isinstance(i, list) else len(i.split()) for i in items)
        data = []
        for index, item in enumerate(items):
            vector = embedding_of(item, req.get("dimensions") or 4)
            if req.get("encoding_format") == "base64":
                vector = base64.b64encode(struct.pack(f"<{len(vector)}f", *vector)).decode()
            data.append({"object": "embedding", "index": index, "embedding": vector})
        return await self._json(
            send,
            rid,
            200,
            {
                "object": "list",
                "data": data,
                "model": req.get("model"),
                "usage": {"prompt_tokens": tokens, "total_tokens": tokens},
            },
        )

    async def _speech(self, send, rid, body) -> None:
        """Speech: speech_of(input) in 3 chunks (chunked, as OpenAI streams audio)."""
        req = json.loads(body)
        if req.get("model") in _ERRORS:
            status, err, extra = _ERRORS[req["model"]]
            return await self._json(send, rid, status, err, extra)
        audio = speech_of(req.get("input") or "")
        types = {"mp3": b"audio/mpeg", "wav": b"audio/wav", "opus": b"audio/opus"}
        await send(
            {
                "type": "http.response.start",
                "status": 200,
                "headers": [
                    (b"content-type", types.get(req.get("response_format") or "mp3", b"application/octet-stream")),
                    (b"x-request-id", rid.encode()),
                ],
            }
        )
        third = len(audio) // 3
        for part in (audio[:third], audio[third : 2 * third], audio[2 * third :]):
            await send({"type": "http.response.body", "body": part, "more_body": True})
            await asyncio.sleep(0)
        await send({"type": "http.response.body", "body": b"", "more_body": False})

    # ----------------------------------------------------------- images
    async def _images(self, send, rid, params: dict, edit_images: list[bytes] | None) -> None:
        """Generations (edit_images None; params = the JSON body) and edits (params = the form's
        first values, edit_images = the uploaded image/image[] files, in order)."""

        def invalid(message, param, code=None, type_="invalid_request_error"):
            return self._json(send, rid, 400, _error(message, type_, code, param))

        model = params.get("model") or "dall-e-2"
        if model in _ERRORS:
            status, err, extra = _ERRORS[model]
            return await self._json(send, rid, status, err, extra)
        if edit_images is not None and not edit_images:
            return await invalid("Missing required parameter: 'image'.", "image")
        prompt = params.get("prompt")
        if prompt is None:
            return await invalid("Missing required parameter: 'prompt'.", "prompt")
        if not isinstance(prompt, str):
            return await invalid(
                f"Invalid type for 'prompt': expected a string, but got {type(prompt).__name__} instead.",
                "prompt",
                "invalid_type",
            )
        if not prompt:
            return await invalid(
                "Invalid 'prompt': string too short. Expected a string with minimum length 1, "
                "but got an empty string instead.",
                "prompt",
                "string_below_min_length",
            )
        if "error:content_policy" in prompt:
            return await invalid(
                "Your request was rejected as a result of our safety system. Your prompt may contain text that is "
                "not allowed by our safety system.",
                None,
                "content_policy_violation",
                "image_generation_user_error",
            )
        if prompt.startswith("error:"):  # the conformance contract's other kinds, as for chat
            status, err, extra = _ERRORS[_ERROR_KINDS.get(prompt[6:].strip(), "fake-error-500")]
            return await self._json(send, rid, status, err, extra)
        n = params.get("n")
        n = 1 if n is None else n
        if isinstance(n, str) and n.strip().lstrip("-").isdigit():  # a form field
            n = int(n)
        if not isinstance(n, int) or isinstance(n, bool):
            return await invalid(
                f"Invalid type for 'n': expected an integer, but got {type(n).__name__} instead.", "n", "invalid_type"
            )
        if n < 1:
            return await invalid(
                f"Invalid 'n': integer below minimum value. Expected a value >= 1, but got {n} instead.",
                "n",
                "integer_below_min_value",
            )
        if n > 10:
            return await invalid(
                f"Invalid 'n': integer above maximum value. Expected a value <= 10, but got {n} instead.",
                "n",
                "integer_above_max_value",
            )
        gpt_image = model.startswith("gpt-image")
        if gpt_image:
            if "response_format" in params:
                return await invalid("Unknown parameter: 'response_format'.", "response_format", "unknown_parameter")
            quality, fmt = params.get("quality") or "medium", "b64_json"
            if quality not in IMAGE_OUTPUT_TOKENS:
                return await invalid(
                    f"Invalid value: '{quality}'. Supported values are: 'low', 'medium', 'high', and 'auto'.",
                    "quality",
                    "invalid_value",
                )
        else:
            if model == "dall-e-3" and n != 1:
                return await invalid("You must provide n=1 for this model.", "n")
            fmt = params.get("response_format") or "url"
            if fmt not in ("url", "b64_json"):
                return await invalid(
                    f"Invalid value: '{fmt}'. Supported values are: 'url' and 'b64_json'.",
                    "response_format",
                    "invalid_value",
                )
        seed = prompt + ("|" + hashlib.sha256(edit_images[0]).hexdigest() if edit_images else "")
        data = []
        for i in range(n):
            png = png_of(f"{seed}|{i}")
            if fmt == "b64_json":
                item = {"b64_json": base64.b64encode(png).decode()}
            else:
                image_id = uuid.uuid4().hex
                with self._lock:
                    self.hosted_images[image_id] = png
                item = {"url": f"{self._running.base_url}/fake-images/{image_id}.png"}
            if model == "dall-e-3":
                item["revised_prompt"] = "Revised: " + prompt
            data.append(item)
        out = {"created": int(time.time()), "data": data}
        if gpt_image:
            text_tokens = len(prompt.split())
            image_tokens = IMAGE_INPUT_TOKENS * len(edit_images or [])
            output_tokens = n * IMAGE_OUTPUT_TOKENS[quality]
            out.update(
                background="opaque",
                output_format="png",
                quality=quality,
                size=params.get("size") or "1024x1024",
                usage={
                    "input_tokens": text_tokens + image_tokens,
                    "input_tokens_details": {"text_tokens": text_tokens, "image_tokens": image_tokens},
                    "output_tokens": output_tokens,
                    "total_tokens": text_tokens + image_tokens + output_tokens,
                },
            )
        return await self._json(send, rid, 200, self.malformed(out))

    # ----------------------------------------------------------- transcription / translation
    async def _audio(self, send, rid, task: str, read: int, form: dict, files: list) -> None:
        """Transcriptions and translations of the uploaded `file`: a fixed text, timed by audio_duration()."""
        upload = next((f for f in files if f.name == "file"), None)
        if upload is not None and len(upload.data) > MAX_AUDIO_BYTES:
            return await self._json(
                send,
                rid,
                413,
                _error(f"Maximum content size limit ({MAX_AUDIO_BYTES}) exceeded ({read} bytes read)", "server_error"),
            )
        fields = {k: v[0] for k, v in form.items()}
        model = fields.get("model")
        if model in _ERRORS:
            status, err, extra = _ERRORS[model]
            return await self._json(send, rid, status, err, extra)
        if upload is None:
            return await self._json(
                send, rid, 400, _error("Missing required parameter: 'file'.", "invalid_request_error", None, "file")
            )
        if not model:
            return await self._json(
                send, rid, 400, _error("you must provide a model parameter", "invalid_request_error")
            )
        fmt = fields.get("response_format") or "json"
        if fmt not in AUDIO_FORMATS:
            return await self._json(
                send,
                rid,
                400,
                _error(
                    f"Invalid value: '{fmt}'. Supported values are: 'json', 'text', 'srt', 'verbose_json', and 'vtt'.",
                    "invalid_request_error",
                    "invalid_value",
                    "response_format",
                ),
            )
        gpt4o = model.startswith("gpt-4o")
        if gpt4o and fmt not in ("json", "text"):
            return await self._json(
                send,
                rid,
                400,
                _error(
                    f"response_format '{fmt}' is not compatible with model '{model}'. Use 'json' or 'text' instead.",
                    "invalid_request_error",
                    "unsupported_value",
                    "response_format",
                ),
            )
        text, duration = TRANSCRIPTS[task], audio_duration(upload.data)
        plain = b"text/plain; charset=utf-8"
        if fmt == "text":
            return await self._send(send, rid, 200, (text + "\n").encode(), plain)
        if fmt == "srt":
            return await self._send(
                send, rid, 200, (f"1\n00:00:00,000 --> {_timestamp(duration, ',')}\n{text}\n\n").encode(), plain
            )
        if fmt == "vtt":
            return await self._send(
                send, rid, 200, (f"WEBVTT\n\n00:00:00.000 --> {_timestamp(duration, '.')}\n{text}\n\n").encode(), plain
            )
        billed = {"type": "duration", "seconds": math.ceil(duration)}
        if fmt == "json":
            out = {"text": text}
            if task == "transcribe":  # OpenAI's translations report no usage
                out["usage"] = (
                    billed
                    if not gpt4o
                    else {
                        "type": "tokens",
                        "input_tokens": 20,
                        "input_token_details": {"text_tokens": 0, "audio_tokens": 20},
                        "output_tokens": 7,
                        "total_tokens": 27,
                    }
                )
            return await self._json(send, rid, 200, out)
        out = {
            "task": task,
            "language": "english",
            "duration": duration,
            "text": text,
            "segments": [
                {
                    "id": 0,
                    "seek": 0,
                    "start": 0.0,
                    "end": duration,
                    "text": " " + text,
                    "tokens": [50364, 2425],
                    "temperature": 0.0,
                    "avg_logprob": -0.2,
                    "compression_ratio": 0.9,
                    "no_speech_prob": 0.01,
                }
            ],
        }
        granularities = form.get("timestamp_granularities[]", []) + form.get("timestamp_granularities", [])
        if task == "transcribe":
            if "word" in granularities:
                words = [w.strip(".,!?") for w in text.split()]
                out["words"] = [
                    {"word": w, "start": duration * i / len(words), "end": duration * (i + 1) / len(words)}
                    for i, w in enumerate(words)
                ]
            out["usage"] = billed
        return await self._json(send, rid, 200, out)

    @staticmethod
    def _model(mid: str) -> dict:
        return {"id": mid, "object": "model", "created": 1700000000, "owned_by": "fake"}

    # ----------------------------------------------------------- chat
    async def _chat(self, receive, send, rid, body) -> None:
        try:
            req = json.loads(body)
            if not isinstance(req, dict):
                raise ValueError
        except ValueError:
            return await self._json(
                send,
                rid,
                400,
                _error(
                    "We could not parse the JSON body of your request. (HINT: This likely means you "
                    "aren't using your HTTP library correctly. The OpenAI API expects a JSON payload, "
                    "but what was sent was not valid JSON.)",
                    "invalid_request_error",
                ),
            )
        for field in ("model", "messages"):
            if field not in req:
                return await self._json(
                    send,
                    rid,
                    400,
                    _error(
                        f"Missing required parameter: '{field}'.",
                        "invalid_request_error",
                        "missing_required_parameter",
                        field,
                    ),
                )
        model, stream = req["model"], bool(req.get("stream"))
        messages = req["messages"] if isinstance(req["messages"], list) else []

        # Errors are plain JSON responses even for stream requests, like OpenAI.
        if model in _ERRORS:
            status, err, extra = _ERRORS[model]
            return await self._json(send, rid, status, err, extra)
        if model == "fake-hang":
            gone = asyncio.ensure_future(until_disconnect(receive))
            stopping = asyncio.ensure_future(self._stopping.wait())
            await asyncio.wait([gone, stopping], return_when=asyncio.FIRST_COMPLETED)
            gone.cancel(), stopping.cancel()
            if not self._stopping.is_set():
                return self._record_disconnect(rid)
            return await self._json(send, rid, 503, _error("Fake server shutting down", "server_error"))
        if model == "fake-cut" and not stream:
            return await self._json(send, rid, *_ERRORS["fake-error-500"][:2])
        if model == "fake-malformed" and not stream:
            return await self._send(send, rid, 200, b"not json", b"application/json")

        texts = [_text(m.get("content")) for m in messages if isinstance(m, dict)]
        prompt_tokens = sum(len(t.split()) for t in texts) + 3 * len(texts)
        extra = {k: req[k] for k in _PROMPT_FIELDS if req.get(k)}
        if extra:
            prompt_tokens += math.ceil(len(json.dumps(extra)) / 4)
        choices_n = req.get("n") if isinstance(req.get("n"), int) and req.get("n") > 1 else 1
        last = messages[-1] if messages and isinstance(messages[-1], dict) else {}
        last_text = _text(last.get("content"))
        # The conformance contract (tests/conformance/cases.py): errors on request.
        if last.get("role") == "user" and last_text.startswith("error:"):
            status, err, extra = _ERRORS[_ERROR_KINDS.get(last_text[6:].strip(), "fake-error-500")]
            return await self._json(send, rid, status, err, extra)
        tools = req.get("tools") or []
        calls = []
        if last.get("role") == "tool":
            text = "Tool said: " + last_text
        elif tools and last.get("role") == "user":
            fn = (tools[0].get("function") or {}).get("name") or "get_weather"
            calls = [(f"call_fake{len(calls) + 1}", fn, TOOL_ARGUMENTS)]
            if "parallel" in last_text:
                calls.append(("call_fake2", fn, '{"city": "London"}'))
            text = ""
        elif (req.get("response_format") or {}).get("type") in ("json_object", "json_schema"):
            text = '{"answer": 42}'
        else:
            last_user = next((m for m in reversed(messages) if isinstance(m, dict) and m.get("role") == "user"), {})
            text = "Hello! You said: " + _text(last_user.get("content"))
            text += " [image]" * _images(last_user.get("content"))
        if model == "fake-slow":
            text += " " + " ".join(f"word{i}" for i in range(1, 201))
        limit = req.get("max_completion_tokens", req.get("max_tokens"))
        if model == "fake-long":
            text = " ".join(["word"] * LONG_ANSWER_WORDS)
        elif model == "fake-overrun":
            text = " ".join(["word"] * ((limit if isinstance(limit, int) else 0) + OVERRUN_WORDS))
            limit = None  # a misbehaving provider: writes past the cap
        finish = "tool_calls" if calls else "stop"
        if calls:
            choices_n = 1  # the fake calls its tools once, whatever n
        stops = req.get("stop") or []
        for stop in [stops] if isinstance(stops, str) else stops:
            if stop and stop in text:
                text = text[: text.index(stop)]
        words = text.split()
        if not calls and isinstance(limit, int) and limit < len(words):
            words, finish = words[: max(limit, 0)], "length"
        completion_tokens = 5 * len(calls) if calls else choices_n * len(words)
        usage = {
            "prompt_tokens": prompt_tokens,
            "completion_tokens": completion_tokens,
            "total_tokens": prompt_tokens + completion_tokens,
        }
        if self.reported_usage is not None:
            usage = _REPORTED  # swapped for the raw text once encoded: json.dumps cannot write 1e999
        base = {"id": f"chatcmpl-fake{rid.removeprefix('req-')}", "created": int(time.time()), "model": model}

        if not stream:
            if calls:
                message = {
                    "role": "assistant",
                    "content": None,
                    "refusal": None,
                    "tool_calls": [
                        {"id": cid, "type": "function", "function": {"name": fn, "arguments": args}}
                        for cid, fn, args in calls
                    ],
                }
            else:
                message = {"role": "assistant", "content": " ".join(words), "refusal": None}
            answer = json.dumps(
                {
                    "id": base["id"],
                    "object": "chat.completion",
                    "created": base["created"],
                    "model": model,
                    "choices": [
                        {"index": i, "message": message, "logprobs": None, "finish_reason": finish}
                        for i in range(choices_n)
                    ],
                    "usage": usage,
                    "system_fingerprint": "fp_fake",
                }
            ).encode()
            return await self._send(send, rid, 200, self._reported(answer), b"application/json")

        # ---- streaming
        include_usage = bool((req.get("stream_options") or {}).get("include_usage"))
        if model == "fake-no-usage":
            include_usage = False  # some OpenAI-compatible servers ignore stream_options

        def chunk(delta: dict, finish_reason=None, choices=True, index=0) -> bytes:
            c = {
                "id": base["id"],
                "object": "chat.completion.chunk",
                "created": base["created"],
                "model": model,
                "system_fingerprint": "fp_fake",
                "choices": [{"index": index, "delta": delta, "logprobs": None, "finish_reason": finish_reason}]
                if choices
                else [],
            }
            if include_usage:
                # With include_usage OpenAI puts "usage": null on every chunk,
                # and the real usage on one last chunk with empty choices.
                c["usage"] = None if choices else usage
            return b"data: " + self._reported(json.dumps(c).encode()) + b"\n\n"

        if calls:
            # Each call: a chunk with id/type/name and empty arguments, then
            # fragments that carry only index + function.arguments.
            events = [chunk({"role": "assistant", "content": None, "refusal": None})]
            for index, (cid, fn, args) in enumerate(calls):
                events.append(
                    chunk(
                        {
                            "tool_calls": [
                                {
                                    "index": index,
                                    "id": cid,
                                    "type": "function",
                                    "function": {"name": fn, "arguments": ""},
                                }
                            ]
                        }
                    )
                )
                pieces = _TOOL_ARG_PIECES if args == TOOL_ARGUMENTS else [args[:5], args[5:]]
                events += [chunk({"tool_calls": [{"index": index, "function": {"arguments": p}}]}) for p in pieces]
        else:
            events = []
            for n in range(choices_n):  # OpenAI streams each choice's chunks with its index
                events.append(chunk({"role": "assistant", "content": "", "refusal": None}, index=n))
                events += [chunk({"content": w if i == 0 else " " + w}, index=n) for i, w in enumerate(words)]
        events += [chunk({}, finish, index=n) for n in range(choices_n)]
        if include_usage:
            events.append(chunk({}, choices=False))
        events.append(b"data: [DONE]\n\n")

        if model == "fake-cut":
            events = events[:4]  # role chunk + 3 words, then the connection drops
        elif model == "fake-malformed":
            events = [events[0], b"data: {broken\n\n", b"data: [DONE]\n\n"]
        # A real provider's events arrive spaced out; fake-cut needs that too, or
        # the drop would arrive in the same read as the events before it.
        delay = 0.02 if model in ("fake-slow", "fake-cut") else 0.0

        await send(
            {
                "type": "http.response.start",
                "status": 200,
                "headers": [
                    (b"content-type", b"text/event-stream"),
                    (b"cache-control", b"no-cache"),
                    (b"x-request-id", rid.encode()),
                ],
            }
        )
        # uvicorn's send() silently drops data once the client is gone, so watch
        # receive() concurrently for http.disconnect.
        gone = asyncio.ensure_future(until_disconnect(receive))
        try:
            for ev in events:
                if gone.done():
                    return self._record_disconnect(rid)
                if self._stopping.is_set():
                    raise CutStream("fake server shutting down")
                await send({"type": "http.response.body", "body": ev, "more_body": True})
                if delay:
                    await asyncio.wait([gone], timeout=delay)
                else:
                    await asyncio.sleep(0)  # let the event go out on its own
            if gone.done():
                return self._record_disconnect(rid)
        finally:
            gone.cancel()
        if model == "fake-cut":
            # Exception after the response started: uvicorn closes the socket
            # without the terminating chunk, i.e. an incomplete chunked body.
            raise CutStream("fake-cut: dropping connection mid-stream")
        await send({"type": "http.response.body", "body": b"", "more_body": False})

    async def _echo(self, send, rid, echo: str, authorization: str, stream: bool) -> None:
        """Echo mode (tests/fakes/server.py echo_of): an error quoting the Authorization header."""
        message = echo_message(authorization)
        if echo != "stream" or not stream:
            status = int(echo) if echo.isdigit() else 500
            return await self._json(
                send,
                rid,
                status,
                _error(message, "server_error" if status >= 500 else "invalid_request_error", "proxy_error"),
            )
        base = {
            "id": f"chatcmpl-fake{rid.removeprefix('req-')}",
            "object": "chat.completion.chunk",
            "created": int(time.time()),
            "model": "fake-echo",
        }
        events = [
            dict(base, choices=[{"index": 0, "delta": {"role": "assistant", "content": ""}, "finish_reason": None}]),
            dict(base, choices=[{"index": 0, "delta": {"content": "Hello"}, "finish_reason": None}]),
            _error(message, "server_error", "proxy_error"),
        ]
        await send(
            {
                "type": "http.response.start",
                "status": 200,
                "headers": [(b"content-type", b"text/event-stream"), (b"x-request-id", rid.encode())],
            }
        )
        for event in events:
            await send(
                {
                    "type": "http.response.body",
                    "body": b"data: " + json.dumps(event).encode() + b"\n\n",
                    "more_body": True,
                }
            )
            await asyncio.sleep(0)
        await send({"type": "http.response.body", "body": b"", "more_body": False})

    # ----------------------------------------------------------- helpers
    def _reported(self, encoded: bytes) -> bytes:
        if self.reported_usage is None:
            return encoded
        return encoded.replace(json.dumps(_REPORTED).encode(), self.reported_usage.encode())

    async def _json(self, send, rid, status, obj, extra=()) -> None:
        await self._send(send, rid, status, json.dumps(obj).encode(), b"application/json", extra)

    @staticmethod
    async def _send(send, rid, status, body: bytes, ctype: bytes, extra=()) -> None:
        await send(
            {
                "type": "http.response.start",
                "status": status,
                "headers": [
                    (b"content-type", ctype),
                    (b"content-length", str(len(body)).encode()),
                    (b"x-request-id", rid.encode()),
                    *extra,
                ],
            }
        )
        await send({"type": "http.response.body", "body": body})
