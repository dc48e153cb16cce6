"""OpenAI chat request -> Converse request: pure functions (URL images come in already fetched)."""

import base64
import json
from typing import Any

from .. import media, transport
from ..base import UpstreamError, message_text

FORMATS = {"image/png": "png", "image/jpeg": "jpeg", "image/jpg": "jpeg", "image/gif": "gif", "image/webp": "webp"}
# Converse has no JSON mode (outputConfig's structured output exists only for
# some models), so JSON is asked for with a system instruction, which every
# model understands.
JSON_INSTRUCTION = "Respond with a single JSON object and nothing else: no prose, no code fences."


# ----------------------------------------------------------------- request
def bad_request(message: str, param: str = "messages") -> UpstreamError:
    """The client's 400 for a message Converse cannot take."""
    return UpstreamError(message, status=400, type="invalid_request_error", code="invalid_value", param=param)


def tool_input(arguments) -> dict:
    """A tool call's arguments as toolUse.input (a JSON object)."""
    if isinstance(arguments, dict):
        return arguments
    if not arguments:
        return {}
    try:
        value = json.loads(arguments)
    except ValueError:
        value = None
    if not isinstance(value, dict):
        # toolUse.input must be a JSON object.
        raise bad_request("A tool call's arguments must be a JSON object.")
    return value


def append_turn(messages: list[dict], role: str, blocks: list[dict]) -> None:
    """Append `blocks` as a `role` turn, merged into the last one of that role (roles must alternate)."""
    if not blocks:
        return  # Bedrock rejects a message without content
    if messages and messages[-1]["role"] == role:
        messages[-1]["content"].extend(blocks)  # roles must alternate: merge
    else:
        messages.append({"role": role, "content": blocks})


def tool_config(body: dict) -> dict | None:
    """The request's tools and tool_choice as Converse's toolConfig (None without tools, or with none)."""
    tools = [
        t["function"]
        for t in body.get("tools") or []
        if isinstance(t, dict) and t.get("type") == "function" and isinstance(t.get("function"), dict)
    ]
    choice = body.get("tool_choice")
    if not tools or choice == "none":
        return None
    specs = []
    for fn in tools:
        spec = {
            "name": fn.get("name"),
            "inputSchema": {"json": fn.get("parameters") or {"type": "object", "properties": {}}},
        }
        if fn.get("description"):
            spec["description"] = fn["description"]
        specs.append({"toolSpec": spec})
    config: dict[str, Any] = {"tools": specs}
    if choice == "auto":
        config["toolChoice"] = {"auto": {}}
    elif choice == "required":
        config["toolChoice"] = {"any": {}}
    elif isinstance(choice, dict) and isinstance(choice.get("function"), dict):
        config["toolChoice"] = {"tool": {"name": choice["function"].get("name")}}
    return config


def json_instruction(body: dict) -> str | None:
    """The system instruction that asks for JSON, for a response_format that wants it."""
    response_format = body.get("response_format")
    if not isinstance(response_format, dict):
        response_format = {}
    kind = response_format.get("type")
    if kind == "json_object":
        return JSON_INSTRUCTION
    if kind == "json_schema":
        schema = (response_format.get("json_schema") or {}).get("schema")
        if schema:
            return f"{JSON_INSTRUCTION} It must match this JSON schema: {json.dumps(schema, separators=(',', ':'))}"
        return JSON_INSTRUCTION
    return None


def image_urls(messages: list) -> list[str]:
    """The image URLs of the user messages that are not data: URLs, which the adapter fetches (Bedrock takes bytes)."""
    urls = []
    for message in messages:
        content = message.get("content") if isinstance(message, dict) and message.get("role") == "user" else None
        for part in content if isinstance(content, list) else []:
            if (
                isinstance(part, dict)
                and part.get("type") == "image_url"
                and not (url := image_url(part)).startswith("data:")
            ):
                urls.append(url)
    return urls


def image_url(part: dict) -> str:
    """The URL of an image_url part."""
    image = part.get("image_url")
    return image.get("url", "") if isinstance(image, dict) else str(image)


def user_blocks(content, images: dict) -> list[dict]:
    """A user message's content as Converse blocks; `images` has the (mime, bytes) of each fetched URL."""
    if isinstance(content, str):
        return [{"text": content}] if content else []
    blocks = []
    for part in content if isinstance(content, list) else []:
        if not isinstance(part, dict):
            continue
        if part.get("type") == "text" and part.get("text"):
            blocks.append({"text": part["text"]})
        elif part.get("type") == "image_url":
            url = image_url(part)
            mime, data = media.parse_data_url(url) if url.startswith("data:") else images[url]
            if mime not in FORMATS:
                raise media.bad_image(f"Bedrock takes PNG, JPEG, GIF or WebP images, not {mime or 'this type'}.")
            # Blobs travel base64-encoded in the JSON wire format.
            blocks.append({"image": {"format": FORMATS[mime], "source": {"bytes": base64.b64encode(data).decode()}}})
    return blocks


def build_request(route, body: dict, images: dict | None = None) -> dict:
    """The Converse request body for an OpenAI chat request; `images`: fetched URL -> (mime, bytes)."""
    transport.one_choice(route, body)
    system: list[dict] = []
    messages: list[dict] = []
    for message in body.get("messages") or []:
        if not isinstance(message, dict):
            continue
        role = message.get("role")
        if role in ("system", "developer"):
            if text := message_text(message):
                system.append({"text": text})
        elif role == "user":
            append_turn(messages, "user", user_blocks(message.get("content"), images or {}))
        elif role == "assistant":
            blocks: list[dict[str, Any]] = [{"text": text}] if (text := message_text(message)) else []
            for call in message.get("tool_calls") or []:
                fn = call.get("function") or {}
                blocks.append(
                    {
                        "toolUse": {
                            "toolUseId": call.get("id"),
                            "name": fn.get("name"),
                            "input": tool_input(fn.get("arguments")),
                        }
                    }
                )
            append_turn(messages, "assistant", blocks)
        elif role == "tool":
            # Tool results are user content in Converse; consecutive ones share one user message.
            append_turn(
                messages,
                "user",
                [
                    {
                        "toolResult": {
                            "toolUseId": message.get("tool_call_id"),
                            "content": [{"text": message_text(message)}],
                        }
                    }
                ],
            )
    if instruction := json_instruction(body):
        system.append({"text": instruction})
    request: dict[str, Any] = {"messages": messages}
    if system:
        request["system"] = system
    inference: dict[str, Any] = {}
    max_tokens = transport.max_tokens(route, body)
    if max_tokens:
        inference["maxTokens"] = max_tokens
    if body.get("temperature") is not None:
        inference["temperature"] = body["temperature"]
    if body.get("top_p") is not None:
        inference["topP"] = body["top_p"]
    stop = body.get("stop")
    if stop:
        inference["stopSequences"] = [stop] if isinstance(stop, str) else list(stop)
    if inference:
        request["inferenceConfig"] = inference
    if config := tool_config(body):
        request["toolConfig"] = config
    return request


def encode(native: dict) -> bytes:
    """A native request as the bytes sent."""
    return json.dumps(native, separators=(",", ":")).encode()
