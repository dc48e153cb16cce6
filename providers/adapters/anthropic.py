"""Anthropic Messages API (POST {base_url}/v1/messages) behind OpenAI chat completions.

Request: system and developer messages become the top-level `system`; the
conversation is user/assistant turns (consecutive same-role messages merged);
tool calls and tool results become `tool_use` / `tool_result` blocks; images
become base64 or url sources (Anthropic fetches URLs itself). Answer: text and
`tool_use` blocks, `stop_reason`, and usage, whose `input_tokens` leaves out
cached tokens, so cache reads and writes are added back for prompt_tokens.
"""

import json
import re
import uuid


from . import errors, media, sse, transport
from .base import ChatResult, Counts, UpstreamError, Usage, estimate_prompt_tokens, estimate_tokens
from .translate import Malformed, TranslatedStream, arguments, completion, reading, string, tool_call

DEFAULT_VERSION = "2023-06-01"
DEFAULT_MAX_TOKENS = 4096  # Anthropic requires max_tokens; used when neither the request nor the model sets one
FINISH = {"end_turn": "stop", "stop_sequence": "stop", "pause_turn": "stop", "max_tokens": "length",
          "model_context_window_exceeded": "length", "tool_use": "tool_calls", "refusal": "content_filter"}

# Anthropic has no JSON mode. Its documented way to get JSON ("increase output
# consistency") is to ask for it in the prompt, so response_format becomes an
# instruction appended to the system prompt (with the schema for json_schema).
# Prefilling "{" is the other documented trick, but newer models refuse
# prefills. A provider whose models support structured outputs can set the
# option {"structured_outputs": true}: json_schema is then sent natively as
# output_config.format, which constrains decoding.
JSON_OBJECT_PROMPT = ("Respond with a single valid JSON object and nothing else: "
                      "no text before or after it, no code fences.")
JSON_SCHEMA_PROMPT = ("Respond with a single valid JSON object that conforms to the JSON schema below, "
                      "and nothing else: no text before or after it, no code fences.\nJSON schema: ")

_TOOL_ID_UNSAFE = re.compile(r"[^a-zA-Z0-9_-]")


def _bad(message: str, param: str = "messages") -> UpstreamError:
    return UpstreamError(message, status=400, type="invalid_request_error", code="invalid_value", param=param)


def _text(content) -> str:
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "\n".join(p.get("text") or "" for p in content if isinstance(p, dict) and p.get("type") == "text")
    return ""


def _tool_id(call_id) -> str:
    # tool_use ids must match ^[a-zA-Z0-9_-]+$; ids made by other providers may not.
    return _TOOL_ID_UNSAFE.sub("_", str(call_id or "")) or "call_none"


def _image(url: str) -> dict:
    if url.startswith("data:"):
        mime, _ = media.parse_data_url(url)  # validates the base64
        if mime not in media.IMAGE_TYPES:
            raise media.bad_image(f"Images must be one of {', '.join(sorted(media.IMAGE_TYPES))}, not {mime}.")
        return {"type": "image", "source": {"type": "base64", "media_type": mime, "data": url.partition(",")[2]}}
    if url.startswith(("http://", "https://")):
        return {"type": "image", "source": {"type": "url", "url": url}}
    raise media.bad_image("An image URL must be an http(s) URL or a data: URL.")


def _user_content(content, index: int):
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
            blocks.append(_image(image.get("url", "") if isinstance(image, dict) else str(image or "")))
        else:
            raise _bad(f"Content parts of type {kind!r} are not supported by this model.", f"messages[{index}].content")
    return blocks


def _assistant_content(message: dict, index: int):
    text = _text(message.get("content"))
    calls = message.get("tool_calls") or []
    if not calls:
        return text
    blocks = [{"type": "text", "text": text}] if text else []
    for call in calls:
        function = call.get("function") or {}
        try:
            arguments = json.loads(function.get("arguments") or "{}")
        except ValueError:
            arguments = None
        if not isinstance(arguments, dict):  # tool_use input must be an object
            raise _bad("A tool call's arguments must be a JSON object.", f"messages[{index}].tool_calls")
        blocks.append({"type": "tool_use", "id": _tool_id(call.get("id")), "name": function.get("name") or "",
                       "input": arguments})
    return blocks


def _tool_result(message: dict) -> dict:
    content = message.get("content")
    if isinstance(content, list):
        content = [{"type": "text", "text": p["text"]} for p in content
                   if isinstance(p, dict) and p.get("type") == "text" and p.get("text")]
    return {"type": "tool_result", "tool_use_id": _tool_id(message.get("tool_call_id")), "content": content or ""}


def _blocks(content) -> list:
    if isinstance(content, list):
        return content
    return [{"type": "text", "text": content}] if content else []


