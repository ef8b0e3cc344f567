"""ASGI middleware that reports each request's server-side time in a ``Server-Timing`` header."""

from __future__ import annotations

import time


class ServerTiming:
    """Adds ``Server-Timing: app;dur=<ms>`` (W3C Server Timing) to every HTTP response:
    milliseconds from the moment the ASGI app is called (request head parsed) to the start
    of the response. Load tests read it to separate the server's own latency from the load
    generator's when both share the same cores. Wraps any ASGI app."""

    def __init__(self, app) -> None:
        self.app = app

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        t0 = time.perf_counter()

        async def timed_send(message):
            if message["type"] == "http.response.start":
                ms = (time.perf_counter() - t0) * 1000.0
                message = {**message, "headers": [*message.get("headers", ()),
                                                  (b"server-timing", f"app;dur={ms:.3f}".encode())]}
            await send(message)

        return await self.app(scope, receive, timed_send)
