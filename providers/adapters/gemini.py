"""Google Gemini API (generateContent / streamGenerateContent?alt=sse) behind the OpenAI interface.

Gemini differs from OpenAI in ways that matter here: the system prompt is a
separate `systemInstruction`; roles are user/model and consecutive turns of a
role must be one content; images must be inline bytes; function calls have no
ids (tool results are matched by function name and order); a prompt its safety
filter blocks is a 200 with no candidates; errors are Google RPC errors
({"error": {"code", "message", "status", "details"}}) where a bad API key is a
400; and Gemini 3 refuses a replayed function call without its thought
signature.
"""

import asyncio
import base64
import json
import math
import re
import uuid
from urllib.parse import quote


from . import errors, media, sse, translate, transport
from .base import (ChatResult, Counts, ImageResult, UpstreamError, Usage, estimate_prompt_tokens, estimate_tokens,
                   message_text)
from .images import FAMILIES, GEMINI_SIZES, image_tier

API_VERSION = "v1beta"
# Google's documented placeholder for a function call Gemini did not produce (or
# whose signature the client dropped): without one, Gemini 3 answers 400.
SIGNATURE_FALLBACK = "skip_thought_signature_validator"
FINISH_REASONS = {
    "STOP": "stop", "MAX_TOKENS": "length", "SAFETY": "content_filter", "RECITATION": "content_filter",
    "BLOCKLIST": "content_filter", "PROHIBITED_CONTENT": "content_filter", "SPII": "content_filter",
    "IMAGE_SAFETY": "content_filter", "IMAGE_PROHIBITED_CONTENT": "content_filter",
    "IMAGE_RECITATION": "content_filter",
}
# The OpenAPI subset Gemini's function `parameters` accept; any other key is a 400.
SCHEMA_KEYS = {"type", "format", "title", "description", "nullable", "enum", "maxItems", "minItems", "properties",
               "required", "minProperties", "maxProperties", "minLength", "maxLength", "pattern", "example",
               "anyOf", "propertyOrdering", "default", "items", "minimum", "maximum"}
KEY_REASONS = {"API_KEY_INVALID", "API_KEY_EXPIRED", "API_KEY_SERVICE_BLOCKED", "API_KEY_HTTP_REFERRER_BLOCKED"}
TOO_LONG = re.compile(r"token count|maximum number of tokens|too many tokens|context (length|window)", re.I)


def bad_request(message: str, param: str) -> UpstreamError:
    return UpstreamError(message, status=400, type="invalid_request_error", param=param)


# ---------------------------------------------------------------- request
def _url(route, stream: bool, method: str = "") -> str:
    base = route.base_url.rstrip("/")
    if not re.search(r"/v\d+\w*$", base):  # a base URL may already name the version
        base += "/" + (route.options.get("api_version") or API_VERSION)
    name = route.upstream_name if "/" in route.upstream_name else f"models/{route.upstream_name}"
    method = method or ("streamGenerateContent?alt=sse" if stream else "generateContent")
    return f"{base}/{quote(name, safe='/')}:{method}"


def _model_name(route) -> str:
    return route.upstream_name if "/" in route.upstream_name else f"models/{route.upstream_name}"


def _inline_data(mime: str, data: str) -> dict:
    return {"inlineData": {"mimeType": mime, "data": data}}


async def _parts(content) -> list[dict]:
    """A user message's content as Gemini parts; URL images are fetched (Gemini takes inline bytes only)."""
    if isinstance(content, str):
        return [{"text": content}] if content else []
    parts, images = [], []
    for part in content if isinstance(content, list) else []:
        kind = part.get("type") if isinstance(part, dict) else None
        if kind == "text" and part.get("text"):
            parts.append({"text": part["text"]})
        elif kind == "image_url":
            image = part.get("image_url")
            images.append((len(parts), str((image.get("url") if isinstance(image, dict) else image) or "")))
            parts.append(None)  # filled in below, once fetched
        elif kind == "input_audio":
            audio = part.get("input_audio") or {}
            parts.append(_inline_data(f"audio/{audio.get('format', 'wav')}", audio.get("data", "")))
        elif kind == "file" and str((part.get("file") or {}).get("file_data", "")).startswith("data:"):
            mime, data = media.parse_data_url(part["file"]["file_data"])
            parts.append(_inline_data(mime, base64.b64encode(data).decode()))
    fetched = await asyncio.gather(*(media.fetch_image(url) for _, url in images))
    for (position, _), (mime, data) in zip(images, fetched):
        parts[position] = _inline_data(mime, base64.b64encode(data).decode())
    return parts


