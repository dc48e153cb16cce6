"""Generated images the hub serves itself: stored, linked with a signature, gone after an hour.

A `url` answer points at the hub, not at a provider: the link works for
HUB_MEDIA_URL_TTL_SECONDS and then answers 404, and a Celery task deletes the
file. The expiry is part of the stored name, so the clean-up needs no
database and a forged expiry fails the signature. Storage is Django's
STORAGES["media"] (local files by default; any storage backend will do).
"""

import asyncio
import base64
import time
import uuid

from django.conf import settings
from django.core import signing
from django.core.files.base import ContentFile
from django.core.files.storage import storages
from django.utils.crypto import constant_time_compare

FOLDER = "images"
CONTENT_TYPES = {"png": "image/png", "jpeg": "image/jpeg", "webp": "image/webp"}
_signer = signing.Signer(salt="hub.media")


def storage():
    return storages["media"]


def _signature(name: str) -> str:
    return _signer.signature(name)


def _save(data: bytes, extension: str) -> str:
    expires = int(time.time()) + settings.HUB_MEDIA_URL_TTL_SECONDS
    return storage().save(f"{FOLDER}/{expires}-{uuid.uuid4().hex}.{extension}", ContentFile(data))


async def store_images(images: list[dict], origin: str, extension: str = "png") -> list[dict]:
    """Each {"b64_json": …} as {"url": …} to the hub's own copy (other keys kept)."""
    extension = extension if extension in CONTENT_TYPES else "png"

    def save_all() -> list[str]:
        return [_save(base64.b64decode(image["b64_json"]), extension) for image in images]

    names = await asyncio.to_thread(save_all)  # file I/O off the event loop
    out = []
    for image, name in zip(images, names, strict=True):
        item = {k: v for k, v in image.items() if k != "b64_json"}
        file = name.removeprefix(f"{FOLDER}/")
        out.append(dict({"url": f"{origin}/v1/files/images/{file}?signature={_signature(file)}"}, **item))
    return out


def _expires(file: str) -> int | None:
    head = file.split("-", 1)[0]
    return int(head) if head.isdigit() else None


def seconds_left(file: str) -> int:
    expires = _expires(file)
    return max(int(expires - time.time()), 0) if expires is not None else 0


def open_signed(file: str, signature: str) -> tuple[bytes, str] | None:
    """(bytes, content type) of a stored image if the link is genuine and unexpired, else None."""
    expires = _expires(file)
    if "/" in file or expires is None or expires <= time.time():
        return None
    if not constant_time_compare(signature, _signature(file)):
        return None
    try:
        with storage().open(f"{FOLDER}/{file}", "rb") as handle:
            data = handle.read()
    except (FileNotFoundError, OSError):
        return None
    return data, CONTENT_TYPES.get(file.rsplit(".", 1)[-1], "application/octet-stream")


def delete_expired(now: float | None = None) -> int:
    """Delete every stored image whose link has expired; safe to run twice or at once (a missing file is fine)."""
    now = time.time() if now is None else now
    store = storage()
    try:
        _, files = store.listdir(FOLDER)
    except FileNotFoundError:
        return 0
    deleted = 0
    for file in files:
        expires = _expires(file)
        if expires is not None and expires <= now:
            try:
                store.delete(f"{FOLDER}/{file}")
                deleted += 1
            except FileNotFoundError:
                pass
    return deleted
