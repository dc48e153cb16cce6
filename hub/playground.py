"""The dashboard's playground (/dashboard/playground/): chat with, or draw with, the models the organisation may use.

Every answer goes through the gateway's own handling of /v1/chat/completions and /v1/images/generations
(hub.relay, behind hub.views' checks), called in-process with the member's playground key
(accounts/playground.py): policy, credit holds, routing, metering and the log are exactly an API request's. The
key's secret never exists outside the moment it is made; the browser posts with its session and CSRF token.

A streamed answer is the gateway's own StreamingHttpResponse, passed through: when the browser's stop button
aborts the fetch, the ASGI handler sees the disconnect and the relay cancels upstream and bills what was produced,
as for any client. Without JavaScript the page's form posts and gets the whole answer, not streamed.

Views are async (the relay is); Django's session and auth middleware still run (the site stack, hub/asgi.py), so
the user is awaited (request.auser()) and the organisation is resolved in a thread by the dashboard's own rule
(accounts.dashboard.current_membership), as organization_required does for sync pages.
"""

import asyncio
import json
from functools import wraps
from typing import cast

from asgiref.sync import sync_to_async
from django import forms
from django.conf import settings
from django.contrib.auth.views import redirect_to_login
from django.core.cache import cache
from django.core.exceptions import PermissionDenied
from django.http import Http404, HttpResponse, HttpResponseBase, JsonResponse
from django.shortcuts import redirect, render
from django.utils import timezone
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy, ngettext
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from accounts import permissions
from accounts.addresses import client_address
from accounts.dashboard import INVITATION_KEY, current_membership
from accounts.models import ApiKey, Organization
from accounts.playground import playground_key_for, playground_key_of
from billing.models import UsageRecord
from billing.templatetags.billing_money import money
from billing.views.common import currency

from . import catalogue, images, listing
from .auth import KeyInfo
from .auth import _load as load_key  # the gateway's own read of a key (by its hash), caches aside
from .errors import AuthenticationFailed, BadRequest, HubError, error_response
from .policy import Policy
from .relay import Call
from .serializers import MAX_OUTPUT_TOKENS, ChatCompletionRequest, ImageRequest
from .views import CHAT_REQUEST, IMAGE_REQUEST, _chat, _images, _validate

ACTION = "use_playground"
KINDS = ("chat", "image")
PENDING_SECONDS = 3600  # how long a request id of this page may be asked for before its record is written
RECORD_WAIT_SECONDS = 2.0  # the meter writes within HUB_METERING_FLUSH_SECONDS; a stopped stream a little later


def member_required(view):
    """organization_required(action="use_playground") for an async view: sets request.organization,
    request.membership and request.can, sends a stranger to sign in, and refuses other roles (403)."""

    def scope(request):
        membership = current_membership(request)
        if membership is not None:
            request.membership, request.organization = membership, membership.organization
            request.can = {name: permissions.allows(membership.role, name) for name in permissions.ACTIONS}
        return membership, request.session.get(INVITATION_KEY)

    @wraps(view)
    async def scoped(request, *args, **kwargs):
        user = await request.auser()
        if not user.is_authenticated:
            return redirect_to_login(request.get_full_path())
        membership, invitation = await sync_to_async(scope)(request)
        if membership is None:
            return redirect("dashboard-invitation", token=invitation) if invitation else redirect("dashboard-create")
        if not permissions.allows(membership.role, ACTION):
            raise PermissionDenied
        return await view(request, *args, **kwargs)

    return scoped


class PlaygroundForm(forms.Form):
    """One turn: the model, and a prompt (for a chat model, with the system prompt, the conversation so far and
    the sampling settings; for an image model, the image's size)."""

    model = forms.CharField(label=gettext_lazy("Model"), max_length=200)
    system = forms.CharField(
        label=gettext_lazy("System prompt"), required=False, widget=forms.Textarea(attrs={"rows": 2})
    )
    prompt = forms.CharField(label=gettext_lazy("Message"), widget=forms.Textarea(attrs={"rows": 3}))
    # The conversation before this turn (JSON, kept by static/hub/playground.js); without the script, one turn.
    history = forms.CharField(required=False, widget=forms.HiddenInput)
    temperature = forms.FloatField(label=gettext_lazy("Temperature"), required=False, min_value=0, max_value=2)
    max_tokens = forms.IntegerField(
        label=gettext_lazy("Max tokens"), required=False, min_value=1, max_value=MAX_OUTPUT_TOKENS
    )
    size = forms.CharField(label=gettext_lazy("Image size"), required=False, max_length=20)

    def clean_history(self) -> list[dict]:
        raw = self.cleaned_data["history"]
        try:
            turns = json.loads(raw) if raw else []
        except ValueError:
            raise forms.ValidationError(_("The conversation could not be read.")) from None
        ok = isinstance(turns, list) and all(
            isinstance(turn, dict)
            and turn.get("role") in ("user", "assistant")
            and isinstance(turn.get("content"), str)
            and len(turn) == 2
            for turn in turns
        )
        if not ok:
            raise forms.ValidationError(_("The conversation could not be read."))
        return turns

    def chat_body(self, *, stream: bool) -> dict:
        data = self.cleaned_data
        system = [{"role": "system", "content": data["system"]}] if data["system"] else []
        body: dict = {
            "model": data["model"],
            "messages": [*system, *data["history"], {"role": "user", "content": data["prompt"]}],
        }
        if data["temperature"] is not None:
            body["temperature"] = data["temperature"]
        if data["max_tokens"] is not None:
            body["max_tokens"] = data["max_tokens"]
        if stream:
            body.update(stream=True, stream_options={"include_usage": True})
        return body

    def image_body(self) -> dict:
        data = self.cleaned_data
        body = {"model": data["model"], "prompt": data["prompt"], "response_format": "b64_json"}
        if data["size"]:
            body["size"] = data["size"]
        return images.client_fields(body)


