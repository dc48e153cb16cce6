"""Titan text embeddings (InvokeModel, one request per input): request and answers, as pure functions."""

import json

from .. import translate
from ..base import ChatResult, Counts, UpstreamError, Usage, estimate_tokens
from .errors import invalid


def embedding_texts(body: dict) -> list[str]:
    """The request's inputs, which must be text (Titan takes no token ids)."""
    inputs = translate.embedding_inputs(body)
    if not all(isinstance(item, str) for item in inputs):
        raise UpstreamError(
            "This model takes text only, not token ids.",
            status=400,
            type="invalid_request_error",
            code="invalid_value",
            param="input",
        )
    return inputs


def embedding_request(text: str, body: dict) -> dict:
    """The InvokeModel body for one input."""
    native = {"inputText": text}
    if body.get("dimensions"):
        native["dimensions"] = body["dimensions"]
    return native


def embedding_answer(content: bytes, counts: Counts, provider: str) -> tuple[list, int]:
    """(vector, tokens Titan counted) of one answer; the count is read through `counts`, which notes a bad one."""
    try:
        data = json.loads(content)
        return data["embedding"], counts.read(data, "inputTextTokenCount")
    except (ValueError, KeyError, TypeError):
        raise invalid(provider) from None


def embedding_result(vectors: list, tokens: int, counts: Counts, body: dict, model: str, provider: str) -> ChatResult:
    """OpenAI's embeddings list of the vectors, billed as Titan counted (estimated if a count was unsound)."""
    texts = translate.embedding_inputs(body)
    usage = Usage.or_estimate(
        counts.usage(Usage(tokens, 0)), lambda: Usage(estimate_tokens(sum(len(text) for text in texts)), 0)
    )
    with translate.reading(provider):
        answer = translate.embeddings(
            model=model, vectors=vectors, usage=usage, encoding_format=body.get("encoding_format")
        )
    return ChatResult(body=answer, usage=usage)
