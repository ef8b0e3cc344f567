"""ASGI middleware that answers 413 to request bodies over a size limit."""

from __future__ import annotations

import json


class BodySizeLimit:
    """Reject bodies larger than ``max_bytes`` with a 413 JSON error, whether the client
    declared a Content-Length or streamed chunks. Wraps any ASGI app."""

    def __init__(self, app, max_bytes: int = 1_000_000) -> None:
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        for name, value in scope.get("headers", ()):
            if name == b"content-length":
                try:
                    too_big = int(value) > self.max_bytes
                except ValueError:
                    too_big = False
                if too_big:
                    return await self._reject(send)
        seen = 0
        body = []
        more = True
        while more:  # read the body ourselves so an oversized stream is refused before parsing
            message = await receive()
            if message["type"] != "http.request":
                break
            chunk = message.get("body", b"")
            seen += len(chunk)
            if seen > self.max_bytes:
                return await self._reject(send)
            body.append(chunk)
            more = message.get("more_body", False)
        payload = b"".join(body)
        replayed = False

        async def replay():
            nonlocal replayed
            if not replayed:
                replayed = True
                return {"type": "http.request", "body": payload, "more_body": False}
            return await receive()

        return await self.app(scope, replay, send)

    async def _reject(self, send):
        body = json.dumps({"detail": [{"loc": ["body"], "msg": f"request body larger than {self.max_bytes} bytes",
                                       "type": "too_large"}]}).encode()
        await send({"type": "http.response.start", "status": 413,
                    "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]})
        await send({"type": "http.response.body", "body": body})
