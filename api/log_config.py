"""Logging of the server processes: text or JSON lines (python-json-logger) on stderr, one
configuration for uvicorn's master and every worker (a ``logging.config.dictConfig`` dict
that uvicorn applies in each process)."""

from __future__ import annotations

import logging

ACCESS_FIELDS = ("request_id", "method", "route", "status", "latency_ms")
"""The fields of an access-log record (``api.request_log``)."""

TEXT_FORMAT = "%(asctime)s %(name)s %(levelname)s %(message)s"
JSON_FIELDS = "%(name)s %(levelname)s %(message)s"


def logging_config(log_format: str = "text", access_log: bool = True) -> dict:
    """The ``dictConfig`` of a freshrec server: the root logger at INFO on stderr, as text
    lines (``TEXT_FORMAT``) or one JSON object per line (``timestamp``: ISO 8601 UTC,
    ``name``, ``levelname``, ``message`` and every ``extra`` field, e.g. the access log's); uvicorn's
    loggers propagate to it (their levels come from ``log_level``); ``freshrec.access``
    is on (INFO) with ``access_log``, off otherwise. Loggers created before are kept.

    Raises:
        ValueError: ``log_format`` is neither ``text`` nor ``json``.
    """
    if log_format == "json":
        formatter = {"()": "pythonjsonlogger.json.JsonFormatter", "fmt": JSON_FIELDS, "timestamp": True}
    elif log_format == "text":
        formatter = {"()": "api.log_config.TextFormatter", "fmt": TEXT_FORMAT}
    else:
        raise ValueError(f"log_format must be text or json, not {log_format!r}")
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "formatters": {"freshrec": formatter},
        "handlers": {"stderr": {"class": "logging.StreamHandler", "formatter": "freshrec",
                                "stream": "ext://sys.stderr"}},
        "root": {"level": "INFO", "handlers": ["stderr"]},
        "loggers": {
            "uvicorn": {"handlers": [], "propagate": True},
            "uvicorn.error": {"handlers": [], "propagate": True},
            "uvicorn.access": {"handlers": [], "propagate": True},
            "httpx": {"level": "WARNING"},
            "freshrec.access": {"level": "INFO" if access_log else "CRITICAL"},
        },
    }


class TextFormatter(logging.Formatter):
    """``TEXT_FORMAT``, with an access-log record's fields (``ACCESS_FIELDS``) appended as
    ``name=value`` (in JSON they are keys of the line)."""

    def format(self, record: logging.LogRecord) -> str:
        line = super().format(record)
        fields = [f"{k}={getattr(record, k)}" for k in ACCESS_FIELDS if hasattr(record, k)]
        return line + (" " + " ".join(fields) if fields else "")
