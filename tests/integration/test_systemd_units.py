"""The shipped systemd units: systemd's own tools accept them, and the sandbox scores 1.5 or less.

`systemd-analyze verify` checks that every command exists, so each unit is copied to tmp_path with the
daemon's path pointing at a stub executable; nothing else in the unit is changed.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest

from transcribed.config import LedgerConfig

SYSTEMD_DIRECTORY = Path(__file__).resolve().parents[2] / "systemd"
SYSTEM_UNITS = ("transcribed.service", "transcribed@.service")
USER_UNIT = SYSTEMD_DIRECTORY / "user" / "transcribed.service"
INSTALLED_COMMAND = "/usr/local/bin/transcribed"
EXPOSURE_LIMIT = 1.5
DRAIN_SECONDS = 10
EX_CONFIG = 78
COMMAND_TIMEOUT_SECONDS = 60

requires_systemd_analyze = pytest.mark.skipif(
    shutil.which("systemd-analyze") is None,
    reason="systemd-analyze is not installed (CI installs it: apt-get install systemd)",
)


def directives(unit: Path) -> list[tuple[str, str, str]]:
    """(section, key, value) for every assignment in the unit, in order; repeated keys kept."""
    found = []
    section = ""
    for line in unit.read_text().splitlines():
        stripped = line.strip()
        if not stripped or stripped.startswith(("#", ";")):
            continue
        if stripped.startswith("["):
            section = stripped.strip("[]")
            continue
        key, _, value = stripped.partition("=")
        found.append((section, key, value))
    return found


def values(unit: Path, key: str) -> list[str]:
    return [value for _, found_key, value in directives(unit) if found_key == key]


def only(unit: Path, key: str) -> str:
    [value] = values(unit, key)
    return value


def stub_command(path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("#!/bin/sh\nexit 0\n")
    path.chmod(0o755)
    return path


def staged(unit_name: str, tmp_path: Path) -> Path:
    """Copy a system unit into tmp_path, its daemon path pointing at a stub that exists."""
    source = (SYSTEMD_DIRECTORY / unit_name).read_text()
    assert f"ExecStart={INSTALLED_COMMAND} run" in source
    command = stub_command(tmp_path / "bin" / "transcribed")
    target = tmp_path / "units" / unit_name
    target.parent.mkdir()
    target.write_text(source.replace(f"ExecStart={INSTALLED_COMMAND} ", f"ExecStart={command} "))
    return target


def systemd_analyze(*arguments: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    environment = dict(os.environ if env is None else env, SYSTEMD_COLORS="0", SYSTEMD_PAGER="cat")
    return subprocess.run(
        ["systemd-analyze", *arguments],
        capture_output=True,
        text=True,
        encoding="utf-8",
        errors="replace",
        env=environment,
        timeout=COMMAND_TIMEOUT_SECONDS,
        check=False,
    )


def exposure(unit: Path, name: str | None = None) -> float:
    """The "Overall exposure level" of `systemd-analyze security --offline=yes` (0 best, 10 worst)."""
    target = str(unit if name is None else unit.parent / name)
    result = systemd_analyze("security", "--offline=yes", target)
    match = re.search(r"Overall exposure level for \S+: (\d+(?:\.\d+)?)", result.stdout)
    assert match, f"no exposure line in:\n{result.stdout}\n{result.stderr}"
    return float(match.group(1))


@requires_systemd_analyze
@pytest.mark.parametrize("unit_name", SYSTEM_UNITS)
def test_system_unit_verifies_clean(unit_name: str, tmp_path: Path) -> None:
    unit = staged(unit_name, tmp_path)

    result = systemd_analyze("verify", str(unit))

    assert (result.returncode, result.stderr) == (0, "")


@requires_systemd_analyze
def test_a_named_instance_of_the_template_verifies_clean(tmp_path: Path) -> None:
    unit = staged("transcribed@.service", tmp_path)

    result = systemd_analyze("verify", str(unit.parent / "transcribed@films.service"))

    assert (result.returncode, result.stderr) == (0, "")


@requires_systemd_analyze
def test_user_unit_verifies_clean_in_a_user_manager(tmp_path: Path) -> None:
    home = tmp_path / "home"
    stub_command(home / ".local" / "bin" / "transcribed")
    runtime = tmp_path / "run"
    runtime.mkdir(mode=0o700)
    unit = tmp_path / "units" / "transcribed.service"
    unit.parent.mkdir()
    shutil.copyfile(USER_UNIT, unit)
    environment = {
        key: value for key, value in os.environ.items() if not key.startswith(("XDG_", "DBUS_"))
    }
    environment.update(HOME=str(home), XDG_RUNTIME_DIR=str(runtime))

    result = systemd_analyze("--user", "verify", str(unit), env=environment)

    assert (result.returncode, result.stderr) == (0, "")


@requires_systemd_analyze
def test_verify_would_catch_a_mistake(tmp_path: Path) -> None:
    """Guards the two tests above: a misspelt key or a missing command does reach stderr."""
    unit = staged("transcribed.service", tmp_path)
    unit.write_text(unit.read_text().replace("ProtectClock=yes", "ProtectClocks=yes"))
    (tmp_path / "bin" / "transcribed").unlink()

    result = systemd_analyze("verify", str(unit))

    assert "ProtectClocks" in result.stderr
    assert "not executable" in result.stderr


@requires_systemd_analyze
@pytest.mark.parametrize(
    ("unit_name", "instance"),
    [
        ("transcribed.service", None),
        ("transcribed@.service", None),
        ("transcribed@.service", "transcribed@films.service"),
    ],
)
def test_system_unit_exposure_is_at_most_one_and_a_half(
    unit_name: str, instance: str | None, tmp_path: Path
) -> None:
    unit = staged(unit_name, tmp_path)

    assert exposure(unit, instance) <= EXPOSURE_LIMIT


@requires_systemd_analyze
def test_the_documented_drop_ins_keep_exposure_at_most_one_and_a_half(tmp_path: Path) -> None:
    """Media owned by another group, a meetings inbox under /home, a NAS share: the header's recipes."""
    unit = staged("transcribed.service", tmp_path)
    unit.write_text(
        unit.read_text()
        + "\n[Service]\nReadWritePaths=/srv/media/films /srv/media/tv\nSupplementaryGroups=media\n"
        "ProtectHome=read-only\nReadWritePaths=/home/alice/Meetings\n"
        "[Unit]\nRequiresMountsFor=/mnt/nas/inbox\n"
    )

    assert systemd_analyze("verify", str(unit)).stderr == ""
    assert exposure(unit) <= EXPOSURE_LIMIT


