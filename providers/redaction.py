"""Removing secrets from text a provider (or anything else) wrote, before the hub keeps or shows it.

Providers, proxies and self-hosted servers sometimes quote the request back in
an error: the Authorization header, the key, the URL with `key=`. Whatever a
provider says is therefore scrubbed of the exact credential it was sent with
(in every form it can travel in) and of anything shaped like a key or token,
before it is answered, stored, logged or cached. A leaf module: it imports
nothing of the project, so the log filter and the adapters share it.
"""

import base64
import json
import re
from urllib.parse import quote

REDACTED = "[redacted]"
# Shorter "secrets" (a placeholder key like "none" for a local server) are no secret,
# and scrubbing them would mangle ordinary words.
MIN_SECRET = 8
# A quoted piece of the secret at least this long is removed too (a key cut or masked mid-way).
MIN_FRAGMENT = 10

_SHAPES = re.compile(
    r"(?P<named>(?:authorization|proxy-authorization|x-api-key|x-goog-api-key|api[-_]?key|x-amz-security-token"
    r"|aws_secret_access_key|secret_access_key|session_token)[\"']?\s*[:=]\s*[\"']?)"
    r"(?:(?:Bearer|Basic|AWS4-HMAC-SHA256)\s+)?[^\s\"',;&]{8,}"
    r"|(?P<scheme>\b(?:Bearer|Basic)\s+)[A-Za-z0-9._~+/=\-]{8,}"
    r"|(?P<param>\b(?:key|api_key|apikey|access_token|token|sig|signature|X-Amz-Credential|X-Amz-Security-Token"
    r"|X-Amz-Signature)=)"
    r"[^\s&\"'<>;,]{8,}"
    r"|\bsk-[A-Za-z0-9_\-]{8,}"  # OpenAI (sk-proj-…), Anthropic (sk-ant-…), the hub's own (sk-hub-…), and kin
    r"|\bAIza[0-9A-Za-z_\-]{16,}"  # Google API keys
    r"|\b(?:AKIA|ASIA|ABIA|ACCA)[0-9A-Z]{16}\b"  # AWS access key ids
    r"|(?<![A-Za-z0-9+/=])(?P<blob>[A-Za-z0-9+/]{24,}={0,2})(?![A-Za-z0-9+/=])",
    re.IGNORECASE,
)
_UPPER, _LOWER, _DIGIT = re.compile(r"[A-Z]"), re.compile(r"[a-z]"), re.compile(r"[0-9]")


def _shape(match: re.Match) -> str:
    blob = match.group("blob")
    if blob is not None:
        # A long run of mixed-case letters and digits is a token (an AWS secret, a base64
        # credential); model names and request ids are cut by -, _ or . or are one case.
        if not (_UPPER.search(blob) and _LOWER.search(blob) and _DIGIT.search(blob)):
            return blob
        return REDACTED
    return (match.group("named") or match.group("scheme") or match.group("param") or "") + REDACTED


def secret_forms(secret: str) -> list[str]:
    """Every string the credential may travel as: itself, the parts of a JSON credential (Bedrock's
    access key id, secret key, session token), each base64- and URL-encoded."""
    parts = [secret]
    try:
        data = json.loads(secret)
    except (TypeError, ValueError):
        data = None
    if isinstance(data, dict):
        parts += [str(v) for v in data.values() if isinstance(v, (str, int))]
    forms = []
    for part in parts:
        if len(part) < MIN_SECRET:
            continue
        raw = part.encode()
        for form in (
            part,
            quote(part, safe=""),
            base64.b64encode(raw).decode(),
            base64.urlsafe_b64encode(raw).decode(),
        ):
            form = form.rstrip("=")
            if form not in forms:
                forms.append(form)
    return forms


def _fragments(text: str, secret: str) -> list[tuple[int, int]]:
    """Spans of `text` that are pieces of `secret` at least MIN_FRAGMENT long (or all of a shorter one)."""
    size = min(MIN_FRAGMENT, len(secret))
    grams = {secret[i : i + size] for i in range(len(secret) - size + 1)}
    spans, i = [], 0
    while i <= len(text) - size:
        if text[i : i + size] in grams:
            end = i + size
            while end < len(text) and text[i : end + 1] in secret:
                end += 1
            spans.append((i, end))
            i = end
        else:
            i += 1
    return spans


def scrub(text: str, *secrets: str) -> str:
    """`text` with every form of each credential secret given, and anything shaped like a key or token, replaced."""
    if not text:
        return text
    for form in sorted({f for secret in secrets if secret for f in secret_forms(secret)}, key=len, reverse=True):
        for start, end in reversed(_fragments(text, form)):
            text = text[:start] + REDACTED + text[end:]
    return _SHAPES.sub(_shape, text)
