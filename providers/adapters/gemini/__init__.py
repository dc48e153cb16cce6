"""Google Gemini API (generateContent / streamGenerateContent?alt=sse) behind the OpenAI interface.

Gemini differs from OpenAI in ways that matter here: the system prompt is a
separate `systemInstruction`; roles are user/model and consecutive turns of a
role must be one content; images must be inline bytes; function calls have no
ids (tool results are matched by function name and order); a prompt its safety
filter blocks is a 200 with no candidates; errors are Google RPC errors
({"error": {"code", "message", "status", "details"}}) where a bad API key is a
400; and Gemini 3 refuses a replayed function call without its thought
signature.

One module per concern: request.py, response.py, errors.py (pure translations the tests call directly),
stream.py, images.py, embeddings.py, and adapter.py, which makes the HTTP calls.
"""

from .adapter import GeminiAdapter
from .stream import GeminiStream

__all__ = ["GeminiAdapter", "GeminiStream"]
