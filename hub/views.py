"""The OpenAI-compatible API. Views parse and check; hub.relay does the work."""

import asyncio
import hashlib
import json
import re
import uuid
from types import SimpleNamespace

from django.conf import settings
from django.core.exceptions import DisallowedHost, RequestDataTooBig, TooManyFieldsSent, TooManyFilesSent
from django.http import HttpResponse, HttpResponseBase, JsonResponse
from django.shortcuts import render
from django.views import defaults
from django.views.decorators.csrf import csrf_exempt
from rest_framework.exceptions import ValidationError

from accounts.addresses import client_address

from . import accesslog, audio, catalogue, images, listing, media, messages, metrics, openapi
from .auth import authenticate
from .errors import BadRequest, HubError, MethodNotAllowed, PayloadTooLarge, error_response
from .relay import Call, chat_completion
from .relay import embeddings as relay_embeddings
from .relay import images as relay_images
from .relay import speech as relay_speech
from .relay import transcription as relay_transcription
from .serializers import ChatCompletionRequest, EmbeddingsRequest, ImageRequest, SpeechRequest
from .status import report

# JSON deeper than this is refused before anything walks it: the serializers, the adapters and json.dumps
# all recurse, and Python's recursion limit would end such a request in a RecursionError (a 500, no record).
MAX_JSON_DEPTH = 64
# Decoded strictly as UTF-8 (json.loads of bytes would let encoded surrogates through), a body can carry a
# lone surrogate only as a \uD800-\uDFFF escape: one without such an escape needs no walk for them.
_SURROGATE_ESCAPE = re.compile(r"\\u[dD][89a-fA-F]")
_SURROGATE = re.compile("[\ud800-\udfff]")


def _json_body(request) -> dict:
    try:
        raw = request.body
    except RequestDataTooBig:
        raise PayloadTooLarge("The request body is larger than this hub accepts.") from None
    if not raw:
        raise BadRequest("The request body is empty; send a JSON object.", code="empty_body")
    try:
        text = raw.decode("utf-8-sig")
        body = json.loads(text)
    except RecursionError:
        raise _too_deep() from None
    except ValueError as exc:  # UnicodeDecodeError too
        raise BadRequest(f"We could not parse the JSON body of your request: {exc}.", code="invalid_json") from None
    if not isinstance(body, dict):
        raise BadRequest("The request body must be a JSON object.", code="invalid_json")
    deep = text.count("[") + text.count("{") > MAX_JSON_DEPTH  # fewer brackets cannot nest deeper
    if deep or _SURROGATE_ESCAPE.search(text):
        _check_tree(body)
    return body


def _too_deep() -> BadRequest:
    return BadRequest(f"The JSON body is nested more than {MAX_JSON_DEPTH} levels deep.", code="json_too_deep")


def _check_tree(body: dict) -> None:
    """Refuse JSON nested deeper than MAX_JSON_DEPTH, or with a lone surrogate in any key or string (not
    Unicode: neither the database nor a provider takes it). Walked with a stack, never by recursion."""
    stack: list[tuple[dict | list, int, tuple]] = [(body, 1, ())]
    while stack:
        node, depth, path = stack.pop()
        if depth > MAX_JSON_DEPTH:
            raise _too_deep()
        for key, value in node.items() if isinstance(node, dict) else enumerate(node):
            if isinstance(value, (dict, list)):
                stack.append((value, depth + 1, (*path, key)))
            elif isinstance(value, str) and _SURROGATE.search(value):
                raise _lone_surrogate((*path, key))
            if isinstance(key, str) and _SURROGATE.search(key):
                raise _lone_surrogate((*path, key))


def _lone_surrogate(path: tuple) -> BadRequest:
    # The key itself may hold the surrogate: escaped, or the refusal could not be recorded (nor sent).
    param = _param_of(path).encode("utf-8", "backslashreplace").decode()
    return BadRequest(
        f"Invalid '{param}': it contains a lone UTF-16 surrogate, which is not valid Unicode.",
        param=param,
        code="invalid_unicode",
    )


def _param_of(path: tuple) -> str:
    """A path in OpenAI's style: messages[0].content."""
    param = ""
    for key in path:
        param += f"[{key}]" if isinstance(key, int) else f".{key}" if param else str(key)
    return param


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


def _validate(serializer, body: dict) -> dict:
    try:
        return serializer.run_validation(body)
    except ValidationError as exc:
        param, message = _first_error(exc.detail)
        raise BadRequest(f"Invalid '{param}': {message}", param=param, code="invalid_value") from None


def _plainly_valid(serializer, body: dict) -> bool:
    """The serializer's own quick check (hub/serializers.py), where it has one: its True spares DRF's run."""
    check = getattr(serializer, "plainly_valid", None)
    return check is not None and check(body)


def _unauthenticated(error: HubError, endpoint: str) -> HttpResponse:
    """No organisation to record it against: the request line and the metrics count it."""
    request_id = f"req_{uuid.uuid4().hex}"
    accesslog.request_unauthenticated(request_id, endpoint, error.status, error.code)
    metrics.unauthenticated(endpoint, error.status)
    return error_response(error, request_id)


