from django.db.models.signals import post_delete, post_save
from django.dispatch import receiver

from .models import CatalogModel, Credential, ModelRoute, Provider


@receiver([post_save, post_delete], sender=Provider)
@receiver([post_save, post_delete], sender=Credential)
@receiver([post_save, post_delete], sender=CatalogModel)
@receiver([post_save, post_delete], sender=ModelRoute)
def catalogue_changed(**kwargs):
    # This process sees the change at once; others within HUB_CATALOGUE_CACHE_SECONDS.
    from hub.catalogue import invalidate

    invalidate()
