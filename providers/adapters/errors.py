"""How an OpenAI-style upstream failure becomes the hub's answer."""

import asyncio
import json

import aiohttp
import httpx

from .base import UpstreamError


def no_credential(provider: str, detail: str = "") -> UpstreamError:
    """The route's provider has no secret the hub can use: retryable, another route may have one."""
    return UpstreamError(
        f"The provider '{provider}' has no usable credential{detail}.",
        status=503,
        type="server_error",
        code="no_credential",
        retryable=True,
    )


# The hub's answer to each failure every provider family reports, in one place: the families differ only in
# how they recognise one (a status, an error type, a gRPC state), not in what the client then sees.


def credential_rejected(provider: str) -> UpstreamError:
    """Never with the provider's words: they can quote the hub's own credential."""
    return UpstreamError(
        f"The provider '{provider}' rejected the hub's credential.",
        status=502,
        code="upstream_auth_failed",
        retryable=True,
    )


def quota_exhausted(provider: str, what: str = "quota") -> UpstreamError:
    return UpstreamError(
        f"The provider '{provider}' has no {what} left for the hub's credential.",
        status=502,
        code="upstream_quota_exhausted",
        retryable=True,
    )


def rate_limited(message: str, retry_after: str | None = None, code: str | None = None) -> UpstreamError:
    return UpstreamError(
        message or "Rate limited by the provider.",
        status=429,
        type="rate_limit_error",
        code=code or "rate_limit_exceeded",
        retryable=True,
        retry_after=retry_after,
    )


def overloaded(provider: str, message: str = "", retry_after: str | None = None) -> UpstreamError:
    return UpstreamError(
        f"The provider '{provider}' is overloaded: {message}".rstrip(": "),
        status=503,
        type="server_error",
        code="upstream_overloaded",
        retryable=True,
        retry_after=retry_after,
    )


def timed_out(provider: str) -> UpstreamError:
    return UpstreamError(f"The provider '{provider}' timed out.", status=504, code="upstream_timeout", retryable=True)


def model_unknown(provider: str, message: str) -> UpstreamError:
    return UpstreamError(
        f"The provider '{provider}' does not know this model: {message}".rstrip(": "),
        status=502,
        code="upstream_model_not_found",
        retryable=False,
    )


def refused(message: str, code: str | None = None, status: int = 400, param: str | None = None) -> UpstreamError:
    """The request itself is wrong (the client's to fix): its words are the provider's."""
    return UpstreamError(
        message or "The provider refused the request.",
        status=status,
        type="invalid_request_error",
        code=code,
        param=param,
        retryable=False,
    )


def failed(
    provider: str, detail, message: str, retryable: bool = True, retry_after: str | None = None
) -> UpstreamError:
    """Any other failure; `detail` (a status or an error type) in brackets when there is one."""
    where = f" ({detail})" if detail else ""
    return UpstreamError(
        f"The provider '{provider}' failed{where}: {message}".rstrip(": "),
        status=502,
        code="upstream_error",
        retryable=retryable,
        retry_after=retry_after,
    )


def upstream_message(body: bytes) -> tuple[str, str | None, str | None]:
    """(message, code, param) from an OpenAI-shaped error body, or a text excerpt."""
    try:
        error = json.loads(body).get("error")
    except (ValueError, AttributeError):
        error = None
    if isinstance(error, dict):
        return str(error.get("message") or "")[:1000], error.get("code"), error.get("param")
    if isinstance(error, str):
        return error[:1000], None, None
    return body[:300].decode(errors="replace"), None, None


def from_status(status: int, body: bytes, headers: httpx.Headers | dict, provider: str) -> UpstreamError:
    message, code, param = upstream_message(body)
    retry_after = headers.get("retry-after")
    if status in (401, 403):
        return credential_rejected(provider)
    if status == 429 and code == "insufficient_quota":
        return quota_exhausted(provider)
    if status == 429:
        return rate_limited(message, retry_after, code)
    if status in (400, 413, 422):
        return refused(message, code, status=400 if status == 422 else status, param=param)
    if status == 404:
        return model_unknown(provider, message)
    if status in (503, 529):
        return overloaded(provider, message, retry_after)
    if status in (408, 504):
        return timed_out(provider)
    return failed(provider, status, message, retryable=status >= 500, retry_after=retry_after)


def from_transport(exc: Exception, provider: str) -> UpstreamError:
    # httpx-aiohttp maps every aiohttp connection error to ConnectTimeout, so
    # the original aiohttp exception (the cause) decides when there is one.
    cause = exc.__cause__
    if cause is not None:
        timed_out = isinstance(cause, (aiohttp.ServerTimeoutError, asyncio.TimeoutError))
        unreachable = isinstance(cause, aiohttp.ClientConnectorError)
    else:
        timed_out = isinstance(exc, httpx.TimeoutException)
        unreachable = isinstance(exc, httpx.ConnectError)
    if timed_out:
        return UpstreamError(
            f"The provider '{provider}' did not answer in time.", status=504, code="upstream_timeout", retryable=True
        )
    if unreachable:
        return UpstreamError(
            f"Could not connect to the provider '{provider}'.", status=502, code="upstream_unreachable", retryable=True
        )
    return UpstreamError(
        f"The connection to the provider '{provider}' failed.",
        status=502,
        code="upstream_connection_error",
        retryable=True,
    )