def _model_parts(message: dict, index: int) -> list[dict]:
    parts = [{"text": text}] if (text := message_text(message)) else []
    for n, call in enumerate(message.get("tool_calls") or []):
        function = call.get("function") or {}
        try:
            args = json.loads(function.get("arguments") or "{}")
        except ValueError:
            raise bad_request("The arguments of a tool call are not valid JSON.",
                              f"messages[{index}].tool_calls[{n}].function.arguments") from None
        part = {"functionCall": {"name": function.get("name", ""), "args": args if isinstance(args, dict) else {}}}
        # The signature Gemini gave us (see _tool_call), passed back where it was.
        signature = ((call.get("extra_content") or {}).get("google") or {}).get("thought_signature")
        if signature or n == 0:
            part["thoughtSignature"] = signature or SIGNATURE_FALLBACK
        parts.append(part)
    return parts


async def _contents(messages: list) -> tuple[list[dict], list[dict]]:
    system, contents, names = [], [], {}
    for index, message in enumerate(messages):
        role = message.get("role")
        if role in ("system", "developer"):
            if text := message_text(message):
                system.append({"text": text})
            continue
        if role == "assistant":
            gemini_role, parts = "model", _model_parts(message, index)
            names.update({c.get("id"): (c.get("function") or {}).get("name") for c in message.get("tool_calls") or []})
        elif role in ("tool", "function"):
            # Gemini matches a result to its call by the function's name, not an id.
            name = names.get(message.get("tool_call_id")) or message.get("name")
            if not name:
                raise bad_request("This tool message answers no tool call of an earlier assistant message.",
                                  f"messages[{index}].tool_call_id")
            gemini_role = "user"
            parts = [{"functionResponse": {"name": name, "response": {"content": message_text(message)}}}]
        else:
            gemini_role, parts = "user", await _parts(message.get("content"))
        if not parts:
            continue  # Gemini refuses a content without parts
        if contents and contents[-1]["role"] == gemini_role:
            contents[-1]["parts"].extend(parts)  # Gemini wants one content per turn
        else:
            contents.append({"role": gemini_role, "parts": parts})
    return system, contents


def _schema(node, defs: dict | None = None, depth: int = 0):
    """A JSON schema reduced to what Gemini's `parameters` accept ($refs inlined)."""
    if isinstance(node, list):
        return [_schema(item, defs, depth) for item in node]
    if not isinstance(node, dict) or depth > 16:
        return node
    defs = {**(defs or {}), **(node.get("$defs") or {}), **(node.get("definitions") or {})}
    ref = node.get("$ref")
    if isinstance(ref, str) and ref.rsplit("/", 1)[-1] in defs:
        node = {**defs[ref.rsplit("/", 1)[-1]], **{k: v for k, v in node.items() if k != "$ref"}}
    out = {}
    for key, value in node.items():
        if key == "type" and isinstance(value, list):  # ["string", "null"] is type + nullable
            types = [t for t in value if t != "null"]
            out.update({"type": types[0]} if types else {})
            if len(types) < len(value):
                out["nullable"] = True
        elif key == "const":
            out["enum"] = [value]
        elif key == "oneOf":
            out["anyOf"] = _schema(value, defs, depth + 1)
        elif key == "properties" and isinstance(value, dict):
            out[key] = {name: _schema(v, defs, depth + 1) for name, v in value.items()}
        elif key in ("items", "anyOf"):
            out[key] = _schema(value, defs, depth + 1)
        elif key in SCHEMA_KEYS:
            out[key] = value
    return out


