"""Set up a demo organisation, key and the built-in demo provider (idempotent)."""

import os
import secrets
from decimal import Decimal

from django.conf import settings
from django.core.management.base import BaseCommand
from django.db import transaction

from accounts.models import ApiKey, Membership, Organization, Role, User
from accounts.services import api_key_create, audit_record, hash_api_key, organization_create
from billing.models import ModelRate
from billing.services import credit_grant
from providers.models import CatalogModel, ModelRoute, Provider

# The demo provider's models, one per endpoint: (public id, alias, kind, upstream name).
DEMO_MODELS = [
    ("demo/echo", "demo", CatalogModel.Kind.CHAT, "echo"),
    ("demo/embed", "", CatalogModel.Kind.EMBEDDING, "embed"),
    ("demo/tts", "", CatalogModel.Kind.AUDIO, "tts"),
    ("demo/image", "", CatalogModel.Kind.IMAGE, "image"),
    ("demo/whisper", "", CatalogModel.Kind.TRANSCRIPTION, "whisper"),
]


def ensure_demo_provider() -> CatalogModel:
    """The demo provider and its models (free: trying the hub costs nothing); returns the chat model."""
    provider, _ = Provider.objects.get_or_create(name="demo", defaults={"kind": Provider.Kind.DEMO})
    models = []
    for public_id, alias, kind, upstream in DEMO_MODELS:
        model, _ = CatalogModel.objects.get_or_create(public_id=public_id, defaults={"alias": alias, "kind": kind})
        ModelRoute.objects.get_or_create(model=model, provider=provider, upstream_name=upstream)
        ModelRate.objects.get_or_create(model=model)
        models.append(model)
    return models[0]


class Command(BaseCommand):
    help = "Create the demo organisation, its API key and the built-in demo provider, then print how to call it."

    def add_arguments(self, parser):
        parser.add_argument("--base-url", default="http://127.0.0.1:8000/v1")
        parser.add_argument("--key-only", action="store_true", help="Print only the API key.")

    @transaction.atomic
    def handle(self, *args, base_url, key_only, **options):
        ensure_demo_provider()
        organization = Organization.objects.filter(slug="demo").first() or organization_create(name="Demo", slug="demo")
        credit_grant(
            organization=organization,
            amount=Decimal(settings.HUB_DEMO_CREDITS),
            description="Demo credits",
            idempotency_key="bootstrap:demo-credits",
        )
        raw_key = self._demo_key(organization)
        admin, password = self._admin()
        self._owner(admin, organization)
        if key_only:
            self.stdout.write(raw_key)
            return
        site = base_url.rsplit("/v1", 1)[0]
        self.stdout.write(
            f"Base URL: {base_url}\nAPI key:  {raw_key}\n"
            "Model:    demo/echo (free, offline; also demo/embed, demo/tts, demo/image, demo/whisper)\n"
            f"API docs: {site}/docs/api/ (OpenAPI: {base_url}/openapi.json)"
        )
        if password:
            self.stdout.write(
                f"Admin:    {site}/admin/ user 'admin', password {password}\n"
                f"          (shown only now; to set another: python manage.py changepassword admin)"
            )
        if admin is not None:
            self.stdout.write(
                f"Manage:   {site}/manage/v1/docs/ (signed in at /admin/ as '{admin.get_username()}', "
                f"owner of the demo organisation: /manage/v1/orgs/demo/)"
            )

    def _demo_key(self, organization) -> str:
        raw = settings.HUB_DEMO_API_KEY
        stored = settings.VAR_DIR / "demo_api_key"
        if not raw and stored.exists():
            raw = stored.read_text().strip()
        if raw and ApiKey.objects.filter(hashed_key=hash_api_key(raw), revoked_at__isnull=True).exists():
            return raw
        _, raw = api_key_create(organization=organization, name="demo", raw_key=raw)
        if not settings.HUB_DEMO_API_KEY:
            # Kept (owner-only) so the next `make run` prints the same key.
            stored.write_text(raw)
            os.chmod(stored, 0o600)
        return raw

    def _admin(self) -> tuple[User | None, str]:
        """The admin user ('admin', else the first superuser), made on the first run with its password."""
        superusers = User.objects.filter(is_superuser=True)
        if not superusers.exists():
            password = os.environ.get("HUB_ADMIN_PASSWORD") or secrets.token_urlsafe(12)
            return User.objects.create_superuser("admin", "", password), password
        return superusers.filter(username="admin").first() or superusers.order_by("pk").first(), ""

    def _owner(self, admin: User | None, organization: Organization) -> None:
        # The management API acts for members only: without a membership the admin user gets 404 there.
        # An existing membership is left as it is (an owner may have changed its role on purpose).
        if admin is None:
            return
        membership, created = Membership.objects.get_or_create(
            user=admin, organization=organization, defaults={"role": Role.OWNER}
        )
        if created:
            audit_record(
                action="member.add",
                organization=organization,
                target=membership,
                details={"user": admin.get_username(), "role": Role.OWNER, "by": "hub_bootstrap"},
            )
