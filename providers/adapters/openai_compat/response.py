"""An OpenAI-compatible answer, passed through: its usage read (or estimated), an error in a 200 caught (pure)."""

import json

from ..base import ChatResult, Usage, estimate_prompt_tokens, estimate_tokens
from ..translate import MALFORMED
from .errors import failed, invalid, is_error


def estimate(body: dict, choices: list) -> Usage:
    """The usage of an answer that reported none (or nonsense): ~4 characters a token, marked estimated."""
    chars = 0
    for choice in choices:
        message = choice.get("message") or {}
        chars += len(message.get("content") or "")
        for call in message.get("tool_calls") or []:
            chars += len((call.get("function") or {}).get("arguments") or "")
    return Usage(estimate_prompt_tokens(body), estimate_tokens(chars), estimated=True)


def chat_result(route, body: dict, content: bytes) -> ChatResult:
    """The chat.completion as it came, and its usage; if that usage is unsound, the answer shows the estimate."""
    try:
        data = json.loads(content)
        reported = Usage.from_openai(data.get("usage"))
        usage = Usage.or_estimate(reported, lambda: estimate(body, data.get("choices") or []))
    except MALFORMED:
        raise invalid(route) from None
    if data.get("error") and not data.get("choices"):
        raise failed(route, content)
    if usage.invalid:
        # The client is shown what it is billed, not the provider's nonsense.
        content = json.dumps(dict(data, usage=usage.to_openai()), separators=(",", ":")).encode()
    return ChatResult(body=content, usage=usage)


def embedding_result(route, body: dict, content: bytes) -> ChatResult:
    """The embeddings list as it came, and its usage (estimated, and shown so, if unsound)."""
    try:
        data = json.loads(content)
        if is_error(data, "data"):
            raise failed(route, content)
        usage = Usage.from_openai(data.get("usage"))
        if not isinstance(data.get("data"), list):
            raise ValueError
    except MALFORMED:
        raise invalid(route) from None
    usage = Usage.or_estimate(usage, lambda: Usage(estimate_tokens(len(json.dumps(body.get("input")))), 0))
    if usage.invalid:
        content = json.dumps(dict(data, usage=usage.to_openai()), separators=(",", ":")).encode()
    return ChatResult(body=content, usage=usage)