def _endpoint(
    path: str, endpoint: str, serializer, serve, *, reader=_json_body, coerce: bool = False, default_model: str = ""
):
    """A POST endpoint of the API: key, then body and validation (refusals recorded against the key), then `serve`.

    `reader(request)` gives the body (JSON by default). With `coerce` the
    serializer's values replace the sent ones (multipart sends numbers as
    text); otherwise the body passes on exactly as sent.

    One serializer instance per endpoint, reused: building one deep-copies its
    fields, which cost 8x the validation itself; run_validation keeps no state
    on the instance and runs synchronously, so sharing it is safe.
    """

    metrics.ENDPOINTS.add(endpoint)

    @csrf_exempt
    async def view(request) -> HttpResponse:
        if request.method != "POST":
            return error_response(MethodNotAllowed(f"Use POST for {path}.", headers={"Allow": "POST"}))
        try:
            key = await authenticate(request)
        except HubError as error:
            return _unauthenticated(error, endpoint)
        call = Call(
            key=key, endpoint=endpoint, model_name="", client_ip=client_address(request), headers=request.headers
        )
        try:
            # JSON is read on the loop (it is small and the hot path); uploads are parsed, decoded and
            # measured in a thread, so a 25 MB multipart body never stalls the streams of this worker.
            body = reader(request) if reader in _ON_LOOP else await asyncio.to_thread(reader, request)
            call.model_name = str(body.get("model") or default_model)[:200]
            if serializer is not None and coerce:
                body.update(_validate(serializer, body))
            elif serializer is not None and not _plainly_valid(serializer, body):
                _validate(serializer, body)  # refuses it, or accepts what the quick check left to it
            if default_model:  # the image endpoints: a model by default, and links back to this hub
                body["model"] = call.model_name
                call.origin = settings.HUB_PUBLIC_URL.rstrip("/") or f"{request.scheme}://{request.get_host()}"
        except HubError as error:
            return call.fail(error)  # refused, but recorded against the key
        except (TooManyFieldsSent, TooManyFilesSent):
            # Django's own refusals of a form would be an HTML page with no record.
            return call.fail(
                BadRequest(
                    f"The form has too many fields or files (at most {settings.DATA_UPLOAD_MAX_NUMBER_FIELDS} fields "
                    f"and {settings.DATA_UPLOAD_MAX_NUMBER_FILES} files).",
                    code="too_many_fields",
                )
            )
        except RequestDataTooBig:
            return call.fail(PayloadTooLarge("The request body is larger than this hub accepts."))
        except DisallowedHost:
            return call.fail(
                BadRequest("The Host header of this request is not one this hub serves.", code="invalid_host")
            )
        return await serve(call, body)

    return view


def _read_generation(request) -> dict:
    return images.client_fields(_json_body(request))


def _read_edit(request) -> dict:
    if request.content_type.startswith("multipart/form-data"):
        body = images.read_multipart(request)
    elif request.content_type in ("application/json", ""):
        body = images.client_fields(_json_body(request))
    else:
        raise BadRequest(
            "Send the edit as multipart/form-data (or as JSON with an 'image' field).", code="invalid_content_type"
        )
    body["edit"] = True
    return body


async def _images(call: Call, body: dict) -> HttpResponseBase:
    if body.get("edit"):
        try:
            await images.load_json_images(body)
        except HubError as error:
            return call.fail(error)
    return await relay_images(call, body)


async def _chat(call: Call, body: dict) -> HttpResponseBase:
    call.stream = body.get("stream") is True
    return await chat_completion(call, body)


CHAT_REQUEST = ChatCompletionRequest()  # the bench's adrf view validates with it too
IMAGE_REQUEST = ImageRequest()
chat_completions = _endpoint("/v1/chat/completions", "chat.completions", CHAT_REQUEST, _chat)
embeddings = _endpoint("/v1/embeddings", "embeddings", EmbeddingsRequest(), relay_embeddings)
speech = _endpoint("/v1/audio/speech", "audio.speech", SpeechRequest(), relay_speech)
image_generations = _endpoint(
    "/v1/images/generations",
    "images.generations",
    IMAGE_REQUEST,
    _images,
    reader=_read_generation,
    coerce=True,
    default_model=images.DEFAULT_MODEL,
)
image_edits = _endpoint(
    "/v1/images/edits",
    "images.edits",
    IMAGE_REQUEST,
    _images,
    reader=_read_edit,
    coerce=True,
    default_model=images.DEFAULT_MODEL,
)
transcriptions = _endpoint(
    "/v1/audio/transcriptions",
    "audio.transcriptions",
    None,
    relay_transcription,
    reader=lambda request: audio.read(request, "transcribe"),
)


def _read_messages(request) -> dict:
    return messages.read(_json_body(request), request.headers)


