"""Structured logging: one JSON object per line (``log_format=json``) or readable text."""

from __future__ import annotations

import json
import logging
import sys
from datetime import UTC, datetime

_STANDARD = set(logging.makeLogRecord({}).__dict__) | {"message", "asctime"}


class JsonFormatter(logging.Formatter):
    """Formats a record as JSON with its ``extra`` fields at the top level."""

    def format(self, record: logging.LogRecord) -> str:
        """Render one record."""
        doc = {
            "ts": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "msg": record.getMessage(),
        }
        doc.update({k: v for k, v in record.__dict__.items() if k not in _STANDARD})
        if record.exc_info:
            doc["exc"] = self.formatException(record.exc_info)
        return json.dumps(doc, default=str)


def configure_logging(
    level: str = "INFO", fmt: str = "text", name: str | None = None, libraries: tuple[str, ...] = ()
) -> None:
    """Send logs to stderr in the chosen format; ``name`` tags every text line (e.g. ``worker-1``).

    The loggers of ``libraries`` (and their children) log at WARNING and above unless ``level`` is DEBUG:
    a library's INFO lines describe its own machinery (faust logs about 150 of them per start and stop).
    """
    handler = logging.StreamHandler(sys.stderr)
    if fmt == "json":
        handler.setFormatter(JsonFormatter())
    else:
        tag = f"[{name}] " if name else ""
        handler.setFormatter(logging.Formatter(f"%(asctime)s %(levelname)s {tag}%(name)s: %(message)s"))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    quiet = level.upper() != "DEBUG"
    for library in libraries:
        logging.getLogger(library).setLevel(logging.WARNING if quiet else logging.NOTSET)
