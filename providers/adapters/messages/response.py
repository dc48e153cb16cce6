"""An OpenAI chat.completion as Anthropic's Message, and the hub's errors in Anthropic's shape: pure."""

import json
import uuid

from ..base import Usage

STOP_REASON = {
    "stop": "end_turn",
    "length": "max_tokens",
    "tool_calls": "tool_use",
    "function_call": "tool_use",
    "content_filter": "refusal",
}
# The hub's statuses as Anthropic's (https://docs.claude.com/en/api/errors): a failed or unreachable
# provider (502) is Anthropic's api_error, no route free now (503) its overloaded_error.
STATUS = {502: 500, 503: 529}
ERROR_TYPE = {
    400: "invalid_request_error",
    401: "authentication_error",
    402: "billing_error",
    403: "permission_error",
    404: "not_found_error",
    405: "invalid_request_error",
    413: "request_too_large",
    429: "rate_limit_error",
    500: "api_error",
    504: "timeout_error",
    529: "overloaded_error",
}


def message_id() -> str:
    return f"msg_{uuid.uuid4().hex[:24]}"


def usage(counted: Usage) -> dict:
    """Usage as Anthropic reports it: input_tokens leaves out what was read from or written to the cache."""
    cached = counted.cache_read_tokens + counted.cache_write_tokens
    return {
        "input_tokens": max(counted.prompt_tokens - cached, 0),
        "output_tokens": counted.completion_tokens,
        "cache_creation_input_tokens": counted.cache_write_tokens,
        "cache_read_input_tokens": counted.cache_read_tokens,
    }


def tool_input(arguments) -> dict:
    """A tool call's arguments as tool_use input, which must be an object."""
    try:
        value = json.loads(arguments) if isinstance(arguments, str) and arguments.strip() else {}
    except ValueError:
        value = None
    return value if isinstance(value, dict) else {"arguments": arguments}


def message(completion: bytes, counted: Usage) -> bytes:
    """The Message for a chat.completion the hub's adapters made (their first choice)."""
    data = json.loads(completion)
    choice = (data.get("choices") or [{}])[0]
    answer = choice.get("message") or {}
    content: list[dict] = []
    if answer.get("content"):
        content.append({"type": "text", "text": answer["content"]})
    for call in answer.get("tool_calls") or []:
        function = call.get("function") or {}
        content.append(
            {
                "type": "tool_use",
                "id": call.get("id") or f"toolu_{uuid.uuid4().hex[:24]}",
                "name": function.get("name") or "",
                "input": tool_input(function.get("arguments")),
            }
        )
    body = {
        "id": message_id(),
        "type": "message",
        "role": "assistant",
        "model": data.get("model") or "",
        "content": content,
        "stop_reason": STOP_REASON.get(choice.get("finish_reason") or "stop", "end_turn"),
        "stop_sequence": None,
        "usage": usage(counted),
    }
    return json.dumps(body, separators=(",", ":"), ensure_ascii=False).encode()


def error_status(status: int) -> int:
    return STATUS.get(status, status)


def error_body(status: int, message: str, request_id: str | None = None) -> dict:
    """Anthropic's error body for an answer of (Anthropic's) `status`."""
    kind = ERROR_TYPE.get(status) or ("api_error" if status >= 500 else "invalid_request_error")
    body: dict = {"type": "error", "error": {"type": kind, "message": message}}
    if request_id:
        body["request_id"] = request_id
    return body
