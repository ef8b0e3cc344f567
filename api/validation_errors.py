"""422 answers for request bodies that fail validation, safe for any input.

FastAPI's default handler echoes each error's ``input`` in the JSON answer; a body with
``NaN``, ``Infinity`` or ``1e400`` (Python's JSON parser reads them as non-finite floats)
then cannot be encoded (JSON has no such numbers), and the client got a 500 instead of the
422 naming the field. Here non-finite floats are answered as strings (``"NaN"``,
``"Infinity"``, ``"-Infinity"``) and huge integers are shortened.
"""

from __future__ import annotations

import math

from fastapi import Request
from fastapi.encoders import jsonable_encoder
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse

_NAMES = {math.inf: "Infinity", -math.inf: "-Infinity"}
MAX_INT_DIGITS = 40
"""An integer input of more digits than this is echoed as its number of digits."""


def json_safe(value):
    """``value`` (already ``jsonable_encoder``-ed: dicts, lists, scalars) with non-finite
    floats as strings and integers of more than ``MAX_INT_DIGITS`` digits shortened."""
    if isinstance(value, float) and not math.isfinite(value):
        return "NaN" if math.isnan(value) else _NAMES[value]
    if isinstance(value, int) and not isinstance(value, bool) and abs(value) >= 10 ** MAX_INT_DIGITS:
        return f"an integer of {len(str(abs(value)))} digits"
    if isinstance(value, dict):
        return {k: json_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [json_safe(v) for v in value]
    return value


async def validation_error(request: Request, exc: RequestValidationError) -> JSONResponse:
    """FastAPI's 422 body, ``{"detail": [{"loc", "msg", "type", "input", ...}]}``, JSON-safe."""
    return JSONResponse(status_code=422, content={"detail": json_safe(jsonable_encoder(exc.errors()))})
