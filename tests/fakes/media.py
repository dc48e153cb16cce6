"""Media helpers shared by the fake upstreams and their tests (stdlib only).

``png_of`` and ``wav_of`` build small, valid, deterministic files (the fakes'
images, the tests' audio uploads); ``audio_duration`` is what the fake
transcriber bills; ``parse_multipart`` reads a multipart/form-data body byte for
byte (file contents untouched, repeated field names such as ``image[]`` kept).
"""

from __future__ import annotations

import email.message
import email.utils
import hashlib
import struct
import zlib
from dataclasses import dataclass

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def _png_chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)


def png_of(seed: bytes | str, size: int = 8) -> bytes:
    """A valid size×size RGB PNG of one colour: the first three bytes of sha256(seed)."""
    if isinstance(seed, str):
        seed = seed.encode()
    colour = hashlib.sha256(seed).digest()[:3]
    rows = (b"\x00" + colour * size) * size  # filter type 0 (None) before each row
    ihdr = struct.pack(">IIBBBBB", size, size, 8, 2, 0, 0, 0)  # 8-bit truecolour, no interlace
    return (
        PNG_SIGNATURE
        + _png_chunk(b"IHDR", ihdr)
        + _png_chunk(b"IDAT", zlib.compress(rows, 9))
        + _png_chunk(b"IEND", b"")
    )


def wav_of(seconds: float, rate: int = 8000) -> bytes:
    """A valid 8-bit mono PCM WAV of `seconds` (rounded to whole samples): a quiet square wave."""
    samples = round(seconds * rate)
    data = bytes(128 + (8 if (i // 20) % 2 else -8) for i in range(samples))
    fmt = struct.pack("<HHIIHH", 1, 1, rate, rate, 1, 8)  # PCM, mono, rate, byte rate, block align, bits
    pad = b"\x00" if samples % 2 else b""  # RIFF chunks are word-aligned; the pad is not in the chunk size
    chunks = b"WAVE" + b"fmt " + struct.pack("<I", len(fmt)) + fmt + b"data" + struct.pack("<I", samples) + data + pad
    return b"RIFF" + struct.pack("<I", len(chunks)) + chunks


def audio_duration(data: bytes) -> float:
    """Seconds of audio: exact for a RIFF/WAVE file (data chunk size / fmt byte rate),
    else len(data) / 16000 (a 128 kbit/s guess)."""
    if len(data) >= 12 and data[:4] == b"RIFF" and data[8:12] == b"WAVE":
        byte_rate = data_size = None
        pos = 12
        while pos + 8 <= len(data):
            kind, size = data[pos : pos + 4], struct.unpack("<I", data[pos + 4 : pos + 8])[0]
            if kind == b"fmt " and size >= 16 and pos + 16 <= len(data):
                byte_rate = struct.unpack("<I", data[pos + 16 : pos + 20])[0]
            elif kind == b"data":
                data_size = min(size, len(data) - pos - 8)  # a truncated file: what is there
                break
            pos += 8 + size + (size & 1)
        if byte_rate and data_size is not None:
            return data_size / byte_rate
    return len(data) / 16000


@dataclass
class Part:
    """One part of a multipart/form-data body."""

    name: str
    filename: str | None  # None for a plain field
    content_type: str | None
    data: bytes


def _param(headers: email.message.Message, header: str, name: str) -> str | None:
    value = headers.get_param(name, header=header)
    return None if value is None else email.utils.collapse_rfc2231_value(value)


def parse_multipart(content_type_header: str, body: bytes) -> tuple[dict[str, list[str]], list[Part]]:
    """A multipart/form-data body's fields (name -> values, in order) and its file parts, in order.

    Parts with a filename are files (their bytes exactly as sent); the others are
    fields, decoded as UTF-8. Raises ValueError when the body isn't multipart/form-data
    with the header's boundary.
    """
    header = email.message.Message()
    header["Content-Type"] = content_type_header
    boundary = _param(header, "content-type", "boundary")
    if header.get_content_type() != "multipart/form-data" or not boundary:
        raise ValueError("not multipart/form-data with a boundary")
    delimiter = b"--" + boundary.encode("latin-1")
    if body.startswith(delimiter):
        pos = len(delimiter)
    else:
        found = body.find(b"\r\n" + delimiter)
        if found < 0:
            raise ValueError("multipart boundary not found")
        pos = found + 2 + len(delimiter)
    form: dict[str, list[str]] = {}
    files: list[Part] = []
    while True:
        if body[pos : pos + 2] == b"--":  # the close delimiter
            return form, files
        line_end = body.find(b"\r\n", pos)  # past any transport padding after the delimiter
        if line_end < 0:
            raise ValueError("multipart body truncated")
        start = line_end + 2
        end = body.find(b"\r\n" + delimiter, start)
        if end < 0:
            raise ValueError("multipart body without its close delimiter")
        part, pos = body[start:end], end + 2 + len(delimiter)
        if part.startswith(b"\r\n"):  # no headers at all
            head, data = b"", part[2:]
        else:
            head, sep, data = part.partition(b"\r\n\r\n")
            if not sep:
                raise ValueError("multipart part without a blank line after its headers")
        headers = email.message.Message()
        for line in head.decode("utf-8", "surrogateescape").split("\r\n"):
            name, colon, value = line.partition(":")
            if colon:
                headers[name.strip()] = value.strip()
        field = _param(headers, "content-disposition", "name")
        if field is None:
            continue  # not form data
        filename = _param(headers, "content-disposition", "filename")
        if filename is None:
            form.setdefault(field, []).append(data.decode("utf-8", "replace"))
        else:
            files.append(Part(field, filename, headers.get("content-type"), data))