def _tools(body: dict) -> dict:
    declarations = []
    for tool in body.get("tools") or []:
        function = tool.get("function") if isinstance(tool, dict) and tool.get("type") == "function" else None
        if not isinstance(function, dict):
            continue
        declaration = {"name": function.get("name", "")}
        if function.get("description"):
            declaration["description"] = function["description"]
        parameters = _schema(function.get("parameters") or {})
        if parameters.get("properties"):  # an object with no properties is a 400 for Gemini
            declaration["parameters"] = parameters
        declarations.append(declaration)
    if not declarations:
        return {}
    native = {"tools": [{"functionDeclarations": declarations}]}
    choice = body.get("tool_choice")
    if choice in ("auto", "none", "required"):
        mode = {"auto": "AUTO", "none": "NONE", "required": "ANY"}[choice]
        native["toolConfig"] = {"functionCallingConfig": {"mode": mode}}
    elif isinstance(choice, dict) and (name := (choice.get("function") or {}).get("name")):
        native["toolConfig"] = {"functionCallingConfig": {"mode": "ANY", "allowedFunctionNames": [name]}}
    return native


def _generation_config(route, body: dict, stream: bool) -> dict:
    if stream:  # a stream relays one candidate only
        transport.one_choice(route, body, " when streaming")
    config = {}
    limit = transport.max_tokens(route, body)
    if limit:
        config["maxOutputTokens"] = limit
    for ours, theirs in (("temperature", "temperature"), ("top_p", "topP"), ("seed", "seed")):
        if body.get(ours) is not None:
            config[theirs] = body[ours]
    stop = body.get("stop")
    if stop:
        config["stopSequences"] = [stop] if isinstance(stop, str) else list(stop)
    if (body.get("n") or 1) > 1:
        config["candidateCount"] = body["n"]
    response_format = body.get("response_format") or {}
    if response_format.get("type") in ("json_object", "json_schema"):
        config["responseMimeType"] = "application/json"
        schema = (response_format.get("json_schema") or {}).get("schema")
        if response_format["type"] == "json_schema" and isinstance(schema, dict):
            # responseJsonSchema takes standard JSON Schema (additionalProperties, $defs…) as it is.
            config["responseJsonSchema"] = {k: v for k, v in schema.items() if k != "$schema"}
    return config


async def _request(route, body: dict, stream: bool) -> tuple[str, bytes, dict]:
    if not route.secret:
        raise errors.no_credential(route.provider_name)
    system, contents = await _contents([m for m in body.get("messages") or [] if isinstance(m, dict)])
    native = {"contents": contents}
    if system:
        native["systemInstruction"] = {"parts": system}
    native.update(_tools(body))
    if config := _generation_config(route, body, stream):
        native["generationConfig"] = config
    # The key goes in a header, never in the URL: URLs end up in logs.
    headers = {"content-type": "application/json", "x-goog-api-key": route.secret}
    return _url(route, stream), json.dumps(native, separators=(",", ":")).encode(), headers


# ---------------------------------------------------------------- answer
def _usage(meta) -> Usage | None:
    if not isinstance(meta, dict) or "promptTokenCount" not in meta:
        return None
    # promptTokenCount already includes the cached tokens (cachedContentTokenCount).
    counts = Counts()
    prompt = counts.read(meta, "promptTokenCount") + counts.read(meta, "toolUsePromptTokenCount")
    completion = counts.read(meta, "candidatesTokenCount") + counts.read(meta, "thoughtsTokenCount")
    return counts.usage(Usage(prompt, completion, cache_read_tokens=counts.read(meta, "cachedContentTokenCount")))


def _finish(reason: str | None, tool_calls: bool) -> str:
    finish = FINISH_REASONS.get(reason or "STOP", "stop")
    return "tool_calls" if tool_calls and finish == "stop" else finish


