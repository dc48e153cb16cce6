"""Multi-factor sign-in, one implementation for everyone: allauth.mfa (TOTP and recovery codes, under /accounts/2fa/).

Every user may enrol; login then asks for a code. Staff with an authenticator, and every staff user when
HUB_OPERATOR_2FA_REQUIRED is on, open the admin only from a session that passed an MFA step (login or
reauthentication); a staff user without one is sent to enrol first (accounts/admin_site.py). A wrong code counts
as a failed login in django-axes, the same lockout as a wrong password, and a locked-out account gets no code
checked at all.
"""

from allauth.account.authentication import get_authentication_records
from allauth.account.internal.flows.login import record_authentication
from allauth.core import context
from allauth.mfa.base.forms import AuthenticateForm as AllauthAuthenticateForm
from allauth.mfa.base.forms import ReauthenticateForm as AllauthReauthenticateForm
from allauth.mfa.utils import is_mfa_enabled
from axes.handlers.proxy import AxesProxyHandler
from django import forms
from django.conf import settings
from django.contrib.auth.signals import user_login_failed
from django.utils.translation import gettext_lazy as _


def enabled(user) -> bool:
    return bool(user.is_authenticated and is_mfa_enabled(user))


def code_required(user) -> bool:
    """Must this staff user pass an MFA step to open the admin?"""
    return bool(user.is_staff and (settings.HUB_OPERATOR_2FA_REQUIRED or enabled(user)))


def must_enrol(user) -> bool:
    """A signed-in operator who has to set up an authenticator before using the admin."""
    return bool(
        user.is_authenticated
        and user.is_active
        and user.is_staff
        and settings.HUB_OPERATOR_2FA_REQUIRED
        and not enabled(user)
    )


def session_verified(request) -> bool:
    """Did this session pass an MFA step (a code at login or reauthentication, or the enrolment's confirming code)?"""
    return any(record.get("method") == "mfa" for record in get_authentication_records(request, request.user))


def count_failure(request, user) -> None:
    """A wrong code is a failed login for axes (accounts/lockout.py login_name reads the username)."""
    user_login_failed.send(sender=__name__, credentials={"username": user.get_username()}, request=request)


class LockoutChecked:
    """allauth's code forms, refusing every code, right or not, while the account is locked out from here."""

    request = None

    def clean_code(self) -> str:
        user = self.user  # type: ignore[attr-defined]
        if AxesProxyHandler.is_locked(self.request, credentials={"username": user.get_username()}):
            count_failure(self.request, user)  # marks the request locked: AxesMiddleware answers with the lockout page
            raise forms.ValidationError(_("Too many failed logins: try again later."), code="locked_out")
        return super().clean_code()  # type: ignore[misc]


class AuthenticateForm(LockoutChecked, AllauthAuthenticateForm):
    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.request = context.request


class ReauthenticateForm(LockoutChecked, AllauthReauthenticateForm):
    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.request = context.request


def on_authentication_failed(sender, request, user, **kwargs) -> None:
    count_failure(request, user)


def on_authenticator_added(sender, request, user, authenticator, **kwargs) -> None:
    """Confirming a new TOTP with a code from the app is an MFA step: the session may open the admin, as after a
    login with a code."""
    # Only a TOTP's confirmation proves the app: generating recovery codes (also "added") takes just the password.
    if authenticator.type == "totp" and request is not None and request.user.pk == user.pk:
        record_authentication(request, user, "mfa", id=authenticator.pk, type=authenticator.type, enrolled=True)
