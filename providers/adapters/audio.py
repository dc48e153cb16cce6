"""Transcriptions and translations: how long the audio was, and OpenAI's answer formats.

Billing is per second of audio. The provider's own count wins (verbose_json's
`duration`, or `usage: {"type": "duration", "seconds": …}`); failing that, the
duration the hub measured from the upload (hub/audio.py); failing that (a
format it cannot read, an answer with no duration), an estimate from the
file's size, marked as estimated.
"""

import json
import math
from decimal import Decimal

from .base import Usage

ESTIMATE_BYTES_PER_SECOND = 16000  # 128 kbit/s, a typical compressed upload


def transcription_usage(content: bytes, content_type: str, body: dict) -> Usage:
    usage = Usage()
    seconds = None
    if content_type.startswith("application/json"):
        try:
            data = json.loads(content)
        except ValueError:
            data = None
        if isinstance(data, dict):
            reported = data.get("usage") if isinstance(data.get("usage"), dict) else {}
            if reported.get("type") == "duration" and reported.get("seconds") is not None:
                seconds = reported["seconds"]
            elif data.get("duration") is not None:
                seconds = data["duration"]
            if reported.get("type") == "tokens":
                usage.prompt_tokens = int(reported.get("input_tokens") or 0)
                usage.completion_tokens = int(reported.get("output_tokens") or 0)
    if seconds is not None:
        usage.seconds = Decimal(str(seconds)).quantize(Decimal("0.001"))
    elif body.get("seconds") is not None:
        usage.seconds = body["seconds"]
    else:
        usage.seconds = (Decimal(len(body["file"][1])) / ESTIMATE_BYTES_PER_SECOND).quantize(Decimal("0.001"))
        usage.estimated = True
    return usage


def _stamp(seconds: float, separator: str) -> str:
    millis = int(round(seconds * 1000))
    hours, rest = divmod(millis, 3_600_000)
    minutes, rest = divmod(rest, 60_000)
    return f"{hours:02d}:{minutes:02d}:{rest // 1000:02d}{separator}{rest % 1000:03d}"


def render(text: str, duration: float, response_format: str, *, task: str = "transcribe",
           language: str = "english", words: bool = False) -> tuple[bytes, str]:
    """(body, content type) of a one-segment transcript in any of OpenAI's response formats."""
    if response_format == "text":
        return f"{text}\n".encode(), "text/plain; charset=utf-8"
    if response_format == "srt":
        return f"1\n{_stamp(0, ',')} --> {_stamp(duration, ',')}\n{text}\n\n".encode(), "text/plain; charset=utf-8"
    if response_format == "vtt":
        return (f"WEBVTT\n\n{_stamp(0, '.')} --> {_stamp(duration, '.')}\n{text}\n\n".encode(),
                "text/plain; charset=utf-8")
    usage = {"type": "duration", "seconds": math.ceil(duration)}
    if response_format == "verbose_json":
        answer = {"task": task, "language": language, "duration": round(duration, 3), "text": text,
                  "segments": [{"id": 0, "seek": 0, "start": 0.0, "end": round(duration, 3), "text": f" {text}",
                                "tokens": [], "temperature": 0.0, "avg_logprob": 0.0, "compression_ratio": 1.0,
                                "no_speech_prob": 0.0}],
                  "usage": usage}
        if words:
            spoken = text.split()
            step = duration / max(len(spoken), 1)
            answer["words"] = [{"word": w, "start": round(i * step, 3), "end": round((i + 1) * step, 3)}
                               for i, w in enumerate(spoken)]
    else:
        answer = {"text": text, "usage": usage}
    return json.dumps(answer).encode(), "application/json"
