"""The API keys page: the list, a new key, a key's limits, revoking and rotating (accounts/services.py).

Who may do what is the management API's rule (accounts/api/keys.py): view_keys to see, create_keys to create
a key or change its limits, revoke_keys to revoke, both to rotate, and create_admin_keys besides for anything
that makes or changes an admin-scoped key. A raw key is only ever in the body of the POST response that made
it, marked not to be stored: never in the session, a URL, or a message.
"""

from django.contrib import messages
from django.core.exceptions import PermissionDenied
from django.http import Http404, HttpResponse
from django.shortcuts import redirect, render
from django.utils.cache import add_never_cache_headers
from django.utils.translation import gettext as _
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from .. import selectors, services
from ..dashboard import organization_required
from ..errors import DomainError
from ..forms.keys import KeyCreateForm, KeyLimitsForm, once_claim, once_issue, once_state, once_used
from ..models import ApiKey, KeyScope
from .organisations import actor_of

TEMPLATES = "accounts/dashboard/keys/"


def _keys(request):
    return selectors.keys_of(organization=request.organization).select_related("team")


def _said(error: DomainError) -> str:
    """The services' refusals, in the page's language."""
    if error.code == "key_revoked":
        return _("This key is revoked: it can be neither changed nor rotated.")
    return str(error)


def _key(request, key_id: int) -> ApiKey:
    """One of the current organisation's keys; another's is not found, like a key that does not exist."""
    api_key = _keys(request).filter(pk=key_id).first()
    if api_key is None:
        raise Http404
    return api_key


def _may_touch(request, api_key: ApiKey) -> bool:
    """An admin-scoped key is made, changed and rotated only by who may make one."""
    return api_key.scope != KeyScope.ADMIN or request.can["create_admin_keys"]


def _abilities(request, api_key: ApiKey) -> dict:
    open_, touch = api_key.revoked_at is None, _may_touch(request, api_key)
    return {
        "may_edit": request.can["create_keys"] and touch and open_,
        "may_revoke": request.can["revoke_keys"] and open_,
        "may_rotate": request.can["revoke_keys"] and request.can["create_keys"] and touch and open_,
    }


@require_GET
@organization_required(action="view_keys")
def key_list(request):
    return render(request, TEMPLATES + "list.html", {"keys": _keys(request)})


def _create_form(request, data=None) -> KeyCreateForm:
    return KeyCreateForm(data, may_create_admin_keys=request.can["create_admin_keys"])


@require_http_methods(["GET", "POST"])
@organization_required(action="create_keys")
def key_create(request):
    if request.method == "GET":
        form = _create_form(request)
        form.initial["once"] = once_issue(request.session)
        return render(request, TEMPLATES + "new.html", {"form": form})
    if request.POST.get("scope") == KeyScope.ADMIN and not request.can["create_admin_keys"]:
        raise PermissionDenied  # as the API refuses it, whatever else the form says
    issued, made = once_state(request.session, request.POST.get("once", ""))
    if made is not None:
        # Sent again (a reload): the key exists and its secret is not shown twice.
        messages.info(request, _("That key was created already; its secret was shown once and is not kept."))
        return redirect("dashboard-key-detail", key_id=made)
    data = request.POST.copy()
    if not issued:
        data["once"] = once_issue(request.session)  # for the form sent back
    form = _create_form(request, data)
    if form.is_valid() and not issued:
        form.add_error(None, _("This form has expired: fill it in again."))
    if not form.is_valid():
        return render(request, TEMPLATES + "new.html", {"form": form}, status=400)
    if not once_claim(form.cleaned_data["once"]):
        # The same form sent twice at once: the other request makes the key and shows it.
        messages.info(request, _("That key was created already; its secret was shown once and is not kept."))
        return redirect("dashboard-keys")
    actor = actor_of(request)
    api_key, raw = services.api_key_create(
        organization=request.organization,
        name=form.cleaned_data["name"],
        scope=form.cleaned_data["scope"],
        expires_at=form.cleaned_data["expires_at"],
        created_by=request.user,
        actor=actor,
        limits=form.limits,
    )
    once_used(request.session, form.cleaned_data["once"], api_key.pk)
    return _show_once(request, api_key, raw, rotated=False)


def _show_once(request, api_key: ApiKey, raw: str, *, rotated: bool) -> HttpResponse:
    response = render(request, TEMPLATES + "created.html", {"key": api_key, "raw_key": raw, "rotated": rotated})
    add_never_cache_headers(response)  # Cache-Control: no-store among others: no cache keeps the secret
    return response


def _detail(request, api_key: ApiKey, *, form: KeyLimitsForm | None = None, error: str = "", status: int = 200):
    abilities = _abilities(request, api_key)
    if form is None and abilities["may_edit"]:
        form = KeyLimitsForm.for_key(api_key)
    elif form is not None and not abilities["may_edit"]:
        # The form is not shown (a revoked key): its refusal is, above.
        error = error or " ".join(str(message) for message in form.non_field_errors())
        form = None
    context = {"key": api_key, "form": form, "error": error, **abilities}
    return render(request, TEMPLATES + "detail.html", context, status=status)


@require_GET
@organization_required(action="view_keys")
def key_detail(request, key_id: int):
    return _detail(request, _key(request, key_id))


@require_POST
@organization_required(action="create_keys")
def key_edit(request, key_id: int):
    api_key = _key(request, key_id)
    if not _may_touch(request, api_key):
        raise PermissionDenied
    form = KeyLimitsForm.for_key(api_key, request.POST)
    if form.is_valid():
        try:
            services.api_key_limits_set(
                api_key=api_key,
                limits=form.limits,
                expires_at=form.cleaned_data["expires_at"],
                actor=actor_of(request),
            )
        except DomainError as error:
            form.add_error(None, _said(error))
    if request.htmx:
        # htmx swaps only 2xx answers: the form comes back with its errors or its note that it was saved.
        saved = form.is_valid()
        if saved:
            form = KeyLimitsForm.for_key(api_key)
        context = {"key": api_key, "form": form, "saved": saved, **_abilities(request, api_key)}
        return render(request, TEMPLATES + "_limits.html", context)
    if form.is_valid():
        messages.success(request, _("The key's limits are saved."))
        return redirect("dashboard-key-detail", key_id=api_key.pk)
    return _detail(request, api_key, form=form, status=400)


@require_POST
@organization_required(action="revoke_keys")
def key_revoke(request, key_id: int):
    api_key = _key(request, key_id)
    services.api_key_revoke(api_key=api_key, actor=actor_of(request))
    messages.success(request, _("The key %(prefix)s… is revoked: it no longer works.") % {"prefix": api_key.prefix})
    return redirect("dashboard-key-detail", key_id=api_key.pk)


@require_POST
@organization_required(action="create_keys")
def key_rotate(request, key_id: int):
    api_key = _key(request, key_id)
    if not request.can["revoke_keys"] or not _may_touch(request, api_key):
        raise PermissionDenied
    try:
        new_key, raw = services.api_key_rotate(api_key=api_key, actor=actor_of(request))
    except DomainError as error:
        return _detail(request, api_key, error=_said(error), status=400)
    return _show_once(request, new_key, raw, rotated=True)
