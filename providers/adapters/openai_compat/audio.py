"""Transcriptions, translations and speech: what is sent and how the answer is read, as pure functions.

How long audio was and OpenAI's answer formats are shared with the other families: providers/adapters/audio.py.
"""

from .. import audio
from ..base import ChatResult, UpstreamError
from ..translate import MALFORMED
from .errors import error_body, failed, invalid

SPEECH_ERROR_BYTES = 65536  # of a non-audio answer read to say what went wrong
AUDIO_TYPES = {
    "mp3": "audio/mpeg",
    "opus": "audio/opus",
    "aac": "audio/aac",
    "flac": "audio/flac",
    "wav": "audio/wav",
    "pcm": "audio/pcm",
}


def transcription_request(route, body: dict) -> tuple[str, dict, str]:
    """(endpoint path, form, the format asked of the provider): text, SRT and VTT are asked as JSON, which says
    how much audio was billed, and rendered here."""
    path = "translations" if body["task"] == "translate" else "transcriptions"
    asked = body.get("response_format") or "json"
    ask = audio.upstream_format(route.upstream_name, asked)
    form = {name: str(body[name]) for name in ("language", "prompt", "temperature") if body.get(name) is not None}
    form["model"] = route.upstream_name
    if "response_format" in body or ask != asked:
        form["response_format"] = ask
    if body.get("timestamp_granularities"):
        form["timestamp_granularities[]"] = body["timestamp_granularities"]
    return path, form, ask


def transcription_result(route, body: dict, content: bytes, content_type: str, ask: str) -> ChatResult:
    """The answer in the format the client asked for, and the seconds of audio it bills."""
    asked = body.get("response_format") or "json"
    if "json" in content_type and error_body(content, "text"):
        raise failed(route, content)
    usage = audio.transcription_usage(content, content_type, body)
    if ask != asked:
        try:
            content, content_type = audio.rerender(content, asked, task=body["task"])
        except MALFORMED:
            raise invalid(route) from None
    return ChatResult(content, usage, content_type)


def speech_type(content_type: str | None, body: dict) -> str:
    """The content type of a speech answer: the provider's, else the one of the format asked for."""
    # The hub's speech serializer admits only these formats (hub/serializers.py).
    return content_type or AUDIO_TYPES[body.get("response_format") or "mp3"]


def is_audio(content_type: str) -> bool:
    """Whether a speech answer is audio; JSON or text is a proxy's error, its words perhaps quoting the key."""
    return content_type.split(";")[0].strip().lower() not in ("application/json", "text/plain", "text/html")


def not_audio(route, content: bytes, content_type: str) -> UpstreamError:
    """The error for a speech answer that is not audio (its first SPEECH_ERROR_BYTES in `content`)."""
    if error_body(content, "audio"):
        return failed(route, content)
    return UpstreamError(
        f"The provider '{route.provider_name}' sent {content_type.split(';')[0]}, not audio.",
        code="upstream_invalid_response",
    )
