"""Native image generation (generateContent answering IMAGE): request, answer and usage, as pure functions.

Edits send the input images as inline data beside the prompt. Gemini bills an
image's output tokens (1,290 at every documented size), which the usage
carries; the size maps to its aspect ratio.
"""

import json
from typing import Any

from .. import translate
from ..base import UpstreamError, Usage
from ..images import GEMINI_SIZES, image_tier
from .errors import invalid
from .request import inline_data
from .response import usage as usage_of

REFUSALS = ("SAFETY", "IMAGE_SAFETY", "PROHIBITED_CONTENT", "BLOCKLIST", "SPII")


def image_request(body: dict) -> dict:
    """The generateContent request for one image of the hub's images body (prompt, images, size)."""
    parts = [{"text": body["prompt"]}]
    parts += [inline_data(mime or "image/png", data) for _, data, mime in body["images"]]
    config: dict[str, Any] = {"responseModalities": ["IMAGE"]}
    if body["size"] in GEMINI_SIZES:
        config["imageConfig"] = {"aspectRatio": GEMINI_SIZES[body["size"]]}
    return {"contents": [{"role": "user", "parts": parts}], "generationConfig": config}


def image_answer(content: bytes, provider: str) -> tuple[str, Usage | None]:
    """(base64 image, its usage) of one answer; a refusal is the client's 400, no image the provider's fault."""
    with translate.reading(provider):
        data = json.loads(content)
        candidate = (data.get("candidates") or [{}])[0]
        parts = (candidate.get("content") or {}).get("parts") or []
        refused = (data.get("promptFeedback") or {}).get("blockReason") or candidate.get("finishReason") in REFUSALS
        for part in parts:
            inline = (part.get("inlineData") or part.get("inline_data")) if isinstance(part, dict) else None
            if inline and inline.get("data"):
                return translate.string(inline["data"], "image data"), usage_of(data.get("usageMetadata"))
    if refused:
        raise UpstreamError(
            "The provider refused to generate this image (its safety filter).",
            status=400,
            type="invalid_request_error",
            code="content_policy_violation",
            param="prompt",
        )
    raise invalid(provider, "sent no image")


def images_usage(counted: list[Usage | None], size: str, quality: str) -> Usage:
    """The usage of the images made: each billed as an image, plus the tokens Gemini counted (if all are sound)."""
    total = Usage(images=len(counted), image_tier=image_tier(size, quality))
    for one in counted:
        if one is not None and one.invalid:
            total.estimated, total.invalid = True, one.invalid  # the images are billed; those tokens are not
        elif one is not None:
            total.prompt_tokens += one.prompt_tokens
            total.completion_tokens += one.completion_tokens
    return total
