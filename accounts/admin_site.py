"""The admin site: password (rate-limited by django-axes) plus, for operators who need one, a TOTP code.

Failed passwords are counted by axes through Django's authenticate(); a wrong
code counts as a failed login too (user_login_failed), so guessing codes after
a stolen password runs into the same lockout.
"""

from base64 import b32encode
from functools import update_wrapper

from django import forms
from django.contrib import admin, messages
from django.contrib.admin.forms import AdminAuthenticationForm
from django.contrib.auth.signals import user_login_failed
from django.http import HttpResponseRedirect
from django.shortcuts import redirect
from django.template.response import TemplateResponse
from django.urls import path, reverse
from django.utils.decorators import method_decorator
from django.utils.safestring import mark_safe
from django.views.decorators.cache import never_cache
from django.views.decorators.csrf import csrf_protect
from django.views.decorators.debug import sensitive_post_parameters, sensitive_variables
from django_otp import login as otp_login

from . import otp

CODE_WIDGET = forms.TextInput(attrs={"autocomplete": "one-time-code", "inputmode": "numeric", "size": 8})


class HubLoginForm(AdminAuthenticationForm):
    otp_token = forms.CharField(
        label="Authenticator code",
        required=False,
        max_length=12,
        widget=CODE_WIDGET,
        help_text="Only if you have set up two-factor sign-in.",
    )

    @method_decorator(sensitive_variables("token"))
    def clean(self):
        cleaned = super().clean()  # authenticate(request, …): axes counts a wrong password here
        # What get_user() returns; the stubs have it never None, but it is when a field was left empty.
        user = self.user_cache
        if user is None or not otp.code_required(user) or otp.must_enrol(user):
            return cleaned  # no device yet: enrolment comes right after the password (HubAdminSite.admin_view)
        token = cleaned.get("otp_token", "")
        if not token.strip():
            raise forms.ValidationError("Enter the code from your authenticator app.", code="otp_required")
        device = otp.device_for_code(user, token)
        if device is None:
            user_login_failed.send(sender=__name__, credentials={"username": user.get_username()}, request=self.request)
            raise forms.ValidationError(
                "That authenticator code is wrong, expired or already used.", code="otp_invalid"
            )
        # django_otp marks the session verified on user_logged_in; the attribute is its own, not the model's.
        user.otp_device = device  # type: ignore[attr-defined]
        return cleaned


class EnrolForm(forms.Form):
    otp_token = forms.CharField(label="Code from the app", max_length=12, widget=CODE_WIDGET)


class HubAdminSite(admin.AdminSite):
    login_form = HubLoginForm
    login_template = "admin/hub_login.html"

    def has_permission(self, request):
        if not super().has_permission(request):
            return False
        return not otp.code_required(request.user) or otp.is_verified(request.user)

    def admin_view(self, view, cacheable=False):
        inner = super().admin_view(view, cacheable)

        def wrapper(request, *args, **kwargs):
            if otp.must_enrol(request.user):
                if request.path == reverse("admin:logout", current_app=self.name):
                    return view(request, *args, **kwargs)
                return redirect("admin:otp_enrol")
            return inner(request, *args, **kwargs)

        return update_wrapper(wrapper, inner)

    def login(self, request, extra_context=None):
        if request.method == "GET" and otp.must_enrol(request.user):
            return redirect("admin:otp_enrol")
        return super().login(request, extra_context)

    def get_urls(self):
        enrol = never_cache(csrf_protect(sensitive_post_parameters("otp_token")(self.enrol_view)))
        return [path("otp/enrol/", enrol, name="otp_enrol"), *super().get_urls()]

    def enrol_view(self, request):
        """Set up a TOTP device for the signed-in operator: secret shown while unconfirmed, then never again."""
        user = request.user
        if not (user.is_authenticated and user.is_active and user.is_staff):
            return redirect(f"{reverse('admin:login', current_app=self.name)}?next={request.path}")
        if otp.user_has_device(user):
            return HttpResponseRedirect(reverse("admin:index", current_app=self.name))
        device = otp.enrolment_pending(user=user) if request.method == "POST" else None
        form = EnrolForm(request.POST if device else None)
        if device and form.is_valid():
            if otp.enrolment_confirm(device=device, code=form.cleaned_data["otp_token"]):
                device.refresh_from_db()
                otp_login(request, device)
                messages.success(request, "Two-factor sign-in is set up: you will need a code at every login.")
                return HttpResponseRedirect(reverse("admin:index", current_app=self.name))
            form.add_error("otp_token", "That code does not match: check the app and the clock, then try again.")
        if device is None:
            device = otp.enrolment_start(user=user)
            form = EnrolForm()
        context = {
            **self.each_context(request),
            "title": "Set up two-factor sign-in",
            "form": form,
            "required": otp.must_enrol(user),
            "config_url": device.config_url,
            "secret": b32encode(device.bin_key).decode(),  # for apps that cannot scan
            # The SVG is made here by qrcode from the device's own URL, not from anything a user typed.
            "qr_svg": mark_safe(otp.qr_code_svg(device.config_url)),  # noqa: S308
        }
        request.current_app = self.name
        return TemplateResponse(request, "admin/otp_enrol.html", context)
