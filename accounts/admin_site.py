"""The admin site, signed in to through the one login (allauth's /accounts/login/, accounts/mfa.py).

The admin has no login form of its own: its login view sends the browser to allauth's, with next= back here, so
the password is counted by django-axes and the code asked by allauth.mfa as for any user. A staff session opens
the admin only after an MFA step when one is required (accounts/mfa.py code_required); one that must enrol first
is sent to allauth's TOTP activation.
"""

from collections.abc import Callable
from functools import update_wrapper
from urllib.parse import urlencode

from allauth.mfa.models import Authenticator
from django.contrib import admin
from django.contrib.auth import REDIRECT_FIELD_NAME
from django.core.exceptions import PermissionDenied
from django.http import HttpRequest
from django.shortcuts import redirect
from django.urls import reverse
from django.utils.http import url_has_allowed_host_and_scheme

from . import mfa


class HubAdminSite(admin.AdminSite):
    # The index is the operator overview: the gateway's layer (hub/admin_overview.py) sets what it shows,
    # since this one may not import it; the app list stays below it.
    index_template = "admin/hub_index.html"
    overview: Callable[[HttpRequest], dict] | None = None  # request -> the overview's context

    def index(self, request, extra_context=None):
        context: dict = {} if self.overview is None else dict(self.overview(request))
        return super().index(request, {**context, **(extra_context or {})})

    def register(self, model_or_iterable, admin_class=None, **options):
        models = model_or_iterable if isinstance(model_or_iterable, list | tuple) else [model_or_iterable]
        if Authenticator in models:  # @admin.register passes a tuple
            admin_class = AuthenticatorAdmin  # allauth's own shows `data`: the TOTP secret
        super().register(model_or_iterable, admin_class, **options)

    def has_permission(self, request):
        if not super().has_permission(request):
            return False
        return not mfa.code_required(request.user) or mfa.session_verified(request)

    def admin_view(self, view, cacheable=False):
        inner = super().admin_view(view, cacheable)

        def wrapper(request, *args, **kwargs):
            if request.path == reverse("admin:logout", current_app=self.name):
                if request.user.is_authenticated and not self.has_permission(request):
                    return view(request, *args, **kwargs)  # leaving without the MFA step: admin_view would refuse
            elif mfa.must_enrol(request.user):
                return redirect("mfa_activate_totp")
            return inner(request, *args, **kwargs)

        return update_wrapper(wrapper, inner)

    def login(self, request, extra_context=None):
        """Not a form: the way to allauth's login, or to the MFA step a signed-in operator still owes."""
        target = request.GET.get(REDIRECT_FIELD_NAME, "")
        if not url_has_allowed_host_and_scheme(target, allowed_hosts={request.get_host()}):
            target = ""
        query = urlencode({REDIRECT_FIELD_NAME: target or reverse("admin:index", current_app=self.name)})
        user = request.user
        if user.is_authenticated and not (user.is_active and user.is_staff):
            raise PermissionDenied  # signed in, but not an operator: allauth's login would send them straight back
        if user.is_authenticated:
            if mfa.must_enrol(user):
                return redirect("mfa_activate_totp")
            if mfa.code_required(user) and not mfa.session_verified(request):
                return redirect(f"{reverse('mfa_reauthenticate')}?{query}")
        return redirect(f"{reverse('account_login')}?{query}")


class AuthenticatorAdmin(admin.ModelAdmin):
    """allauth.mfa's authenticators without their data (a TOTP secret, the recovery codes' seed): an operator sees
    who has which and may delete one (a lost phone: its owner enrols again), never the secret."""

    raw_id_fields = ("user",)
    list_display = ("user", "type", "created_at", "last_used_at")
    list_filter = ("type", "created_at", "last_used_at")
    exclude = ("data",)
    readonly_fields = ("type", "created_at", "last_used_at")

    def has_add_permission(self, request):
        return False
