"""LOG_FORMAT=json: one JSON object per log line, for log shipping (journald, Vector,
Fluent Bit, Filebeat...). A message or traceback with newlines in it stays one line, so
user text cannot forge log lines. Fields: time (UTC, ISO 8601), level, logger, message,
process, and exception (the traceback text) when there is one."""

from __future__ import annotations

import json
import logging
from datetime import UTC, datetime

# Loggers that gunicorn gives handlers of their own before it loads the app.
SERVER_LOGGERS = ("gunicorn.error", "gunicorn.access")


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        entry = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(
                timespec="milliseconds").replace("+00:00", "Z"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
            "process": record.process,
        }
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        return json.dumps(entry, ensure_ascii=False)


def use_json() -> None:
    """Every handler of the root logger and of gunicorn's loggers writes JSON lines (a
    root logger without handlers gets one on stderr)."""
    root = logging.getLogger()
    if not root.handlers:
        root.addHandler(logging.StreamHandler())
        root.setLevel(logging.INFO)
    for logger in (root, *map(logging.getLogger, SERVER_LOGGERS)):
        for handler in logger.handlers:
            handler.setFormatter(JsonFormatter())
