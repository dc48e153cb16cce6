"""A request that needs what its model lacks is refused before any upstream call."""

from .errors import BadRequest


def _has_image(messages) -> bool:
    for message in messages:
        content = message.get("content") if isinstance(message, dict) else None
        if isinstance(content, list) and any(isinstance(p, dict) and p.get("type") == "image_url" for p in content):
            return True
    return False


def check(model, body: dict, model_name: str) -> None:
    if model.kind == "image":
        from .images import prepare

        return prepare(model, body, model_name)
    if (body.get("tools") or body.get("functions")) and not model.supports_tools:
        raise BadRequest(f"The model `{model_name}` does not support tools.", param="tools",
                         code="unsupported_parameter")
    response_format = body.get("response_format")
    if isinstance(response_format, dict) and response_format.get("type") in ("json_object", "json_schema") \
            and not model.supports_json:
        raise BadRequest(f"The model `{model_name}` does not support JSON mode (response_format).",
                         param="response_format", code="unsupported_parameter")
    if not model.supports_vision and _has_image(body.get("messages") or []):
        raise BadRequest(f"The model `{model_name}` does not accept images.", param="messages",
                         code="unsupported_parameter")
