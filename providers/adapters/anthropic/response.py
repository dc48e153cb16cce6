"""Anthropic's Messages answer -> OpenAI's chat.completion, and its usage counts: pure functions."""

import json
import uuid

from ..base import ChatResult, Counts, Usage, estimate_prompt_tokens, estimate_tokens
from ..translate import Malformed, arguments, completion, reading, string, tool_call

FINISH = {
    "end_turn": "stop",
    "stop_sequence": "stop",
    "pause_turn": "stop",
    "max_tokens": "length",
    "model_context_window_exceeded": "length",
    "tool_use": "tool_calls",
    "refusal": "content_filter",
}


def usage(reported: dict | None) -> Usage:
    """Anthropic's usage as OpenAI counts: its input_tokens leave out the cache reads and writes, added back."""
    counts = Counts()
    read = counts.read(reported, "cache_read_input_tokens")
    write = counts.read(reported, "cache_creation_input_tokens")
    return counts.usage(
        Usage(
            counts.read(reported, "input_tokens") + read + write,
            counts.read(reported, "output_tokens"),
            cache_read_tokens=read,
            cache_write_tokens=write,
        )
    )


def chat_result(content: bytes, body: dict, model: str, provider: str) -> ChatResult:
    """The chat.completion and usage of a Messages answer to `body` (text and tool_use blocks; thinking left out)."""
    with reading(provider):
        data = json.loads(content)
        blocks, reported = data.get("content") or [], data.get("usage")
        if not isinstance(blocks, list):
            raise Malformed("content is not a list of blocks")
        counted = usage(reported) if isinstance(reported, dict) else None  # none at all: estimated
        texts: list[str] = []
        calls: list[dict] = []
        for block in blocks:
            if block.get("type") == "text":
                texts.append(string(block.get("text")))
            elif block.get("type") == "tool_use":  # thinking blocks are not part of OpenAI's answer
                calls.append(
                    tool_call(
                        len(calls),
                        block.get("id") or f"call_{uuid.uuid4().hex[:24]}",
                        block.get("name") or "",
                        arguments(block.get("input")),
                    )
                )
        text = "".join(texts) if texts or not calls else None
        counted = Usage.or_estimate(
            counted,
            lambda: Usage(
                estimate_prompt_tokens(body),
                estimate_tokens(len(text or "") + sum(len(c["function"]["arguments"]) for c in calls)),
            ),
        )
        answer = completion(
            model=model,
            content=text,
            tool_calls=calls,
            usage=counted,
            finish_reason=FINISH.get(data.get("stop_reason"), "stop"),
        )
    return ChatResult(body=answer, usage=counted)
