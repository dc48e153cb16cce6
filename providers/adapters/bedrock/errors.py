"""AWS errors (x-amzn-errortype and a JSON body, or an event stream's exception frame) as the hub's: pure."""

import json
import re

from ..base import UpstreamError
from ..errors import credential_rejected, failed, model_unknown, overloaded, rate_limited, refused, timed_out

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
        return credential_rejected(provider)
    if kind in ("serviceunavailableexception", "modelnotreadyexception") or status == 503:
        # ModelNotReadyException comes as a 429, but it is not a rate limit.
        return overloaded(provider, message)
    if kind == "throttlingexception" or status == 429:
        return rate_limited(message, retry_after)
    if kind == "validationexception" and TOO_LONG.search(message):
        return refused(message, "context_length_exceeded")
    if kind == "modeltimeoutexception" or status == 408:
        return timed_out(provider)
    if kind == "resourcenotfoundexception" or status == 404:
        return model_unknown(provider, message)
    if kind in ("internalserverexception", "modelstreamerrorexception", "modelerrorexception") or status >= 500:
        # ModelErrorException (424) is the model failing, not the request being wrong.
        return failed(provider, "", message)
    return refused(message)


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
