"""A Messages request, checked as Anthropic checks it, and the OpenAI chat body it becomes: pure."""

import json
import math
from dataclasses import dataclass, field
from typing import Any

from ..base import MAX_TOKENS

ROLES = ("user", "assistant")
IMAGE_TYPES = ("image/jpeg", "image/png", "image/gif", "image/webp")
TOOL_CHOICES = ("auto", "any", "tool", "none")
# Blocks a translated route has no equivalent for: left out, the answer would not be to the question asked.
UNTRANSLATABLE = ("document", "search_result", "container_upload", "server_tool_use", "web_search_tool_result")
# Blocks that carry nothing another provider could use (the model's own reasoning, with its signature).
DROPPED = ("thinking", "redacted_thinking")


class Invalid(ValueError):
    """A request Anthropic would answer with a 400 invalid_request_error."""

    def __init__(self, message: str, param: str | None = None):
        super().__init__(message)
        self.message, self.param = message, param


@dataclass
class Parsed:
    native: dict  # the client's body, for routes that speak Messages (the model named is swapped per route)
    chat: dict  # the same request as an OpenAI chat completion body, for every other step and route
    stream: bool = False
    untranslatable: list[str] = field(default_factory=list)  # what only a native route can serve


def _number(body: dict, name: str, low: float, high: float) -> None:
    value = body.get(name)
    if value is None:
        return
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise Invalid(f"{name}: Input should be a valid number", name)
    if not low <= value <= high:
        raise Invalid(f"{name}: Input should be between {low} and {high}", name)


def _whole(value, name: str, low: int, high: int = MAX_TOKENS) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise Invalid(f"{name}: Input should be a valid integer", name)
    if not low <= value <= high:
        raise Invalid(f"{name}: Input should be between {low} and {high}", name)
    return value


def _text(value, where: str) -> str:
    if not isinstance(value, str):
        raise Invalid(f"{where}: Input should be a valid string", where)
    if "\x00" in value:
        raise Invalid(f"{where}: the text contains a NUL character", where)
    return value


def _blocks(content, where: str) -> list[dict]:
    """A content (a string, or a list of typed blocks) as blocks."""
    if isinstance(content, str):
        return [{"type": "text", "text": _text(content, where)}]
    if not isinstance(content, list):
        raise Invalid(f"{where}: Input should be a valid string or a list of content blocks", where)
    for index, block in enumerate(content):
        if not isinstance(block, dict) or not isinstance(block.get("type"), str):
            raise Invalid(f"{where}.{index}: a content block must be an object with a `type`", f"{where}.{index}")
        if block["type"] == "text":
            _text(block.get("text"), f"{where}.{index}.text")
    return content


def _system(system) -> str:
    if system is None:
        return ""
    if isinstance(system, str):
        return _text(system, "system")
    blocks = _blocks(system, "system")
    if any(b["type"] != "text" for b in blocks):
        raise Invalid("system: only text blocks are accepted in the system prompt", "system")
    return "\n\n".join(b["text"] for b in blocks if b["text"])


def _image_url(block: dict, where: str) -> str:
    source = block.get("source")
    if not isinstance(source, dict):
        raise Invalid(f"{where}.source: Field required", f"{where}.source")
    if source.get("type") == "base64":
        media_type, data = source.get("media_type"), source.get("data")
        if media_type not in IMAGE_TYPES:
            raise Invalid(f"{where}.source.media_type: Input should be {', '.join(IMAGE_TYPES)}", f"{where}.source")
        return f"data:{media_type};base64,{_text(data, f'{where}.source.data')}"
    if source.get("type") == "url":
        url = _text(source.get("url"), f"{where}.source.url")
        if not url.startswith(("http://", "https://")):
            raise Invalid(f"{where}.source.url: an image URL must be http(s)", f"{where}.source.url")
        return url
    raise Invalid(f"{where}.source.type: Input tag should be 'base64' or 'url'", f"{where}.source.type")


