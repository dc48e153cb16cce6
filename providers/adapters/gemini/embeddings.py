"""batchEmbedContents: OpenAI embeddings request -> Gemini's, and its answer back: pure functions."""

import json

from .. import translate
from ..base import ChatResult, UpstreamError, Usage, estimate_tokens
from .errors import invalid


def embedding_request(model: str, body: dict) -> dict:
    """One request per input for `model` ("models/…"), text only (Gemini takes no token ids)."""
    inputs = translate.embedding_inputs(body)
    if not all(isinstance(item, str) for item in inputs):
        raise UpstreamError(
            "This model takes text only, not token ids.",
            status=400,
            type="invalid_request_error",
            code="invalid_value",
            param="input",
        )
    request = {"model": model}
    if body.get("dimensions"):
        request["outputDimensionality"] = body["dimensions"]
    return {"requests": [dict(request, content={"parts": [{"text": text}]}) for text in inputs]}


def embedding_result(content: bytes, body: dict, model: str, provider: str) -> ChatResult:
    """OpenAI's embeddings list of Gemini's answer; the usage is an estimate, Gemini reporting none."""
    try:
        vectors = [item["values"] for item in json.loads(content)["embeddings"]]
    except (ValueError, KeyError, TypeError):
        raise invalid(provider, "sent an answer that is not valid") from None
    # batchEmbedContents reports no token count: estimated, and marked so.
    usage = Usage(estimate_tokens(sum(len(text) for text in translate.embedding_inputs(body))), 0, estimated=True)
    with translate.reading(provider):
        answer = translate.embeddings(
            model=model, vectors=vectors, usage=usage, encoding_format=body.get("encoding_format")
        )
    return ChatResult(body=answer, usage=usage)
