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
        # Never echo the provider's words here: they quote the hub's own credential.
        return UpstreamError(
            f"The provider '{provider}' rejected the hub's credential.",
            status=502,
            code="upstream_auth_failed",
            retryable=True,
        )
    if status == 429 and code == "insufficient_quota":
        return UpstreamError(
            f"The provider '{provider}' has no quota left for the hub's credential.",
            status=502,
            code="upstream_quota_exhausted",
            retryable=True,
        )
    if status == 429:
        return UpstreamError(
            message or "Rate limited by the provider.",
            status=429,
            type="rate_limit_error",
            code=code or "rate_limit_exceeded",
            retryable=True,
            retry_after=retry_after,
        )
    if status in (400, 413, 422):
        return UpstreamError(
            message or "The provider refused the request.",
            status=400 if status == 422 else status,
            type="invalid_request_error",
            code=code,
            param=param,
            retryable=False,
        )
    if status == 404:
        return UpstreamError(
            f"The provider '{provider}' does not know this model: {message}",
            status=502,
            code="upstream_model_not_found",
            retryable=False,
        )
    if status in (503, 529):
        return UpstreamError(
            message or f"The provider '{provider}' is overloaded.",
            status=503,
            type="server_error",
            code="upstream_overloaded",
            retryable=True,
            retry_after=retry_after,
        )
    if status in (408, 504):
        return UpstreamError(
            f"The provider '{provider}' timed out.", status=504, code="upstream_timeout", retryable=True
        )
    return UpstreamError(
        f"The provider '{provider}' failed ({status}): {message}".rstrip(": "),
        status=502,
        code="upstream_error",
        retryable=status >= 500,
        retry_after=retry_after,
    )


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
