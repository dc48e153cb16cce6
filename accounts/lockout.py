"""django-axes' view of a login: which account it is for, and the page a locked-out one gets.

allauth's /accounts/login/ (the admin's login too) takes an email or a username (its form field is "login"): both
name an account, and failures through either count against that one account, from one address (AXES_LOCKOUT_PARAMETERS).
"""

from allauth.account.utils import filter_users_by_email
from axes.helpers import get_cool_off, get_failure_limit
from django.conf import settings
from django.shortcuts import render
from django.urls import reverse


def login_name(request, credentials: dict | None) -> str:
    """AXES_USERNAME_CALLABLE: the username of the account a login names. An email is resolved to the one account
    that has it, so that a success through either form (axes resets by the username) clears the failures of
    both; an email no account (or several) has counts as itself, lowercased."""
    data = credentials or getattr(request, "data", request.POST)
    # allauth tries an email-looking login as a username too (ACCOUNT_LOGIN_METHODS has both): the email wins.
    email = str(data.get("email") or "").strip()
    if not email:
        username = data.get("username")
        if username:
            return str(username)
        login = str(data.get("login") or "").strip()
        if "@" not in login:
            return login  # a username typed into allauth's form (operators)
        email = login
    users = filter_users_by_email(email)
    return users[0].get_username() if len(users) == 1 else email.lower()


def lockout_response(request, original_response=None, credentials: dict | None = None):
    """AXES_LOCKOUT_CALLABLE: the admin's lockout page on the admin, the accounts' one everywhere else; 429."""
    template = settings.AXES_LOCKOUT_TEMPLATE
    if not request.path.startswith(reverse("admin:index")):
        template = "account/lockout.html"
    context = {
        "failure_limit": get_failure_limit(request, credentials),
        "cooloff_timedelta": get_cool_off(request),
    }
    return render(request, template, context, status=settings.AXES_HTTP_RESPONSE_CODE)
