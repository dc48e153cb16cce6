from django.db.models.signals import post_delete, post_save
from django.dispatch import receiver

from . import pricing  # noqa: F401 - its receivers keep the price history of every ModelRate save
from .models import ModelRate


@receiver([post_save, post_delete], sender=ModelRate)
def rate_changed(**kwargs):
    from hub.catalogue import invalidate

    invalidate()
