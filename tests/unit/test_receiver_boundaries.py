"""The receiver (receiver/) can never talk to Gladia (it imports no HTTP client and nothing of gladia/), and its
checks of bodies and signatures stay pure (stdlib only)."""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[2] / "daemon" / "transcribed"


def imports_of(name: str) -> set[str]:
    found: set[str] = set()
    for node in ast.walk(ast.parse((PACKAGE / name).read_text())):
        if isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module:
            found.add(node.module)
    return found


def test_the_receiver_cannot_reach_gladia() -> None:
    for name in ("receiver/__init__.py", "receiver/hub.py", "receiver/server.py", "receiver/verify.py"):
        bad = {module for module in imports_of(name)
               if module.split(".")[0] in ("httpx", "urllib3", "requests", "watchdog", "sqlite3")
               or module.startswith(("transcribed.gladia", "transcribed.ledger", "transcribed.pipeline"))
               or module in ("urllib.request", "http.client")}
        assert not bad, f"{name} imports {sorted(bad)}"


def test_the_checks_are_pure() -> None:
    assert {module.split(".")[0] for module in imports_of("receiver/verify.py")} <= {
        "__future__", "base64", "binascii", "enum", "hashlib", "hmac", "json", "re", "dataclasses", "typing"}
