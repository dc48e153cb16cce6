"""The dashboard's billing forms (billing/views/). Their bounds are the management API's (billing/api.py), taken
from the same constants, and the services (billing/payments.py, notifications.py) check them again."""

from decimal import Decimal

from django import forms
from django.utils.translation import gettext_lazy as _

from . import payments
from .money import max_amount

# The top-up buttons; any other amount between payments.MIN_TOP_UP and MAX_TOP_UP is the custom one.
TOP_UP_PRESETS = tuple(
    amount
    for amount in (Decimal("10.00"), Decimal("25.00"), Decimal("50.00"), Decimal("100.00"))
    if payments.MIN_TOP_UP <= amount <= payments.MAX_TOP_UP
)


def plain(amount: Decimal | None) -> Decimal | None:
    """A stored amount (10 decimal places) as a form shows it: cents, or every digit it really has."""
    if amount is None:
        return None
    exact = amount.normalize()
    return amount.quantize(Decimal("0.01")) if exact.as_tuple().exponent > -2 else exact  # type: ignore[operator]


def _amount(**kwargs) -> forms.DecimalField:
    # billing/api.py's CheckoutInput and AutoRechargeSettings.amount: whole cents, within the top-up bounds.
    return forms.DecimalField(
        max_digits=12, decimal_places=2, min_value=payments.MIN_TOP_UP, max_value=payments.MAX_TOP_UP, **kwargs
    )


class TopUpForm(forms.Form):
    """A preset button and the custom amount both post `amount`."""

    amount = _amount(label=_("Amount"))


class AutoRechargeForm(forms.Form):
    def __init__(self, *args, **kwargs):
        kwargs.setdefault("auto_id", "recharge_%s")  # beside the top-up form's `amount` on one page
        super().__init__(*args, **kwargs)

    enabled = forms.BooleanField(required=False, label=_("Recharge automatically"))
    threshold = forms.DecimalField(
        max_digits=12,
        decimal_places=2,
        min_value=Decimal(0),
        max_value=max_amount(),
        label=_("When the balance falls under"),
    )
    amount = _amount(label=_("Buy this much"))


class BillingSettingsForm(forms.Form):
    billing_email = forms.EmailField(
        required=False,
        label=_("Billing email"),
        help_text=_("Low-balance and invoice emails also go here, besides the owners and billing members."),
    )
    low_balance_enabled = forms.BooleanField(required=False, label=_("Email when credit runs low"))
    low_balance_threshold = forms.DecimalField(
        required=False,
        max_digits=12,
        decimal_places=2,
        min_value=Decimal(0),
        max_value=max_amount(),
        label=_("Low-balance threshold"),
        help_text=_("Empty: the hub's default (%(default)s)."),
    )

    def __init__(self, *args, default_threshold: Decimal, **kwargs):
        super().__init__(*args, **kwargs)
        field = self.fields["low_balance_threshold"]
        field.help_text = field.help_text % {"default": default_threshold}