@pytest.mark.parametrize("unit", [*(SYSTEMD_DIRECTORY / name for name in SYSTEM_UNITS), USER_UNIT])
def test_every_unit_speaks_the_daemons_protocol(unit: Path) -> None:
    assert only(unit, "Type") == "notify"
    assert only(unit, "NotifyAccess") == "main"
    assert only(unit, "ExecReload") == "/bin/kill -HUP $MAINPID"
    assert only(unit, "Restart") == "on-failure"
    assert only(unit, "RestartPreventExitStatus") == str(EX_CONFIG)
    assert int(only(unit, "TimeoutStopSec")) > DRAIN_SECONDS
    assert int(only(unit, "WatchdogSec")) > 0
    assert "@system-service" in values(unit, "SystemCallFilter")


@pytest.mark.parametrize("unit_name", SYSTEM_UNITS)
def test_system_units_give_the_key_as_a_credential_and_the_example_inbox(unit_name: str) -> None:
    unit = SYSTEMD_DIRECTORY / unit_name

    assert only(unit, "LoadCredential") == "gladia-api-key:/etc/transcribed/gladia-api-key"
    assert only(unit, "ConfigurationDirectory") == "transcribed"
    assert "-/srv/inbox" in " ".join(values(unit, "ReadWritePaths")).split()
    assert only(unit, "User") == only(unit, "Group") == "transcribed"
    assert only(unit, "ProtectSystem") == "strict"


def test_the_default_ledger_is_inside_the_state_directory() -> None:
    unit = SYSTEMD_DIRECTORY / "transcribed.service"

    state_directory = Path("/var/lib") / only(unit, "StateDirectory")

    assert LedgerConfig().path.parent == state_directory


def test_each_instance_has_its_own_config_and_state_directory() -> None:
    unit = SYSTEMD_DIRECTORY / "transcribed@.service"

    assert only(unit, "ExecStart") == f"{INSTALLED_COMMAND} run --config /etc/transcribed/%i.toml"
    assert only(unit, "StateDirectory") == "transcribed/%i"
    assert 'path = "/var/lib/transcribed/NAME/ledger.sqlite3"' in unit.read_text()


def test_the_user_unit_runs_the_users_own_command_and_config() -> None:
    assert only(USER_UNIT, "ExecStart") == "%h/.local/bin/transcribed run --config %E/transcribed/config.toml"
    assert only(USER_UNIT, "WantedBy") == "default.target"


def sandbox_lines(unit: Path) -> list[str]:
    """The settings of the sandbox section (from its marker comment to [Install]), comments left out."""
    text = unit.read_text()
    section = text[text.index("# --- Sandbox") : text.index("[Install]")]
    return [line for line in section.splitlines() if line and not line.startswith("#")]


def test_instances_are_sandboxed_exactly_like_the_main_unit() -> None:
    main = sandbox_lines(SYSTEMD_DIRECTORY / "transcribed.service")

    assert main == sandbox_lines(SYSTEMD_DIRECTORY / "transcribed@.service")
    assert len(main) >= 25


@pytest.mark.parametrize("unit", [*(SYSTEMD_DIRECTORY / name for name in SYSTEM_UNITS), USER_UNIT])
def test_every_hardening_line_says_why(unit: Path) -> None:
    lines = unit.read_text().splitlines()
    start = next(index for index, line in enumerate(lines) if line.startswith("# --- Sandbox"))
    end = lines.index("[Install]")
    unexplained = [
        line
        for previous, line in zip(lines[start : end - 1], lines[start + 1 : end], strict=True)
        if line and not line.startswith("#") and not previous.startswith("#")
    ]

    assert unexplained == []


def test_sysusers_entry_creates_the_user_the_units_run_as(tmp_path: Path) -> None:
    sysusers = shutil.which("systemd-sysusers")
    if sysusers is None:
        pytest.skip("systemd-sysusers is not installed (CI installs it: apt-get install systemd)")
    root = tmp_path / "root"
    (root / "etc").mkdir(parents=True)

    result = subprocess.run(
        [sysusers, f"--root={root}", str(SYSTEMD_DIRECTORY / "transcribed.conf")],
        capture_output=True,
        text=True,
        timeout=COMMAND_TIMEOUT_SECONDS,
        check=False,
    )

    assert result.returncode == 0, result.stderr
    entries = [line.split(":") for line in (root / "etc" / "passwd").read_text().splitlines()]
    [user] = [entry for entry in entries if entry[0] == only(SYSTEMD_DIRECTORY / "transcribed.service", "User")]
    assert user[5] == "/var/lib/transcribed"
    assert user[6].endswith("nologin")
    assert "transcribed:" in (root / "etc" / "group").read_text()