def _tool_call(index: int, part: dict) -> dict:
    call = part["functionCall"]
    arguments = translate.arguments(call.get("args"))
    result = translate.tool_call(index, call.get("id") or f"call_{uuid.uuid4().hex[:24]}", call.get("name", ""),
                                 arguments)
    if part.get("thoughtSignature"):
        # Where Gemini's own OpenAI endpoint puts it, so clients that replay it keep Gemini 3 working.
        result["extra_content"] = {"google": {"thought_signature": part["thoughtSignature"]}}
    return result


def _candidate(candidate: dict) -> tuple[str | None, list[dict], str]:
    texts, calls = [], []
    for part in (candidate.get("content") or {}).get("parts") or []:
        if part.get("thought"):
            continue  # a thought summary is not the answer
        if "functionCall" in part:
            calls.append(_tool_call(len(calls), part))
        elif part.get("text"):
            texts.append(translate.string(part["text"]))
    finish = _finish(candidate.get("finishReason"), bool(calls))
    # OpenAI's content is null beside tool calls or after a refusal with no text, "" for an empty answer.
    return ("".join(texts) if texts or (not calls and finish != "content_filter") else None), calls, finish


def _retry_delay(details) -> str | None:
    for detail in details if isinstance(details, list) else []:
        if isinstance(detail, dict) and str(detail.get("@type", "")).endswith("google.rpc.RetryInfo"):
            match = re.fullmatch(r"(\d+(?:\.\d+)?)s", str(detail.get("retryDelay", "")))
            if match:
                return str(math.ceil(float(match.group(1))))
    return None


def _error(status: int, content: bytes, headers, provider: str) -> UpstreamError:
    try:
        data = json.loads(content)
        error = (data[0] if isinstance(data, list) and data else data).get("error")  # a JSON-array stream too
    except (ValueError, AttributeError, TypeError):
        error = None
    if not isinstance(error, dict):
        error = {"message": content[:300].decode(errors="replace")}
    message, state = str(error.get("message") or "")[:1000], str(error.get("status") or "")
    details = error.get("details") if isinstance(error.get("details"), list) else []
    reasons = {d.get("reason") for d in details if isinstance(d, dict)}
    if status in (401, 403) or state in ("UNAUTHENTICATED", "PERMISSION_DENIED") or reasons & KEY_REASONS \
            or (status == 400 and "api key" in message.lower()):
        # Never echo Google's words here: they can quote the hub's key.
        return UpstreamError(f"The provider '{provider}' rejected the hub's credential.", status=502,
                             code="upstream_auth_failed", retryable=True)
    if status == 429 or state == "RESOURCE_EXHAUSTED":
        return UpstreamError(message or "Rate limited by the provider.", status=429, type="rate_limit_error",
                             code="rate_limit_exceeded", retryable=True,
                             retry_after=headers.get("retry-after") or _retry_delay(details))
    if status == 503 or state == "UNAVAILABLE":
        return UpstreamError(f"The provider '{provider}' is overloaded: {message}".rstrip(": "), status=503,
                             type="server_error", code="upstream_overloaded", retryable=True)
    if status in (408, 504) or state == "DEADLINE_EXCEEDED":
        return UpstreamError(f"The provider '{provider}' timed out.", status=504, code="upstream_timeout",
                             retryable=True)
    if status == 404:
        return UpstreamError(f"The provider '{provider}' does not know this model: {message}", status=502,
                             code="upstream_model_not_found")
    if 400 <= status < 500:
        code = "context_length_exceeded" if TOO_LONG.search(message) else None
        return UpstreamError(message or "The provider refused the request.", status=400,
                             type="invalid_request_error", code=code)
    return UpstreamError(f"The provider '{provider}' failed ({status}): {message}".rstrip(": "), status=502,
                         code="upstream_error", retryable=True)


def _invalid(provider: str, what: str) -> UpstreamError:
    return UpstreamError(f"The provider '{provider}' {what}.", code="upstream_invalid_response")


