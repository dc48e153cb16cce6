"""POST /v1/audio/transcriptions and /v1/audio/translations: the upload, read and measured.

The hub measures the audio's duration itself (mutagen reads MP3, MP4/M4A,
Ogg/Opus, FLAC and WAV headers without decoding), so the credit held is the
real price; for a format it cannot read (WebM, say), or a header that claims
less time than its bytes could play, it holds for the longest the file could
last at HUB_AUDIO_MIN_BYTES_PER_SECOND. What is billed is the provider's own
count wherever it gives one (providers/adapters/audio.py).
"""

import io
import math
from decimal import Decimal

import mutagen
from django.conf import settings
from django.http.multipartparser import MultiPartParserError

from providers.adapters.base import MAX_SECONDS

from .errors import BadRequest, PayloadTooLarge

FORMATS = ("json", "text", "srt", "vtt", "verbose_json")
# More bytes a second than any real recording has (192 kHz, 8 channels, 32-bit float is 6.1 MB/s): a
# header claiming a shorter duration than that is not believed.
MAX_BYTES_PER_SECOND = 6_144_000
AUDIO_SUFFIXES = ("flac", "mp3", "mp4", "mpeg", "mpga", "m4a", "ogg", "oga", "opus", "wav", "webm")


def duration(data: bytes) -> Decimal | None:
    try:
        parsed = mutagen.File(io.BytesIO(data))
    except Exception:  # mutagen raises its own error per format for a broken file
        return None
    length = getattr(getattr(parsed, "info", None), "length", None)
    if not isinstance(length, (int, float)) or not math.isfinite(length) or not 0 < length <= MAX_SECONDS:
        return None  # a header is the client's word: NaN, infinite or years long is not believed either
    if len(data) / length > MAX_BYTES_PER_SECOND:
        return None
    return Decimal(str(length)).quantize(Decimal("0.001"))


def read(request, task: str) -> dict:
    """The multipart form, checked: the file (within HUB_MAX_UPLOAD_BYTES), model and options."""
    if not request.content_type.startswith("multipart/form-data"):
        raise BadRequest(
            "Send the audio as multipart/form-data with a 'file' field.", param="file", code="invalid_content_type"
        )
    try:
        fields, files = request.POST, request.FILES
    except MultiPartParserError as exc:
        raise BadRequest(
            f"We could not parse the multipart body of your request: {exc}.", code="invalid_multipart"
        ) from None
    upload = files.get("file")
    if upload is None:
        raise BadRequest("Missing required parameter: 'file'.", param="file", code="missing_required_parameter")
    if upload.size > settings.HUB_MAX_UPLOAD_BYTES:
        raise PayloadTooLarge(f"The audio file is larger than {settings.HUB_MAX_UPLOAD_BYTES} bytes.", param="file")
    data = upload.read()
    if not data:
        raise BadRequest("The audio file is empty.", param="file", code="invalid_value")
    body = {
        "task": task,
        "model": fields.get("model") or "",
        "file": (upload.name or "audio", data, upload.content_type or "application/octet-stream"),
    }
    for name in ("language", "prompt", "response_format", "temperature"):
        if fields.get(name) not in (None, ""):
            body[name] = fields.get(name)
    granularities = fields.getlist("timestamp_granularities[]") or fields.getlist("timestamp_granularities")
    if granularities:
        body["timestamp_granularities"] = granularities
    return _check(body, fields)


def _check(body: dict, fields) -> dict:
    if not body["model"]:
        raise BadRequest("Missing required parameter: 'model'.", param="model", code="missing_required_parameter")
    if body.get("response_format", "json") not in FORMATS:
        raise BadRequest(
            f"Invalid 'response_format': use one of {', '.join(FORMATS)}.",
            param="response_format",
            code="invalid_value",
        )
    if "temperature" in body:
        try:
            temperature = float(body["temperature"])
        except ValueError:
            temperature = -1
        if not 0 <= temperature <= 1:
            raise BadRequest("Invalid 'temperature': a number from 0 to 1.", param="temperature", code="invalid_value")
    if set(body.get("timestamp_granularities") or ()) - {"word", "segment"}:
        raise BadRequest(
            "Invalid 'timestamp_granularities[]': 'word' and/or 'segment'.",
            param="timestamp_granularities",
            code="invalid_value",
        )
    if str(fields.get("stream", "")).lower() == "true":
        raise BadRequest(
            "Streamed transcriptions are not supported by this hub; leave 'stream' unset.",
            param="stream",
            code="unsupported_parameter",
        )
    if body["task"] == "translate" and "language" in body:
        raise BadRequest(
            "Translations always produce English; 'language' is not a parameter here.",
            param="language",
            code="unknown_parameter",
        )
    data = body["file"][1]
    body["seconds"] = duration(data)
    body["seconds_bound"] = (
        body["seconds"]
        if body["seconds"] is not None
        else (Decimal(len(data)) / settings.HUB_AUDIO_MIN_BYTES_PER_SECOND).quantize(Decimal("0.001"))
    )
    return body
