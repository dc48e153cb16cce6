from django.core.exceptions import ValidationError
from django.db import models

from . import crypto
from .presets import KIND_BASE_URLS, PRESETS


class Provider(models.Model):
    class Kind(models.TextChoices):
        OPENAI_COMPATIBLE = "openai_compatible", "OpenAI-compatible API"
        ANTHROPIC = "anthropic", "Anthropic Messages API"
        GEMINI = "gemini", "Google Gemini API"
        BEDROCK = "bedrock", "Amazon Bedrock Converse API"
        DEMO = "demo", "Built-in demo (no network)"

    name = models.SlugField(max_length=100, unique=True)
    kind = models.CharField(max_length=40, choices=Kind.choices, default=Kind.OPENAI_COMPATIBLE)
    preset = models.CharField(
        max_length=40, choices=[(p, p) for p in PRESETS], default="custom", help_text="Quirks of a known API."
    )
    base_url = models.URLField(max_length=500, blank=True)
    options = models.JSONField(
        default=dict, blank=True, help_text='Settings of the API that are not secret, e.g. {"region": "us-east-1"}.'
    )
    enabled = models.BooleanField(default=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["name"]

    def __str__(self):
        return self.name

    def clean(self):
        if not self.effective_base_url:
            raise ValidationError({"base_url": "An OpenAI-compatible provider needs a base URL."})
        if not isinstance(self.options, dict):
            raise ValidationError({"options": "Options must be a JSON object."})

    @property
    def effective_base_url(self) -> str:
        if self.base_url:
            return self.base_url.rstrip("/")
        if self.kind == self.Kind.OPENAI_COMPATIBLE:
            return PRESETS[self.preset].base_url.rstrip("/")
        options = {"region": "us-east-1", **(self.options or {})}
        return KIND_BASE_URLS.get(self.kind, "").format(**options)


class Credential(models.Model):
    """A provider secret (API key), encrypted at rest; write-only once saved."""

    provider = models.ForeignKey(Provider, on_delete=models.CASCADE, related_name="credentials")
    name = models.CharField(max_length=100, default="default")
    encrypted_secret = models.TextField(editable=False)
    secret_hint = models.CharField(max_length=12, editable=False, blank=True)
    enabled = models.BooleanField(default=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["provider", "name"]
        constraints = [models.UniqueConstraint(fields=["provider", "name"], name="unique_credential_name")]

    def __str__(self):
        return f"{self.provider} / {self.name}"

    def set_secret(self, secret: str) -> None:
        self.encrypted_secret = crypto.encrypt(secret)
        self.secret_hint = "…" + secret[-4:] if len(secret) >= 12 else "…"

    def get_secret(self) -> str:
        return crypto.decrypt(self.encrypted_secret) if self.encrypted_secret else ""


class CatalogModel(models.Model):
    """A model as tenants name it, and where it is served."""

    class Kind(models.TextChoices):
        CHAT = "chat", "Chat"
        EMBEDDING = "embedding", "Embedding"
        IMAGE = "image", "Image"
        AUDIO = "audio", "Audio"

    public_id = models.CharField(max_length=200, unique=True, help_text="e.g. openai/gpt-4o-mini")
    alias = models.CharField(max_length=200, blank=True, help_text="A bare name that also selects it, e.g. gpt-4o-mini")
    provider = models.ForeignKey(Provider, on_delete=models.PROTECT, related_name="models")
    upstream_name = models.CharField(max_length=200, help_text="The model name the provider expects.")
    kind = models.CharField(max_length=20, choices=Kind.choices, default=Kind.CHAT)
    context_window = models.PositiveIntegerField(null=True, blank=True)
    max_output_tokens = models.PositiveIntegerField(null=True, blank=True)
    supports_tools = models.BooleanField(default=True)
    supports_vision = models.BooleanField(default=True)
    supports_json = models.BooleanField(default=True, help_text="response_format json_object / json_schema")
    enabled = models.BooleanField(default=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["public_id"]
        verbose_name = "model"
        constraints = [
            models.UniqueConstraint(fields=["alias"], condition=~models.Q(alias=""), name="unique_model_alias"),
        ]

    def __str__(self):
        return self.public_id

    def clean(self):
        if self.alias and CatalogModel.objects.filter(public_id=self.alias).exclude(pk=self.pk).exists():
            raise ValidationError({"alias": "Another model already uses this as its public id."})