class GeminiAdapter:
    async def chat(self, route, body: dict) -> ChatResult:
        url, payload, headers = await _request(route, body, stream=False)
        response = await transport.send(route, url, payload, headers, _error, stream=False)
        with translate.reading(route.provider_name):
            data = json.loads(response.content)
            candidates = data.get("candidates") or []
            blocked = (data.get("promptFeedback") or {}).get("blockReason")
            if not isinstance(candidates, list):
                raise translate.Malformed("candidates is not a list")
            if not candidates and not blocked:
                raise _invalid(route.provider_name, "sent no answer")
            # No candidates with a blockReason: the prompt itself was refused by Gemini's safety filter.
            choices = [_candidate(c) for c in candidates] or [(None, [], "content_filter")]
            chars = sum(len(text or "") + sum(len(c["function"]["arguments"]) for c in calls)
                        for text, calls, _ in choices)
            usage = Usage.or_estimate(_usage(data.get("usageMetadata")),
                                      lambda: Usage(estimate_prompt_tokens(body), estimate_tokens(chars)))
            # n > 1: one choice per candidate.
            result = translate.completion_choices(model=route.upstream_name, choices=choices, usage=usage)
        return ChatResult(body=result, usage=usage)

    async def embed(self, route, body: dict) -> ChatResult:
        return await _embed(route, body)

    def image_family(self, upstream_name: str):
        return FAMILIES["gemini"]

    async def images(self, route, body: dict) -> ImageResult:
        return await _images(route, body)

    async def chat_stream(self, route, body: dict, include_usage: bool):
        url, payload, headers = await _request(route, body, stream=True)
        response = await transport.send(route, url, payload, headers, _error, stream=True)
        return GeminiStream(response, route, body, include_usage)


async def _images(route, body: dict) -> ImageResult:
    """Native image generation (generateContent answering IMAGE): one call per image, at once.

    Edits send the input images as inline data beside the prompt. Gemini bills
    an image's output tokens (1,290 at every documented size), which the usage
    carries; the size maps to its aspect ratio.
    """
    if not route.secret:
        raise errors.no_credential(route.provider_name)
    parts = [{"text": body["prompt"]}]
    parts += [_inline_data(mime or "image/png", base64.b64encode(data).decode()) for _, data, mime in body["images"]]
    config = {"responseModalities": ["IMAGE"]}
    if body["size"] in GEMINI_SIZES:
        config["imageConfig"] = {"aspectRatio": GEMINI_SIZES[body["size"]]}
    native = {"contents": [{"role": "user", "parts": parts}], "generationConfig": config}
    payload = json.dumps(native, separators=(",", ":")).encode()
    headers = {"content-type": "application/json", "x-goog-api-key": route.secret}

    async def one() -> tuple[str, Usage | None]:
        response = await transport.send(route, _url(route, False), payload, headers, _error, stream=False)
        with translate.reading(route.provider_name):
            data = json.loads(response.content)
            candidate = (data.get("candidates") or [{}])[0]
            candidate_parts = (candidate.get("content") or {}).get("parts") or []
            refused = (data.get("promptFeedback") or {}).get("blockReason") or candidate.get("finishReason") in (
                "SAFETY", "IMAGE_SAFETY", "PROHIBITED_CONTENT", "BLOCKLIST", "SPII")
            for part in candidate_parts:
                inline = (part.get("inlineData") or part.get("inline_data")) if isinstance(part, dict) else None
                if inline and inline.get("data"):
                    return translate.string(inline["data"], "image data"), _usage(data.get("usageMetadata"))
        if refused:
            raise UpstreamError("The provider refused to generate this image (its safety filter).", status=400,
                                type="invalid_request_error", code="content_policy_violation", param="prompt")
        raise _invalid(route.provider_name, "sent no image")

    # Like OpenAI, fewer images than asked rather than none: the ones made are billed by Gemini, so they are
    # answered (and billed); only if every call failed is the request a failure (and free).
    results = await asyncio.gather(*(one() for _ in range(body["n"])), return_exceptions=True)
    answers = [r for r in results if not isinstance(r, BaseException)]
    if not answers:
        raise next(r for r in results if isinstance(r, BaseException))
    usage = Usage(images=len(answers), image_tier=image_tier(body["size"], body["quality"]))
    for _, counted in answers:
        if counted is not None and counted.invalid:
            usage.estimated, usage.invalid = True, counted.invalid  # the images are billed; those tokens are not
        elif counted is not None:
            usage.prompt_tokens += counted.prompt_tokens
            usage.completion_tokens += counted.completion_tokens
    return ImageResult([{"b64_json": data} for data, _ in answers], usage, {})


