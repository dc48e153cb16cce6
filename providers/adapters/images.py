"""What each image model accepts: sizes, qualities, styles, how many at once, edits.

The hub checks a request against its model's family before any upstream call,
so a parameter the model does not support is a clear 400 from the hub, not a
provider's error (or, worse, silently ignored and billed). A model of no known
family is passed through as sent and its provider judges.
"""

from dataclasses import dataclass

# Gemini's native image models: the sizes of their documented aspect ratios.
GEMINI_SIZES = {
    "1024x1024": "1:1",
    "832x1248": "2:3",
    "1248x832": "3:2",
    "864x1184": "3:4",
    "1184x864": "4:3",
    "896x1152": "4:5",
    "1152x896": "5:4",
    "768x1344": "9:16",
    "1344x768": "16:9",
    "1536x672": "21:9",
}


@dataclass(frozen=True)
class Family:
    name: str
    sizes: frozenset | None  # None: any size is passed on
    default_size: str = ""
    qualities: frozenset | None = None
    default_quality: str = ""
    styles: frozenset = frozenset()
    default_style: str = ""
    max_n: int = 10
    max_prompt: int = 32000
    max_edit_images: int = 0  # 0: no edits
    mask: bool = False
    extras: frozenset = frozenset()  # further parameters it takes, passed on as sent


FAMILIES = {
    "dall-e-2": Family(
        "dall-e-2",
        frozenset({"256x256", "512x512", "1024x1024"}),
        "1024x1024",
        frozenset({"standard"}),
        "standard",
        max_prompt=1000,
        max_edit_images=1,
        mask=True,
    ),
    "dall-e-3": Family(
        "dall-e-3",
        frozenset({"1024x1024", "1792x1024", "1024x1792"}),
        "1024x1024",
        frozenset({"standard", "hd"}),
        "standard",
        frozenset({"vivid", "natural"}),
        "vivid",
        max_n=1,
        max_prompt=4000,
    ),
    "gpt-image": Family(
        "gpt-image",
        frozenset({"auto", "1024x1024", "1536x1024", "1024x1536"}),
        "auto",
        frozenset({"auto", "low", "medium", "high"}),
        "auto",
        max_edit_images=16,
        mask=True,
        extras=frozenset({"background", "output_format", "output_compression", "moderation", "input_fidelity"}),
    ),
    "gemini": Family(
        "gemini", frozenset({"auto", *GEMINI_SIZES}), "auto", frozenset({"auto", "standard"}), "auto", max_edit_images=3
    ),
    "demo": Family(
        "demo",
        frozenset({"256x256", "512x512", "1024x1024"}),
        "1024x1024",
        frozenset({"standard", "hd"}),
        "standard",
        frozenset({"vivid", "natural"}),
        "vivid",
        max_edit_images=4,
        mask=True,
    ),
    "generic": Family("generic", None, max_edit_images=16, mask=True),
}


def openai_family(upstream_name: str) -> Family:
    name = upstream_name.rsplit("/", 1)[-1]
    for prefix in ("dall-e-2", "dall-e-3", "gpt-image"):
        if name.startswith(prefix):
            return FAMILIES[prefix]
    return FAMILIES["generic"]


def image_tier(size: str | None, quality: str | None) -> str:
    """How an image is priced (billing.models.ModelRate): "<size>/<quality>", or whichever is known."""
    if size and quality:
        return f"{size}/{quality}"
    return size or quality or ""
