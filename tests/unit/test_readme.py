"""The README's configuration reference cannot drift from the config dataclasses or config.example.toml."""

from __future__ import annotations

import dataclasses
import re
from pathlib import Path

from transcribed import config

ROOT = Path(__file__).resolve().parents[2]


def dataclass_keys() -> set[str]:
    keys = set()
    for field in dataclasses.fields(config.Config):
        if field.name in ("source", "transcription"):
            continue
        section = getattr(config, str(field.type)) if not isinstance(field.type, type) else field.type
        keys |= {f"{field.name}.{f.name}" for f in dataclasses.fields(section)}
    return keys


def test_readme_reference_lists_exactly_the_config_keys() -> None:
    text = (ROOT / "README.md").read_text()
    reference = text.split("### Reference", 1)[1].split("\n## ", 1)[0]
    listed = set(re.findall(r"^\| `([a-z_]+\.[a-z_]+)` \|", reference, flags=re.M))
    assert listed == dataclass_keys()
    assert "| `transcription.*` |" in reference


def test_readme_quick_start_has_exactly_two_commands() -> None:
    text = (ROOT / "README.md").read_text()
    quick = text.split("## Quick start", 1)[1].split("\n## ", 1)[0]
    blocks = re.findall(r"```sh\n(.*?)```", quick, flags=re.S)
    assert [b.strip() for b in blocks] == [
        "python3 -m venv .venv && .venv/bin/pip install . && .venv/bin/transcribed run --emulator",
        "tests/run",
    ]