# --- the member's key, as the gateway sees it ---------------------------------------------------------------------


def _listing_key(user, organization: Organization) -> KeyInfo:
    """What the playground key may use, before it exists too: an unsaved key has no limits of its own, so the
    organisation's apply, as they will to the key once made."""
    key = playground_key_of(user=user, organization=organization) or ApiKey(organization=organization)
    return KeyInfo(key.pk or 0, organization.pk, None, Policy.of(key, organization))


def _gateway_key(user, organization: Organization) -> KeyInfo | None:
    key = playground_key_for(user=user, organization=organization)
    return load_key(key.hashed_key)


async def _models(request) -> dict[str, list[dict]]:
    key = await sync_to_async(_listing_key)(request.user, request.organization)
    listed = listing.models_of(await catalogue.snapshot(), key)
    return {kind: [m for m in listed if m["kind"] == kind] for kind in KINDS}


async def _through_gateway(request, form: PlaygroundForm, *, kind: str, stream: bool = False) -> HttpResponseBase:
    """The gateway's answer to this turn, as /v1/chat/completions or /v1/images/generations would give it to an
    API client holding the member's playground key: the same checks (hub.views), then the same relay."""
    key = await sync_to_async(_gateway_key)(request.user, request.organization)
    if key is None:  # the organisation was closed meanwhile
        return error_response(AuthenticationFailed("This organisation can no longer use the gateway."))
    if key.expires_at is not None and key.expires_at <= timezone.now():  # as hub.auth.authenticate refuses it
        return error_response(
            AuthenticationFailed(
                "Your playground key has expired: revoke it on the keys page, and the next answer makes a new one.",
                code="expired_api_key",
            )
        )
    serializer: ChatCompletionRequest | ImageRequest
    if kind == "image":
        body, endpoint, serializer, serve = form.image_body(), "images.generations", IMAGE_REQUEST, _images
    else:
        body, endpoint, serializer, serve = form.chat_body(stream=stream), "chat.completions", CHAT_REQUEST, _chat
    call = Call(key=key, endpoint=endpoint, model_name=body["model"][:200], client_ip=client_address(request))
    try:
        validated = _validate(serializer, body)
    except HubError as error:
        return call.fail(error)
    if kind == "image":  # as hub.views does for the image endpoints: the serializer's values, links to this hub
        body.update(validated)
        call.origin = settings.HUB_PUBLIC_URL.rstrip("/") or f"{request.scheme}://{request.get_host()}"
    response = await serve(call, body)
    await cache.aset(_pending_key(call.request_id), request.organization.pk, PENDING_SECONDS)
    return response


def _pending_key(request_id: str) -> str:
    return f"hub:playground:{request_id}"


def _form_error(form: PlaygroundForm) -> HttpResponse:
    """A field the form refuses, in the gateway's error shape (the script shows its message)."""
    field, errors = next(iter(form.errors.items()))
    message = str(errors[0])
    return error_response(BadRequest(f"{field}: {message}" if field != "__all__" else message, param=field))


# --- usage under each answer --------------------------------------------------------------------------------------