def convert_messages(messages: list) -> tuple[list[str], list[dict]]:
    """(system texts, Anthropic messages) of OpenAI messages."""
    system, out = [], []
    for index, message in enumerate(messages):
        role = message.get("role")
        if role in ("system", "developer"):
            if text := _text(message.get("content")):
                system.append(text)
            continue
        if role == "user":
            content = _user_content(message.get("content"), index)
        elif role == "assistant":
            role, content = "assistant", _assistant_content(message, index)
            if not content:
                continue  # an empty assistant turn is refused, and says nothing
        elif role == "tool":
            role, content = "user", [_tool_result(message)]  # tool results travel in a user turn
        else:
            raise _bad(f"Messages with the role {role!r} are not supported by this model.", f"messages[{index}].role")
        if out and out[-1]["role"] == role:
            # The API wants alternating turns: consecutive tool results (and a
            # user message after them) join one user turn, results first.
            out[-1]["content"] = _blocks(out[-1]["content"]) + _blocks(content)
        else:
            out.append({"role": role, "content": content})
    return system, out


def _tools(body: dict) -> tuple[list[dict], dict | None]:
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
    kind = response_format.get("type") if isinstance(response_format, dict) else None
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
    tools, tool_choice = _tools(body)
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


def _headers(route, stream: bool) -> dict:
    if not route.secret:
        raise errors.no_credential(route.provider_name)
    headers = {"x-api-key": route.secret, "anthropic-version": route.options.get("anthropic_version", DEFAULT_VERSION),
               "content-type": "application/json", "accept": "text/event-stream" if stream else "application/json"}
    beta = route.options.get("anthropic_beta")
    if beta:
        headers["anthropic-beta"] = beta if isinstance(beta, str) else ",".join(beta)
    return headers


def _url(route) -> str:
    base = route.base_url.rstrip("/")
    return (base.removesuffix("/v1")) + "/v1/messages"  # tolerate a base URL given with /v1


def to_usage(usage: dict | None) -> Usage:
    counts = Counts()
    read = counts.read(usage, "cache_read_input_tokens")
    write = counts.read(usage, "cache_creation_input_tokens")
    return counts.usage(Usage(counts.read(usage, "input_tokens") + read + write, counts.read(usage, "output_tokens"),
                              cache_read_tokens=read, cache_write_tokens=write))


def map_error(error: dict, status: int | None, retry_after: str | None, provider: str) -> UpstreamError:
    """The hub's error for Anthropic's {"type": …, "message": …} (status None: an error event mid-stream)."""
    kind, message = error.get("type") or "", str(error.get("message") or "")[:1000]
    details = error.get("details") if isinstance(error.get("details"), dict) else {}
    if status in (401, 403) or kind in ("authentication_error", "permission_error"):
        # Never echo the provider's words here: they may quote the hub's own credential.
        return UpstreamError(f"The provider '{provider}' rejected the hub's credential.", status=502,
                             code="upstream_auth_failed", retryable=True)
    if status == 402 or kind == "billing_error" or details.get("error_code") == "enforced_spend_limit_reached":
        return UpstreamError(f"The provider '{provider}' has no credit left for the hub's credential.", status=502,
                             code="upstream_quota_exhausted", retryable=True)
    if status == 429 or kind == "rate_limit_error":
        return UpstreamError(message or "Rate limited by the provider.", status=429, type="rate_limit_error",
                             code="rate_limit_exceeded", retryable=True, retry_after=retry_after)
    if status in (503, 529) or kind == "overloaded_error":
        return UpstreamError(f"The provider '{provider}' is overloaded: {message or 'Overloaded'}", status=503,
                             type="server_error", code="upstream_overloaded", retryable=True, retry_after=retry_after)
    if status in (408, 504) or kind == "timeout_error":
        return UpstreamError(f"The provider '{provider}' timed out.", status=504, code="upstream_timeout",
                             retryable=True)
    if status == 404 or kind == "not_found_error":
        return UpstreamError(f"The provider '{provider}' does not know this model: {message}", status=502,
                             code="upstream_model_not_found", retryable=False)
    if (status is not None and 400 <= status < 500) or kind in ("invalid_request_error", "request_too_large"):
        lowered, code = message.lower(), None
        if "prompt is too long" in lowered or "exceed context limit" in lowered or "context window" in lowered:
            code = "context_length_exceeded"
        elif "content filtering" in lowered or "content policy" in lowered or "usage policy" in lowered:
            code = "content_policy_violation"
        return UpstreamError(message or "The provider refused the request.", status=400,
                             type="invalid_request_error", code=code, retryable=False)
    return UpstreamError(f"The provider '{provider}' failed ({status or kind}): {message}".rstrip(": "), status=502,
                         code="upstream_error", retryable=True, retry_after=retry_after)


def error_from_response(status: int, content: bytes, headers, provider: str) -> UpstreamError:
    try:
        error = json.loads(content).get("error")
    except (ValueError, AttributeError):
        error = None
    if not isinstance(error, dict):  # not Anthropic's shape: a proxy or load balancer answered
        error = {"message": errors.upstream_message(content)[0]}
    return map_error(error, status, headers.get("retry-after"), provider)


