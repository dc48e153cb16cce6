from django.apps import AppConfig


class BillingConfig(AppConfig):
    name = "billing"

    def ready(self):
        # Imported here, not above: the models load after the app configs.
        from accounts.signals import organization_opened

        from . import pricing  # noqa: F401 - its receivers keep the price history of every ModelRate save
        from .services import on_organization_opened

        organization_opened.connect(on_organization_opened, dispatch_uid="billing.account_open")
