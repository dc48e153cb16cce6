"""The API keys page's forms: a key's limits and expiry, and a new key's name and scope besides.

The fields only read what a browser sends (lists typed one a line, a local date and time); what is allowed is
decided by the management API's own serializer (accounts.serializers.ApiKeyCreateSerializer), whose errors are
shown next to the fields, so the page and the API refuse the same things.
"""

import re
import secrets

from django import forms
from django.conf import settings
from django.core.cache import cache
from django.utils import timezone
from django.utils.translation import gettext_lazy as _

from ..models import RESPONSE_CACHE_MAX_SECONDS, ApiKey, BudgetPeriod, KeyScope
from ..serializers import LIMIT_FIELDS, ApiKeyCreateSerializer

LOCAL_DATETIME = "%Y-%m-%dT%H:%M"  # what <input type="datetime-local"> sends, in the current time zone
_SEPARATORS = re.compile(r"[\s,]+")


# BudgetPeriod's labels, translated (the model's are the operators' admin's, in English).
PERIODS = [
    (BudgetPeriod.DAILY, _("Daily")),
    (BudgetPeriod.WEEKLY, _("Weekly")),
    (BudgetPeriod.MONTHLY, _("Monthly")),
    (BudgetPeriod.TOTAL, _("Never resets")),
]
if {value for value, _label in PERIODS} != set(BudgetPeriod.values):
    raise ImportError("accounts.forms.keys.PERIODS: a budget period without its label")

# The response cache field's help text names the longest time in words, which translators have seen.
if RESPONSE_CACHE_MAX_SECONDS != 30 * 24 * 3600:
    raise ImportError("accounts.forms.keys: the response cache's help text names a longest time of 30 days")


def _lines(value) -> str:
    return "\n".join(value or [])


class KeyLimitsForm(forms.Form):
    allowed_models = forms.CharField(
        label=_("Allowed models"),
        required=False,
        widget=forms.Textarea(attrs={"rows": 3, "spellcheck": "false"}),
        help_text=_("One pattern a line, such as openai/* or claude-*. Empty: the organisation's default."),
    )
    allowed_ips = forms.CharField(
        label=_("Allowed addresses"),
        required=False,
        widget=forms.Textarea(attrs={"rows": 3, "spellcheck": "false"}),
        help_text=_("One address or CIDR range a line, such as 203.0.113.0/24. Empty: the organisation's default."),
    )
    rpm_limit = forms.CharField(
        label=_("Requests per minute"), required=False, widget=forms.NumberInput(attrs={"min": 1, "step": 1})
    )
    tpm_limit = forms.CharField(
        label=_("Tokens per minute"), required=False, widget=forms.NumberInput(attrs={"min": 1, "step": 1})
    )
    budget = forms.CharField(
        label=_("Budget"),
        required=False,
        widget=forms.NumberInput(attrs={"min": 0, "step": "any"}),
        help_text=_("The spend allowed per budget period. Empty: the organisation's default."),
    )
    budget_period = forms.ChoiceField(label=_("Budget period"), choices=PERIODS, initial=BudgetPeriod.MONTHLY)
    response_cache_seconds = forms.CharField(
        label=_("Response cache (seconds)"),
        required=False,
        widget=forms.NumberInput(attrs={"min": 0, "max": RESPONSE_CACHE_MAX_SECONDS, "step": 1}),
        help_text=_(
            "How long an answer is kept and given again to the same request. Empty: the organisation's default; "
            "0: off; at most 2592000 (30 days)."
        ),
    )
    expires_at = forms.DateTimeField(
        label=_("Expires"),
        required=False,
        input_formats=[LOCAL_DATETIME, "%Y-%m-%dT%H:%M:%S", "%Y-%m-%d %H:%M"],
        widget=forms.DateTimeInput(attrs={"type": "datetime-local"}, format=LOCAL_DATETIME),
        help_text=_("In your time zone. Empty: never."),
    )

    partial = True  # the serializer checks only the fields this form sends

    @classmethod
    def for_key(cls, api_key: ApiKey, data=None) -> "KeyLimitsForm":
        initial = {name: getattr(api_key, name) for name in LIMIT_FIELDS}
        initial.update(
            allowed_models=_lines(api_key.allowed_models),
            allowed_ips=_lines(api_key.allowed_ips),
            expires_at=api_key.expires_at,
        )
        return cls(data, initial=initial, prefix=f"key-{api_key.pk}")

    def clean_expires_at(self):
        expires_at = self.cleaned_data.get("expires_at")
        if expires_at is not None and expires_at <= timezone.now():
            raise forms.ValidationError(_("Choose a time in the future."))
        return expires_at

    def _input(self) -> dict:
        """The cleaned fields as the management API would receive them."""
        data = dict(self.cleaned_data)
        for name in ("allowed_models", "allowed_ips"):
            if name in data:
                data[name] = [item for item in _SEPARATORS.split(data[name] or "") if item]
        for name in ("rpm_limit", "tpm_limit", "budget", "response_cache_seconds"):
            if name in data:
                data[name] = (data[name] or "").strip() or None
        return data

    def clean(self):
        super().clean()
        if self.errors:
            return self.cleaned_data
        serializer = ApiKeyCreateSerializer(data=self._input(), partial=self.partial)
        if serializer.is_valid():
            self.cleaned_data.update(serializer.validated_data)
        else:
            for name, errors in serializer.errors.items():
                self.add_error(name if name in self.fields else None, _flatten(errors))
        return self.cleaned_data

    @property
    def limits(self) -> dict:
        return {name: self.cleaned_data[name] for name in LIMIT_FIELDS if name in self.cleaned_data}


