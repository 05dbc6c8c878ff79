"""The container's files keep their contract on any machine, podman or not (tests/e2e/test_container.py runs
the image itself): the Dockerfile's base argument, a starter config that is valid as shipped and with its key
line on, and a compose file that never carries the key."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

from transcribed import config

ROOT = Path(__file__).resolve().parents[2]
STARTER = ROOT / "container" / "config.toml"
SECRET_LINE = '# api_key_file = "/run/secrets/gladia_api_key"'


def test_the_dockerfile_starts_with_the_base_image_argument() -> None:
    lines = (ROOT / "Dockerfile").read_text().splitlines()
    assert lines[0] == "ARG BASE_IMAGE=docker.io/library/debian:bookworm-slim"
    assert lines.count("FROM ${BASE_IMAGE}") == 1 and "FROM ${BASE_IMAGE} AS build" in lines
    assert 'ENTRYPOINT ["/usr/bin/tini", "--", "/usr/local/bin/transcribed-entrypoint"]' in lines
    assert 'CMD ["transcribed", "run", "--config", "/config/config.toml"]' in lines
    assert any(line.startswith("HEALTHCHECK ") for line in lines)


def test_the_starter_config_is_valid_and_keeps_everything_in_the_volumes() -> None:
    loaded, warnings = config.load(STARTER, {})
    assert warnings == []
    assert loaded.inbox.paths == (Path("/media"),)
    assert loaded.ledger.path == Path("/config/ledger.sqlite3")
    assert loaded.gladia.api_key is None


def test_the_starter_reads_the_compose_secret_once_its_line_is_on(tmp_path: Path) -> None:
    """What the entrypoint does when /run/secrets/gladia_api_key is mounted at the first start."""
    text = STARTER.read_text()
    assert text.count(SECRET_LINE) == 1
    key = tmp_path / "gladia_api_key"
    key.write_text("a-key\n")
    table = tomllib.loads(text.replace(SECRET_LINE, f'api_key_file = "{key}"'))
    loaded, _ = config.parse(table, STARTER, {})
    assert loaded.gladia.api_key is not None and loaded.gladia.api_key.reveal() == "a-key"
    entrypoint = (ROOT / "container" / "entrypoint").read_text()
    assert 's|^# api_key_file = \\"$secret\\"|api_key_file = \\"$secret\\"|' in entrypoint


def test_the_compose_file_passes_the_key_as_a_secret_only() -> None:
    text = (ROOT / "compose.yaml").read_text()
    live = "\n".join(line for line in text.splitlines() if not line.lstrip().startswith("#"))
    assert "GLADIA_API_KEY" not in text
    assert re.search(r"^secrets:\n  gladia_api_key:\n    file: ", live, flags=re.M)
    assert re.search(r"^    secrets:\n      - gladia_api_key", live, flags=re.M)
    for needed in ("PUID:", "PGID:", "TZ:", "./config:/config", ":/media", "restart: unless-stopped",
                   'test: ["CMD", "transcribed-healthcheck"]', "profiles: [try]", '"run", "--emulator"'):
        assert needed in live, needed
    assert re.search(r"^    # ports:\n    #   - \"9000:9000\"", text, flags=re.M)
