"""Adapters by provider kind. Nothing outside an adapter branches on a provider."""

from django.utils.module_loading import import_string

from .base import Adapter, ChatResult, ChatStream, UpstreamError, Usage

ADAPTER_CLASSES = {
    "openai_compatible": "providers.adapters.openai_compat.OpenAICompatibleAdapter",
    "anthropic": "providers.adapters.anthropic.AnthropicAdapter",
    "gemini": "providers.adapters.gemini.GeminiAdapter",
    "bedrock": "providers.adapters.bedrock.BedrockAdapter",
    "demo": "providers.adapters.demo.DemoAdapter",
}
_adapters: dict[str, Adapter] = {}


def get_adapter(kind: str) -> Adapter:
    adapter = _adapters.get(kind)
    if adapter is None:
        adapter = _adapters[kind] = import_string(ADAPTER_CLASSES[kind])()
    return adapter


__all__ = ["Adapter", "ChatResult", "ChatStream", "UpstreamError", "Usage", "get_adapter"]
