import logging

from providers.redaction import scrub


def redact(text: str) -> str:
    """Defence in depth: nothing should log a key, but if an exception message or a third-party
    library ever does, the line is masked before it is written (the same scrub as providers' words)."""
    return scrub(text)


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
