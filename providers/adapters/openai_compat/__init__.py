"""OpenAI-compatible chat completions (OpenAI, DeepSeek, xAI, OpenRouter, …).

The request and answer are already in the hub's format, so bytes pass through;
only the model name, the stream usage option and the usage chunk are touched.

One module per concern: request.py, response.py, errors.py, images.py, audio.py (pure translations the tests
call directly), stream.py, and adapter.py, which makes the HTTP calls.
"""

from .adapter import OpenAICompatibleAdapter
from .stream import OpenAIStream

__all__ = ["OpenAICompatibleAdapter", "OpenAIStream"]
