"""A request that needs what its model lacks is refused before any upstream call."""

from django.conf import settings

from .errors import BadRequest
from .images import prepare


def _has_image(messages) -> bool:
    for message in messages:
        content = message.get("content") if isinstance(message, dict) else None
        if isinstance(content, list) and any(isinstance(p, dict) and p.get("type") == "image_url" for p in content):
            return True
    return False


def check(model, body: dict, model_name: str) -> None:
    if model.kind == "image":
        return prepare(model, body, model_name)
    if model.kind == "chat":
        limit_output(model, body, model_name)
    if (body.get("tools") or body.get("functions")) and not model.supports_tools:
        raise BadRequest(
            f"The model `{model_name}` does not support tools.", param="tools", code="unsupported_parameter"
        )
    response_format = body.get("response_format")
    if (
        isinstance(response_format, dict)
        and response_format.get("type") in ("json_object", "json_schema")
        and not model.supports_json
    ):
        raise BadRequest(
            f"The model `{model_name}` does not support JSON mode (response_format).",
            param="response_format",
            code="unsupported_parameter",
        )
    if not model.supports_vision and _has_image(body.get("messages") or []):
        raise BadRequest(
            f"The model `{model_name}` does not accept images.", param="messages", code="unsupported_parameter"
        )


def limit_output(model, body: dict, model_name: str) -> None:
    """Leave the body with exactly one output cap, the one credit is held for and every route is sent.

    A request without one gets the model's (else HUB_DEFAULT_OUTPUT_HOLD): sent
    no cap, a provider writes as much as it likes, and the hold would not be a
    bound. With both fields, max_completion_tokens is the one that counts (as at
    OpenAI); max_tokens goes, so no provider can honour the other one.
    """
    cap = model.routes[0].max_output_tokens if model.routes else None  # one per model, the same on every route
    field = "max_completion_tokens" if body.get("max_completion_tokens") is not None else "max_tokens"
    asked = body.get(field)
    body.pop("max_completion_tokens" if field == "max_tokens" else "max_tokens", None)
    if asked is None:
        body["max_tokens"] = cap or settings.HUB_DEFAULT_OUTPUT_HOLD
    elif cap and asked > cap:
        raise BadRequest(
            f"`{field}` is too large: {asked}. The model `{model_name}` writes at most {cap} tokens; "
            f"ask for {cap} or fewer.",
            param=field,
            code="invalid_value",
        )
