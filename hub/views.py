"""The OpenAI-compatible API. Views parse and check; hub.relay does the work."""

import json
from datetime import timezone as dt_timezone

from django.core.exceptions import RequestDataTooBig
from django.http import HttpResponse, JsonResponse
from django.views.decorators.csrf import csrf_exempt
from rest_framework.exceptions import ValidationError

from . import catalogue
from .auth import authenticate
from .errors import BadRequest, HubError, MethodNotAllowed, ModelNotFound, PayloadTooLarge, error_response
from .relay import Call, chat_completion
from .relay import embeddings as relay_embeddings
from .relay import speech as relay_speech
from .serializers import ChatCompletionRequest, EmbeddingsRequest, SpeechRequest


def _json_body(request) -> dict:
    try:
        raw = request.body
    except RequestDataTooBig:
        raise PayloadTooLarge("The request body is larger than this hub accepts.") from None
    if not raw:
        raise BadRequest("The request body is empty; send a JSON object.")
    try:
        body = json.loads(raw)
    except (ValueError, UnicodeDecodeError) as exc:
        raise BadRequest(f"We could not parse the JSON body of your request: {exc}.") from None
    if not isinstance(body, dict):
        raise BadRequest("The request body must be a JSON object.")
    return body


def _first_error(errors, path: str = "") -> tuple[str, str]:
    """The first (param, message) of DRF's nested errors, param in OpenAI's style: messages[0].role."""
    if isinstance(errors, dict):
        key, value = next(iter(errors.items()))
        if key != "non_field_errors":
            key = f"[{key}]" if isinstance(key, int) else key
            path = f"{path}{key}" if key.startswith("[") else f"{path}.{key}" if path else key
        return _first_error(value, path)
    if isinstance(errors, list):
        for index, value in enumerate(errors):
            if isinstance(value, dict) and value:
                return _first_error(value, f"{path}[{index}]")
            if value:
                return _first_error(value, path)
    return path, str(errors)


def _validate(serializer, body: dict) -> None:
    try:
        serializer.run_validation(body)
    except ValidationError as exc:
        param, message = _first_error(exc.detail)
        raise BadRequest(f"Invalid '{param}': {message}", param=param, code="invalid_value") from None


def _endpoint(path: str, endpoint: str, serializer, serve):
    """A POST endpoint of the API: key, then body and validation (refusals recorded against the key), then `serve`.

    One serializer instance per endpoint, reused: building one deep-copies its
    fields, which cost 8x the validation itself; run_validation keeps no state
    on the instance and runs synchronously, so sharing it is safe.
    """

    @csrf_exempt
    async def view(request) -> HttpResponse:
        if request.method != "POST":
            return error_response(MethodNotAllowed(f"Use POST for {path}."))
        try:
            key = await authenticate(request)
        except HubError as error:
            return error_response(error)
        call = Call(key=key, endpoint=endpoint, model_name="", client_ip=request.META.get("REMOTE_ADDR", ""))
        try:
            body = _json_body(request)
            call.model_name = str(body.get("model") or "")[:200]
            _validate(serializer, body)
        except HubError as error:
            return call.fail(error)  # refused, but recorded against the key
        return await serve(call, body)

    return view


async def _chat(call: Call, body: dict) -> HttpResponse:
    call.stream = body.get("stream") is True
    return await chat_completion(call, body)


CHAT_REQUEST = ChatCompletionRequest()  # the bench's adrf view validates with it too
chat_completions = _endpoint("/v1/chat/completions", "chat.completions", CHAT_REQUEST, _chat)
embeddings = _endpoint("/v1/embeddings", "embeddings", EmbeddingsRequest(), relay_embeddings)
speech = _endpoint("/v1/audio/speech", "audio.speech", SpeechRequest(), relay_speech)


def _model_entry(model, name: str) -> dict:
    created = int(model.created_at.replace(tzinfo=model.created_at.tzinfo or dt_timezone.utc).timestamp())
    return {"id": name, "object": "model", "created": created, "owned_by": model.owned_by}


@csrf_exempt
async def models(request, model_id: str | None = None) -> HttpResponse:
    if request.method != "GET":
        return error_response(MethodNotAllowed("Use GET to list models."))
    try:
        await authenticate(request)
        snapshot = await catalogue.snapshot()
        if model_id is not None:
            model = snapshot.models.get(model_id)
            if model is None:
                raise ModelNotFound(f"The model `{model_id}` does not exist or you do not have access to it.",
                                    param="model")
            return JsonResponse(_model_entry(model, model_id))
    except HubError as error:
        return error_response(error)
    data = []
    for model in snapshot.listed:
        data.append(_model_entry(model, model.public_id))
        if model.alias:
            data.append(_model_entry(model, model.alias))
    return JsonResponse({"object": "list", "data": data})


@csrf_exempt
async def service_status(request) -> HttpResponse:
    if request.method != "GET":
        return error_response(MethodNotAllowed("Use GET for the status."))
    try:
        key = await authenticate(request)
    except HubError as error:
        return error_response(error)
    from .status import report

    body = await report(key)
    return JsonResponse(body, status=200 if body["status"] != "unavailable" else 503)


def server_error(request) -> HttpResponse:
    if request.path.startswith(("/v1/", "/api/")):
        return error_response(HubError("The hub failed to handle this request; it has been logged.", status=500,
                                       type="server_error", code="internal_error"))
    from django.views.defaults import server_error as page

    return page(request)


def not_found(request, exception=None) -> HttpResponse:
    if request.path.startswith(("/v1/", "/api/")):
        return error_response(HubError(f"Unknown request URL: {request.method} {request.path}.", status=404,
                                       code="unknown_url"))
    from django.views.defaults import page_not_found

    return page_not_found(request, exception)


def home(request) -> HttpResponse:
    from django.shortcuts import render

    base_url = request.build_absolute_uri("/v1")
    return render(request, "hub/home.html", {"base_url": base_url})