def _result_text(content, where: str, images: list) -> str:
    """A tool_result's content as text (its images collected into `images`: a tool message takes no image)."""
    if content is None:
        return ""
    parts = []
    for index, block in enumerate(_blocks(content, where)):
        if block["type"] == "text":
            parts.append(block["text"])
        elif block["type"] == "image":
            images.append({"type": "image_url", "image_url": {"url": _image_url(block, f"{where}.{index}")}})
    return "\n".join(parts)


def _user(blocks: list[dict], where: str, untranslatable: list) -> list[dict]:
    """A user turn as OpenAI messages: its tool results (tool messages, first), then the rest."""
    tools: list[dict] = []
    parts: list[dict] = []
    for index, block in enumerate(blocks):
        kind, at = block["type"], f"{where}.{index}"
        if kind == "text":
            parts.append({"type": "text", "text": block["text"]})
        elif kind == "image":
            parts.append({"type": "image_url", "image_url": {"url": _image_url(block, at)}})
        elif kind == "tool_result":
            tool_id = _text(block.get("tool_use_id"), f"{at}.tool_use_id")
            text = _result_text(block.get("content"), f"{at}.content", parts)
            if block.get("is_error") is True:
                text = f"Error: {text}" if text else "Error"
            tools.append({"role": "tool", "tool_call_id": tool_id, "content": text})
        elif kind in UNTRANSLATABLE:
            untranslatable.append(f"`{kind}` blocks")
            parts.append({"type": "text", "text": json.dumps(block)})  # still counted as prompt
        elif kind not in DROPPED:
            raise Invalid(f"{at}.type: unknown content block type {kind[:50]!r}", f"{at}.type")
    if parts:
        tools.append({"role": "user", "content": parts})
    return tools


def _assistant(blocks: list[dict], where: str, untranslatable: list) -> dict | None:
    texts: list[str] = []
    calls: list[dict] = []
    for index, block in enumerate(blocks):
        kind, at = block["type"], f"{where}.{index}"
        if kind == "text":
            texts.append(block["text"])
        elif kind == "tool_use":
            tool_input = block.get("input")
            if not isinstance(tool_input, dict):
                raise Invalid(f"{at}.input: Input should be a valid dictionary", f"{at}.input")
            calls.append(
                {
                    "id": _text(block.get("id"), f"{at}.id"),
                    "type": "function",
                    "function": {"name": _text(block.get("name"), f"{at}.name"), "arguments": json.dumps(tool_input)},
                }
            )
        elif kind in UNTRANSLATABLE:
            untranslatable.append(f"`{kind}` blocks")
            texts.append(json.dumps(block))
        elif kind not in DROPPED:
            raise Invalid(f"{at}.type: unknown content block type {kind[:50]!r}", f"{at}.type")
    if not texts and not calls:
        return None
    message: dict[str, Any] = {"role": "assistant", "content": "".join(texts) or None}
    if calls:
        message["tool_calls"] = calls
    return message


def _tools(body: dict, untranslatable: list) -> list[dict]:
    tools = body.get("tools")
    if tools is None:
        return []
    if not isinstance(tools, list):
        raise Invalid("tools: Input should be a valid list", "tools")
    out = []
    for index, tool in enumerate(tools):
        where = f"tools.{index}"
        if not isinstance(tool, dict):
            raise Invalid(f"{where}: Input should be a valid dictionary", where)
        if tool.get("type") not in (None, "custom"):
            # A server tool (web search, code execution…) runs at Anthropic: no other provider has it.
            untranslatable.append(f"the `{str(tool.get('type'))[:50]}` tool")
            continue
        name = _text(tool.get("name"), f"{where}.name")
        schema = tool.get("input_schema")
        if not name or not isinstance(schema, dict):
            raise Invalid(f"{where}: `name` and an `input_schema` object are required", where)
        function: dict[str, Any] = {"name": name, "parameters": schema}
        if tool.get("description") is not None:
            function["description"] = _text(tool["description"], f"{where}.description")
        out.append({"type": "function", "function": function})
    return out


