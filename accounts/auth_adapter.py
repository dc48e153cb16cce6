"""Accounts through django-allauth (/accounts/), the one login for end users and operators alike: who may sign
up, from which address.

HUB_SIGNUP_MODE: "open", anyone may sign up; "invite", only an email with a pending invitation
(accounts.Invitation: not accepted, declined, revoked or expired), checked when the form's email is cleaned, for
social sign-ups too; "closed", allauth's "sign up is closed" page. Existing users log in whatever the mode.
"""

from allauth.account.adapter import DefaultAccountAdapter
from allauth.account.app_settings import EmailVerificationMethod
from allauth.account.forms import LoginForm as AllauthLoginForm
from allauth.account.forms import SignupForm as AllauthSignupForm
from allauth.socialaccount.adapter import DefaultSocialAccountAdapter
from allauth.socialaccount.forms import SignupForm as AllauthSocialSignupForm
from allauth.socialaccount.models import SocialApp
from django import forms
from django.conf import settings
from django.core.exceptions import PermissionDenied
from django.http import Http404
from django.utils import timezone
from django.utils.translation import gettext_lazy as _

from . import addresses
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


class LoginForm(AllauthLoginForm):
    """allauth's login, where operators sign in too (by username or email). A staff account is made by an operator
    (createsuperuser, the admin), not by signing up, so its email need not be verified by link first; its second
    factor is the MFA step (accounts/mfa.py)."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["login"].label = _("Email or username")  # allauth's "Login" says neither
        self.fields["login"].widget.attrs["placeholder"] = _("Email or username")

    def _login_with_password(self, request, redirect_url, credentials):
        if self.user.is_staff:
            self._login.email_verification = EmailVerificationMethod.NONE
        return super()._login_with_password(request, redirect_url, credentials)
