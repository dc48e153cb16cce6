"""Failures an OpenAI-compatible API reports beyond its status (providers/adapters/errors.py maps those): pure."""

import json

from ..base import UpstreamError
from ..errors import upstream_message


def failed(route, content: bytes) -> UpstreamError:
    """Some proxies (OpenRouter, gateways of gateways) report a failure as a 200 with an error body: not an
    answer to relay and bill, and its words may quote the credential. The same for every endpoint."""
    message, code, _ = upstream_message(content)
    return UpstreamError(
        f"The provider '{route.provider_name}' failed: {message}".rstrip(": "),
        code=code if isinstance(code, str) and code else "upstream_error",
        retryable=True,
    ).without(route.secret)


def is_error(data, answer_key: str) -> bool:
    """Whether a 200's parsed JSON body is an error rather than an answer (which carries `answer_key`)."""
    return isinstance(data, dict) and bool(data.get("error")) and answer_key not in data


def error_body(content: bytes, answer_key: str) -> bool:
    """Whether a 200's raw body is JSON that is an error rather than an answer."""
    try:
        return is_error(json.loads(content), answer_key)
    except (ValueError, RecursionError):
        return False


def invalid(route) -> UpstreamError:
    """The provider's answer is not the JSON its API documents."""
    return UpstreamError(
        f"The provider '{route.provider_name}' sent an answer that is not valid JSON.", code="upstream_invalid_response"
    )
