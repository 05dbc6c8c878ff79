"""Keep ARCHITECTURE.md's "who may import whom" table true by walking the imports with ast."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[2] / "daemon" / "transcribed"

# module (relative to the package, without .py; a trailing "/" means a folder) -> imports it must not make
FORBIDDEN: dict[str, tuple[str, ...]] = {
    "errors": ("transcribed.", "httpx", "watchdog", "structlog"),
    "languages": ("transcribed.", "httpx", "watchdog", "structlog"),
    "gladia/result": ("httpx", "watchdog", "structlog", "transcribed.ledger", "transcribed.outputs"),
    "config/": ("httpx", "watchdog", "structlog"),
    "gladia/schema": ("httpx", "watchdog", "structlog"),
    "inbox/readiness": ("httpx", "watchdog", "transcribed.gladia", "transcribed.ledger"),
    "inbox/filters": ("httpx", "watchdog", "transcribed.gladia", "transcribed.ledger"),
    "outputs/render": ("httpx", "watchdog", "sqlite3", "subprocess"),
    "outputs/subtitles": ("httpx", "watchdog", "sqlite3", "subprocess"),
    "gladia/retry": ("httpx", "watchdog", "sqlite3"),
    "gladia/client": ("transcribed.ledger", "transcribed.outputs", "transcribed.inbox", "watchdog"),
    "gladia/transport": ("transcribed.ledger", "transcribed.outputs", "transcribed.inbox", "watchdog"),
    "inbox/": ("httpx", "transcribed.gladia", "transcribed.ledger"),
    "ledger/": ("httpx", "watchdog", "transcribed.gladia", "transcribed.pipeline", "transcribed.cli"),
    "media/": ("httpx", "watchdog", "structlog", "transcribed.gladia", "transcribed.ledger"),
    "receiver/": ("httpx", "transcribed.gladia", "transcribed.ledger", "transcribed.cli"),
    # The integrations' contracts are pure: tables of cases test them.
    "receiver/contract": ("structlog", "socket", "sqlite3", "subprocess", "transcribed.pipeline"),
    "outputs/whisper": ("httpx", "watchdog", "sqlite3", "subprocess", "structlog"),
    "outputs/": ("transcribed.pipeline", "transcribed.cli", "transcribed.ledger"),
    "pipeline/": ("watchdog", "transcribed.cli", "transcribed.inbox.watcher", "transcribed.inbox.settle",
                  "transcribed.inbox.observers"),
    # The edges never reach back up into the pipeline or the shell.
    "gladia/": ("transcribed.pipeline", "transcribed.cli", "transcribed.ledger", "transcribed.emulator"),

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
    for path in sorted(PACKAGE.rglob("*.py")):
        if path.parent.name == "cli":
            continue
        text = path.read_text()
        assert "os.environ" not in text, path
        assert "signal.signal(" not in text, path


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(PACKAGE.parent).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def test_emulator_imports_nothing_of_the_daemon_but_the_request_schema() -> None:
    for path in sorted((PACKAGE / "emulator").glob("*.py")):
        ours = {name for name in imports_of(path) if name.startswith("transcribed")}
        foreign = {name for name in ours if not name.startswith(("transcribed.emulator", "transcribed.gladia.schema"))
                   and name != "transcribed.gladia"}
        assert not foreign, f"{path.relative_to(PACKAGE)} imports {sorted(foreign)}"


def test_no_import_cycles_counting_imports_inside_functions() -> None:
    paths = {_module_name(path): path for path in PACKAGE.rglob("*.py")}
    graph: dict[str, set[str]] = {}
    for module, path in paths.items():
        edges = set()
        for name in imports_of(path):
            while name and name not in paths:
                name = name.rpartition(".")[0]
            # a submodule importing its own package (or itself) is not an edge between modules
            if name and name != module and not module.startswith(name + "."):
                edges.add(name)
        graph[module] = edges
    seen: dict[str, int] = {}   # 1: on the current path, 2: done

    def visit(module: str, trail: list[str]) -> None:
        seen[module] = 1
        for target in sorted(graph[module]):
            if seen.get(target) == 1:
                cycle = [*trail[trail.index(target):], target]
                raise AssertionError("import cycle: " + " -> ".join(cycle))
            if target not in seen:
                visit(target, [*trail, target])
        seen[module] = 2

    for module in sorted(graph):
        if module not in seen:
            visit(module, [module])


def test_the_package_top_holds_parts_and_a_few_shared_modules() -> None:
    modules = sorted(path.stem for path in PACKAGE.glob("*.py"))
    # languages: pure ISO 639 tables shared by config, media and the pipeline (config may not import media).
    assert modules == ["__init__", "__main__", "errors", "fingerprint", "languages", "logs", "notify"]
