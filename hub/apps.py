from django.apps import AppConfig
from django.core.signals import request_started
from django.db import close_old_connections, reset_queries, transaction
from django.db.models.signals import post_delete, post_save


class HubConfig(AppConfig):
    name = "hub"
    verbose_name = "Gateway"

    def ready(self):
        from . import logging as hub_logging

        hub_logging.install()  # every log record scrubbed of secrets, whichever handler writes it
        # Under ASGI a request starts in a fresh context that holds no database
        # connection, so these receivers have nothing to do at request start;
        # being sync, each would cost a new thread per request, held for a
        # stream's whole life. Connections are still closed at request end.
        request_started.disconnect(close_old_connections)
        request_started.disconnect(reset_queries)

        # The gateway's caches listen to the apps below it, which never import
        # it (pyproject.toml's import contracts). Keys and balances are told on commit.
        from accounts.signals import keys_changed
        from billing.models import ModelRate
        from billing.signals import balance_changed
        from providers.models import CatalogModel, Credential, ModelRoute, Provider

        keys_changed.connect(_forget_keys, dispatch_uid="hub.auth.forget")
        balance_changed.connect(_forget_balance, dispatch_uid="hub.balances.forget")
        for model in (Provider, Credential, CatalogModel, ModelRoute, ModelRate):
            for signal in (post_save, post_delete):
                signal.connect(_catalogue_changed, sender=model, dispatch_uid=f"hub.catalogue.{model.__name__}")


def _forget_keys(sender, hashed=None, **kwargs):
    from . import auth

    auth.forget_all() if hashed is None else auth.forget_key(hashed)


def _forget_balance(sender, organization_id, **kwargs):
    from . import balances

    balances.forget(organization_id)


def _catalogue_changed(sender, **kwargs):
    # This process sees the change at once, and again once it is committed (a
    # request in between may have cached what was still committed); others
    # within HUB_CATALOGUE_CACHE_SECONDS.
    from . import catalogue

    catalogue.invalidate()
    transaction.on_commit(catalogue.invalidate)
