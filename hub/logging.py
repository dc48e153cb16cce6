import logging
import re

# Defence in depth: nothing should log a key, but if an exception message or a
# third-party library ever does, the line is masked before it is written.
_SECRET = re.compile(r"(sk-[A-Za-z0-9_\-]{3})[A-Za-z0-9_\-]{8,}|((?:Bearer|key=)\s*)[A-Za-z0-9_\-\.]{12,}")


def redact(text: str) -> str:
    return _SECRET.sub(lambda m: (m.group(1) or m.group(2)) + "…[redacted]", text)


class RedactSecretsFilter(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        clean = redact(message)
        if clean != message:
            record.msg, record.args = clean, None
        if record.exc_info and record.exc_info[1] is not None:
            text = logging.Formatter().formatException(record.exc_info)
            record.exc_text = redact(text)
        return True
