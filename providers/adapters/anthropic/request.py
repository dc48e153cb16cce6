"""OpenAI chat request -> Anthropic Messages request, and the request's URL and headers: pure functions."""

import json
import re
from typing import Any

from .. import media, transport
from ..base import UpstreamError
from ..errors import no_credential

DEFAULT_VERSION = "2023-06-01"
DEFAULT_MAX_TOKENS = 4096  # Anthropic requires max_tokens; used when neither the request nor the model sets one
# Anthropic has no JSON mode. Its documented way to get JSON ("increase output
# consistency") is to ask for it in the prompt, so response_format becomes an
# instruction appended to the system prompt (with the schema for json_schema).
# Prefilling "{" is the other documented trick, but newer models refuse
# prefills. A provider whose models support structured outputs can set the
# option {"structured_outputs": true}: json_schema is then sent natively as
# output_config.format, which constrains decoding.
JSON_OBJECT_PROMPT = (
    "Respond with a single valid JSON object and nothing else: no text before or after it, no code fences."
)
JSON_SCHEMA_PROMPT = (
    "Respond with a single valid JSON object that conforms to the JSON schema below, "
    "and nothing else: no text before or after it, no code fences.\nJSON schema: "
)
TOOL_ID_UNSAFE = re.compile(r"[^a-zA-Z0-9_-]")


def bad_request(message: str, param: str = "messages") -> UpstreamError:
    """The client's 400 for a message this API cannot take."""
    return UpstreamError(message, status=400, type="invalid_request_error", code="invalid_value", param=param)


def content_text(content) -> str:
    """The text of an OpenAI content (a string, or its text parts joined by newlines)."""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "\n".join(p.get("text") or "" for p in content if isinstance(p, dict) and p.get("type") == "text")
    return ""


def tool_id(call_id) -> str:
    """A tool call id as Anthropic accepts it."""
    # tool_use ids must match ^[a-zA-Z0-9_-]+$; ids made by other providers may not.
    return TOOL_ID_UNSAFE.sub("_", str(call_id or "")) or "call_none"


def image_block(url: str) -> dict:
    """An image_url as an image block: base64 for data: URLs, a url source otherwise (Anthropic fetches it)."""
    if url.startswith("data:"):
        mime, _ = media.parse_data_url(url)  # validates the base64
        if mime not in media.IMAGE_TYPES:
            raise media.bad_image(f"Images must be one of {', '.join(sorted(media.IMAGE_TYPES))}, not {mime}.")
        return {"type": "image", "source": {"type": "base64", "media_type": mime, "data": url.partition(",")[2]}}
    if url.startswith(("http://", "https://")):
        return {"type": "image", "source": {"type": "url", "url": url}}
    raise media.bad_image("An image URL must be an http(s) URL or a data: URL.")


def user_content(content, index: int):
    """A user message's content as Anthropic's: a string, or text and image blocks."""
    if not isinstance(content, list):
        return content if isinstance(content, str) else ""
    blocks = []
    for part in content:
        kind = part.get("type") if isinstance(part, dict) else None
        if kind == "text":
            if part.get("text"):  # Anthropic rejects empty text blocks
                blocks.append({"type": "text", "text": part["text"]})
        elif kind == "image_url":
            image = part.get("image_url")
            blocks.append(image_block(image.get("url", "") if isinstance(image, dict) else str(image or "")))
        else:
            raise bad_request(
                f"Content parts of type {kind!r} are not supported by this model.", f"messages[{index}].content"
            )
    return blocks


def assistant_content(message: dict, index: int):
    """An assistant message as text, or text and tool_use blocks."""
    text = content_text(message.get("content"))
    calls = message.get("tool_calls") or []
    if not calls:
        return text
    blocks: list[dict[str, Any]] = [{"type": "text", "text": text}] if text else []
    for call in calls:
        function = call.get("function") or {}
        try:
            arguments = json.loads(function.get("arguments") or "{}")
        except ValueError:
            arguments = None
        if not isinstance(arguments, dict):  # tool_use input must be an object
            raise bad_request("A tool call's arguments must be a JSON object.", f"messages[{index}].tool_calls")
        blocks.append(
            {"type": "tool_use", "id": tool_id(call.get("id")), "name": function.get("name") or "", "input": arguments}
        )
    return blocks


def tool_result(message: dict) -> dict:
    """A tool message as a tool_result block."""
    content = message.get("content")
    if isinstance(content, list):
        content = [
            {"type": "text", "text": p["text"]}
            for p in content
            if isinstance(p, dict) and p.get("type") == "text" and p.get("text")
        ]
    return {"type": "tool_result", "tool_use_id": tool_id(message.get("tool_call_id")), "content": content or ""}


def as_blocks(content) -> list:
    """A message content as a list of blocks."""
    if isinstance(content, list):
        return content
    return [{"type": "text", "text": content}] if content else []


