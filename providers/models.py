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
    connect_timeout = models.FloatField(null=True, blank=True, help_text="Seconds; empty: HUB_UPSTREAM_CONNECT_TIMEOUT")
    first_byte_timeout = models.FloatField(
        null=True, blank=True, help_text="Seconds until the answer starts; empty: HUB_UPSTREAM_FIRST_BYTE_TIMEOUT"
    )
    idle_timeout = models.FloatField(
        null=True, blank=True, help_text="Seconds of silence allowed mid-answer; empty: HUB_UPSTREAM_READ_TIMEOUT"
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
    weight = models.PositiveIntegerField(default=1, help_text="Share of traffic among credentials of equal priority")
    priority = models.IntegerField(default=0, help_text="Lower is tried first")
    max_concurrency = models.PositiveIntegerField(
        null=True, blank=True, help_text="Requests at once, all hub processes"
    )
    rpm_limit = models.PositiveIntegerField(null=True, blank=True, help_text="Requests per minute, all hub processes")
    last_checked_at = models.DateTimeField(null=True, blank=True, editable=False)
    last_check_ok = models.BooleanField(null=True, editable=False)
    last_check_latency_ms = models.PositiveIntegerField(null=True, blank=True, editable=False)
    last_check_error = models.CharField(max_length=300, blank=True, editable=False)
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
    """A model as tenants name it; its routes say where it is served."""

    class Kind(models.TextChoices):
        CHAT = "chat", "Chat"
        EMBEDDING = "embedding", "Embedding"
        IMAGE = "image", "Image generation"
        AUDIO = "audio", "Speech (text to audio)"
        TRANSCRIPTION = "transcription", "Transcription (audio to text)"

    class Strategy(models.TextChoices):
        WEIGHTED = "weighted", "Weighted random"
        PRIORITY = "priority", "Priority order"
        LEAST_BUSY = "least_busy", "Least busy"
        LOWEST_LATENCY = "lowest_latency", "Lowest latency"

    public_id = models.CharField(max_length=200, unique=True, help_text="e.g. openai/gpt-4o-mini")
    alias = models.CharField(max_length=200, blank=True, help_text="A bare name that also selects it, e.g. gpt-4o-mini")
    kind = models.CharField(max_length=20, choices=Kind.choices, default=Kind.CHAT)
    context_window = models.PositiveIntegerField(null=True, blank=True)
    max_output_tokens = models.PositiveIntegerField(null=True, blank=True)
    supports_tools = models.BooleanField(default=True)
    supports_vision = models.BooleanField(default=True)
    supports_json = models.BooleanField(default=True, help_text="response_format json_object / json_schema")
    strategy = models.CharField(
        max_length=20,
        choices=Strategy.choices,
        default=Strategy.WEIGHTED,
        help_text="How a route and credential are chosen for each request",
    )
    fallbacks = models.JSONField(
        default=list, blank=True, help_text="Public ids of models to try, in order, when every route of this one failed"
    )
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
        if not isinstance(self.fallbacks, list) or not all(isinstance(f, str) for f in self.fallbacks):
            raise ValidationError({"fallbacks": "A list of model ids."})
        if self.public_id in (self.fallbacks or []):
            raise ValidationError({"fallbacks": "A model cannot be its own fallback."})


class ModelRoute(models.Model):
    """One place a model is served: a provider and the name it knows the model by."""

    model = models.ForeignKey(CatalogModel, on_delete=models.CASCADE, related_name="routes")
    provider = models.ForeignKey(Provider, on_delete=models.PROTECT, related_name="routes")
    upstream_name = models.CharField(max_length=200, help_text="The model name the provider expects.")
    weight = models.PositiveIntegerField(default=1, help_text="Share of traffic among routes of equal priority")
    priority = models.IntegerField(default=0, help_text="Lower is tried first")
    enabled = models.BooleanField(default=True)

    class Meta:
        ordering = ["model", "priority", "pk"]
        constraints = [
            models.UniqueConstraint(fields=["model", "provider", "upstream_name"], name="unique_model_route"),
        ]

    def __str__(self):
        return f"{self.model} via {self.provider} ({self.upstream_name})"
