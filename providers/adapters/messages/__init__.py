"""Anthropic's Messages API as the hub's inbound format: pure conversions to and from OpenAI chat.

The gateway runs every request as an OpenAI chat completion (one internal
representation, one set of adapters). A Messages request is checked and turned
into that body (request.py); a whole answer and a stream of chunks are turned
back into Anthropic's message and events (response.py, stream.py). Routes
whose adapter speaks Messages natively (the Anthropic adapter's `messages`)
get the client's own body instead, with its cache_control, thinking and beta
features intact.
"""

from .request import Invalid, Parsed, parse
from .response import error_body, error_status, message
from .stream import MessagesStream

__all__ = ["Invalid", "MessagesStream", "Parsed", "error_body", "error_status", "message", "parse"]