def convert_messages(messages: list) -> tuple[list[str], list[dict]]:
    """(system texts, Anthropic messages) of OpenAI messages."""
    system: list[str] = []
    out: list[dict[str, Any]] = []
    for index, message in enumerate(messages):
        role = message.get("role")
        if role in ("system", "developer"):
            if text := content_text(message.get("content")):
                system.append(text)
            continue
        if role == "user":
            content = user_content(message.get("content"), index)
        elif role == "assistant":
            role, content = "assistant", assistant_content(message, index)
            if not content:
                continue  # an empty assistant turn is refused, and says nothing
        elif role == "tool":
            role, content = "user", [tool_result(message)]  # tool results travel in a user turn
        else:
            raise bad_request(
                f"Messages with the role {role!r} are not supported by this model.", f"messages[{index}].role"
            )
        if out and out[-1]["role"] == role:
            # The API wants alternating turns: consecutive tool results (and a
            # user message after them) join one user turn, results first.
            out[-1]["content"] = as_blocks(out[-1]["content"]) + as_blocks(content)
        else:
            out.append({"role": role, "content": content})
    return system, out


def tool_definitions(body: dict) -> tuple[list[dict], dict | None]:
    """(tools, tool_choice) of the request, as Anthropic's ([] and None without tools)."""
    tools = []
    for tool in body.get("tools") or []:
        if not isinstance(tool, dict) or tool.get("type") != "function":
            continue
        function = tool.get("function") or {}
        entry = {"name": function.get("name") or ""}
        if function.get("description"):
            entry["description"] = function["description"]
        entry["input_schema"] = function.get("parameters") or {"type": "object", "properties": {}}
        tools.append(entry)
    if not tools:
        return [], None
    choice, native = body.get("tool_choice"), None
    if choice in ("auto", "none"):
        native = {"type": choice}
    elif choice == "required":
        native = {"type": "any"}
    elif isinstance(choice, dict) and choice.get("type") == "function":
        native = {"type": "tool", "name": (choice.get("function") or {}).get("name") or ""}
    if body.get("parallel_tool_calls") is False and (native or {}).get("type") != "none":
        native = dict(native or {"type": "auto"}, disable_parallel_tool_use=True)
    return tools, native


def build_request(route, body: dict, stream: bool) -> dict:
    """The native Messages request for an OpenAI chat completion body."""
    transport.one_choice(route, body)
    system, messages = convert_messages([m for m in body.get("messages") or [] if isinstance(m, dict)])
    max_tokens = transport.max_tokens(route, body) or route.max_output_tokens
    request = {"model": route.upstream_name, "max_tokens": max_tokens or DEFAULT_MAX_TOKENS}
    response_format = body.get("response_format")
    if not isinstance(response_format, dict):
        response_format = {}
    kind = response_format.get("type")
    if kind == "json_schema":
        schema = (response_format.get("json_schema") or {}).get("schema") or {"type": "object"}
        if route.options.get("structured_outputs"):
            request["output_config"] = {"format": {"type": "json_schema", "schema": schema}}
        else:
            system.append(JSON_SCHEMA_PROMPT + json.dumps(schema, separators=(",", ":")))
    elif kind == "json_object":
        system.append(JSON_OBJECT_PROMPT)
    if system:
        request["system"] = "\n\n".join(system)
    request["messages"] = messages
    tools, tool_choice = tool_definitions(body)
    if tools:
        request["tools"] = tools
    if tool_choice:
        request["tool_choice"] = tool_choice
    stop = body.get("stop")
    stop = [stop] if isinstance(stop, str) else stop
    if stop := [s for s in stop or [] if isinstance(s, str) and s.strip()]:  # blank sequences are refused
        request["stop_sequences"] = stop
    for name in ("temperature", "top_p"):
        if body.get(name) is not None:
            request[name] = body[name]
    if isinstance(body.get("user"), str) and body["user"]:
        request["metadata"] = {"user_id": body["user"]}
    if stream:
        request["stream"] = True
    return request


def headers(route, stream: bool) -> dict:
    """The request headers: the key, the API version and any beta features the provider's options name."""
    if not route.secret:
        raise no_credential(route.provider_name)
    headers = {
        "x-api-key": route.secret,
        "anthropic-version": route.options.get("anthropic_version", DEFAULT_VERSION),
        "content-type": "application/json",
        "accept": "text/event-stream" if stream else "application/json",
    }
    beta = route.options.get("anthropic_beta")
    if beta:
        headers["anthropic-beta"] = beta if isinstance(beta, str) else ",".join(beta)
    return headers


def url(route) -> str:
    """The Messages endpoint of the route's base URL."""
    base = route.base_url.rstrip("/")
    return (base.removesuffix("/v1")) + "/v1/messages"  # tolerate a base URL given with /v1


def encode(native: dict) -> bytes:
    """A native request as the bytes sent."""
    return json.dumps(native, separators=(",", ":")).encode()