class AnthropicAdapter:
    async def chat(self, route, body: dict) -> ChatResult:
        payload = json.dumps(build_request(route, body, stream=False), separators=(",", ":")).encode()
        response = await transport.send(route, _url(route), payload, _headers(route, False), error_from_response,
                                        stream=False)
        with reading(route.provider_name):
            data = json.loads(response.content)
            blocks, reported = data.get("content") or [], data.get("usage")
            if not isinstance(blocks, list):
                raise Malformed("content is not a list of blocks")
            usage = to_usage(reported) if isinstance(reported, dict) else None  # none at all: estimated
            texts, calls = [], []
            for block in blocks:
                if block.get("type") == "text":
                    texts.append(string(block.get("text")))
                elif block.get("type") == "tool_use":  # thinking blocks are not part of OpenAI's answer
                    calls.append(tool_call(len(calls), block.get("id") or f"call_{uuid.uuid4().hex[:24]}",
                                           block.get("name") or "", arguments(block.get("input"))))
            content = "".join(texts) if texts or not calls else None
            usage = Usage.or_estimate(usage, lambda: Usage(estimate_prompt_tokens(body), estimate_tokens(
                len(content or "") + sum(len(c["function"]["arguments"]) for c in calls))))
            answer = completion(model=route.upstream_name, content=content, tool_calls=calls, usage=usage,
                                finish_reason=FINISH.get(data.get("stop_reason"), "stop"))
        return ChatResult(body=answer, usage=usage)

    async def chat_stream(self, route, body: dict, include_usage: bool):
        payload = json.dumps(build_request(route, body, stream=True), separators=(",", ":")).encode()
        response = await transport.send(route, _url(route), payload, _headers(route, True), error_from_response,
                                        stream=True)
        return AnthropicStream(response, route, body, include_usage)


class AnthropicStream(TranslatedStream):
    """Anthropic's SSE events (message_start, content_block_*, message_delta, message_stop) as OpenAI chunks."""

    def __init__(self, response, route, body: dict, include_usage: bool):
        super().__init__(response, route, body, include_usage)
        self.start_usage: dict | None = None  # message_start's usage: the input is known from the start

    async def translate(self):
        provider = self.route.provider_name
        tools: dict[int, int] = {}  # content block index -> OpenAI tool index (tool_use blocks only)
        sent_arguments: set[int] = set()
        finish = "stop"
        async for name, data in sse.events(self.response):
            if name == "ping":
                continue
            try:
                event = json.loads(data)
                kind = event.get("type") or name
            except (ValueError, AttributeError):
                raise UpstreamError(f"The provider '{provider}' sent a malformed stream event.",
                                    code="upstream_invalid_response") from None
            if kind == "message_start":
                message = event.get("message")
                self.start_usage = (message.get("usage") if isinstance(message, dict) else None) or {}
                yield self.writer.role()
            elif kind == "content_block_start":
                block, index = event.get("content_block") or {}, event.get("index")
                if block.get("type") == "tool_use":
                    tools[index] = len(tools)
                    yield self.writer.tool_call_start(tools[index], block.get("id") or f"call_{uuid.uuid4().hex[:24]}",
                                                      block.get("name") or "")
                elif block.get("type") == "text" and block.get("text"):
                    yield self.writer.text(block["text"])
            elif kind == "content_block_delta":
                delta, index = event.get("delta") or {}, event.get("index")
                if delta.get("type") == "text_delta" and delta.get("text"):
                    yield self.writer.text(delta["text"])
                elif delta.get("type") == "input_json_delta" and delta.get("partial_json") and index in tools:
                    sent_arguments.add(index)
                    yield self.writer.tool_arguments(tools[index], delta["partial_json"])
            elif kind == "content_block_stop":
                index = event.get("index")
                if index in tools and index not in sent_arguments:
                    # A tool without arguments streams no JSON at all; OpenAI clients expect an object.
                    yield self.writer.tool_arguments(tools[index], "{}")
            elif kind == "message_delta":
                finish = FINISH.get((event.get("delta") or {}).get("stop_reason"), "stop")
                # The delta's usage is cumulative; newer versions repeat the input counts in it.
                delta_usage = event.get("usage") if isinstance(event.get("usage"), dict) else {}
                start = self.start_usage if isinstance(self.start_usage, dict) else {}
                self.usage = to_usage({**start, **{k: v for k, v in delta_usage.items() if v is not None}})
            elif kind == "message_stop":
                yield self.writer.finish(finish)
                yield self.writer.usage(self.final_usage())
                return
            elif kind == "error":
                error = event.get("error") if isinstance(event.get("error"), dict) else {}
                raise map_error(error, None, None, provider)
        raise UpstreamError(f"The stream from the provider '{provider}' ended early.",
                            code="upstream_stream_incomplete", retryable=True)

    def final_usage(self) -> Usage:
        if self.usage is None and self.start_usage is not None:
            # Cut before message_delta: the input count is the provider's, the output an estimate.
            usage = to_usage(self.start_usage)
            if not usage.invalid:
                usage.completion_tokens, usage.estimated = estimate_tokens(self.writer.chars), True
                return usage
            self.usage = usage  # not sound: the whole estimate, saying why
        return super().final_usage()
