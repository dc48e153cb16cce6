"""Errors in OpenAI's shape: {"error": {"message", "type", "param", "code"}}."""

import json
import logging

from django.http import HttpResponse
from rest_framework.response import Response
from rest_framework.views import exception_handler

from accounts.errors import DomainError, Forbidden, NotFound, Unavailable


class HubError(Exception):
    status = 400
    type = "invalid_request_error"
    code: str | None = None
    outcome: str | None = None  # the usage record's status, when not the client's error
    log_level: int | None = None  # logged by the relay at this level, instead of by Django's request log

    def __init__(
        self,
        message: str,
        *,
        code: str | None = None,
        param: str | None = None,
        status: int | None = None,
        type: str | None = None,
        headers: dict | None = None,
    ):
        super().__init__(message)
        self.message = message
        self.param = param
        self.headers = headers or {}
        if code is not None:
            self.code = code
        if status is not None:
            self.status = status
        if type is not None:
            self.type = type

    def body(self) -> dict:
        return {"error": {"message": self.message, "type": self.type, "param": self.param, "code": self.code}}


class BadRequest(HubError):
    status = 400


class AuthenticationFailed(HubError):
    status = 401
    code = "invalid_api_key"


class InsufficientQuota(HubError):
    status = 402
    type = "insufficient_quota"
    code = "insufficient_quota"


class ModelNotFound(HubError):
    status = 404
    code = "model_not_found"


class MethodNotAllowed(HubError):
    status = 405
    code = "method_not_allowed"


class PayloadTooLarge(HubError):
    status = 413
    code = "request_too_large"


class InternalError(HubError):
    status = 500
    type = "server_error"
    code = "internal_error"


class ServiceUnavailable(HubError):
    status = 503
    type = "server_error"
    code = "service_unavailable"


class RateLimited(HubError):
    status = 429
    type = "rate_limit_error"
    code = "rate_limit_exceeded"


# When no route can be tried, the answer says why: a provider's rate limit is a
# 429 (SDKs wait and retry, and nobody is paged), an outage a 503; both say when
# a route returns. Each is stored as what it is, not as the client's error.
class RoutesRateLimited(RateLimited):
    outcome = "rate_limited"
    log_level = logging.WARNING


class NoRouteAvailable(ServiceUnavailable):
    code = "no_route_available"
    outcome = "unavailable"
    log_level = logging.ERROR


class RoutesBusy(ServiceUnavailable):
    # The operator's own caps doing their work: worth a warning, not an alarm.
    code = "routes_busy"
    outcome = "unavailable"
    log_level = logging.WARNING


def from_domain(exc: DomainError) -> HubError:
    """An app's refusal (accounts/errors.py) as the answer it gets here."""
    if isinstance(exc, Forbidden):
        return HubError(exc.message, code=exc.code, param=exc.param, status=403, type="permission_error")
    if isinstance(exc, NotFound):
        return HubError(exc.message, code=exc.code, param=exc.param, status=404)
    if isinstance(exc, Unavailable):
        return HubError(exc.message, code=exc.code, param=exc.param, status=503, type="server_error")
    return HubError(exc.message, code=exc.code, param=exc.param, status=400)


def error_response(error: HubError, request_id: str | None = None) -> HttpResponse:
    response = HttpResponse(json.dumps(error.body()), status=error.status, content_type="application/json")
    for name, value in error.headers.items():
        response[name] = value
    if request_id:
        response["x-request-id"] = request_id
    return response


def drf_exception_handler(exc, context):
    """DRF errors (management API, validation) in the same shape as the gateway's."""
    if isinstance(exc, DomainError):
        exc = from_domain(exc)
    if isinstance(exc, HubError):
        return Response(exc.body(), status=exc.status, headers=exc.headers)
    response = exception_handler(exc, context)
    if response is None:
        return None
    detail = response.data
    message, param = _first_message(detail)
    code = getattr(exc, "default_code", None)
    kind = "invalid_request_error" if response.status_code < 500 else "server_error"
    response.data = {"error": {"message": message, "type": kind, "param": param, "code": code}}
    return response


def _first_message(detail, param=None):
    if isinstance(detail, dict):
        if "detail" in detail:
            return str(detail["detail"]), param
        key, value = next(iter(detail.items()))
        return _first_message(value, key if param is None else f"{param}.{key}")
    if isinstance(detail, list) and detail:
        return _first_message(detail[0], param)
    return (f"{param}: {detail}" if param else str(detail)), param
