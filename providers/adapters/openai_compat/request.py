"""The request an OpenAI-compatible API gets: the hub's body with the route's model name, cap and headers (pure)."""

import json

from providers.presets import get_preset

from .. import transport
from ..errors import no_credential


def headers(route, accept: str) -> dict:
    """Every call's headers: the credential (refused early if the API needs one and there is none) and the preset's."""
    preset = get_preset(route.preset)
    if preset.needs_key and not route.secret:
        raise no_credential(route.provider_name)
    out = {"content-type": "application/json", "accept": accept}
    if route.secret:
        out["authorization"] = f"Bearer {route.secret}"
    out.update(preset.extra_headers)
    return out


def payload(route, body: dict) -> bytes:
    """`body` as sent, naming the route's upstream model."""
    return json.dumps(dict(body, model=route.upstream_name), separators=(",", ":")).encode()


def chat_request(route, body: dict, stream: bool) -> tuple[str, bytes, dict]:
    """(URL, bytes, headers) of a chat completion: usage asked for on streams, one output cap under the API's name."""
    sent_headers = headers(route, "text/event-stream" if stream else "application/json")
    preset = get_preset(route.preset)
    body = dict(body, model=route.upstream_name)
    if stream and preset.stream_usage:
        # Ask for usage even if the client did not: a stream must be metered.
        body["stream_options"] = dict(body.get("stream_options") or {}, include_usage=True)
    # One output cap, under the name this API honours (an unknown name is ignored: no cap at all), never
    # above the model's: the hub's credit hold counts on it.
    limit = transport.max_tokens(route, body)
    body.pop("max_tokens", None)
    body.pop("max_completion_tokens", None)
    if limit:
        body[preset.max_tokens_field] = limit
    return f"{route.base_url}/chat/completions", json.dumps(body, separators=(",", ":")).encode(), sent_headers
