"""Response shapes of the two vendor APIs and safe parsing of what clients send."""

from __future__ import annotations

import json
import re
from typing import TYPE_CHECKING, Any, cast

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

if TYPE_CHECKING:
    from massiva.simulator.state import Simulator

UNAUTHORIZED = "Authorization is not valid or empty"
BAD_PARAMETER = "Post parameter is not valid"

_MASSIVA_PREFIXES = ("/send/", "/inbox/", "/quota/")
# A JSON escape of a UTF-16 surrogate: only then can a parsed string fail to encode.
_ESCAPED_SURROGATE = re.compile(rb"\\u[dD][89a-fA-F]")


def simulator_of(request: Request) -> Simulator:
    """The Simulator behind the app serving ``request``."""
    return cast("Simulator", request.app.state.simulator)


def is_massiva_path(path: str) -> bool:
    """True for the PEC Massiva (sending) API; every other vendor path is the PEC API."""
    return path in ("/send", "/inbox") or path.startswith(_MASSIVA_PREFIXES)


def massiva_error(status: int, message: str, headers: dict[str, str] | None = None) -> JSONResponse:
    """A PEC Massiva error: ``{"success": false, "message": ...}``."""
    return JSONResponse({"success": False, "message": message}, status, headers)


def pec_error(
    status: int, message: str, code: int, headers: dict[str, str] | None = None
) -> JSONResponse:
    """A PEC API error: ``{"success": false, "message", "error": <code>, "data": null}``."""
    body = {"success": False, "message": message, "error": code, "data": None}
    return JSONResponse(body, status, headers)


def pec_ok(data: Any, message: str = "") -> JSONResponse:
    """A PEC API success. ``error`` is null, as in every example of the vendor's spec,
    although its schema types ``error`` as a (non-nullable) integer."""
    return JSONResponse({"data": data, "success": True, "message": message, "error": None})


def text_error(status: int, message: str) -> Response:
    """The plain-text errors of the PEC API's PDF downloads."""
    return Response(message, status, media_type="text/plain")


def _reject_constant(name: str) -> Any:
    # NaN and Infinity are not JSON; echoed back they would break our own responses.
    raise ValueError(f"{name} is not valid JSON")


async def read_json(request: Request) -> Any:
    """The request body as JSON, or None when it is empty or not valid JSON."""
    raw = await request.body()
    try:
        value = json.loads(raw, parse_constant=_reject_constant)
        if _ESCAPED_SURROGATE.search(raw):
            # A lone surrogate cannot be encoded in UTF-8: refuse it now, not at reply time.
            json.dumps(value, ensure_ascii=False).encode()
    except (ValueError, RecursionError):
        return None
    return value
