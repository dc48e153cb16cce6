"""OpenAI-compatible providers differ in data, not in code: base URL and quirks.

`stream_usage`: the API honours `stream_options.include_usage`.
`max_tokens_field`: the name the API expects for the output cap.
"""

from dataclasses import dataclass


@dataclass(frozen=True)
class Preset:
    name: str
    base_url: str
    stream_usage: bool = True
    needs_key: bool = True
    max_tokens_field: str = "max_tokens"
    extra_headers: tuple = ()


PRESETS = {
    p.name: p
    for p in [
        # max_tokens is refused by OpenAI's reasoning models; max_completion_tokens is honoured by all.
        Preset("openai", "https://api.openai.com/v1", max_tokens_field="max_completion_tokens"),
        Preset("deepseek", "https://api.deepseek.com/v1"),
        Preset("xai", "https://api.x.ai/v1"),
        Preset("openrouter", "https://openrouter.ai/api/v1"),
        Preset("doubao", "https://ark.cn-beijing.volces.com/api/v3"),
        Preset("poe", "https://api.poe.com/v1", stream_usage=False),
        Preset("mistral", "https://api.mistral.ai/v1", stream_usage=False),
        Preset("ollama", "http://127.0.0.1:11434/v1", needs_key=False),
        Preset("custom", ""),
    ]
}


def get_preset(name: str) -> Preset:
    return PRESETS.get(name) or PRESETS["custom"]


# Where the other API families live unless a provider sets its own base URL;
# {region} comes from the provider's options.
KIND_BASE_URLS = {
    "anthropic": "https://api.anthropic.com",
    "gemini": "https://generativelanguage.googleapis.com",
    "bedrock": "https://bedrock-runtime.{region}.amazonaws.com",
}