def _tool_choice(body: dict, chat: dict) -> None:
    choice = body.get("tool_choice")
    if choice is None:
        return
    if not isinstance(choice, dict) or choice.get("type") not in TOOL_CHOICES:
        raise Invalid(f"tool_choice.type: Input should be one of {', '.join(TOOL_CHOICES)}", "tool_choice")
    kind = choice["type"]
    if kind in ("any", "tool") and not body.get("tools"):
        raise Invalid("tool_choice may only be specified while providing tools.", "tool_choice")
    if kind == "tool":
        name = _text(choice.get("name"), "tool_choice.name")
        chat["tool_choice"] = {"type": "function", "function": {"name": name}}
    else:
        chat["tool_choice"] = {"auto": "auto", "any": "required", "none": "none"}[kind]
    if choice.get("disable_parallel_tool_use") is True and chat.get("tools"):
        chat["parallel_tool_calls"] = False


def parse(body: dict, *, count_only: bool = False) -> Parsed:
    """Check a Messages request (count_tokens' when `count_only`: no max_tokens) and translate it."""
    model = body.get("model")
    if not isinstance(model, str) or not model:
        raise Invalid("model: Field required", "model")
    if not count_only:
        if "max_tokens" not in body:
            raise Invalid("max_tokens: Field required", "max_tokens")
        _whole(body["max_tokens"], "max_tokens", 1)
    messages = body.get("messages")
    if not isinstance(messages, list) or not messages:
        raise Invalid("messages: at least one message is required", "messages")
    stream = body.get("stream", False)
    if not isinstance(stream, bool):
        raise Invalid("stream: Input should be a valid boolean", "stream")
    _number(body, "temperature", 0, 1)
    _number(body, "top_p", 0, 1)
    if body.get("top_k") is not None:
        _whole(body["top_k"], "top_k", 0)
    stops = body.get("stop_sequences")
    if stops is not None and (not isinstance(stops, list) or not all(isinstance(s, str) for s in stops)):
        raise Invalid("stop_sequences: Input should be a list of strings", "stop_sequences")
    for index, stop in enumerate(stops or []):
        _text(stop, f"stop_sequences.{index}")
    for name in ("metadata", "thinking"):
        if body.get(name) is not None and not isinstance(body[name], dict):
            raise Invalid(f"{name}: Input should be a valid dictionary", name)

    untranslatable: list[str] = []
    chat: dict[str, Any] = {"model": model, "messages": []}
    if system := _system(body.get("system")):
        chat["messages"].append({"role": "system", "content": system})
    for index, message in enumerate(messages):
        where = f"messages.{index}"
        if not isinstance(message, dict) or message.get("role") not in ROLES:
            raise Invalid(f"{where}.role: Input should be 'user' or 'assistant'", f"{where}.role")
        blocks = _blocks(message.get("content"), f"{where}.content")
        if message["role"] == "user" and isinstance(message["content"], str):
            chat["messages"].append({"role": "user", "content": message["content"]})
        elif message["role"] == "user":
            chat["messages"] += _user(blocks, f"{where}.content", untranslatable)
        elif turn := _assistant(blocks, f"{where}.content", untranslatable):
            chat["messages"].append(turn)
    if tools := _tools(body, untranslatable):
        chat["tools"] = tools
    _tool_choice(body, chat)
    if not count_only:
        chat["max_tokens"] = body["max_tokens"]
    if stops:
        chat["stop"] = stops
    for name in ("temperature", "top_p"):
        if body.get(name) is not None:
            chat[name] = body[name]
    user_id = (body.get("metadata") or {}).get("user_id")
    if user_id is not None:
        chat["user"] = _text(user_id, "metadata.user_id")[:256]
    if stream:
        # Always: the usage chunk is what message_delta's counts are made of.
        chat |= {"stream": True, "stream_options": {"include_usage": True}}
    return Parsed(native=body, chat=chat, stream=stream, untranslatable=sorted(set(untranslatable)))
