"""Adapters by provider kind. Nothing outside an adapter branches on a provider."""

from .base import Adapter, ChatResult, ChatStream, UpstreamError, Usage
from .demo import DemoAdapter
from .openai_compat import OpenAICompatibleAdapter

ADAPTERS: dict[str, Adapter] = {
    "openai_compatible": OpenAICompatibleAdapter(),
    "demo": DemoAdapter(),
}


def get_adapter(kind: str) -> Adapter:
    return ADAPTERS[kind]


__all__ = ["Adapter", "ChatResult", "ChatStream", "UpstreamError", "Usage", "get_adapter"]
