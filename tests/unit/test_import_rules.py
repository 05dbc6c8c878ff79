"""Keep ARCHITECTURE.md's "who may import whom" table true by walking the imports with ast."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[2] / "daemon" / "transcribed"

# module (relative to the package, without .py; a trailing "/" means a folder) -> imports it must not make
FORBIDDEN: dict[str, tuple[str, ...]] = {
    "errors": ("transcribed.", "httpx", "watchdog", "structlog"),
    "gladia/result": ("httpx", "watchdog", "structlog", "transcribed.ledger", "transcribed.outputs"),
    "config": ("httpx", "watchdog", "structlog"),
    "request_schema": ("httpx", "watchdog", "structlog"),
    "inbox/readiness": ("httpx", "watchdog", "transcribed.gladia", "transcribed.ledger"),
    "inbox/filters": ("httpx", "watchdog", "transcribed.gladia", "transcribed.ledger"),
    "outputs/render": ("httpx", "watchdog", "sqlite3", "subprocess"),
    "outputs/subtitles": ("httpx", "watchdog", "sqlite3", "subprocess"),
    "gladia/retry": ("httpx", "watchdog", "sqlite3"),
    "gladia/client": ("transcribed.ledger", "transcribed.outputs", "transcribed.inbox", "watchdog"),
    "inbox/": ("httpx", "transcribed.gladia", "transcribed.ledger"),
    "ledger": ("httpx", "watchdog"),
    "media": ("httpx", "watchdog", "structlog", "transcribed.gladia", "transcribed.ledger"),
    "media_probe": ("httpx", "watchdog", "structlog", "transcribed.gladia", "transcribed.ledger"),
    "media_split": ("httpx", "watchdog", "structlog", "transcribed.gladia", "transcribed.ledger"),
    "media_stitch": ("httpx", "watchdog", "structlog", "transcribed.gladia", "transcribed.ledger"),
    "media_workspace": ("httpx", "watchdog", "structlog", "transcribed.gladia", "transcribed.ledger"),
    "callback": ("httpx", "transcribed.gladia", "transcribed.ledger"),
    "callback_server": ("httpx", "transcribed.gladia", "transcribed.ledger"),
    "pipeline/": ("watchdog", "transcribed.cli", "transcribed.inbox.watcher", "transcribed.inbox.observers"),
}


def imports_of(path: Path) -> set[str]:
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module:
            names.add(node.module)
            names |= {f"{node.module}.{alias.name}" for alias in node.names}
    return names


def modules(rule: str) -> list[Path]:
    if rule.endswith("/"):
        return sorted((PACKAGE / rule).glob("*.py"))
    return [PACKAGE / f"{rule}.py"]


@pytest.mark.parametrize("rule", sorted(FORBIDDEN))
def test_module_boundaries(rule: str) -> None:
    for path in modules(rule):
        assert path.exists(), path
        bad = {name for name in imports_of(path) for prefix in FORBIDDEN[rule]
               if name == prefix.rstrip(".") or name.startswith(prefix if prefix.endswith(".") else prefix + ".")
               or name == prefix}
        assert not bad, f"{path.relative_to(PACKAGE)} imports {sorted(bad)}"


def test_only_cli_layer_reads_the_environment_or_installs_signal_handlers() -> None:
    allowed = {"cli.py", "commands_daemon.py", "commands_oneoff.py", "commands_ledger.py"}
    for path in sorted(PACKAGE.rglob("*.py")):
        if path.name in allowed:
            continue
        text = path.read_text()
        assert "os.environ" not in text, path
        assert "signal.signal(" not in text, path
