"""Request bodies in, responses out: JSON by default, msgpack when the client says so."""

from __future__ import annotations

import json
from typing import Any, TypeVar
from urllib.parse import parse_qsl

import msgpack
from aiohttp import web
from pydantic import BaseModel, ValidationError

from handoff.kernel.errors import BadRequest, PayloadTooLarge, Unprocessable, UnsupportedMediaType

M = TypeVar("M", bound=BaseModel)
JSON = "application/json"
FORM = "application/x-www-form-urlencoded"
MSGPACK = "application/msgpack"
MSGPACK_TYPES = {MSGPACK, "application/x-msgpack", "application/vnd.msgpack"}


def errors_of(exc: ValidationError, prefix: tuple[str | int, ...] = ()) -> list[dict[str, Any]]:
    """Pydantic errors as problem+json `errors`; inputs are left out so no PAN echoes back."""
    return [{"loc": [*prefix, *e["loc"]], "msg": e["msg"]}
            for e in exc.errors(include_url=False, include_input=False, include_context=False)]


async def read_body(request: web.Request) -> bytes:
    try:
        return await request.read()
    except web.HTTPRequestEntityTooLarge as exc:
        raise PayloadTooLarge(f"the body is larger than {request.client_max_size} bytes") from exc


async def parse(request: web.Request, model: type[M], *, optional: bool = False) -> M:
    """The body as `model`: 415 for a type we do not speak, 400 if it does not parse, 422 if it
    does not validate."""
    if request.content_length and request.content_length > request.client_max_size:
        raise PayloadTooLarge(f"the body is larger than {request.client_max_size} bytes")
    raw = await read_body(request)
    if not raw.strip():
        if optional:
            return model()
        raise Unprocessable("a request body is required", [{"loc": ["body"], "msg": "missing"}])
    ctype = request.content_type
    if ctype in MSGPACK_TYPES:
        try:
            data = msgpack.unpackb(raw, raw=False)
        except Exception as exc:  # msgpack raises a dozen unrelated classes for bad input
            raise BadRequest("the body is not valid msgpack") from exc
        try:
            return model.model_validate(data)
        except ValidationError as exc:
            raise Unprocessable("the body does not match the schema", errors_of(exc)) from exc
    if ctype not in (JSON, "application/octet-stream") and not ctype.endswith("+json"):
        raise UnsupportedMediaType(f"send {JSON} or {MSGPACK}, not {ctype or 'nothing'}")
    try:
        return model.model_validate_json(raw)
    except ValidationError as exc:
        if any(e["type"] == "json_invalid" for e in exc.errors()):
            raise BadRequest("the body is not valid JSON") from exc
        raise Unprocessable("the body does not match the schema", errors_of(exc)) from exc


async def form(request: web.Request) -> list[tuple[str, str]]:
    """A urlencoded form body as its pairs, in order, repeats kept (signatures cover them all)."""
    if request.content_length and request.content_length > request.client_max_size:
        raise PayloadTooLarge(f"the body is larger than {request.client_max_size} bytes")
    if request.content_type != FORM:
        raise UnsupportedMediaType(f"send {FORM}, not {request.content_type or 'nothing'}")
    raw = await read_body(request)
    try:
        return parse_qsl(raw.decode("ascii"), keep_blank_values=True, errors="strict",
                         max_num_fields=1000)
    except (UnicodeDecodeError, ValueError) as exc:
        raise BadRequest("the body is not a valid urlencoded form") from exc


def wants_msgpack(request: web.Request) -> bool:
    accept = request.headers.get("Accept", "")
    return any(t in accept for t in MSGPACK_TYPES)


def render(request: web.Request, payload: BaseModel | dict[str, Any], *, status: int = 200,
           headers: dict[str, str] | None = None) -> web.Response:
    """A response in the format the client asked for."""
    body, content_type = encode(request, payload)
    return web.Response(body=body, status=status, content_type=content_type, headers=headers)


def encode(request: web.Request, payload: BaseModel | dict[str, Any]) -> tuple[bytes, str]:
    """The body in the format the client asked for, and its content type."""
    if wants_msgpack(request):
        data = (payload.model_dump(mode="json")
                if isinstance(payload, BaseModel) else payload)
        return msgpack.packb(data, use_bin_type=True), MSGPACK
    body = (payload.model_dump_json().encode()
            if isinstance(payload, BaseModel) else _json(payload))
    return body, JSON


def _json(payload: dict[str, Any]) -> bytes:
    return json.dumps(payload, separators=(",", ":")).encode()