def usage_of(record: UsageRecord) -> dict:
    """What the page shows under an answer: its tokens (or images) and its price, from its usage record."""
    price = money(record.price)
    if record.unit == "images":
        line = ngettext(
            "%(images)s image · %(price)s %(currency)s", "%(images)s images · %(price)s %(currency)s", record.images
        ) % {"images": record.images, "price": price, "currency": currency()}
    else:
        line = _("%(prompt)s prompt + %(completion)s completion tokens · %(price)s %(currency)s") % {
            "prompt": record.prompt_tokens,
            "completion": record.completion_tokens,
            "price": price,
            "currency": currency(),
        }
    if record.usage_estimated:
        line += " " + _("(estimated: the provider reported no usage)")
    if record.status == UsageRecord.Status.CANCELLED:
        line += " " + _("(stopped)")
    return {
        "request_id": record.request_id,
        "status": record.status,
        "prompt_tokens": record.prompt_tokens,
        "completion_tokens": record.completion_tokens,
        "images": record.images,
        "price": str(record.price),
        "currency": currency(),
        "estimated": record.usage_estimated,
        "line": line,
    }


def _record(request_id: str, organization: Organization) -> UsageRecord | None:
    return UsageRecord.objects.filter(request_id=request_id, organization=organization).first()


async def _record_soon(request_id: str, organization: Organization) -> UsageRecord | None:
    """The request's usage record, waiting a little for the meter to write it."""
    deadline = asyncio.get_running_loop().time() + RECORD_WAIT_SECONDS
    while True:
        record = await sync_to_async(_record)(request_id, organization)
        if record is not None or asyncio.get_running_loop().time() >= deadline:
            return record
        await asyncio.sleep(0.1)


# --- the views ----------------------------------------------------------------------------------------------------


@require_http_methods(["GET", "POST"])
@member_required
async def page(request) -> HttpResponse:
    """The playground. Its form posts here without JavaScript: the whole answer, then the page again."""
    models = await _models(request)
    kinds = {m["id"]: kind for kind in KINDS for m in models[kind]}
    context: dict = {"models": models}
    status = 200
    if request.method == "POST":
        form = PlaygroundForm(request.POST)
        if form.is_valid():
            kind = kinds.get(form.cleaned_data["model"], "chat")  # one not listed: the gateway says why not
            status, answer = await _whole_answer(request, form, kind)
            context.update(answer, prompt=form.cleaned_data["prompt"])
        else:
            status = 400
    else:
        first = (models["chat"] or models["image"] or [{}])[0]
        form = PlaygroundForm(initial={"model": first.get("id", "")})
    context["form"] = form
    context["selected"] = form["model"].value()
    return await sync_to_async(render)(request, "hub/dashboard/playground.html", context, status=status)


async def _whole_answer(request, form: PlaygroundForm, kind: str) -> tuple[int, dict]:
    """The gateway's status and, for the page, its answer (text or image) with its usage, or its error."""
    response = cast(HttpResponse, await _through_gateway(request, form, kind=kind))  # not streamed: whole
    try:
        answer = json.loads(response.content)
    except ValueError:
        answer = {}
    if response.status_code != 200:
        message = (answer.get("error") or {}).get("message") or _("The gateway refused the request.")
        return response.status_code, {"error": message}
    record = await _record_soon(response["x-request-id"], request.organization)
    return 200, {**_answer_of(answer, kind), "usage": usage_of(record) if record is not None else None}


def _answer_of(answer: dict, kind: str) -> dict:
    if kind == "image":
        data = answer.get("data") or [{}]
        mime = f"image/{answer.get('output_format') or 'png'}"
        return {"image": f"data:{mime};base64,{data[0].get('b64_json', '')}"}
    choices = answer.get("choices") or [{}]
    return {"answer": (choices[0].get("message") or {}).get("content") or ""}


@require_POST
@member_required
async def chat(request) -> HttpResponseBase:
    """POST from the page's script: the gateway's streamed answer (server-sent events) as it arrives, or its
    OpenAI-style error. The x-request-id header names the request, for its usage once it ends."""
    form = PlaygroundForm(request.POST)
    if not form.is_valid():
        return _form_error(form)
    return await _through_gateway(request, form, kind="chat", stream=True)


@require_POST
@member_required
async def image(request) -> HttpResponseBase:
    """POST from the page's script: the gateway's images answer (one image, base64), or its error."""
    form = PlaygroundForm(request.POST)
    if not form.is_valid():
        return _form_error(form)
    return await _through_gateway(request, form, kind="image")


@require_GET
@member_required
async def usage(request, request_id: str) -> JsonResponse:
    """A request's usage and price, once recorded (202 while the meter has not written it yet). Only the
    organisation's own requests made here or recorded for it; any other id is not found."""
    organization = request.organization
    record = await sync_to_async(_record)(request_id, organization)
    if record is None:
        if await cache.aget(_pending_key(request_id)) != organization.pk:
            raise Http404
        record = await _record_soon(request_id, organization)
    if record is None:
        return JsonResponse({"request_id": request_id, "pending": True}, status=202)
    return JsonResponse(usage_of(record))
