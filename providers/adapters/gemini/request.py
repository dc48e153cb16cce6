"""OpenAI chat request -> Gemini generateContent request: pure functions (URL images come in already fetched)."""

import base64
import json
import re
from typing import Any
from urllib.parse import quote

from .. import media, transport
from ..base import UpstreamError, message_text
from ..errors import no_credential

API_VERSION = "v1beta"
# Google's documented placeholder for a function call Gemini did not produce (or
# whose signature the client dropped): without one, Gemini 3 answers 400.
SIGNATURE_FALLBACK = "skip_thought_signature_validator"
# The OpenAPI subset Gemini's function `parameters` accept; any other key is a 400.
SCHEMA_KEYS = {
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


def bad_request(message: str, param: str) -> UpstreamError:
    """The client's 400, naming the parameter at fault."""
    return UpstreamError(message, status=400, type="invalid_request_error", param=param)


def model_name(route) -> str:
    """The route's model as Gemini names it ("models/…" unless it names a resource already)."""
    return route.upstream_name if "/" in route.upstream_name else f"models/{route.upstream_name}"


def url(route, stream: bool, method: str = "") -> str:
    """The endpoint of `method` (default: generateContent, or its SSE stream) for the route's model."""
    base = route.base_url.rstrip("/")
    if not re.search(r"/v\d+\w*$", base):  # a base URL may already name the version
        base += "/" + (route.options.get("api_version") or API_VERSION)
    method = method or ("streamGenerateContent?alt=sse" if stream else "generateContent")
    return f"{base}/{quote(model_name(route), safe='/')}:{method}"


def headers(route) -> dict:
    """The request headers; the key goes in a header, never in the URL (URLs end up in logs)."""
    if not route.secret:
        raise no_credential(route.provider_name)
    return {"content-type": "application/json", "x-goog-api-key": route.secret}


def encode(native: dict) -> bytes:
    """A native request as the bytes sent."""
    return json.dumps(native, separators=(",", ":")).encode()


def inline_data(mime: str, data: bytes) -> dict:
    """An inlineData part of `data`."""
    return {"inlineData": {"mimeType": mime, "data": base64.b64encode(data).decode()}}


def _image_url(part: dict) -> str:
    image = part.get("image_url")
    return str((image.get("url") if isinstance(image, dict) else image) or "")


def image_urls(messages: list) -> list[str]:
    """The http(s) image URLs of the user messages, which the adapter fetches (Gemini takes inline bytes only)."""
    urls = []
    for message in messages:
        content = (
            message.get("content")
            if message.get("role") not in ("system", "developer", "assistant", "tool", "function")
            else None
        )
        for part in content if isinstance(content, list) else []:
            if (
                isinstance(part, dict)
                and part.get("type") == "image_url"
                and not (image := _image_url(part)).startswith("data:")
            ):
                urls.append(image)
    return urls


def parts(content, images: dict) -> list[dict]:
    """A user message's content as Gemini parts; `images` has the (mime, bytes) of each fetched URL."""
    if isinstance(content, str):
        return [{"text": content}] if content else []
    out = []
    for part in content if isinstance(content, list) else []:
        kind = part.get("type") if isinstance(part, dict) else None
        if kind == "text" and part.get("text"):
            out.append({"text": part["text"]})
        elif kind == "image_url":
            image = _image_url(part)
            out.append(inline_data(*(media.parse_data_url(image) if image.startswith("data:") else images[image])))
        elif kind == "input_audio":
            audio = part.get("input_audio") or {}
            mime = f"audio/{audio.get('format', 'wav')}"
            out.append({"inlineData": {"mimeType": mime, "data": audio.get("data", "")}})  # already base64
        elif kind == "file" and str((part.get("file") or {}).get("file_data", "")).startswith("data:"):
            out.append(inline_data(*media.parse_data_url(part["file"]["file_data"])))
    return out


def model_parts(message: dict, index: int) -> list[dict]:
    """An assistant message as model parts: its text and its function calls, each with its thought signature."""
    out: list[dict[str, Any]] = [{"text": text}] if (text := message_text(message)) else []
    for n, call in enumerate(message.get("tool_calls") or []):
        function = call.get("function") or {}
        try:
            args = json.loads(function.get("arguments") or "{}")
        except ValueError:
            raise bad_request(
                "The arguments of a tool call are not valid JSON.",
                f"messages[{index}].tool_calls[{n}].function.arguments",
            ) from None
        part: dict[str, Any] = {
            "functionCall": {"name": function.get("name", ""), "args": args if isinstance(args, dict) else {}}
        }
        # The signature Gemini gave us (see response.tool_call), passed back where it was.
        signature = ((call.get("extra_content") or {}).get("google") or {}).get("thought_signature")
        if signature or n == 0:
            part["thoughtSignature"] = signature or SIGNATURE_FALLBACK
        out.append(part)
    return out


def contents(messages: list, images: dict | None = None) -> tuple[list[dict], list[dict]]:
    """(systemInstruction parts, contents) of OpenAI messages; `images`: fetched URL -> (mime, bytes)."""
    system: list[dict] = []
    out: list[dict[str, Any]] = []
    names: dict = {}  # tool call id -> the function's name (as the client sent them)
    for index, message in enumerate(messages):
        role = message.get("role")
        if role in ("system", "developer"):
            if text := message_text(message):
                system.append({"text": text})
            continue
        if role == "assistant":
            gemini_role, turn = "model", model_parts(message, index)
            names.update({c.get("id"): (c.get("function") or {}).get("name") for c in message.get("tool_calls") or []})
        elif role in ("tool", "function"):
            # Gemini matches a result to its call by the function's name, not an id.
            name = names.get(message.get("tool_call_id")) or message.get("name")
            if not name:
                raise bad_request(
                    "This tool message answers no tool call of an earlier assistant message.",
                    f"messages[{index}].tool_call_id",
                )
            gemini_role = "user"
            turn = [{"functionResponse": {"name": name, "response": {"content": message_text(message)}}}]
        else:
            gemini_role, turn = "user", parts(message.get("content"), images or {})
        if not turn:
            continue  # Gemini refuses a content without parts
        if out and out[-1]["role"] == gemini_role:
            out[-1]["parts"].extend(turn)  # Gemini wants one content per turn
        else:
            out.append({"role": gemini_role, "parts": turn})
    return system, out


def schema(node, defs: dict | None = None, depth: int = 0):
    """A JSON schema reduced to what Gemini's `parameters` accept ($refs inlined)."""
    if isinstance(node, list):
        return [schema(item, defs, depth) for item in node]
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
            out["anyOf"] = schema(value, defs, depth + 1)
        elif key == "properties" and isinstance(value, dict):
            out[key] = {name: schema(v, defs, depth + 1) for name, v in value.items()}
        elif key in ("items", "anyOf"):
            out[key] = schema(value, defs, depth + 1)
        elif key in SCHEMA_KEYS:
            out[key] = value
    return out


def tools(body: dict) -> dict:
    """The request's tools and tool_choice as Gemini's `tools` and `toolConfig` ({} without tools)."""
    declarations = []
    for tool in body.get("tools") or []:
        function = tool.get("function") if isinstance(tool, dict) and tool.get("type") == "function" else None
        if not isinstance(function, dict):
            continue
        declaration = {"name": function.get("name", "")}
        if function.get("description"):
            declaration["description"] = function["description"]
        parameters = schema(function.get("parameters") or {})
        if parameters.get("properties"):  # an object with no properties is a 400 for Gemini
            declaration["parameters"] = parameters
        declarations.append(declaration)
    if not declarations:
        return {}
    native: dict[str, Any] = {"tools": [{"functionDeclarations": declarations}]}
    choice = body.get("tool_choice")
    if choice in ("auto", "none", "required"):
        mode = {"auto": "AUTO", "none": "NONE", "required": "ANY"}[choice]
        native["toolConfig"] = {"functionCallingConfig": {"mode": mode}}
    elif isinstance(choice, dict) and (name := (choice.get("function") or {}).get("name")):
        native["toolConfig"] = {"functionCallingConfig": {"mode": "ANY", "allowedFunctionNames": [name]}}
    return native


def generation_config(route, body: dict, stream: bool) -> dict:
    """The request's sampling, limits, stop and JSON mode as Gemini's generationConfig."""
    if stream:  # a stream relays one candidate only
        transport.one_choice(route, body, " when streaming")
    config: dict[str, Any] = {}
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
        json_schema = (response_format.get("json_schema") or {}).get("schema")
        if response_format["type"] == "json_schema" and isinstance(json_schema, dict):
            # responseJsonSchema takes standard JSON Schema (additionalProperties, $defs…) as it is.
            config["responseJsonSchema"] = {k: v for k, v in json_schema.items() if k != "$schema"}
    return config


def build_request(route, body: dict, stream: bool, images: dict | None = None) -> dict:
    """The native generateContent request for an OpenAI chat body; `images`: fetched URL -> (mime, bytes)."""
    system, turns = contents([m for m in body.get("messages") or [] if isinstance(m, dict)], images)
    native: dict[str, Any] = {"contents": turns}
    if system:
        native["systemInstruction"] = {"parts": system}
    native.update(tools(body))
    if config := generation_config(route, body, stream):
        native["generationConfig"] = config
    return native


def count_request(route, body: dict, images: dict | None = None) -> dict:
    """The countTokens request for an OpenAI chat body: the generateContent request it would be (system
    prompt, images and tools count), without its generationConfig, which is no input."""
    native = build_request(route, body, False, images)
    native.pop("generationConfig", None)
    return {"generateContentRequest": {"model": model_name(route), **native}}
