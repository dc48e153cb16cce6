"""POST /v1/messages and /v1/messages/count_tokens: Anthropic's Messages API, to any model of the catalogue.

A Messages request runs as the chat completion it translates to (hub/relay.py: the same policy, credit
hold, routing, fallbacks and metering); per route, an adapter that speaks Messages itself (`messages`)
is sent the client's own body, any other the chat body, its answer translated back
(providers/adapters/messages). Errors are Anthropic's shape and statuses.
"""

import json

from django.http import HttpResponse, HttpResponseBase, JsonResponse

from billing.models import UsageRecord
from providers.adapters import ChatResult, UpstreamError, Usage, get_adapter
from providers.adapters import messages as inbound
from providers.adapters.base import estimate_prompt_tokens, estimate_tokens

from . import catalogue, policy, relay, route_health, routing
from .errors import BadRequest, HubError

# The client's headers a native route is sent (providers/adapters/anthropic/native.py checks their values).
FORWARDED = ("anthropic-version", "anthropic-beta")


class MessagesBody(dict):
    """The request's JSON, and the client's headers that a native route is sent."""

    headers: dict[str, str]


def read(body: dict, headers) -> MessagesBody:
    read = MessagesBody(body)
    read.headers = {name: headers.get(name, "") for name in FORWARDED if headers.get(name)}
    return read


def _parse(body: MessagesBody, *, count_only: bool = False) -> inbound.Parsed:
    try:
        return inbound.parse(body, count_only=count_only)
    except inbound.Invalid as invalid:
        raise BadRequest(invalid.message, param=invalid.param, code="invalid_request") from None


def _operation(call: relay.Call, parsed: inbound.Parsed, headers: dict):
    async def operation(adapter, route):
        native = getattr(adapter, "messages", None)
        if native is not None:
            return await native(route, parsed.native, parsed.chat, headers, call.stream)
        if parsed.untranslatable:
            raise UpstreamError(
                f"The model's provider '{route.provider_name}' cannot take {', '.join(parsed.untranslatable)} "
                "(only Anthropic's own API can).",
                status=400,
                type="invalid_request_error",
                code="unsupported_parameter",
            )
        if call.stream:
            return inbound.MessagesStream(await adapter.chat_stream(route, parsed.chat, True), route.public_id)
        result = await adapter.chat(route, parsed.chat)
        return ChatResult(inbound.message(result.body, result.usage), result.usage)

    return operation


async def create(call: relay.Call, body: MessagesBody) -> HttpResponseBase:
    """POST /v1/messages."""
    try:
        parsed = _parse(body)
    except HubError as error:
        return call.fail(error)
    call.stream = parsed.stream
    # Cached answers are keyed on the request as sent (thinking, top_k, cache_control, beta headers change a
    # native answer), not on the chat body it was translated to.
    call.cache_material = {**parsed.native, "headers": dict(sorted(body.headers.items()))}
    return await relay.handle(call, parsed.chat, kind="chat", operation=_operation(call, parsed, body.headers))


async def count_tokens(call: relay.Call, body: MessagesBody) -> HttpResponseBase:
    """POST /v1/messages/count_tokens: the provider's own count where its adapter has one, else the hub's
    estimate (the one usage is estimated with), said so in x-hub-token-count. Free, but recorded."""
    try:
        parsed = _parse(body, count_only=True)
        call.model = model = await catalogue.resolve(call.model_name, kind="chat")
        await policy.admit(call.key, model, call.model_name, call.client_ip)
    except HubError as error:
        return call.fail(error)
    counted, source = None, "estimate"
    for route in await routing.order(model, route_health.store()):
        counter = getattr(get_adapter(route.provider_kind), "count_tokens", None)
        if counter is None:
            continue
        try:
            counted, source = await counter(route, body, parsed.chat, body.headers), "provider"
        except UpstreamError:
            continue  # the estimate will do: a count is not worth failing for
        call.route = route
        break
    if counted is None:
        chat = parsed.chat
        counted = estimate_prompt_tokens(chat) + estimate_tokens(len(json.dumps(chat.get("tools") or "")))
    call.record(UsageRecord.Status.OK, Usage())
    response = JsonResponse({"input_tokens": counted})
    response["x-request-id"] = call.request_id
    response["x-hub-token-count"] = source
    return response


def anthropic_errors(view):
    """The view, its refusals in Anthropic's shape: {"type": "error", "error": {"type", "message"}}."""

    async def wrapped(request, *args, **kwargs) -> HttpResponseBase:
        return as_anthropic(await view(request, *args, **kwargs))

    wrapped.csrf_exempt = True  # type: ignore[attr-defined]  # as the wrapped view is
    return wrapped


def as_anthropic(response: HttpResponseBase) -> HttpResponseBase:
    """A refusal of the OpenAI-shaped machinery, as Anthropic's status and body (headers kept)."""
    if response.status_code < 400 or not isinstance(response, HttpResponse):
        return response  # a stream's failures are error events (providers/adapters/messages/stream.py)
    return refusal(response)


def refusal(response: HttpResponse) -> HttpResponse:
    try:
        message = json.loads(response.content)["error"]["message"]
    except (ValueError, KeyError, TypeError):
        message = "The request failed."
    status = inbound.error_status(response.status_code)
    request_id = response.get("x-request-id")
    answer = HttpResponse(json.dumps(inbound.error_body(status, message, request_id)), status=status)
    answer["content-type"] = "application/json"
    for name, value in response.items():
        if name.lower() not in ("content-type", "content-length"):
            answer[name] = value
    if request_id:
        answer["request-id"] = request_id  # Anthropic's own header name; the SDK's errors show it
    if getattr(response, "_has_been_logged", False):
        answer._has_been_logged = True  # type: ignore[attr-defined]  # Django's own flag (log_response)
    return answer
