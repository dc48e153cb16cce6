"""Gemini's GenerateContentResponse -> OpenAI's chat.completion, and its usage counts: pure functions."""

import json
import uuid

from .. import translate
from ..base import ChatResult, Counts, Usage, estimate_prompt_tokens, estimate_tokens
from .errors import invalid

FINISH_REASONS = {
    "STOP": "stop",
    "MAX_TOKENS": "length",
    "SAFETY": "content_filter",
    "RECITATION": "content_filter",
    "BLOCKLIST": "content_filter",
    "PROHIBITED_CONTENT": "content_filter",
    "SPII": "content_filter",
    "IMAGE_SAFETY": "content_filter",
    "IMAGE_PROHIBITED_CONTENT": "content_filter",
    "IMAGE_RECITATION": "content_filter",
}


def usage(meta) -> Usage | None:
    """usageMetadata as OpenAI counts (thoughts are output, tool-use prompts input); None if there is none."""
    if not isinstance(meta, dict) or "promptTokenCount" not in meta:
        return None
    # promptTokenCount already includes the cached tokens (cachedContentTokenCount).
    counts = Counts()
    prompt = counts.read(meta, "promptTokenCount") + counts.read(meta, "toolUsePromptTokenCount")
    completion = counts.read(meta, "candidatesTokenCount") + counts.read(meta, "thoughtsTokenCount")
    return counts.usage(Usage(prompt, completion, cache_read_tokens=counts.read(meta, "cachedContentTokenCount")))


def finish(reason: str | None, tool_calls: bool) -> str:
    """OpenAI's finish_reason for Gemini's finishReason ("tool_calls" where a stop made calls)."""
    finish_reason = FINISH_REASONS.get(reason or "STOP", "stop")
    return "tool_calls" if tool_calls and finish_reason == "stop" else finish_reason


def tool_call(index: int, part: dict) -> dict:
    """A functionCall part as an OpenAI tool call, its thought signature in extra_content."""
    call = part["functionCall"]
    arguments = translate.arguments(call.get("args"))
    result = translate.tool_call(
        index, call.get("id") or f"call_{uuid.uuid4().hex[:24]}", call.get("name", ""), arguments
    )
    if part.get("thoughtSignature"):
        # Where Gemini's own OpenAI endpoint puts it, so clients that replay it keep Gemini 3 working.
        result["extra_content"] = {"google": {"thought_signature": part["thoughtSignature"]}}
    return result


def candidate(answer: dict) -> tuple[str | None, list[dict], str]:
    """(content, tool calls, finish_reason) of one candidate; thought summaries left out."""
    texts: list[str] = []
    calls: list[dict] = []
    for part in (answer.get("content") or {}).get("parts") or []:
        if part.get("thought"):
            continue  # a thought summary is not the answer
        if "functionCall" in part:
            calls.append(tool_call(len(calls), part))
        elif part.get("text"):
            texts.append(translate.string(part["text"]))
    finish_reason = finish(answer.get("finishReason"), bool(calls))
    # OpenAI's content is null beside tool calls or after a refusal with no text, "" for an empty answer.
    return (
        ("".join(texts) if texts or (not calls and finish_reason != "content_filter") else None),
        calls,
        finish_reason,
    )


def chat_result(content: bytes, body: dict, model: str, provider: str) -> ChatResult:
    """The chat.completion (one choice per candidate) and usage of a generateContent answer to `body`."""
    with translate.reading(provider):
        data = json.loads(content)
        candidates = data.get("candidates") or []
        blocked = (data.get("promptFeedback") or {}).get("blockReason")
        if not isinstance(candidates, list):
            raise translate.Malformed("candidates is not a list")
        if not candidates and not blocked:
            raise invalid(provider, "sent no answer")
        # No candidates with a blockReason: the prompt itself was refused by Gemini's safety filter.
        choices = [candidate(c) for c in candidates] or [(None, [], "content_filter")]
        chars = sum(len(text or "") + sum(len(c["function"]["arguments"]) for c in calls) for text, calls, _ in choices)
        counted = Usage.or_estimate(
            usage(data.get("usageMetadata")), lambda: Usage(estimate_prompt_tokens(body), estimate_tokens(chars))
        )
        answer = translate.completion_choices(model=model, choices=choices, usage=counted)
    return ChatResult(body=answer, usage=counted)


def count_result(content: bytes, provider: str) -> int:
    """totalTokens of a countTokens answer (proto3 JSON leaves a zero out)."""
    with translate.reading(provider):
        value = json.loads(content).get("totalTokens", 0)
        if isinstance(value, bool) or not isinstance(value, int) or value < 0:
            raise translate.Malformed("totalTokens is not a count")
    return value
