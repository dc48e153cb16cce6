"""Encryption of provider secrets at rest (Fernet: AES-128-CBC + HMAC-SHA256).

HUB_ENCRYPTION_KEYS lists keys newest first: the first encrypts, all decrypt,
so rotation is adding a key in front and re-encrypting (`rotate_secrets`).
"""

from functools import lru_cache

from cryptography.fernet import Fernet, InvalidToken, MultiFernet
from django.conf import settings

from accounts import caches


@lru_cache(maxsize=1)
def _fernet() -> MultiFernet:
    return MultiFernet([Fernet(key.encode() if isinstance(key, str) else key) for key in settings.HUB_ENCRYPTION_KEYS])


def encrypt(plaintext: str) -> str:
    return _fernet().encrypt(plaintext.encode()).decode()


def decrypt(token: str) -> str:
    try:
        return _fernet().decrypt(token.encode()).decode()
    except InvalidToken:
        # Never include the token: the message may end up in a log.
        raise ValueError("a provider secret could not be decrypted with the configured HUB_ENCRYPTION_KEYS") from None


def rotate(token: str) -> str:
    return _fernet().rotate(token.encode()).decode()


def reset_cache() -> None:
    _fernet.cache_clear()


caches.register(reset_cache, lambda: _fernet.cache_info().currsize)
