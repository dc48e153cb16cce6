"""The dashboard's settings page: the user's name, password and two-factor devices (allauth's pages do the
changes), their time zone and language (accounts/middleware.py applies them), and the organisation's name for
the roles that may manage it. Every form is a plain POST and a redirect back."""

from allauth.mfa import app_settings as mfa_settings
from allauth.mfa.models import Authenticator
from django.conf import settings
from django.contrib import messages
from django.core.exceptions import PermissionDenied
from django.http import HttpResponse
from django.shortcuts import redirect, render
from django.utils import translation
from django.utils.translation import gettext as _
from django.views.decorators.http import require_GET, require_POST

from .. import services
from ..dashboard import organization_required
from ..errors import DomainError
from ..forms.settings import OrganizationNameForm, PreferencesForm, ProfileForm
from .organisations import actor_of

TEMPLATE = "accounts/dashboard/settings/page.html"


def two_factor(user) -> dict:
    """What the page says of the user's allauth.mfa authenticators, for the types the site offers."""
    found: dict = {"totp": None, "recovery_codes": None, "webauthn": []}
    for authenticator in Authenticator.objects.filter(user=user).order_by("created_at"):
        if authenticator.type == Authenticator.Type.WEBAUTHN:
            found["webauthn"].append(authenticator)
        else:
            found[authenticator.type] = authenticator
    codes = found["recovery_codes"]
    return {
        "types": mfa_settings.SUPPORTED_TYPES,
        "totp": found["totp"],
        "webauthn": found["webauthn"],
        "recovery_codes": codes,
        "recovery_codes_left": len(codes.wrap().get_unused_codes()) if codes is not None else 0,
        "show_once": mfa_settings.RECOVERY_CODES_SHOW_ONCE,
    }


def _page(
    request,
    *,
    status: int = 200,
    profile_form: ProfileForm | None = None,
    preferences_form: PreferencesForm | None = None,
    organization_form: OrganizationNameForm | None = None,
) -> HttpResponse:
    """The page, with the form just posted (bound, with its errors) in place of its blank one."""
    if request.can["manage_organization"] and organization_form is None:
        organization_form = OrganizationNameForm(initial={"name": request.organization.name})
    context = {
        "profile_form": profile_form or ProfileForm(instance=request.user),
        "preferences_form": preferences_form or PreferencesForm(instance=request.user),
        "organization_form": organization_form if request.can["manage_organization"] else None,
        "two_factor": two_factor(request.user),
        "has_password": request.user.has_usable_password(),
    }
    return render(request, TEMPLATE, context, status=status)


@require_GET
@organization_required
def page(request):
    return _page(request)


@require_POST
@organization_required
def profile(request):
    form = ProfileForm(request.POST, instance=request.user)
    if not form.is_valid():
        return _page(request, profile_form=form, status=400)
    form.save()
    messages.success(request, _("Your profile is saved."))
    return redirect("dashboard-settings")


@require_POST
@organization_required
def preferences(request):
    form = PreferencesForm(request.POST, instance=request.user)
    if not form.is_valid():
        return _page(request, preferences_form=form, status=400)
    user = form.save()
    with translation.override(user.language or translation.get_language()):
        messages.success(request, _("Your time zone and language are saved."))
    response = redirect("dashboard-settings")
    remember_language(response, user.language)
    return response


def remember_language(response: HttpResponse, language: str) -> None:
    """Django's language cookie follows the saved language, so the footer's switch and the pages after signing
    out agree with it; none (the browser's language) clears it, or the cookie would still win."""
    if language:
        response.set_cookie(
            settings.LANGUAGE_COOKIE_NAME,
            language,
            max_age=settings.LANGUAGE_COOKIE_AGE,
            path=settings.LANGUAGE_COOKIE_PATH,
            domain=settings.LANGUAGE_COOKIE_DOMAIN,
            secure=settings.LANGUAGE_COOKIE_SECURE,
            httponly=settings.LANGUAGE_COOKIE_HTTPONLY,
            samesite=settings.LANGUAGE_COOKIE_SAMESITE,  # type: ignore[arg-type]  # a str setting, as Django passes it
        )
    else:
        response.delete_cookie(
            settings.LANGUAGE_COOKIE_NAME,
            path=settings.LANGUAGE_COOKIE_PATH,
            domain=settings.LANGUAGE_COOKIE_DOMAIN,
            samesite=settings.LANGUAGE_COOKIE_SAMESITE,  # type: ignore[arg-type]  # a str setting, as Django passes it
        )


@require_POST
@organization_required(action="manage_organization")
def organization(request):
    form = OrganizationNameForm(request.POST)
    if form.is_valid():
        try:
            services.organization_update(
                organization=request.organization,
                name=form.cleaned_data["name"],
                actor_role=request.membership.role,
                actor=actor_of(request),
            )
        except services.PermissionDenied:
            raise PermissionDenied from None
        except DomainError as error:
            form.add_error("name", str(error))
        else:
            messages.success(
                request, _("The organisation is now called %(name)s.") % {"name": request.organization.name}
            )
            return redirect("dashboard-settings")
    return _page(request, organization_form=form, status=400)
