"""ASGI middleware: one access-log line per HTTP request, and a request id on every response."""

from __future__ import annotations

import logging
import re
import time
import uuid

ACCESS_LOGGER = "freshrec.access"
REQUEST_ID_HEADER = b"x-request-id"
_VALID_ID = re.compile(r"[\w.:@/+=-]{1,128}")
"""What a caller's ``X-Request-ID`` may be (else a new one is made): 1..128 characters of
letters, digits and ``_ . : @ / + = -``, so it is safe in a log line and a header."""


class RequestLog:
    """Gives every HTTP request an id (the caller's ``X-Request-ID`` when valid, else a
    uuid4 hex), echoes it in the ``X-Request-ID`` response header and, when ``enabled``,
    logs one INFO line on ``freshrec.access`` at its end with the fields ``request_id``,
    ``method``, ``route`` (the matched path template, e.g. ``/items/{item_id}``; None when
    no route matched), ``status`` (500 if the app failed before answering) and
    ``latency_ms`` (from the app being called to the response's last byte handed to the
    server, ms). Wraps any ASGI app; the line is skipped cheaply when the logger is off.

    Args:
        app: the ASGI app.
        enabled: log the lines (the id is echoed either way).
    """

    def __init__(self, app, enabled: bool = True) -> None:
        self.app = app
        self.enabled = enabled
        self.log = logging.getLogger(ACCESS_LOGGER)

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        t0 = time.perf_counter()
        request_id = None
        for name, value in scope["headers"]:
            if name == REQUEST_ID_HEADER:
                request_id = value.decode("latin-1")
                if not _VALID_ID.fullmatch(request_id):
                    request_id = None
                break
        if request_id is None:
            request_id = uuid.uuid4().hex
        header = (REQUEST_ID_HEADER, request_id.encode())
        status = 500

        async def send_with_id(message):
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                message = {**message, "headers": [*message.get("headers", ()), header]}
            await send(message)

        try:
            await self.app(scope, receive, send_with_id)
        finally:
            if self.enabled and self.log.isEnabledFor(logging.INFO):
                route = scope.get("route")
                self.log.info("request", extra={
                    "request_id": request_id, "method": scope["method"],
                    "route": getattr(route, "path", None), "status": status,
                    "latency_ms": round((time.perf_counter() - t0) * 1000.0, 3)})
