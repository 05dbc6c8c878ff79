"""Validation of `POST /v2/pre-recorded` bodies for the Gladia emulator, and the `request_params` echo.

Driven by Gladia's own InitTranscriptionRequest schema (vendored in transcribed/request_schema.json), with
messages in the class-validator style the NestJS API answers with ("property x should not exist",
"subtitles_config.maximum_rows_per_caption must not be greater than 5"). Pure; stdlib only.
"""

from __future__ import annotations

import copy
import json
from typing import Any
from urllib.parse import urlsplit

from transcribed.gladia.schema import schemas

MAX_CUSTOM_METADATA_CHARS = 2000
ROOT = "InitTranscriptionRequest"

_TYPE_MESSAGES = {
    "boolean": "must be a boolean value",
    "string": "must be a string",
    "integer": "must be an integer number",
    "number": "must be a number conforming to the specified constraints",
    "array": "must be an array",
    "object": "must be an object",
}


def validate_create(body: object) -> list[str]:
    """Given a parsed create body, return one class-validator style message per problem (empty = valid)."""
    if not isinstance(body, dict):
        return ["request body must be a JSON object"]
    problems = _walk(body, schemas()[ROOT], "")
    if "audio_url" not in body:
        problems.append("audio_url must be a URL address")
    if body.get("translation") is True and "translation_config" not in body:
        problems.append("translation_config.target_languages should not be empty")
    if body.get("callback") is True and "callback_config" not in body and "callback_url" not in body:
        problems.append("callback_config.url should not be empty")
    if body.get("model") == "solaria-3":
        languages = (body.get("language_config") or {}).get("languages") if isinstance(
            body.get("language_config"), dict) else None
        if not isinstance(languages, list) or len(languages) != 1:
            problems.append("language_config.languages must contain exactly one language when model is solaria-3")
    metadata = body.get("custom_metadata")
    if isinstance(metadata, dict) and len(_stringify(metadata)) > MAX_CUSTOM_METADATA_CHARS:
        problems.append(f"custom_metadata must be shorter than or equal to {MAX_CUSTOM_METADATA_CHARS} characters")
    return problems


def _stringify(value: object) -> str:
    # JSON.stringify's compact form: what "2000 characters when stringified" measures.
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False)


def _resolve(schema: dict[str, Any]) -> dict[str, Any]:
    while "$ref" in schema:
        schema = schemas()[schema["$ref"].rsplit("/", 1)[-1]]
    if "allOf" in schema:
        merged = {key: value for key, value in schema.items() if key != "allOf"}
        for part in schema["allOf"]:
            merged = {**_resolve(part), **merged}
        return merged
    return schema


def _walk(value: object, schema: dict[str, Any], path: str) -> list[str]:
    schema = _resolve(schema)
    if "oneOf" in schema:
        if all(_walk(value, option, path) for option in schema["oneOf"]):
            return [f"{path} must be a string or an object with a value"]
        return []
    kind = schema.get("type")
    if kind is not None and not _is_type(value, kind):
        return [f"{path} {_TYPE_MESSAGES.get(kind, 'has the wrong type')}"]
    problems: list[str] = []
    if "enum" in schema and value not in schema["enum"]:
        problems.append(f"{path} must be one of the following values: {', '.join(map(str, schema['enum']))}")
    if isinstance(value, int | float) and not isinstance(value, bool):
        if "minimum" in schema and value < schema["minimum"]:
            problems.append(f"{path} must not be less than {schema['minimum']}")
        if "maximum" in schema and value > schema["maximum"]:
            problems.append(f"{path} must not be greater than {schema['maximum']}")
    if isinstance(value, str) and schema.get("format") == "uri" and not is_url(value):
        problems.append(f"{path} must be a URL address")
    if isinstance(value, list):
        problems += _walk_array(value, schema, path)
    if isinstance(value, dict):
        problems += _walk_object(value, schema, path)
    return problems


def _walk_array(value: list[Any], schema: dict[str, Any], path: str) -> list[str]:
    problems: list[str] = []
    if len(value) < schema.get("minItems", 0):
        problems.append(f"{path} must contain at least {schema['minItems']} elements")
    if path == "audio_to_llm_config.prompts":
        # The spec types each prompt as an array, but its examples and the docs send plain strings.
        if not all(isinstance(item, str | list) for item in value):
            problems.append(f"each value in {path} must be a string")
        return problems
    items = _resolve(schema.get("items", {}))
    if "enum" in items:
        if any(item not in items["enum"] for item in value):
            problems.append(f"each value in {path} must be one of the following values: "
                            + ", ".join(map(str, items["enum"])))
        return problems
    for index, item in enumerate(value):
        problems += _walk(item, items, f"{path}.{index}")
    return problems


def _walk_object(value: dict[str, Any], schema: dict[str, Any], path: str) -> list[str]:
    problems: list[str] = []
    properties: dict[str, Any] = schema.get("properties", {})
    prefix = f"{path}." if path else ""
    for name in schema.get("required", []):
        if name not in value or value[name] is None:
            problems.append(f"{prefix}{name} should not be empty")
    extra = schema.get("additionalProperties")
    for name, item in value.items():
        if name in properties:
            if item is None and name not in schema.get("required", []):
                continue  # class-validator's @IsOptional lets null through
            problems += _walk(item, properties[name], f"{prefix}{name}")
        elif isinstance(extra, dict):
            problems += _walk(item, extra, f"{prefix}{name}")
        elif properties and extra is not True:
            problems.append(f"property {prefix}{name} should not exist")
    return problems


def _is_type(value: object, kind: str) -> bool:
    if kind in ("integer", "number") and isinstance(value, bool):
        return False
    expected = {"string": str, "integer": int, "number": int | float, "boolean": bool, "array": list,
                "object": dict}.get(kind)
    return expected is None or isinstance(value, expected)


def is_url(text: str) -> bool:
    """Return True for an absolute http(s) URL with a host."""
    try:
        parts = urlsplit(text)
    except ValueError:
        return False
    return parts.scheme in ("http", "https") and bool(parts.hostname)


def request_params(body: dict[str, Any]) -> dict[str, Any]:
    """Given a valid create body, return the `request_params` echo: the same keys minus custom_metadata,
    with the schema's defaults filled in (and the config blocks of switched-on features completed)."""
    properties: dict[str, Any] = schemas()[ROOT]["properties"]
    params: dict[str, Any] = {}
    for name, schema in properties.items():
        if name == "custom_metadata":
            continue
        if name in body and body[name] is not None:
            params[name] = _with_defaults(copy.deepcopy(body[name]), schema)
        elif "default" in (resolved := _resolve(schema)):
            params[name] = copy.deepcopy(resolved["default"])
    params.setdefault("language_config", _with_defaults({}, properties["language_config"]))
    for switch in ("subtitles", "summarization"):
        if params.get(switch) and f"{switch}_config" not in params:
            params[f"{switch}_config"] = _with_defaults({}, properties[f"{switch}_config"])
    return params


def _with_defaults(value: Any, schema: dict[str, Any]) -> Any:
    schema = _resolve(schema)
    if not isinstance(value, dict):
        return value
    for name, child in schema.get("properties", {}).items():
        resolved = _resolve(child)
        if name in value:
            value[name] = _with_defaults(value[name], resolved)
        elif "default" in resolved:
            value[name] = copy.deepcopy(resolved["default"])
    return value
