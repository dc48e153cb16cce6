"""Google RPC errors ({"error": {"code", "message", "status", "details"}}) as the hub's: pure functions."""

import json
import math
import re

from ..base import UpstreamError
from ..errors import credential_rejected, failed, model_unknown, overloaded, rate_limited, refused, timed_out

KEY_REASONS = {"API_KEY_INVALID", "API_KEY_EXPIRED", "API_KEY_SERVICE_BLOCKED", "API_KEY_HTTP_REFERRER_BLOCKED"}
TOO_LONG = re.compile(r"token count|maximum number of tokens|too many tokens|context (length|window)", re.I)


def retry_delay(details) -> str | None:
    """The whole seconds of a google.rpc.RetryInfo among an error's details, if there is one."""
    for detail in details if isinstance(details, list) else []:
        if isinstance(detail, dict) and str(detail.get("@type", "")).endswith("google.rpc.RetryInfo"):
            match = re.fullmatch(r"(\d+(?:\.\d+)?)s", str(detail.get("retryDelay", "")))
            if match:
                return str(math.ceil(float(match.group(1))))
    return None


def invalid(provider: str, what: str) -> UpstreamError:
    """The provider's answer is not one: "The provider '…' {what}."."""
    return UpstreamError(f"The provider '{provider}' {what}.", code="upstream_invalid_response")


def error_from_response(status: int, content: bytes, headers, provider: str) -> UpstreamError:
    """The hub's error for a failed answer (or a stream's error event) of `status` with body `content`."""
    try:
        data = json.loads(content)
        error = (data[0] if isinstance(data, list) and data else data).get("error")  # a JSON-array stream too
    except (ValueError, AttributeError, TypeError):
        error = None
    if not isinstance(error, dict):
        error = {"message": content[:300].decode(errors="replace")}
    message, state = str(error.get("message") or "")[:1000], str(error.get("status") or "")
    details = error.get("details")
    if not isinstance(details, list):
        details = []
    reasons = {d.get("reason") for d in details if isinstance(d, dict)}
    if (
        status in (401, 403)
        or state in ("UNAUTHENTICATED", "PERMISSION_DENIED")
        or reasons & KEY_REASONS
        or (status == 400 and "api key" in message.lower())
    ):
        # Never echo Google's words here: they can quote the hub's key.
        return credential_rejected(provider)
    if status == 429 or state == "RESOURCE_EXHAUSTED":
        return rate_limited(message, headers.get("retry-after") or retry_delay(details))
    if status == 503 or state == "UNAVAILABLE":
        return overloaded(provider, message)
    if status in (408, 504) or state == "DEADLINE_EXCEEDED":
        return timed_out(provider)
    if status == 404:
        return model_unknown(provider, message)
    if 400 <= status < 500:
        code = "context_length_exceeded" if TOO_LONG.search(message) else None
        return refused(message, code)
    return failed(provider, status, message)