async def _embed(route, body: dict) -> ChatResult:
    """batchEmbedContents: one request per input, text only (Gemini takes no token ids)."""
    if not route.secret:
        raise errors.no_credential(route.provider_name)
    inputs = translate.embedding_inputs(body)
    if not all(isinstance(item, str) for item in inputs):
        raise UpstreamError("This model takes text only, not token ids.", status=400, type="invalid_request_error",
                            code="invalid_value", param="input")
    request = {"model": _model_name(route)}
    if body.get("dimensions"):
        request["outputDimensionality"] = body["dimensions"]
    native = {"requests": [dict(request, content={"parts": [{"text": text}]}) for text in inputs]}
    headers = {"content-type": "application/json", "x-goog-api-key": route.secret}
    response = await transport.send(route, _url(route, False, "batchEmbedContents"),
                                    json.dumps(native, separators=(",", ":")).encode(), headers, _error, stream=False)
    try:
        vectors = [item["values"] for item in json.loads(response.content)["embeddings"]]
    except (ValueError, KeyError, TypeError):
        raise _invalid(route.provider_name, "sent an answer that is not valid") from None
    # batchEmbedContents reports no token count: estimated, and marked so.
    usage = Usage(estimate_tokens(sum(len(text) for text in inputs)), 0, estimated=True)
    with translate.reading(route.provider_name):
        answer = translate.embeddings(model=route.upstream_name, vectors=vectors, usage=usage,
                                      encoding_format=body.get("encoding_format"))
    return ChatResult(body=answer, usage=usage)


class GeminiStream(translate.TranslatedStream):
    """Each event is a whole GenerateContentResponse holding the new part(s) of candidate 0;
    function calls arrive whole; the last event has finishReason and the usage."""

    async def translate(self):
        provider, writer = self.route.provider_name, self.writer
        yield writer.role()
        finish, calls = None, 0
        async for _, data in sse.events(self.response):
            try:
                event = json.loads(data)
            except ValueError:
                raise _invalid(provider, "sent a malformed stream event") from None
            if not isinstance(event, dict):
                continue
            if isinstance(event.get("error"), dict):
                raise _error(int(event["error"].get("code") or 500), data.encode(), {}, provider)
            self.usage = _usage(event.get("usageMetadata")) or self.usage
            candidates = event.get("candidates") or []
            if not candidates and (event.get("promptFeedback") or {}).get("blockReason"):
                finish = "content_filter"
            for candidate in candidates[:1]:
                for part in (candidate.get("content") or {}).get("parts") or []:
                    if part.get("thought"):
                        continue
                    if "functionCall" in part:
                        call = _tool_call(calls, part)
                        extra = {"extra_content": call["extra_content"]} if "extra_content" in call else None
                        yield writer.tool_call_start(calls, call["id"], call["function"]["name"], extra)
                        yield writer.tool_arguments(calls, call["function"]["arguments"])
                        calls += 1
                    elif part.get("text"):
                        yield writer.text(part["text"])
                if candidate.get("finishReason"):
                    finish = _finish(candidate["finishReason"], calls > 0)
        if finish is None:
            raise UpstreamError(f"The stream from the provider '{provider}' ended early.",
                                code="upstream_stream_incomplete")
        yield writer.finish(finish)
        yield writer.usage(self.final_usage())
