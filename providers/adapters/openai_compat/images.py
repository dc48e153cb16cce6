"""Image generations and edits: the request's parameters and the answer's images and usage, as pure functions."""

import base64
import json

from ..base import Counts, ImageResult, Usage
from ..images import image_tier, openai_family
from ..translate import MALFORMED, string
from .errors import failed, invalid, is_error


def image_params(route, body: dict) -> dict:
    """The parameters sent (JSON, or the form of an edit), always asking for base64: the hub serves its own copy."""
    params = dict(body["params"], model=route.upstream_name, prompt=body["prompt"], n=body["n"])
    if body.get("user"):
        params["user"] = body["user"]
    if openai_family(route.upstream_name).name != "gpt-image":  # gpt-image models answer base64 and refuse the field
        params["response_format"] = "b64_json"
    return params


def image_answer(route, content: bytes) -> tuple[dict, list]:
    """(the answer, its `data` items); an error in a 200, or an answer that is not one, raises."""
    try:
        data = json.loads(content)
        if is_error(data, "data"):
            raise failed(route, content)
        items = data["data"]
        if not isinstance(items, list):
            raise TypeError
    except MALFORMED:
        raise invalid(route) from None
    return data, items


def image_urls(items: list) -> list[str]:
    """The URLs of the items that came as a link, not base64 (the provider ignored response_format)."""
    return [
        item["url"]
        for item in items
        if isinstance(item, dict) and not item.get("b64_json") and isinstance(item.get("url"), str)
    ]


def image_result(route, body: dict, data: dict, items: list, fetched: dict) -> ImageResult:
    """The images (base64; `fetched` has the bytes of each linked one) and their usage: per image, plus tokens."""
    images = []
    for item in items:
        b64 = item.get("b64_json") if isinstance(item, dict) else None
        if not b64 and isinstance(item, dict) and isinstance(item.get("url"), str):
            b64 = base64.b64encode(fetched[item["url"]]).decode()
        try:
            # The hub keeps the image and links to its copy: what it decodes must be base64 (a number or
            # an object there was a 500), and what it passes on beside it, text.
            base64.b64decode(string(b64, "b64_json"), validate=True)
            image = {"b64_json": b64}
            if item.get("revised_prompt"):
                image["revised_prompt"] = string(item["revised_prompt"], "revised_prompt")
        except MALFORMED:
            raise invalid(route) from None
        if not b64:
            raise invalid(route)
        images.append(image)
    reported, counts = data.get("usage"), Counts()
    size, quality = data.get("size") or body["size"], data.get("quality") or body["quality"]
    usage = counts.usage(
        Usage(
            counts.read(reported, "input_tokens"),
            counts.read(reported, "output_tokens"),
            images=len(images),
            image_tier=image_tier(str(size), str(quality)),
            image_input_tokens=counts.read(
                (reported or {}).get("input_tokens_details") if isinstance(reported, dict) else None, "image_tokens"
            ),
        )
    )
    if usage.invalid:
        # The images themselves are counted by the hub and billed as such; only the tokens are unknown.
        usage.prompt_tokens = usage.completion_tokens = usage.image_input_tokens = 0
        usage.estimated = True
    extra = {k: data[k] for k in ("background", "output_format", "quality", "size", "usage") if k in data}
    return ImageResult(images, usage, extra)
