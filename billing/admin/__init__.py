"""Billing's admin, one module per subdomain: importing the package registers them all."""

from . import credit, invoices, payments, rates, usage  # noqa: F401 - each registers its admins on import
from .credit import CreditGrantForm  # noqa: F401 - named here by its tests
from .rates import ModelRateAdmin  # noqa: F401 - named here by its tests
