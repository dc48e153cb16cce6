"""POST /v1/images/generations and /v1/images/edits: the request, read and checked against its model.

A request is normalised into one body every adapter reads: `prompt`, `n`,
`params` (size, quality, style and the like, as the client sent them),
`images` and `mask` for an edit (as (filename, bytes, content type)), and the
effective `size`, `quality` and price `tier`. Each model's family
(providers/adapters/images.py) says what it accepts; anything else is a 400
before any credit is held or any provider called.
"""

import base64
import binascii

from django.conf import settings
from django.http.multipartparser import MultiPartParserError

from providers.adapters import UpstreamError, get_adapter
from providers.adapters.images import FAMILIES, Family, image_tier
from providers.adapters.media import fetch_image

from .errors import BadRequest, PayloadTooLarge

PARAMS = ("size", "quality", "style")
# Keys of the normalised body that only the hub sets: a client's are dropped on reading.
INTERNAL = ("images", "params", "edit", "tier")
EXTRAS = frozenset().union(*(f.extras for f in FAMILIES.values()))
IMAGE_TYPES = {b"\x89PNG\r\n\x1a\n": "image/png", b"\xff\xd8\xff": "image/jpeg", b"RIFF": "image/webp"}
DEFAULT_MODEL = "dall-e-2"


def family_of(model) -> Family:
    route = model.routes[0]
    family = getattr(get_adapter(route.provider_kind), "image_family", None)
    return family(route.upstream_name) if family else FAMILIES["generic"]


def _sniff(data: bytes) -> str | None:
    for magic, mime in IMAGE_TYPES.items():
        if data.startswith(magic) and (mime != "image/webp" or data[8:12] == b"WEBP"):
            return mime
    return None


def upload(name: str, filename: str, data: bytes, param: str) -> tuple[str, bytes, str]:
    if len(data) > settings.HUB_MAX_UPLOAD_BYTES:
        raise PayloadTooLarge(
            f"The file in '{param}' is larger than {settings.HUB_MAX_UPLOAD_BYTES} bytes.", param=param
        )
    mime = _sniff(data)
    if mime is None:
        raise BadRequest(
            f"The file in '{param}' is not a PNG, JPEG or WebP image.", param=param, code="invalid_image_format"
        )
    return filename or f"{name}.{mime.split('/')[1]}", data, mime


def client_fields(body: dict) -> dict:
    """The body as the client sent it, without the keys only the hub may set."""
    for key in INTERNAL:
        body.pop(key, None)
    return body


def read_multipart(request) -> dict:
    """An edit sent as multipart/form-data (as the openai SDK sends it): fields, then files."""
    try:
        fields, files = request.POST, request.FILES
    except MultiPartParserError as exc:
        raise BadRequest(
            f"We could not parse the multipart body of your request: {exc}.", code="invalid_multipart"
        ) from None
    body = client_fields({name: fields.getlist(name) if name.endswith("[]") else fields.get(name) for name in fields})
    images = files.getlist("image") + files.getlist("image[]")
    body["images"] = [upload("image", f.name, f.read(), "image") for f in images]
    if "mask" in files:
        body["mask"] = upload("mask", files["mask"].name, files["mask"].read(), "mask")
    return body


async def load_json_images(body: dict) -> None:
    """The JSON form of an edit: `image` (and `mask`) as URLs, data: URLs or bare base64, one or a list."""
    value = body.get("image")
    if value is None and not body.get("images"):
        raise BadRequest("Missing required parameter: 'image'.", param="image", code="missing_required_parameter")
    if value is None:
        return
    items = value if isinstance(value, list) else [value]
    body["images"] = [await _decode(item, "image") for item in items]
    if body.get("mask") is not None and not isinstance(body["mask"], tuple):
        body["mask"] = await _decode(body["mask"], "mask")


