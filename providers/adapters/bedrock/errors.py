"""AWS errors (x-amzn-errortype and a JSON body, or an event stream's exception frame) as the hub's: pure."""

import json
import re

from ..base import UpstreamError

# ValidationException wording for an over-long prompt varies by model family.
TOO_LONG = re.compile(
    r"too long|too many (input )?tokens|input tokens exceed|exceeds? the (maximum|context)|"
    r"context (length|window)",
    re.IGNORECASE,
)
AUTH_ERRORS = {
    "accessdeniedexception",
    "unrecognizedclientexception",
    "invalidsignatureexception",
    "incompletesignatureexception",
    "missingauthenticationtokenexception",
    "expiredtokenexception",
    "invalidclienttokenid",
    "signaturedoesnotmatch",
}


def aws_error(kind: str, status: int, message: str, provider: str, retry_after: str | None = None) -> UpstreamError:
    """An AWS error (x-amzn-errortype, or an event stream's :exception-type) as the hub's error."""
    kind = kind.split(":")[0].lower()  # "ThrottlingException:http://internal.amazon.com/coral/…"
    if kind in AUTH_ERRORS or status in (401, 403):
        # Never echo the provider's words here: they can quote the credential.
        return UpstreamError(
            f"The provider '{provider}' rejected the hub's credential.",
            status=502,
            code="upstream_auth_failed",
            retryable=True,
        )
    if kind in ("serviceunavailableexception", "modelnotreadyexception") or status == 503:
        # ModelNotReadyException comes as a 429, but it is not a rate limit.
        return UpstreamError(
            message or f"The provider '{provider}' is overloaded.",
            status=503,
            type="server_error",
            code="upstream_overloaded",
            retryable=True,
        )
    if kind == "throttlingexception" or status == 429:
        return UpstreamError(
            message or "Rate limited by the provider.",
            status=429,
            type="rate_limit_error",
            code="rate_limit_exceeded",
            retryable=True,
            retry_after=retry_after,
        )
    if kind == "validationexception" and TOO_LONG.search(message):
        return UpstreamError(message, status=400, type="invalid_request_error", code="context_length_exceeded")
    if kind == "modeltimeoutexception" or status == 408:
        return UpstreamError(
            f"The provider '{provider}' timed out.", status=504, code="upstream_timeout", retryable=True
        )
    if kind == "resourcenotfoundexception" or status == 404:
        return UpstreamError(
            f"The provider '{provider}' does not know this model: {message}",
            status=502,
            code="upstream_model_not_found",
        )
    if kind in ("internalserverexception", "modelstreamerrorexception", "modelerrorexception") or status >= 500:
        # ModelErrorException (424) is the model failing, not the request being wrong.
        return UpstreamError(
            f"The provider '{provider}' failed: {message}".rstrip(": "),
            status=502,
            code="upstream_error",
            retryable=True,
        )
    return UpstreamError(message or "The provider refused the request.", status=400, type="invalid_request_error")


def error_from_response(status: int, content: bytes, headers, provider: str) -> UpstreamError:
    """The hub's error for a failed answer of `status` with body `content`."""
    try:
        data = json.loads(content)
    except ValueError:
        data = None
    data = data if isinstance(data, dict) else {}
    kind = headers.get("x-amzn-errortype") or str(data.get("__type") or "")
    message = str(data.get("message") or data.get("Message") or content[:300].decode(errors="replace"))[:1000]
    return aws_error(kind, status, message, provider, headers.get("retry-after"))


def invalid(provider: str) -> UpstreamError:
    """The provider's answer is not one the API documents."""
    return UpstreamError(
        f"The provider '{provider}' sent an answer that is not valid.", code="upstream_invalid_response"
    )
