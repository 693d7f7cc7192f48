"""Contract checks: every vendor-API exchange a test sees is validated against the
vendor's own OpenAPI specs (``shared/reference/openapi``) with openapi-core.

:class:`ContractTransport` wraps the transport a test uses (in-process ASGI or a real
socket). For each request to a path the specs know, it validates the response, and the
request too when the server accepted it (a 4xx answer to a deliberately bad request says
nothing about the client). A violation raises :class:`ContractViolation` at once, so the
test that caused it fails with the spec's own words.

Known defects of the vendor's documents, patched here and nowhere else:

- ``RequestSend.attachments`` is typed as one ``Attachment`` object; the description,
  the example and every real client send an array of them.
- The PEC API's schemas type ``error`` as a plain integer, while every success example
  of the same spec (and the live API) sends ``"error": null``.
- ``BodyPostPec``'s enums refuse what the spec's own ``POST /pec`` example sends:
  ``"tipo_casella": "bronze"`` (lower case) and ``"sottotipo_cliente": ""`` (the empty
  string its records also hold when there is no sub-type).
- ``servers`` name the vendor's hosts; the simulator is served from any base URL.

The ``/dominio`` endpoints come from the vendor's product page, not from a spec: their
exchanges are not validated (``unchecked`` counts them).
"""

from __future__ import annotations

import copy
import json
from collections.abc import Iterable
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import Any

import httpx
from openapi_core import OpenAPI
from openapi_core.datatypes import RequestParameters
from openapi_core.templating.paths.exceptions import OperationNotFound, PathNotFound
from werkzeug.datastructures import Headers, ImmutableMultiDict

# Copies of the vendor's specs (shared/reference/openapi), so a fresh clone can test alone.
SPECS = Path(__file__).resolve().parent / "specs"
SENDING_PREFIXES = ("/send", "/inbox", "/quota")


class ContractViolation(AssertionError):
    """A request or response that the vendor's spec does not allow."""


def _load(name: str) -> dict[str, Any]:
    spec: dict[str, Any] = json.loads((SPECS / name).read_text())
    spec["servers"] = [{"url": "/"}]
    return spec


@cache
def specs() -> dict[str, OpenAPI]:
    """The two vendor specs, patched for their known defects, keyed by API."""
    massiva = _load("pecmassiva.openapi.json")
    schemas = massiva["components"]["schemas"]
    schemas["RequestSend"]["properties"]["attachments"] = {
        "type": "array",
        "items": copy.deepcopy(schemas["Attachment"]),
    }
    pec = _load("pec.openapi.json")
    _nullable_error_codes(pec)
    body = pec["components"]["schemas"]["BodyPostPec"]["properties"]
    body["tipo_casella"]["enum"] += [v.lower() for v in body["tipo_casella"]["enum"]]
    body["sottotipo_cliente"]["enum"].append("")
    return {
        "pec": OpenAPI.from_dict(pec),
        "pecmassiva": OpenAPI.from_dict(massiva),
    }


def _nullable_error_codes(node: Any) -> None:
    """Allow ``"error": null`` wherever the PEC spec declares an integer ``error``."""
    if isinstance(node, dict):
        error = node.get("properties", {}).get("error")
        if isinstance(error, dict) and error.get("type") == "integer":
            error["nullable"] = True
        for value in node.values():
            _nullable_error_codes(value)
    elif isinstance(node, list):
        for value in node:
            _nullable_error_codes(value)


def api_of(path: str) -> str:
    """Which vendor API serves ``path``."""
    return "pecmassiva" if path.startswith(SENDING_PREFIXES) else "pec"


class _Request:
    """An ``httpx.Request`` as openapi-core's request protocol."""

    def __init__(self, request: httpx.Request) -> None:
        self._request = request
        self.parameters = RequestParameters(
            query=ImmutableMultiDict(list(request.url.params.multi_items())),
            header=Headers(list(request.headers.items())),
            cookie=ImmutableMultiDict(),
        )

    @property
    def host_url(self) -> str:
        return f"{self._request.url.scheme}://{self._request.url.netloc.decode()}"

    @property
    def path(self) -> str:
        return self._request.url.path

    @property
    def method(self) -> str:
        return self._request.method.lower()

    @property
    def body(self) -> bytes | None:
        return self._request.content or None

    @property
    def content_type(self) -> str:
        return str(self._request.headers.get("content-type", "")).lower()


class _Response:
    """An ``httpx.Response`` as openapi-core's response protocol."""

    def __init__(self, response: httpx.Response) -> None:
        self.status_code = response.status_code
        self.headers = Headers(list(response.headers.items()))
        self.data = response.content
        self.content_type = response.headers.get("content-type", "").lower()


@dataclass
class ContractTransport(httpx.AsyncBaseTransport):
    """Validates every exchange that goes through ``inner`` against the vendor specs.

    ``undocumented`` lists the statuses a test expects although no spec lists them for
    the operation: 429 (pacing and allowances, which no vendor source documents) and 401
    on the PEC API, by default; a fault-injection test adds the 5xx it injects.
    ``check_requests=False`` validates answers only: for tests that send garbage on
    purpose, which a lenient server may accept.
    """

    inner: httpx.AsyncBaseTransport
    undocumented: set[int] = field(default_factory=lambda: {401, 429})
    check_requests: bool = True
    checked: list[str] = field(default_factory=list)
    unchecked: list[str] = field(default_factory=list)

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        await request.aread()  # a body sent in parts (POST /send): read whole to validate it
        response = await self.inner.handle_async_request(request)
        await response.aread()
        path = request.url.path
        if path.startswith("/_simulator"):
            return response
        self._validate(request, response)
        return response

    def _validate(self, request: httpx.Request, response: httpx.Response) -> None:
        line = f"{request.method} {request.url.path} -> {response.status_code}"
        spec = specs()[api_of(request.url.path)]
        req = _Request(request)
        try:
            errors = list(spec.iter_response_errors(req, _Response(response)))
        except PathNotFound:
            self.unchecked.append(line)
            return
        if response.status_code == 405 and any(isinstance(e, OperationNotFound) for e in errors):
            # A method the spec does not have for this path, and the server agrees.
            self.unchecked.append(line)
            return
        errors = [e for e in errors if not self._undocumented_status(e, response)]
        if response.status_code < 400 and self.check_requests:
            errors += list(spec.iter_request_errors(req))
        errors = [e for e in errors if not isinstance(e, PathNotFound)]
        if errors:
            raise ContractViolation(f"{line}: {'; '.join(_describe(e) for e in errors)}")
        self.checked.append(line)

    def _undocumented_status(self, error: Exception, response: httpx.Response) -> bool:
        name = type(error).__name__
        return name == "ResponseNotFound" and response.status_code in self.undocumented

    async def aclose(self) -> None:
        await self.inner.aclose()


def _describe(error: Exception) -> str:
    """The validator's verdict, without echoing the whole body."""
    details: Iterable[Any] = (
        getattr(error.__cause__, "schema_errors", None)
        or getattr(error, "schema_errors", None)
        or ()
    )
    found = [f"{'/'.join(map(str, d.absolute_path))}: {d.message}" for d in details]
    return f"{type(error).__name__}: " + ("; ".join(found) if found else str(error)[:300])
