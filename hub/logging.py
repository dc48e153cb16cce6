"""Log records scrubbed of anything shaped like a secret, whoever logs them and wherever they are written.

The scrub runs as each record is made (a log record factory), not in one handler's filter: an operator
who adds a file or syslog handler, uvicorn's and gunicorn's own loggers and handlers, a library's logger
with propagate off, all get the record already clean. A record is made only for a level that is enabled,
so a debug line that is not written costs nothing.
"""

import json
import logging
from collections.abc import Callable, Mapping
from datetime import UTC, datetime

from providers.redaction import scrub


def redact(text: str) -> str:
    """Defence in depth: nothing should log a key, but if an exception message or a third-party
    library ever does, the line is masked before it is written (the same scrub as providers' words)."""
    return scrub(text)


def _clean(value):
    return redact(value) if isinstance(value, str) else value


def redact_record(record: logging.LogRecord) -> None:
    """The record scrubbed, once (the console filter finds it done): one scrub of the message when it is clean."""
    if getattr(record, "redacted", False):
        return
    record.redacted = True
    try:
        message = record.getMessage()
    except Exception:  # a malformed call (wrong arguments): the handler reports it, as logging always has
        return
    clean = redact(message)
    if clean != message:
        # String arguments scrubbed in place keep the record's shape for formatters that read them (uvicorn's
        # access log); a secret in the format string, or in an argument that is no string, replaces the message.
        if isinstance(record.args, tuple):
            record.args = tuple(_clean(a) for a in record.args)
        elif isinstance(record.args, Mapping):
            record.args = {k: _clean(v) for k, v in record.args.items()}
        try:
            shaped = record.getMessage() == clean
        except Exception:
            shaped = False
        if not shaped:
            record.msg, record.args = clean, None
    if record.exc_info and record.exc_info[1] is not None and not record.exc_text:
        record.exc_text = redact(logging.Formatter().formatException(record.exc_info))
    if record.stack_info:
        record.stack_info = redact(record.stack_info)


def install() -> None:
    """Make every log record of this process through redact_record (once; idempotent)."""
    previous = logging.getLogRecordFactory()
    if isinstance(previous, _RedactingFactory):
        return
    logging.setLogRecordFactory(_RedactingFactory(previous))


class _RedactingFactory:
    """The log record factory that was in place, each record it makes scrubbed."""

    def __init__(self, previous: Callable[..., logging.LogRecord]):
        self.previous = previous

    def __call__(self, *args, **kwargs) -> logging.LogRecord:
        record = self.previous(*args, **kwargs)
        redact_record(record)
        return record


class RedactSecretsFilter(logging.Filter):
    """The same on a handler (settings.LOGGING's console): for records made before install(), at start-up."""

    def filter(self, record: logging.LogRecord) -> bool:
        redact_record(record)
        return True


class JsonFormatter(logging.Formatter):
    """LOG_FORMAT=json: each record one JSON object on one line (time, level, logger, message, and a request
    line's fields at the top level). The record was scrubbed when it was made (install()); the handler's filter
    scrubs any made before."""

    def format(self, record: logging.LogRecord) -> str:
        line = {
            "time": datetime.fromtimestamp(record.created, tz=UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
        }
        fields = getattr(record, "request", None)
        if isinstance(fields, dict):
            line.update({name: _clean(value) for name, value in fields.items()})
        else:
            line["message"] = record.getMessage()
        if record.exc_info and not record.exc_text:
            record.exc_text = redact(self.formatException(record.exc_info))
        if record.exc_text:
            line["exception"] = record.exc_text
        if record.stack_info:
            line["stack"] = record.stack_info
        return json.dumps(line, default=str)
