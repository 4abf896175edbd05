"""The OpenAPI 3.1 document, generated from the declared endpoints and the pydantic models."""

from __future__ import annotations

import re
from typing import Any

from pydantic import BaseModel
from pydantic.json_schema import models_json_schema

from handoff import __version__
from handoff.api.routing import Endpoint
from schemas.common import Problem

REF = "#/components/schemas/{model}"
ERRORS = {400: "the body does not parse", 401: "no key or an unknown key",
          403: "this key's role may not use the route", 404: "no such thing in this tenant",
          409: "the state forbids it", 413: "the body is too large",
          415: "unsupported Content-Type", 422: "the body or a parameter does not validate",
          429: "too many attempts", 503: "the store is unavailable; retry after Retry-After"}
MEDIA = ("application/json", "application/msgpack")


def document(endpoints: list[Endpoint]) -> dict[str, Any]:
    endpoints = [e for e in endpoints if e.in_schema]  # not the docs page's script files
    models: list[type[BaseModel]] = [Problem]
    for e in endpoints:
        models += [m for m in (e.body, e.response) if m is not None]
    unique = list(dict.fromkeys(models))
    keys, defs = models_json_schema(
        [(m, "validation" if _is_input(m, endpoints) else "serialization") for m in unique],
        ref_template=REF)
    refs: dict[type[BaseModel], Any] = {m: ref for (m, _), ref in keys.items()
                                        if issubclass(m, BaseModel)}
    paths: dict[str, dict[str, Any]] = {}
    for e in endpoints:
        paths.setdefault(e.path, {})[e.method.lower()] = _operation(e, refs)
    return {
        "openapi": "3.1.0",
        "info": {"title": "handoff", "version": __version__,
                 "description": "Omnichannel context hand-off: bots and IVRs write, agents read "
                                "one brief. Errors are RFC 9457 problem+json."},
        "paths": paths,
        "components": {
            "schemas": _close_pattern_maps(defs.get("$defs", {})),
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}},
        },
    }


def _close_pattern_maps(node: Any) -> Any:
    """Pydantic renders a dict with constrained keys as `patternProperties` alone, which JSON
    Schema reads as "any other key is fine too"; the models refuse other keys, so say so."""
    if isinstance(node, dict):
        if "patternProperties" in node and "additionalProperties" not in node:
            node["additionalProperties"] = False
        for value in node.values():
            _close_pattern_maps(value)
    elif isinstance(node, list):
        for value in node:
            _close_pattern_maps(value)
    return node


def _is_input(model: type[BaseModel], endpoints: list[Endpoint]) -> bool:
    return any(e.body is model for e in endpoints)


def _operation(e: Endpoint, refs: dict[type[BaseModel], Any]) -> dict[str, Any]:
    op: dict[str, Any] = {"summary": e.summary, "operationId": e.handler.__name__,
                          "tags": [e.path.split("/")[2] if e.path.startswith("/v1/") else "ops"]}
    parameters = [{"name": p, "in": "path", "required": True, "schema": {"type": "string"}}
                  for p in re.findall(r"{(\w+)}", e.path)]
    parameters += [{"name": q.name, "in": "query", "required": False, "schema": q.schema,
                    "description": q.description} for q in e.query]
    parameters += [{"name": h.name, "in": "header", "required": False, "schema": h.schema,
                    "description": h.description} for h in e.headers]
    if parameters:
        op["parameters"] = parameters
    if e.body is not None:
        schema = refs[e.body]
        op["requestBody"] = {"required": not e.body_optional,
                             "content": {m: {"schema": schema} for m in MEDIA}}
    if e.response is not None:
        content = {m: {"schema": refs[e.response]} for m in MEDIA}
    else:
        content = {e.produces: {"schema": {"type": "string"}}}
    op["responses"] = {str(e.status): {"description": "OK", "content": content}}
    if e.roles is not None:
        op["security"] = [{"bearer": []}]
        op["description"] = "Roles: " + ", ".join(sorted(e.roles))
        problem = {"application/problem+json": {"schema": refs[Problem]}}
        for status, why in ERRORS.items():
            op["responses"][str(status)] = {"description": why, "content": problem}
    return op