async def _decode(item, param: str) -> tuple[str, bytes, str]:
    if isinstance(item, dict):  # {"image_url": "…"} as in OpenAI's newer JSON edits
        item = item.get("image_url") or item.get("url")
    if not isinstance(item, str) or not item:
        raise BadRequest(f"'{param}' must be an image URL or base64 data.", param=param, code="invalid_value")
    if item.startswith(("http://", "https://", "data:")):
        try:
            _, data = await fetch_image(item)
        except UpstreamError as error:
            raise BadRequest(error.message, param=param, code="invalid_image") from None
    else:
        try:
            data = base64.b64decode(item, validate=True)
        except (binascii.Error, ValueError):
            raise BadRequest(
                f"'{param}' is neither an image URL nor valid base64 data.", param=param, code="invalid_image"
            ) from None
    return upload(param, "", data, param)


def prepare(model, body: dict, name: str) -> None:
    """Check the request against the model's family; set `params`, `size`, `quality` and `tier`."""
    family = family_of(model)
    edit = bool(body.get("edit"))
    if body.get("stream") not in (None, False, "false"):
        raise BadRequest(
            "Streamed image generation is not supported by this hub; leave 'stream' unset.",
            param="stream",
            code="unsupported_parameter",
        )
    prompt = body.get("prompt")
    if not isinstance(prompt, str) or not prompt.strip():
        raise BadRequest("Missing required parameter: 'prompt'.", param="prompt", code="missing_required_parameter")
    if len(prompt) > family.max_prompt:
        raise BadRequest(
            f"The prompt is too long for `{name}`: at most {family.max_prompt} characters.",
            param="prompt",
            code="string_above_max_length",
        )
    n = body.get("n") or 1
    if n > family.max_n:
        raise BadRequest(
            f"`{name}` makes at most {family.max_n} image{'s' * (family.max_n > 1)} per request; you asked for {n}.",
            param="n",
            code="invalid_value",
        )
    params = body.setdefault("params", {k: body[k] for k in (*PARAMS, *EXTRAS) if body.get(k) is not None})
    if family.name != "generic":
        _check_choice(name, "size", params.get("size"), family.sizes)
        _check_choice(name, "quality", params.get("quality"), family.qualities)
        _check_choice(name, "style", params.get("style"), family.styles)
        for extra in EXTRAS - family.extras:
            if extra in params:
                raise BadRequest(f"`{name}` does not support '{extra}'.", param=extra, code="unsupported_parameter")
    if edit:
        images = body.get("images") or []
        if not family.max_edit_images:
            raise BadRequest(
                f"`{name}` cannot edit images; use /v1/images/generations.", param="model", code="unsupported_model"
            )
        if not images:
            raise BadRequest("Missing required parameter: 'image'.", param="image", code="missing_required_parameter")
        if len(images) > family.max_edit_images:
            raise BadRequest(
                f"`{name}` edits at most {family.max_edit_images} image(s) at once.",
                param="image",
                code="invalid_value",
            )
        if body.get("mask") and not family.mask:
            raise BadRequest(f"`{name}` does not take a mask.", param="mask", code="unsupported_parameter")
    body.update(
        n=n,
        edit=edit,
        images=body.get("images") or [],
        mask=body.get("mask"),
        response_format=body.get("response_format") or "url",
    )
    size = params.get("size") or family.default_size
    quality = params.get("quality") or family.default_quality
    body["size"], body["quality"] = size, quality
    # "auto" is decided by the provider: the tier is known from its answer (and held at the dearest).
    body["tier"] = "" if "auto" in (size, quality) else image_tier(size, quality)


def _check_choice(name: str, param: str, value, allowed) -> None:
    if value is None or allowed is None:
        return
    if not allowed:
        raise BadRequest(f"`{name}` does not support '{param}'.", param=param, code="unsupported_parameter")
    if value not in allowed:
        raise BadRequest(
            f"Invalid '{param}' {value!r} for `{name}`: use one of {', '.join(sorted(allowed))}.",
            param=param,
            code="invalid_value",
        )