class KeyCreateForm(KeyLimitsForm):
    name = forms.CharField(label=_("Name"), max_length=100, help_text=_("What the key is for, such as a service."))
    scope = forms.ChoiceField(
        label=_("Scope"),
        choices=[
            (KeyScope.INFERENCE, _("Inference: the gateway only")),
            (KeyScope.ADMIN, _("Admin: the gateway and this organisation's management API")),
        ],
        initial=KeyScope.INFERENCE,
        required=False,
    )
    # One per form shown: sent twice (a reload of the page that showed the key), it makes no second key.
    once = forms.CharField(widget=forms.HiddenInput)

    field_order = ["name", "scope", *LIMIT_FIELDS, "expires_at"]
    partial = False

    def __init__(self, *args, may_create_admin_keys: bool = False, **kwargs):
        super().__init__(*args, **kwargs)
        if not may_create_admin_keys:
            # Not offered; a forged `admin` is still read, for the view to refuse it (403), as the API does.
            self.fields["scope"].widget = forms.HiddenInput()

    def clean_scope(self) -> str:
        return self.cleaned_data.get("scope") or KeyScope.INFERENCE


def _flatten(errors) -> list[str]:
    """A serializer's errors for one field (a list, or a dict by list index) as plain messages."""
    if isinstance(errors, dict):
        return [message for nested in errors.values() for message in _flatten(nested)]
    return [str(message) for message in errors]


# The create form's one-time tokens, in the session: token -> the id of the key it made, or None while unused.
ONCE_KEY = "hub_key_forms"
ONCE_KEPT = 20


def once_issue(session) -> str:
    token = secrets.token_urlsafe(16)
    tokens = dict(list(session.get(ONCE_KEY, {}).items())[-(ONCE_KEPT - 1) :])
    tokens[token] = None
    session[ONCE_KEY] = tokens
    return token


def once_state(session, token: str) -> tuple[bool, int | None]:
    """(whether the token was issued, the key it made if it was used)."""
    tokens = session.get(ONCE_KEY, {})
    return token in tokens, tokens.get(token)


def once_claim(token: str) -> bool:
    """True for the one request that may use the token to make a key. The session alone cannot tell two requests
    sent at once (a double click: both read it before either writes), so the claim is an atomic add in the shared
    cache (Redis when REDIS_URL is set), kept as long as a session's tokens are."""
    return cache.add(f"hub:key-form:{token}", 1, timeout=settings.SESSION_COOKIE_AGE)


def once_used(session, token: str, key_id: int) -> None:
    tokens = dict(session.get(ONCE_KEY, {}))
    tokens[token] = key_id
    session[ONCE_KEY] = tokens
