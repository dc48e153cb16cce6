"""Anthropic Messages API (POST {base_url}/v1/messages) behind OpenAI chat completions.

Request: system and developer messages become the top-level `system`; the
conversation is user/assistant turns (consecutive same-role messages merged);
tool calls and tool results become `tool_use` / `tool_result` blocks; images
become base64 or url sources (Anthropic fetches URLs itself). Answer: text and
`tool_use` blocks, `stop_reason`, and usage, whose `input_tokens` leaves out
cached tokens, so cache reads and writes are added back for prompt_tokens.

One module per concern: request.py, response.py, errors.py (pure translations the tests call directly),
stream.py, and adapter.py, which makes the HTTP calls.
"""

from .adapter import AnthropicAdapter
from .stream import AnthropicStream

__all__ = ["AnthropicAdapter", "AnthropicStream"]
