"""A fake Google Gemini API (Generative Language API) for tests, in Gemini's own wire format.

Raw ASGI app (stdlib only) served by uvicorn on 127.0.0.1:<ephemeral port> in a
daemon thread, like tests/fakes/openai_upstream.py. It serves
``POST /{v1,v1beta,v1alpha}/models/{model}:generateContent`` and
``:streamGenerateContent`` (``?alt=sse``: ``data: {...}\\r\\n\\r\\n`` events, as
Google sends them; without it, one JSON array) and follows the conformance
contract of tests/conformance/cases.py. ``:countTokens`` counts ``contents`` or a
whole ``generateContentRequest`` (which must name the model of the path) as the
prompt of a generation is counted, plus DECLARATION_TOKENS per function
declaration; a last user text ``error:<kind>`` answers that error.

Like the real API it wants camelCase JSON and refuses unknown fields, JSON-schema
keys outside its OpenAPI subset, an object schema without properties, a replayed
function call without a thought signature (Gemini 3) and a function-call turn
answered by a different number of function responses. Unlike the real API it
refuses a ``key=`` query parameter: the hub must send the key in the
``x-goog-api-key`` header only (URLs get logged).

Models with a behaviour of their own: ``fake-cut`` (a stream dropped after three
words; a 500 otherwise), ``fake-stream-error`` (an error event after two words),
``fake-no-usage`` (no usageMetadata), ``fake-thinking`` (a thought part and
thoughtsTokenCount 7). A last user text ``echo:<status>`` or ``echo:stream`` answers an
error quoting the API key (tests/fakes/server.py ``echo_of``).

Native image generation ("Nano Banana"): a model whose name contains ``image``,
asked for the ``IMAGE`` response modality (the default for such a model), answers
with an optional ``{"text": IMAGE_TEXT}`` part (only if ``TEXT`` was requested)
and one ``inlineData`` PNG, ``png_of(prompt [+ "|" + sha256(first input image)] +
"|" + aspectRatio)``, billed IMAGE_OUTPUT_TOKENS output tokens and
IMAGE_INPUT_TOKENS per input image. ``imageConfig.aspectRatio`` is checked
against ASPECT_RATIOS for every model, as Google does.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import itertools
import json
import re
from dataclasses import dataclass
from urllib.parse import parse_qs

from tests.fakes.media import png_of
from tests.fakes.server import CutStream, FakeUpstream, echo_message, echo_of, json_object, until_disconnect

API_KEY = "AIzaSy-fake-gemini-upstream-key-0001"
PATH = re.compile(
    r"^/(v1|v1beta|v1alpha)/models/([^/:]+):(generateContent|streamGenerateContent|batchEmbedContents|countTokens)$"
)
REQUEST_FIELDS = {
    "contents",
    "tools",
    "toolConfig",
    "safetySettings",
    "systemInstruction",
    "generationConfig",
    "cachedContent",
}
CONFIG_FIELDS = {
    "stopSequences",
    "responseMimeType",
    "responseSchema",
    "responseJsonSchema",
    "responseModalities",
    "candidateCount",
    "maxOutputTokens",
    "temperature",
    "topP",
    "topK",
    "seed",
    "presencePenalty",
    "frequencyPenalty",
    "responseLogprobs",
    "logprobs",
    "enableEnhancedCivicAnswers",
    "speechConfig",
    "thinkingConfig",
    "mediaResolution",
    "imageConfig",
}
PART_FIELDS = {
    "text",
    "inlineData",
    "functionCall",
    "functionResponse",
    "fileData",
    "executableCode",
    "codeExecutionResult",
    "thought",
    "thoughtSignature",
    "videoMetadata",
    "partMetadata",
}
DECLARATION_FIELDS = {
    "name",
    "description",
    "parameters",
    "parametersJsonSchema",
    "response",
    "responseJsonSchema",
    "behavior",
}
SCHEMA_FIELDS = {
    "type",
    "format",
    "title",
    "description",
    "nullable",
    "enum",
    "maxItems",
    "minItems",
    "properties",
    "required",
    "minProperties",
    "maxProperties",
    "minLength",
    "maxLength",
    "pattern",
    "example",
    "anyOf",
    "propertyOrdering",
    "default",
    "items",
    "minimum",
    "maximum",
}
TOOL_CALL_TOKENS = 5
DECLARATION_TOKENS = 11  # per function declaration, in a countTokens answer
ASPECT_RATIOS = ("1:1", "2:3", "3:2", "3:4", "4:3", "4:5", "5:4", "9:16", "16:9", "21:9")
IMAGE_TEXT = "Here is your image."
IMAGE_OUTPUT_TOKENS = 1290  # one 1024x1024 image
IMAGE_INPUT_TOKENS = 258  # per input image
THOUGHT_TOKENS = 7
CITIES = ("Paris", "London")
SIGNATURE_MESSAGE = (
    "Function call is missing a thought_signature in functionCall parts. This is required for tools to work "
    "correctly, and missing thought_signature may lead to degraded model performance. Additional data, function "
    "call `default_api:{name}` , position {position}. Please refer to "
    "https://ai.google.dev/gemini-api/docs/thought-signatures for more details."
)


@dataclass
class RecordedRequest:
    method: str
    path: str
    query: dict[str, list[str]]
    headers: dict[str, str]  # lower-case names
    json: dict | None
    raw: bytes
    id: str


def google_error(code: int, status: str, message: str, details: list | None = None) -> dict:
    error = {"code": code, "message": message, "status": status}
    if details:
        error["details"] = details
    return {"error": error}


def _key_invalid() -> dict:
    return google_error(
        400,
        "INVALID_ARGUMENT",
        "API key not valid. Please pass a valid API key.",
        [
            {
                "@type": "type.googleapis.com/google.rpc.ErrorInfo",
                "reason": "API_KEY_INVALID",
                "domain": "googleapis.com",
                "metadata": {"service": "generativelanguage.googleapis.com"},
            },
            {
                "@type": "type.googleapis.com/google.rpc.LocalizedMessage",
                "locale": "en-US",
                "message": "API key not valid. Please pass a valid API key.",
            },
        ],
    )


def _rate_limited(model: str) -> dict:
    return google_error(
        429,
        "RESOURCE_EXHAUSTED",
        (
            "You exceeded your current quota, please check your plan and billing details. For more information on this "
            "error, head to: https://ai.google.dev/gemini-api/docs/rate-limits.\n* Quota exceeded for metric: "
            "generativelanguage.googleapis.com/generate_content_free_tier_requests, limit: 10, model: "
            + model
            + "\nPlease retry in 6.42s."
        ),
        [
            {
                "@type": "type.googleapis.com/google.rpc.QuotaFailure",
                "violations": [
                    {
                        "quotaMetric": "generativelanguage.googleapis.com/generate_content_free_tier_requests",
                        "quotaId": "GenerateRequestsPerMinutePerProjectPerModel-FreeTier",
                        "quotaDimensions": {"location": "global", "model": model},
                        "quotaValue": "10",
                    }
                ],
            },
            {
                "@type": "type.googleapis.com/google.rpc.Help",
                "links": [
                    {
                        "description": "Learn more about Gemini API quotas",
                        "url": "https://ai.google.dev/gemini-api/docs/rate-limits",
                    }
                ],
            },
            {"@type": "type.googleapis.com/google.rpc.RetryInfo", "retryDelay": "7s"},
        ],
    )


# error:<kind> -> (HTTP status, body); content_policy is not an error at Gemini (see _blocked).
ERRORS = {
    "auth": lambda model: (400, _key_invalid()),
    "rate_limit": lambda model: (429, _rate_limited(model)),
    "overloaded": lambda model: (
        503,
        google_error(503, "UNAVAILABLE", "The model is overloaded. Please try again later."),
    ),
    "context_length": lambda model: (
        400,
        google_error(
            400,
            "INVALID_ARGUMENT",
            "The input token count (1048677) exceeds the maximum number of tokens allowed (1048576).",
        ),
    ),
    "server": lambda model: (
        500,
        google_error(
            500,
            "INTERNAL",
            (
                "An internal error has occurred. Please retry or report in "
                "https://developers.generativeai.google/guide/troubleshooting"
            ),
        ),
    ),
}


def _pieces(text: str) -> list[str]:
    """Word by word: the first bare, the others with their leading space; trailing space kept."""
    pieces = re.findall(r"\s*\S+", text)
    rest = text[len("".join(pieces)) :]
    if rest:
        pieces = [*pieces[:-1], (pieces[-1] if pieces else "") + rest]
    return pieces


def _schema_error(schema, where: str) -> str | None:
    if isinstance(schema, list):
        return next((e for i, s in enumerate(schema) if (e := _schema_error(s, f"{where}[{i}]"))), None)
    if not isinstance(schema, dict):
        return None
    for key, value in schema.items():
        if key not in SCHEMA_FIELDS:
            return f"Invalid JSON payload received. Unknown name \"{key}\" at '{where}': Cannot find field."
        if key == "properties" and isinstance(value, dict):
            for name, sub in value.items():
                if error := _schema_error(sub, f"{where}.properties[{name}].value"):
                    return error
        elif key in ("items", "anyOf") and (error := _schema_error(value, f"{where}.{key}")):
            return error
    if (
        str(schema.get("type", "")).upper() == "OBJECT"
        and not schema.get("properties")
        and where.endswith("parameters")
    ):
        return f"* GenerateContentRequest.{where}.properties: should be non-empty for OBJECT type\n"
    return None


def _validate(req: dict) -> str | None:
    """What Google's front end would refuse, in its words, or None."""
    for key in req:
        if key not in REQUEST_FIELDS:
            return f'Invalid JSON payload received. Unknown name "{key}": Cannot find field.'
    for key in req.get("generationConfig") or {}:
        if key not in CONFIG_FIELDS:
            return f"Invalid JSON payload received. Unknown name \"{key}\" at 'generation_config': Cannot find field."
    ratio = ((req.get("generationConfig") or {}).get("imageConfig") or {}).get("aspectRatio")
    if ratio is not None and ratio not in ASPECT_RATIOS:
        choices = ", ".join(f"'{r}'" for r in ASPECT_RATIOS[:-1])
        return (
            f"* GenerateContentRequest.generation_config.image_config.aspect_ratio: aspect_ratio must be one "
            f"of {choices}, or '{ASPECT_RATIOS[-1]}'.\n"
        )
    contents = req.get("contents")
    if not isinstance(contents, list) or not contents:
        return "* GenerateContentRequest.contents: contents is not specified\n"
    for i, content in enumerate(contents):
        if content.get("role") not in ("user", "model"):
            return "Please use a valid role: user, model."
        if not content.get("parts"):
            return f"* GenerateContentRequest.contents[{i}].parts: contents.parts must not be empty.\n"
        for j, part in enumerate(content["parts"]):
            for key in part:
                if key not in PART_FIELDS:
                    return (
                        f'Invalid JSON payload received. Unknown name "{key}" at '
                        f"'contents[{i}].parts[{j}]': Cannot find field."
                    )
            if "text" in part and not part["text"] and len(part) == 1:
                return "Unable to submit request because it has an empty text parameter. Add a value to the parameter and try again."
            if "inlineData" in part:
                try:
                    base64.b64decode(part["inlineData"]["data"], validate=True)
                except Exception:
                    return (
                        f"Invalid value at 'contents[{i}].parts[{j}].inline_data.data' (TYPE_BYTES), "
                        "Base64 decoding failed"
                    )
    for t, tool in enumerate(req.get("tools") or []):
        for d, declaration in enumerate(tool.get("functionDeclarations") or []):
            for key in declaration:
                if key not in DECLARATION_FIELDS:
                    return (
                        f'Invalid JSON payload received. Unknown name "{key}" at '
                        f"'tools[{t}].function_declarations[{d}]': Cannot find field."
                    )
            if "parameters" in declaration and (
                error := _schema_error(declaration["parameters"], f"tools[{t}].function_declarations[{d}].parameters")
            ):
                return error
    return _turn_error(contents)


