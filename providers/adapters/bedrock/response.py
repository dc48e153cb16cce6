"""Converse's answer -> OpenAI's chat.completion, and its usage counts: pure functions."""

import json

from .. import translate
from ..base import ChatResult, Counts, Usage, estimate_prompt_tokens, estimate_tokens
from .errors import invalid

FINISH = {
    "end_turn": "stop",
    "stop_sequence": "stop",
    "max_tokens": "length",
    "tool_use": "tool_calls",
    "guardrail_intervened": "content_filter",
    "content_filtered": "content_filter",
    "model_context_window_exceeded": "length",
}


def usage(data) -> Usage | None:
    """Converse's usage as OpenAI counts (cache reads and writes added back to the input); None if not an object."""
    if not isinstance(data, dict):
        return None
    counts = Counts()
    read, write = counts.read(data, "cacheReadInputTokens"), counts.read(data, "cacheWriteInputTokens")
    # inputTokens leaves out cached tokens; OpenAI's prompt_tokens counts them.
    return counts.usage(
        Usage(
            counts.read(data, "inputTokens") + read + write,
            counts.read(data, "outputTokens"),
            cache_read_tokens=read,
            cache_write_tokens=write,
        )
    )


def chat_result(content: bytes, body: dict, model: str, provider: str) -> ChatResult:
    """The chat.completion and usage of a Converse answer to `body`; an answer without usage is not valid."""
    with translate.reading(provider):
        data = json.loads(content)
        blocks = data["output"]["message"]["content"]
        if not isinstance(blocks, list):
            raise translate.Malformed("content is not a list of blocks")
        counted = usage(data.get("usage"))
        texts: list[str] = []
        calls: list[dict] = []
        for block in blocks:
            if "text" in block:
                texts.append(translate.string(block["text"]))
            elif "toolUse" in block:
                use = block["toolUse"]
                calls.append(
                    translate.tool_call(
                        len(calls), use["toolUseId"], use["name"], translate.arguments(use.get("input"))
                    )
                )
        if counted is None:
            raise invalid(provider)
        counted = Usage.or_estimate(
            counted,
            lambda: Usage(
                estimate_prompt_tokens(body),
                estimate_tokens(sum(map(len, texts)) + sum(len(c["function"]["arguments"]) for c in calls)),
            ),
        )
        answer = translate.completion(
            model=model,
            content="".join(texts) if texts else None,
            finish_reason=FINISH.get(data.get("stopReason"), "stop"),
            usage=counted,
            tool_calls=calls or None,
        )
    return ChatResult(body=answer, usage=counted)
