"""End users' accounts through django-allauth (/accounts/): who may sign up, from which address, and who must
sign in at the admin instead.

HUB_SIGNUP_MODE: "open", anyone may sign up; "invite", only an email with a pending invitation
(accounts.Invitation: not accepted, declined, revoked or expired), checked when the form's email is cleaned, for
social sign-ups too; "closed", allauth's "sign up is closed" page. Existing users log in whatever the mode.
"""

from allauth.account.adapter import DefaultAccountAdapter
from allauth.account.forms import SignupForm as AllauthSignupForm
from allauth.account.internal.stagekit import clear_login
from allauth.socialaccount.adapter import DefaultSocialAccountAdapter
from allauth.socialaccount.forms import SignupForm as AllauthSocialSignupForm
from allauth.socialaccount.models import SocialApp
from django import forms
from django.conf import settings
from django.contrib import messages
from django.core.exceptions import PermissionDenied
from django.http import Http404
from django.shortcuts import redirect
from django.utils import timezone
from django.utils.translation import gettext
from django.utils.translation import gettext_lazy as _

from . import addresses, otp
from .models import Invitation

NOT_INVITED = _("Sign-up is by invitation only: use the address your invitation was sent to.")


def invited(email: str) -> bool:
    """Has this address a pending invitation to some organisation?"""
    return Invitation.objects.filter(
        email__iexact=email, accepted_at=None, declined_at=None, revoked_at=None, expires_at__gt=timezone.now()
    ).exists()


def may_sign_up(email: str | None) -> bool:
    mode = settings.HUB_SIGNUP_MODE
    if mode == "open":
        return True
    return mode == "invite" and bool(email) and invited(email or "")


def user_display(user) -> str:
    """ACCOUNT_USER_DISPLAY: users know their email; the username allauth made from it is internal."""
    return user.email or user.get_username()


class AccountAdapter(DefaultAccountAdapter):
    def is_open_for_signup(self, request) -> bool:
        # In invite mode the form is shown; its email decides (InvitedEmail below).
        return settings.HUB_SIGNUP_MODE != "closed"

    def get_client_ip(self, request) -> str:
        """The address allauth's throttles count: the hub's one answer (HUB_TRUSTED_PROXIES)."""
        address = addresses.client_address(request)
        if not address:
            raise PermissionDenied("Unable to determine the client's address")
        return address

    def pre_login(self, request, user, **kwargs):
        # An operator whose admin login asks for a TOTP code gets no session without it: not from here either.
        if otp.code_required(user):
            clear_login(request)
            messages.error(request, gettext("Operators with two-factor sign-in sign in at the admin, with their code."))
            return redirect("admin:login")
        return super().pre_login(request, user, **kwargs)


class SocialAccountAdapter(DefaultSocialAccountAdapter):
    def get_app(self, request, provider, client_id=None):
        # A provider without a client id in the settings is not there: 404, not allauth's server error.
        try:
            return super().get_app(request, provider, client_id)
        except SocialApp.DoesNotExist:
            raise Http404("This sign-in provider is not set up.") from None

    def is_open_for_signup(self, request, sociallogin) -> bool:
        if settings.HUB_SIGNUP_MODE != "invite":
            return settings.HUB_SIGNUP_MODE == "open"
        emails = [sociallogin.user.email, *(address.email for address in sociallogin.email_addresses)]
        return any(invited(email) for email in emails if email)


class InvitedEmail:
    """The sign-up forms' email check for invite mode (the form a social sign-up falls back to included)."""

    def clean_email(self) -> str:
        email = super().clean_email()  # type: ignore[misc]
        if email and not may_sign_up(email):
            raise forms.ValidationError(NOT_INVITED, code="not_invited")
        return email


class SignupForm(InvitedEmail, AllauthSignupForm):
    pass


class SocialSignupForm(InvitedEmail, AllauthSocialSignupForm):
    pass