def _turn_error(contents: list) -> str | None:
    # Function responses must answer the previous function-call turn, one for one.
    for i, content in enumerate(contents):
        calls = [p for p in content["parts"] if "functionCall" in p]
        if content["role"] == "model" and calls and i + 1 < len(contents):
            answers = [p for p in contents[i + 1]["parts"] if "functionResponse" in p]
            if len(answers) != len(calls):
                return (
                    "Please ensure that the number of function response parts is equal to the number of "
                    "function call parts of the function call turn."
                )
    # Gemini 3: in the current turn (since the last user text), each step's first call carries its signature.
    start = max(
        (
            i
            for i, c in enumerate(contents)
            if c["role"] == "user" and any("text" in p or "inlineData" in p for p in c["parts"])
        ),
        default=0,
    )
    position = sum(len(c["parts"]) for c in contents[:start])
    for content in contents[start:]:
        calls = [p for p in content["parts"] if "functionCall" in p]
        if content["role"] == "model" and calls and not calls[0].get("thoughtSignature"):
            index = content["parts"].index(calls[0])
            return SIGNATURE_MESSAGE.format(name=calls[0]["functionCall"].get("name"), position=position + index + 1)
        position += len(content["parts"])
    return None


class FakeGemini(FakeUpstream):
    thread_name = "fake-gemini"
    requests: list[RecordedRequest]

    def __init__(self, api_key: str | None = API_KEY):
        super().__init__()
        self.api_key = api_key
        self._ids = itertools.count(1)

    # ----------------------------------------------------------- ASGI entry
    async def handle(self, scope, receive, send, body, headers) -> None:
        query = parse_qs(scope.get("query_string", b"").decode("latin-1"))
        parsed = json_object(body)
        rid = f"req-{next(self._ids)}"
        self._record(RecordedRequest(scope["method"], scope["path"], query, headers, parsed, body, rid))
        await self._route(scope, receive, send, rid, headers, query, parsed)

    async def _route(self, scope, receive, send, rid, headers, query, req) -> None:
        match = PATH.match(scope["path"])
        if scope["method"] != "POST" or not match:
            return await self._send(
                send, 404, b"<!DOCTYPE html><title>Error 404 (Not Found)!!1</title>", b"text/html; charset=UTF-8"
            )
        if "key" in query:
            return await self._json(
                send,
                400,
                google_error(
                    400,
                    "INVALID_ARGUMENT",
                    (
                        "fake Gemini: the API key was sent in the URL (key=); the hub must use the x-goog-api-key header."
                    ),
                ),
            )
        if self.api_key is not None:
            given = headers.get("x-goog-api-key")
            if not given:
                return await self._json(
                    send,
                    403,
                    google_error(
                        403,
                        "PERMISSION_DENIED",
                        (
                            "Method doesn't allow unregistered callers (callers without established identity). Please use "
                            "API Key or other form of API consumer identity to call this API."
                        ),
                    ),
                )
            if given != self.api_key:
                return await self._json(send, 400, _key_invalid())
        if not isinstance(req, dict):
            return await self._json(
                send, 400, google_error(400, "INVALID_ARGUMENT", "Invalid JSON payload received. Unexpected token.")
            )
        if match.group(3) == "batchEmbedContents":
            return await self._embed(send, match.group(2), req)
        if match.group(3) == "countTokens":
            return await self._count(send, match.group(2), req)
        if error := _validate(req):
            return await self._json(send, 400, google_error(400, "INVALID_ARGUMENT", error))
        model, method = match.group(2), match.group(3)
        sse = method == "streamGenerateContent" and query.get("alt") == ["sse"]
        last = req["contents"][-1]
        echo = echo_of(" ".join(p["text"] for p in last.get("parts") or [] if "text" in p))
        if echo is not None:
            return await self._echo(send, echo, headers.get("x-goog-api-key", ""), sse)
        await self._generate(receive, send, rid, model, req, method == "streamGenerateContent", sse)

    async def _embed(self, send, model, req) -> None:
        """batchEmbedContents: one embedding per request, each request naming the same model; no usage."""
        from tests.fakes.openai_upstream import embedding_of

        out = []
        for i, one in enumerate(req.get("requests") or []):
            if one.get("model") != f"models/{model}":
                return await self._json(
                    send,
                    400,
                    google_error(
                        400,
                        "INVALID_ARGUMENT",
                        (f"Model '{one.get('model')}' in requests[{i}] does not match 'models/{model}'."),
                    ),
                )
            text = " ".join(p.get("text", "") for p in (one.get("content") or {}).get("parts") or [])
            out.append({"values": embedding_of(text, one.get("outputDimensionality") or 4)})
        return await self._json(send, 200, {"embeddings": out})

    async def _count(self, send, model, req) -> None:
        """countTokens: {"totalTokens", "promptTokensDetails"} of `contents` or of a `generateContentRequest`."""
        for key in req:
            if key not in ("contents", "generateContentRequest"):
                return await self._json(
                    send,
                    400,
                    google_error(
                        400,
                        "INVALID_ARGUMENT",
                        f'Invalid JSON payload received. Unknown name "{key}": Cannot find field.',
                    ),
                )
        whole = req.get("generateContentRequest")
        if whole is not None:
            if "contents" in req:
                message = "contents and generateContentRequest are mutually exclusive."
                return await self._json(send, 400, google_error(400, "INVALID_ARGUMENT", message))
            if not isinstance(whole, dict) or whole.get("model") != f"models/{model}":
                named = whole.get("model") if isinstance(whole, dict) else None
                message = f"* CountTokensRequest.generate_content_request.model: model '{named}' does not match 'models/{model}'.\n"
                return await self._json(send, 400, google_error(400, "INVALID_ARGUMENT", message))
            req = {k: v for k, v in whole.items() if k != "model"}
        if error := _validate(req):
            return await self._json(send, 400, google_error(400, "INVALID_ARGUMENT", error))
        last = req["contents"][-1]
        text = " ".join(p["text"] for p in last["parts"] if "text" in p) if last["role"] == "user" else ""
        kind = text[len("error:") :].split()[0] if text.startswith("error:") and len(text) > 6 else None
        if kind in ERRORS:
            status, error = ERRORS[kind](model)
            return await self._json(send, status, error)
        parts = ((req.get("systemInstruction") or {}).get("parts") or []) + [
            p for c in req["contents"] for p in c["parts"]
        ]
        images = IMAGE_INPUT_TOKENS * sum(
            1 for p in parts if str((p.get("inlineData") or {}).get("mimeType", "")).startswith("image/")
        )
        declarations = [d for t in req.get("tools") or [] for d in t.get("functionDeclarations") or []]
        text_tokens = self._prompt_tokens(req) + DECLARATION_TOKENS * len(declarations)
        details = [{"modality": "TEXT", "tokenCount": text_tokens}] + (
            [{"modality": "IMAGE", "tokenCount": images}] if images else []
        )
        return await self._json(send, 200, {"totalTokens": text_tokens + images, "promptTokensDetails": details})

    # ----------------------------------------------------------- generation
    async def _generate(self, receive, send, rid, model, req, stream, sse) -> None:
        contents = req["contents"]
        last = contents[-1]
        texts = [p["text"] for p in last["parts"] if "text" in p] if last["role"] == "user" else []
        text = " ".join(texts)
        answers = [p["functionResponse"] for p in last["parts"] if "functionResponse" in p]
        kind = text[len("error:") :].split()[0] if text.startswith("error:") and len(text) > 6 else None
        if kind in ERRORS:
            # Errors are plain (indented) JSON, streamed request or not.
            status, error = ERRORS[kind](model)
            return await self._json(send, status, error)
        if model == "fake-cut" and not stream:
            return await self._json(send, 500, ERRORS["server"](model)[1])

        config = req.get("generationConfig") or {}
        declarations = [d for t in req.get("tools") or [] for d in t.get("functionDeclarations") or []]
        mode = ((req.get("toolConfig") or {}).get("functionCallingConfig") or {}).get("mode", "AUTO")
        prompt = self._prompt_tokens(req)
        meta = {
            "promptTokenCount": prompt,
            "totalTokenCount": prompt,
            "promptTokensDetails": [{"modality": "TEXT", "tokenCount": prompt}],
        }
        if len(contents) > 1:  # implicit caching of earlier turns; promptTokenCount already counts them
            meta["cachedContentTokenCount"] = 3 * (len(contents) - 1)
            meta["cacheTokensDetails"] = [{"modality": "TEXT", "tokenCount": meta["cachedContentTokenCount"]}]
        base = {"modelVersion": model, "responseId": f"fake{rid.removeprefix('req-')}Gm"}

        calls, finish, parts = [], "STOP", []
        if kind == "content_policy":
            blocked = dict(
                base,
                promptFeedback={
                    "blockReason": "SAFETY",
                    "safetyRatings": [
                        {"category": c, "probability": p}
                        for c, p in (
                            ("HARM_CATEGORY_SEXUALLY_EXPLICIT", "NEGLIGIBLE"),
                            ("HARM_CATEGORY_HATE_SPEECH", "HIGH"),
                            ("HARM_CATEGORY_HARASSMENT", "NEGLIGIBLE"),
                            ("HARM_CATEGORY_DANGEROUS_CONTENT", "NEGLIGIBLE"),
                        )
                    ],
                },
                usageMetadata=meta,
            )
            if not stream:
                return await self._json(send, 200, blocked)
            return await self._stream(receive, send, model, [blocked], sse)
        modalities = [str(m).upper() for m in config.get("responseModalities") or ["IMAGE"]]
        if "image" in model and "IMAGE" in modalities:
            return await self._image(receive, send, model, req, stream, sse, base, "TEXT" in modalities)
        if answers:
            reply = "Tool said: " + " ".join(
                a["response"]["content"]
                if isinstance((a.get("response") or {}).get("content"), str)
                else json.dumps(a.get("response"))
                for a in answers
            )
        elif declarations and mode != "NONE" and last["role"] == "user":
            name = declarations[0]["name"]
            allowed = ((req.get("toolConfig") or {}).get("functionCallingConfig") or {}).get("allowedFunctionNames")
            name = allowed[0] if allowed else name
            cities = CITIES if "parallel" in text else CITIES[:1]
            calls = [{"functionCall": {"name": name, "args": {"city": city}}} for city in cities]
            # Gemini 3 signs the first function call of a step.
            calls[0]["thoughtSignature"] = base64.b64encode(f"fake-signature-{rid}".encode()).decode()
            reply = None
        elif config.get("responseMimeType") == "application/json":
            reply = '{"answer": 42}'
        else:
            images = sum(1 for p in last["parts"] if "inlineData" in p)
            reply = "Hello! You said: " + text + " [image]" * images

        if reply is not None:
            for stop in config.get("stopSequences") or []:
                if stop in reply:
                    reply = reply[: reply.index(stop)]  # Gemini reports a stop sequence as STOP
            words = reply.split()
            limit = config.get("maxOutputTokens")
            if isinstance(limit, int) and limit < len(words):
                reply, finish = " ".join(words[:limit]), "MAX_TOKENS"
            output = len(reply.split())
        else:
            output = TOOL_CALL_TOKENS * len(calls)
        final = dict(meta, candidatesTokenCount=output, totalTokenCount=prompt + output)
        if model == "fake-thinking":
            final["thoughtsTokenCount"] = THOUGHT_TOKENS
            final["totalTokenCount"] += THOUGHT_TOKENS
        count = config.get("candidateCount") or 1

        def event(new_parts: list, last_event: bool) -> dict:
            candidate = {"content": {"parts": new_parts, "role": "model"}}
            if last_event:
                candidate["finishReason"] = finish
            out = {"candidates": [dict(candidate, index=i) for i in range(count)]}
            if model != "fake-no-usage":
                out["usageMetadata"] = final if last_event else meta
            return {**out, **base}

        thought = [{"text": "Let me think about it.", "thought": True}] if model == "fake-thinking" else []
        if not stream:
            parts = thought + (calls if reply is None else [{"text": reply}])
            return await self._json(send, 200, self.malformed(event(parts, True)))
        if reply is None:
            events = [event((thought if i == 0 else []) + [call], i == len(calls) - 1) for i, call in enumerate(calls)]
        else:
            pieces = _pieces(reply) or [""]
            events = [
                event((thought if i == 0 else []) + [{"text": piece}], i == len(pieces) - 1)
                for i, piece in enumerate(pieces)
            ]
        await self._stream(receive, send, model, [self.malformed(e) for e in events], sse)

    async def _image(self, receive, send, model, req, stream, sse, base: dict, with_text: bool) -> None:
        """Native image generation: [text part if TEXT was requested] + one inlineData PNG."""
        contents = req["contents"]
        last = contents[-1]["parts"]
        prompt = " ".join(p["text"] for p in last if "text" in p)
        inputs = [
            base64.b64decode(p["inlineData"]["data"])
            for p in last
            if "inlineData" in p and str(p["inlineData"].get("mimeType", "")).startswith("image/")
        ]
        ratio = ((req.get("generationConfig") or {}).get("imageConfig") or {}).get("aspectRatio") or "1:1"
        png = png_of(prompt + ("|" + hashlib.sha256(inputs[0]).hexdigest() if inputs else "") + "|" + ratio)
        # Prompt: the words of all text (system and contents) + IMAGE_INPUT_TOKENS per input image.
        system = (req.get("systemInstruction") or {}).get("parts") or []
        parts = system + [p for c in contents for p in c["parts"]]
        words = sum(len(p.get("text", "").split()) for p in parts)
        images = IMAGE_INPUT_TOKENS * sum(
            1 for p in parts if "inlineData" in p and str(p["inlineData"].get("mimeType", "")).startswith("image/")
        )
        details = [{"modality": "TEXT", "tokenCount": words}] + (
            [{"modality": "IMAGE", "tokenCount": images}] if images else []
        )
        meta = {"promptTokenCount": words + images, "totalTokenCount": words + images, "promptTokensDetails": details}
        final = dict(
            meta,
            candidatesTokenCount=IMAGE_OUTPUT_TOKENS,
            totalTokenCount=words + images + IMAGE_OUTPUT_TOKENS,
            candidatesTokensDetails=[{"modality": "IMAGE", "tokenCount": IMAGE_OUTPUT_TOKENS}],
        )

        def event(new_parts: list, last_event: bool) -> dict:
            candidate = {"content": {"parts": new_parts, "role": "model"}}
            if last_event:
                candidate["finishReason"] = "STOP"
            return {"candidates": [dict(candidate, index=0)], "usageMetadata": final if last_event else meta, **base}

        text = [{"text": IMAGE_TEXT}] if with_text else []
        image = [{"inlineData": {"mimeType": "image/png", "data": base64.b64encode(png).decode()}}]
        if not stream:
            return await self._json(send, 200, event(text + image, True))
        # Streamed: the text first, then the image with the finish reason.
        events = ([event(text, False)] if text else []) + [event(image, True)]
        await self._stream(receive, send, model, events, sse)

    @staticmethod
    def _prompt_tokens(req: dict) -> int:
        """Words in all text of the request (system and contents) + 3 per message."""
        system = (req.get("systemInstruction") or {}).get("parts") or []
        texts = [p.get("text", "") for p in system]
        for content in req["contents"]:
            for part in content["parts"]:
                texts.append(part.get("text", ""))
                response = (part.get("functionResponse") or {}).get("response") or {}
                if isinstance(response.get("content"), str):
                    texts.append(response["content"])
        messages = len(req["contents"]) + (1 if system else 0)
        return sum(len(t.split()) for t in texts) + 3 * messages

    async def _stream(self, receive, send, model, events: list[dict], sse: bool) -> None:
        if not sse:
            # streamGenerateContent without alt=sse: one JSON array, as Google sends it.
            body = "[" + "\n,\r\n".join(json.dumps(e, indent=2) for e in events) + "]"
            return await self._send(send, 200, body.encode(), b"application/json; charset=UTF-8")
        frames = [b"data: " + json.dumps(e, separators=(",", ": ")).encode() + b"\r\n\r\n" for e in events]
        if model == "fake-cut":
            frames = frames[:3]
        elif model == "fake-stream-error":
            frames = [*frames[:2], b"data: " + json.dumps(ERRORS["server"](model)[1]).encode() + b"\r\n\r\n"]
        await send(
            {
                "type": "http.response.start",
                "status": 200,
                "headers": [
                    (b"content-type", b"text/event-stream"),
                    (b"content-disposition", b"attachment"),
                    (b"vary", b"Origin, X-Origin, Referer"),
                    (b"x-content-type-options", b"nosniff"),
                ],
            }
        )
        gone = asyncio.ensure_future(until_disconnect(receive))
        try:
            for frame in frames:
                if gone.done():
                    return
                if self._stopping.is_set():
                    raise CutStream("fake server shutting down")
                await send({"type": "http.response.body", "body": frame, "more_body": True})
                await asyncio.wait([gone], timeout=0.02 if model == "fake-cut" else 0.001)
        finally:
            gone.cancel()
        if model == "fake-cut":
            raise CutStream("fake-cut: dropping connection mid-stream")
        await send({"type": "http.response.body", "body": b"", "more_body": False})

    async def _echo(self, send, echo: str, key: str, sse: bool) -> None:
        """Echo mode (tests/fakes/server.py echo_of): an error quoting the x-goog-api-key header."""
        states = {400: "INVALID_ARGUMENT", 404: "NOT_FOUND", 429: "RESOURCE_EXHAUSTED", 503: "UNAVAILABLE"}
        if echo != "stream" or not sse:
            status = int(echo) if echo.isdigit() else 500
            return await self._json(
                send, status, google_error(status, states.get(status, "INTERNAL"), echo_message(key))
            )
        frames = [
            {"candidates": [{"content": {"parts": [{"text": "Hello"}], "role": "model"}, "index": 0}]},
            google_error(500, "INTERNAL", echo_message(key)),
        ]
        await send({"type": "http.response.start", "status": 200, "headers": [(b"content-type", b"text/event-stream")]})
        for frame in frames:
            await send(
                {
                    "type": "http.response.body",
                    "body": b"data: " + json.dumps(frame).encode() + b"\r\n\r\n",
                    "more_body": True,
                }
            )
            await asyncio.sleep(0)
        await send({"type": "http.response.body", "body": b"", "more_body": False})

    # ----------------------------------------------------------- helpers
    async def _json(self, send, status: int, obj: dict) -> None:
        # Google indents its JSON answers by two spaces.
        await self._send(send, status, json.dumps(obj, indent=2).encode(), b"application/json; charset=UTF-8")

    @staticmethod
    async def _send(send, status: int, body: bytes, ctype: bytes) -> None:
        await send(
            {
                "type": "http.response.start",
                "status": status,
                "headers": [
                    (b"content-type", ctype),
                    (b"content-length", str(len(body)).encode()),
                    (b"vary", b"Origin, X-Origin, Referer"),
                ],
            }
        )
        await send({"type": "http.response.body", "body": body})
