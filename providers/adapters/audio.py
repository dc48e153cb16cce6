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

from .base import Counts, Usage

ESTIMATE_BYTES_PER_SECOND = 16000  # 128 kbit/s, a typical compressed upload


def transcription_usage(content: bytes, content_type: str, body: dict) -> Usage:
    usage, counts = Usage(), Counts()
    seconds = None
    if content_type.startswith("application/json"):
        try:
            data = json.loads(content)
        except (ValueError, RecursionError):  # nested past the parser: no count to read, the estimate bills
            data = None
        if isinstance(data, dict):
            reported = data.get("usage")
            if not isinstance(reported, dict):
                reported = {}
            if reported.get("type") == "duration" and reported.get("seconds") is not None:
                seconds = counts.seconds(reported["seconds"])
            elif data.get("duration") is not None:
                seconds = counts.seconds(data["duration"])
            if reported.get("type") == "tokens":
                usage.prompt_tokens = counts.read(reported, "input_tokens")
                usage.completion_tokens = counts.read(reported, "output_tokens")
    counts.usage(usage)
    if usage.invalid:
        # Billed by the seconds (reported, else estimated below); the tokens are not to be trusted.
        usage.prompt_tokens = usage.completion_tokens = 0
        usage.estimated = True
    if seconds is not None:
        usage.seconds = seconds
    elif body.get("seconds") is not None:
        usage.seconds = body["seconds"]
    else:
        usage.seconds = (Decimal(len(body["file"][1])) / ESTIMATE_BYTES_PER_SECOND).quantize(Decimal("0.001"))
        usage.estimated = True
    return usage


def upstream_format(upstream_name: str, asked: str) -> str:
    """What to ask the provider for so that its answer says how much audio it billed.

    Text, SRT and VTT carry no duration: Whisper-style models are asked for
    verbose_json (duration, segments and usage) and the hub renders the format
    asked for from it; OpenAI's gpt-4o transcribers take only json and text,
    so text is asked as json (its token usage). Their SRT/VTT go as asked (and
    are refused by the provider).
    """
    if asked not in ("text", "srt", "vtt"):
        return asked
    if upstream_name.rsplit("/", 1)[-1].startswith("gpt-4o"):
        return "json" if asked == "text" else asked
    return "verbose_json"


def rerender(content: bytes, response_format: str, *, task: str) -> tuple[bytes, str]:
    """A provider's JSON transcript in the format the client asked for."""
    data = json.loads(content)
    text = str(data.get("text") or "")
    segments = [
        (float(s.get("start") or 0), float(s.get("end") or 0), str(s.get("text") or "").strip())
        for s in data.get("segments") or []
        if isinstance(s, dict)
    ]
    duration = float(data.get("duration") or (segments[-1][1] if segments else 0))
    return render(text, duration, response_format, task=task, segments=segments or None)


def _stamp(seconds: float, separator: str) -> str:
    millis = round(seconds * 1000)
    hours, rest = divmod(millis, 3_600_000)
    minutes, rest = divmod(rest, 60_000)
    return f"{hours:02d}:{minutes:02d}:{rest // 1000:02d}{separator}{rest % 1000:03d}"


def render(
    text: str,
    duration: float,
    response_format: str,
    *,
    task: str = "transcribe",
    language: str = "english",
    words: bool = False,
    segments: list | None = None,
) -> tuple[bytes, str]:
    """(body, content type) of a transcript in any of OpenAI's response formats; `segments` are
    (start, end, text) cues, one for the whole audio by default."""
    cues = segments or [(0.0, duration, text)]
    if response_format == "text":
        return f"{text}\n".encode(), "text/plain; charset=utf-8"
    if response_format == "srt":
        body = "".join(
            f"{i}\n{_stamp(start, ',')} --> {_stamp(end, ',')}\n{cue}\n\n"
            for i, (start, end, cue) in enumerate(cues, 1)
        )
        return body.encode(), "text/plain; charset=utf-8"
    if response_format == "vtt":
        body = "WEBVTT\n\n" + "".join(
            f"{_stamp(start, '.')} --> {_stamp(end, '.')}\n{cue}\n\n" for start, end, cue in cues
        )
        return body.encode(), "text/plain; charset=utf-8"
    usage = {"type": "duration", "seconds": math.ceil(duration)}
    if response_format == "verbose_json":
        answer = {
            "task": task,
            "language": language,
            "duration": round(duration, 3),
            "text": text,
            "segments": [
                {
                    "id": i,
                    "seek": 0,
                    "start": start,
                    "end": round(end, 3),
                    "text": f" {cue}",
                    "tokens": [],
                    "temperature": 0.0,
                    "avg_logprob": 0.0,
                    "compression_ratio": 1.0,
                    "no_speech_prob": 0.0,
                }
                for i, (start, end, cue) in enumerate(cues)
            ],
            "usage": usage,
        }
        if words:
            spoken = text.split()
            step = duration / max(len(spoken), 1)
            answer["words"] = [
                {"word": w, "start": round(i * step, 3), "end": round((i + 1) * step, 3)} for i, w in enumerate(spoken)
            ]
    else:
        answer = {"text": text, "usage": usage}
    return json.dumps(answer).encode(), "application/json"
