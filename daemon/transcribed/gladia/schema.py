"""Check a POST /v2/pre-recorded body against Gladia's own schema, vendored from openapi.json.

A small validator for the JSON-Schema subset that schema uses (type, enum, minimum, maximum, minItems,
items, properties, required, allOf, oneOf, $ref, additionalProperties, format uri). Pure; stdlib only.
Regenerate the vendored file with tools/vendor_request_schema.py.
"""

from __future__ import annotations

import json
from functools import cache
from importlib import resources
from typing import Any
from urllib.parse import urlsplit

_TYPES: dict[str, tuple[type, ...]] = {
    "string": (str,),
    "integer": (int,),
    "number": (int, float),
    "boolean": (bool,),
    "array": (list, tuple),
    "object": (dict,),
}


@cache
def schemas() -> dict[str, Any]:
    """Return the vendored schemas by name (InitTranscriptionRequest and what it references)."""
    text = resources.files("transcribed.gladia").joinpath("request_schema.json").read_text(encoding="utf-8")
    loaded: dict[str, Any] = json.loads(text)["schemas"]
    return loaded


def request_fields() -> dict[str, Any]:
    """Return the top-level properties of the create request, by name."""
    fields: dict[str, Any] = schemas()["InitTranscriptionRequest"]["properties"]
    return fields


def validate(value: object, schema: dict[str, Any], path: str) -> list[str]:
    """Given a value and a schema node, return one problem line per violation (empty when valid)."""
    if "$ref" in schema:
        return validate(value, schemas()[schema["$ref"].rsplit("/", 1)[-1]], path)
    problems: list[str] = []
    for part in schema.get("allOf", []):
        problems += validate(value, part, path)
    if "oneOf" in schema:
        if all(validate(value, option, path) for option in schema["oneOf"]):
            problems.append(f"{path}: expected {' or '.join(_describe(o) for o in schema['oneOf'])}")
        return problems
    kind = schema.get("type")
    if kind is not None and not _is_type(value, kind):
        return [*problems, f"{path}: expected {_describe(schema)}, got {_show(value)}"]
    if "enum" in schema and value not in schema["enum"]:
        values = [str(v) for v in schema["enum"]]
        choices = ", ".join(values[:40]) + (f", ... ({len(values)} in all)" if len(values) > 40 else "")
        problems.append(f"{path}: expected one of {choices}; got {_show(value)}")
    if isinstance(value, int | float) and not isinstance(value, bool):
        if "minimum" in schema and value < schema["minimum"]:
            problems.append(f"{path}: expected at least {schema['minimum']}, got {value}")
        if "maximum" in schema and value > schema["maximum"]:
            problems.append(f"{path}: expected at most {schema['maximum']}, got {value}")
    if isinstance(value, str) and schema.get("format") == "uri" and not _is_url(value):
        problems.append(f"{path}: expected an absolute http(s) URL, got {_show(value)}")
    if isinstance(value, list | tuple):
        if len(value) < schema.get("minItems", 0):
            problems.append(f"{path}: expected at least {schema['minItems']} item(s)")
        if "items" in schema:
            for index, item in enumerate(value):
                problems += validate(item, schema["items"], f"{path}[{index}]")
    if isinstance(value, dict):
        problems += _validate_object(value, schema, path)
    return problems


def _validate_object(value: dict[str, Any], schema: dict[str, Any], path: str) -> list[str]:
    problems: list[str] = []
    properties: dict[str, Any] = schema.get("properties", {})
    for name in schema.get("required", []):
        if name not in value:
            problems.append(f"{path}.{name}: required")
    for name, item in value.items():
        if name in properties:
            problems += validate(item, properties[name], f"{path}.{name}")
        elif properties and not schema.get("additionalProperties", False):
            known = ", ".join(sorted(properties))
            problems.append(f"{path}.{name}: unknown key (expected one of: {known})")
    return problems


def _is_type(value: object, kind: str) -> bool:
    if kind in ("integer", "number") and isinstance(value, bool):
        return False
    return isinstance(value, _TYPES.get(kind, (object,)))


def _is_url(text: str) -> bool:
    parts = urlsplit(text)
    return parts.scheme in ("http", "https") and bool(parts.netloc)


def _describe(schema: dict[str, Any]) -> str:
    if "$ref" in schema:
        name: str = schema["$ref"].rsplit("/", 1)[-1]
        target = schemas()[name]
        return "a table" if target.get("type") == "object" else _describe(target)
    kind = schema.get("type", "a value")
    return {"string": "a string", "integer": "an integer", "number": "a number", "boolean": "true or false",
            "array": "a list", "object": "a table"}.get(kind, str(kind))


def _show(value: object) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."
