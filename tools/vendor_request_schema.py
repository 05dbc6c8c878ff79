"""Regenerate daemon/transcribed/gladia/request_schema.json from Gladia's openapi.json.

Usage: python tools/vendor_request_schema.py ../shared/gladia/openapi.json

Keeps InitTranscriptionRequest and every schema it references, minus descriptions and examples.
One documented edit (API.md §3.1): pii_redaction_config.entity_types is typed as a single enum in the spec
but its example (and the API) use an array, so it is vendored as an array of that enum.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

ROOT = "InitTranscriptionRequest"
DROP = {"description", "example", "deprecated"}


def strip(node: Any) -> Any:
    if isinstance(node, dict):
        return {k: strip(v) for k, v in node.items() if k not in DROP}
    if isinstance(node, list):
        return [strip(v) for v in node]
    return node


def referenced(schemas: dict[str, Any], name: str, seen: set[str]) -> None:
    if name in seen:
        return
    seen.add(name)

    def walk(node: Any) -> None:
        if isinstance(node, dict):
            for key, value in node.items():
                if key == "$ref":
                    referenced(schemas, value.rsplit("/", 1)[-1], seen)
                else:
                    walk(value)
        elif isinstance(node, list):
            for value in node:
                walk(value)

    walk(schemas[name])


def vendor(openapi: dict[str, Any]) -> dict[str, Any]:
    schemas = openapi["components"]["schemas"]
    names: set[str] = set()
    referenced(schemas, ROOT, names)
    out = {name: strip(schemas[name]) for name in sorted(names)}
    pii = out["PiiRedactionConfigDTO"]["properties"]["entity_types"]
    out["PiiRedactionConfigDTO"]["properties"]["entity_types"] = {"type": "array", "items": pii["allOf"][0]}
    return {"root": ROOT, "schemas": out}


if __name__ == "__main__":
    source = Path(sys.argv[1])
    target = Path(__file__).resolve().parents[1] / "daemon" / "transcribed" / "gladia" / "request_schema.json"
    target.write_text(json.dumps(vendor(json.loads(source.read_text())), indent=1, sort_keys=True) + "\n")
    print(f"wrote {target}")
