"""How the gateway's caches hear of changes in the apps below it, which never import it (pyproject.toml's
import contracts): keys and balances are told on commit by those apps' own signals, the catalogue by its
models' saves and deletes; Celery's task signals are counted for /metrics (hub/metrics.py). Connected in
HubConfig.ready() (hub/apps.py), once the models are loaded."""

from celery.signals import task_failure, task_postrun
from django.db import transaction
from django.db.models.signals import post_delete, post_save

from accounts.signals import keys_changed
from billing.models import ModelRate
from billing.signals import balance_changed
from providers.models import CatalogModel, Credential, ModelRoute, Provider

from . import auth, balances, catalogue, metrics


def connect() -> None:
    keys_changed.connect(forget_keys, dispatch_uid="hub.auth.forget")
    task_postrun.connect(metrics.task_ran, dispatch_uid="hub.metrics.task_ran")
    task_failure.connect(metrics.task_failed, dispatch_uid="hub.metrics.task_failed")
    balance_changed.connect(forget_balance, dispatch_uid="hub.balances.forget")
    for model in (Provider, Credential, CatalogModel, ModelRoute, ModelRate):
        for signal in (post_save, post_delete):
            signal.connect(catalogue_changed, sender=model, dispatch_uid=f"hub.catalogue.{model.__name__}")


def forget_keys(sender, hashed=None, **kwargs) -> None:
    auth.forget_all() if hashed is None else auth.forget_key(hashed)


def forget_balance(sender, organization_id, **kwargs) -> None:
    balances.forget(organization_id)


def catalogue_changed(sender, **kwargs) -> None:
    # This process sees the change at once, and again once it is committed (a
    # request in between may have cached what was still committed); others
    # within HUB_CATALOGUE_CACHE_SECONDS.
    catalogue.invalidate()
    transaction.on_commit(catalogue.invalidate)