_ON_LOOP = (_json_body, _read_messages)
# Anthropic's Messages API (hub/messages.py), its refusals in Anthropic's shape.
anthropic_messages = messages.anthropic_errors(
    _endpoint("/v1/messages", "messages", None, messages.create, reader=_read_messages)
)
count_tokens = messages.anthropic_errors(
    _endpoint("/v1/messages/count_tokens", "messages.count_tokens", None, messages.count_tokens, reader=_read_messages)
)
translations = _endpoint(
    "/v1/audio/translations",
    "audio.translations",
    None,
    relay_transcription,
    reader=lambda request: audio.read(request, "translate"),
)


async def refuse_too_large(scope) -> tuple[int, list, bytes]:
    """The 413 for a body over HUB_MAX_BODY_BYTES, refused unread by hub/asgi.py: recorded against the key if
    the request carries a valid one, so no refusal goes unrecorded."""
    error = PayloadTooLarge(f"The request body is larger than this hub accepts ({settings.HUB_MAX_BODY_BYTES} bytes).")
    headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope.get("headers") or ()}
    endpoint = scope["path"].removeprefix("/v1/").removeprefix("/api/").strip("/").replace("/", ".")[:50]
    try:
        key = await authenticate(SimpleNamespace(headers=headers))
    except HubError as refused:
        response = _unauthenticated(refused, endpoint)
    else:
        call = Call(key=key, endpoint=endpoint, model_name="", client_ip=(scope.get("client") or ("",))[0])
        response = call.fail(error)
    if endpoint.startswith("messages"):
        response = messages.refusal(response)
    return response.status_code, [(k.encode(), v.encode()) for k, v in response.items()], response.content


async def image_file(request, name: str) -> HttpResponse:
    """GET /v1/files/images/<name>?signature=…: a generated image, while its signed link is valid."""
    if request.method not in ("GET", "HEAD"):
        return error_response(MethodNotAllowed("Use GET for an image.", headers={"Allow": "GET, HEAD"}))
    found = await asyncio.to_thread(media.open_signed, name, request.GET.get("signature", ""))
    if found is None:
        return error_response(
            HubError(
                "This image link is invalid or has expired (links last one hour).", status=404, code="file_not_found"
            )
        )
    data, content_type = found
    response = HttpResponse(data, content_type=content_type)
    # Cached no longer than the link is valid, so an expired link is not served from a cache either.
    left = media.seconds_left(name)
    response["cache-control"] = f"private, max-age={left}"
    return response


@csrf_exempt
async def models(request, model_id: str | None = None) -> HttpResponse:
    """The models the key may use (hub/listing.py); one of them, or a 404 like an unknown model's."""
    if request.method != "GET":
        return error_response(MethodNotAllowed("Use GET to list models.", headers={"Allow": "GET"}))
    try:
        key = await authenticate(request)
        snapshot = await catalogue.snapshot()
        if model_id is not None:
            return JsonResponse(listing.model_of(snapshot, key, model_id))
    except HubError as error:
        return error_response(error)
    return JsonResponse({"object": "list", "data": listing.models_of(snapshot, key)})


@csrf_exempt
async def service_status(request) -> HttpResponse:
    if request.method != "GET":
        return error_response(MethodNotAllowed("Use GET for the status.", headers={"Allow": "GET"}))
    try:
        key = await authenticate(request)
    except HubError as error:
        return error_response(error)
    body = await report(key)
    return JsonResponse(body, status=200 if body["status"] != "unavailable" else 503)


@csrf_exempt
async def openapi_document(request) -> HttpResponse:
    """GET /v1/openapi.json: the gateway API (hub/openapi.py), public and cacheable."""
    if request.method not in ("GET", "HEAD"):
        return error_response(MethodNotAllowed("Use GET for the OpenAPI document.", headers={"Allow": "GET, HEAD"}))
    body = json.dumps(openapi.document(), separators=(",", ":")).encode()
    etag = f'"{hashlib.sha256(body).hexdigest()[:32]}"'
    if etag in request.headers.get("if-none-match", ""):
        response = HttpResponse(status=304)
    else:
        response = HttpResponse(body, content_type="application/json")
    response["etag"] = etag
    response["cache-control"] = "public, max-age=300"
    response["access-control-allow-origin"] = "*"  # for tools that load it from another origin
    return response


def server_error(request) -> HttpResponse:
    if request.path.startswith(("/v1/", "/api/")):
        return error_response(
            HubError(
                "The hub failed to handle this request; it has been logged.",
                status=500,
                type="server_error",
                code="internal_error",
            )
        )
    return defaults.server_error(request)


def not_found(request, exception=None) -> HttpResponse:
    if request.path.startswith(("/v1/", "/api/")):
        return error_response(
            HubError(f"Unknown request URL: {request.method} {request.path}.", status=404, code="unknown_url")
        )
    return defaults.page_not_found(request, exception)


def home(request) -> HttpResponse:
    base_url = request.build_absolute_uri("/v1")
    return render(request, "hub/home.html", {"base_url": base_url})
