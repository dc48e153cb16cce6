"""Anthropic's errors ({"type": …, "message": …}, in a failed answer or an error event) as the hub's: pure."""

import json

from ..base import UpstreamError
from ..errors import (
    credential_rejected,
    failed,
    model_unknown,
    overloaded,
    quota_exhausted,
    rate_limited,
    refused,
    timed_out,
    upstream_message,
)


def map_error(error: dict, status: int | None, retry_after: str | None, provider: str) -> UpstreamError:
    """The hub's error for Anthropic's {"type": …, "message": …} (status None: an error event mid-stream)."""
    kind, message = error.get("type") or "", str(error.get("message") or "")[:1000]
    details = error.get("details")
    if not isinstance(details, dict):
        details = {}
    if status in (401, 403) or kind in ("authentication_error", "permission_error"):
        # Never echo the provider's words here: they may quote the hub's own credential.
        return credential_rejected(provider)
    if status == 402 or kind == "billing_error" or details.get("error_code") == "enforced_spend_limit_reached":
        return quota_exhausted(provider, "credit")
    if status == 429 or kind == "rate_limit_error":
        return rate_limited(message, retry_after)
    if status in (503, 529) or kind == "overloaded_error":
        return overloaded(provider, message or "Overloaded", retry_after)
    if status in (408, 504) or kind == "timeout_error":
        return timed_out(provider)
    if status == 404 or kind == "not_found_error":
        return model_unknown(provider, message)
    if (status is not None and 400 <= status < 500) or kind in ("invalid_request_error", "request_too_large"):
        lowered, code = message.lower(), None
        if "prompt is too long" in lowered or "exceed context limit" in lowered or "context window" in lowered:
            code = "context_length_exceeded"
        elif "content filtering" in lowered or "content policy" in lowered or "usage policy" in lowered:
            code = "content_policy_violation"
        return refused(message, code)
    return failed(provider, status or kind, message, retry_after=retry_after)


def error_from_response(status: int, content: bytes, headers, provider: str) -> UpstreamError:
    """The hub's error for a failed answer of `status` with body `content` (any body: a proxy may answer)."""
    try:
        error = json.loads(content).get("error")
    except (ValueError, AttributeError):
        error = None
    if not isinstance(error, dict):  # not Anthropic's shape: a proxy or load balancer answered
        error = {"message": upstream_message(content)[0]}
    return map_error(error, status, headers.get("retry-after"), provider)
