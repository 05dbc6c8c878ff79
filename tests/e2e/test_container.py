"""The container image end to end (issue 15): built from this checkout, run against the emulator on the host.

The image is built with podman on a Debian base made from Debian's packages (no image registry is reachable
from CI), as /work/shared/CONTAINERS.md describes; the Dockerfile itself is the one users build. `.ci/run`
installs podman, mmdebstrap, runc and uidmap and sets TRANSCRIBED_CONTAINER_TESTS=required, so in CI these
tests fail rather than skip when a tool is missing.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from support import KEY, make_wav, wait_until

from transcribed.emulator import Emulator

REPOSITORY = Path(__file__).resolve().parents[2]
BASE_IMAGE = "localhost/debian:bookworm-slim"
IMAGE = "localhost/transcribed:test"
HOST_CA = Path("/etc/ssl/certs/ca-certificates.crt")
PUID, PGID = 1234, 1234
SECRET = "/run/secrets/gladia_api_key"
# How these machines run containers: runc and cgroupfs, and no raised ulimits (the sandbox may refuse them).
CONTAINERS_CONF = """\
[containers]
default_ulimits = []
[engine]
cgroup_manager = "cgroupfs"
runtime = "runc"
"""
FORMATS = ("txt", "srt", "vtt", "json")

pytestmark = pytest.mark.timeout(900)


class Podman:
    """The podman command with this machine's containers.conf; every container it starts is removed at the end."""

    def __init__(self, conf: Path) -> None:
        self.env = {**os.environ, "CONTAINERS_CONF": str(conf)}
        self.names: list[str] = []

    def __call__(self, *args: str, timeout: float = 120.0, check: bool = True) -> subprocess.CompletedProcess[str]:
        done = subprocess.run(["podman", *args], capture_output=True, text=True, timeout=timeout, env=self.env,
                              check=False)
        if check and done.returncode != 0:
            raise AssertionError(f"podman {' '.join(args)} exited {done.returncode}:\n{done.stderr[-3000:]}")
        return done

    def run(self, *args: str, name: str | None = None) -> str:
        """Start a container in the background (`podman run -d ...`); return its name."""
        name = name or "transcribed-test-" + uuid.uuid4().hex[:10]
        self.names.append(name)
        self("run", "-d", "--name", name, *args)
        return name

    def logs(self, name: str) -> str:
        done = self("logs", name, check=False)
        return done.stdout + done.stderr

    def state(self, name: str) -> dict[str, object]:
        state: dict[str, object] = json.loads(self("inspect", "--format", "{{json .State}}", name).stdout)
        return state

    def remove_all(self) -> None:
        for name in self.names:
            self("rm", "--force", "--time", "0", name, check=False)


def _required() -> bool:
    return os.environ.get("TRANSCRIBED_CONTAINER_TESTS") == "required"


def _missing(reason: str) -> None:
    if _required():
        pytest.fail(f"{reason} (TRANSCRIBED_CONTAINER_TESTS=required)")
    pytest.skip(f"{reason}; .ci/run installs it: apt-get install podman mmdebstrap runc uidmap")


@pytest.fixture(scope="session")
def podman(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Podman]:
    if shutil.which("podman") is None:
        _missing("podman is not installed")
    if os.geteuid() != 0:
        _missing("these tests run rootful podman (they check file owners by uid)")
    conf = tmp_path_factory.mktemp("podman") / "containers.conf"
    conf.write_text(CONTAINERS_CONF)
    runner = Podman(conf)
    yield runner
    runner.remove_all()


@pytest.fixture(scope="session")
def image(podman: Podman, tmp_path_factory: pytest.TempPathFactory) -> str:
    """The image built from this checkout with the README's Dockerfile, on a Debian base made here if needed."""
    if podman("image", "exists", BASE_IMAGE, check=False).returncode != 0:
        if shutil.which("mmdebstrap") is None:
            _missing("mmdebstrap is not installed (it makes the Debian base image)")
        tar = tmp_path_factory.mktemp("base") / "base.tar"
        subprocess.run(["mmdebstrap", "--quiet", "--variant=minbase", "--format=tar", "bookworm", str(tar)],
                       check=True, capture_output=True, timeout=600)
        podman("import", str(tar), BASE_IMAGE, timeout=300)
        tar.unlink()
    # --format docker keeps the HEALTHCHECK (the OCI format has none). The host's CA bundle goes where Debian's
    # ca-certificates collects extra CAs, so pip inside the build trusts this machine's package proxy.
    args = ["build", "--isolation=chroot", "--format", "docker", "--build-arg", f"BASE_IMAGE={BASE_IMAGE}",
            "--tag", IMAGE]
    if HOST_CA.exists():
        args += ["--volume", f"{HOST_CA}:/usr/local/share/ca-certificates/host-ca.crt:ro"]
    podman(*args, str(REPOSITORY), timeout=900)
    # Each build leaves the image it replaced (and its build stage) untagged: drop those of earlier runs, keep
    # this run's as the next build's cache, so a machine that runs the suite often does not fill its disk.
    podman("image", "prune", "--force", "--filter", "until=10m", check=False)
    return IMAGE


@pytest.fixture
def folders(tmp_path: Path) -> tuple[Path, Path, Path]:
    """(config folder, media folder owned by PUID:PGID, key file readable only by PUID)."""
    config, media = tmp_path / "config", tmp_path / "media"
    config.mkdir()
    media.mkdir()
    os.chown(media, PUID, PGID)
    key = tmp_path / "gladia_api_key.txt"
    key.write_text(KEY + "\n")
    key.chmod(0o600)
    os.chown(key, PUID, PGID)
    return config, media, key


def drop_wav(media: Path, name: str, tone: float) -> Path:
    """Move a small WAV into the inbox at once (as a finished download arrives)."""
    staged = make_wav(media.parent / ("staging-" + name), seconds=1.0, tone=tone)
    target = media / name
    os.replace(staged, target)
    return target


def transcribed(source: Path) -> bool:
    return all(source.with_suffix("." + fmt).exists() for fmt in FORMATS)


def owners(path: Path) -> tuple[int, int]:
    info = path.stat()
    return info.st_uid, info.st_gid


def daemon_config(config: Path, emulator: Emulator) -> None:
    config.joinpath("config.toml").write_text(f"""\
[gladia]
base_url = "{emulator.base_url}"
api_key_file = "{SECRET}"
poll_initial_seconds = 0.2
poll_max_seconds = 1.0

[inbox]
paths = ["/media"]
settle_seconds = 0.5

[ledger]
path = "/config/ledger.sqlite3"

[log]
format = "json"
""")


def test_the_image_runs_as_puid_stops_cleanly_and_resumes_without_paying_twice(
        podman: Podman, image: str, emulator: Emulator, folders: tuple[Path, Path, Path]) -> None:
    config, media, key = folders
    daemon_config(config, emulator)
    name = podman.run("--network=host", "--env", f"PUID={PUID}", "--env", f"PGID={PGID}",
                      "--volume", f"{config}:/config", "--volume", f"{media}:/media",
                      "--volume", f"{key}:{SECRET}:ro", image)
    assert podman("exec", name, "cat", "/proc/1/comm").stdout.strip() == "tini"   # reaps ffmpeg and hooks

    first = drop_wav(media, "first.wav", tone=330)
    wait_until(lambda: transcribed(first), timeout=120, message="the first transcript")
    for fmt in FORMATS:
        assert owners(first.with_suffix("." + fmt)) == (PUID, PGID)
    ledger = config / "ledger.sqlite3"
    assert owners(ledger) == (PUID, PGID)
    assert all(owners(path) == (PUID, PGID) for path in config.iterdir())
    assert emulator.counters()["jobs_created"] == 1

    health = podman("healthcheck", "run", name, check=False)
    assert health.returncode == 0, health.stdout + health.stderr
    said = podman("exec", name, "transcribed-healthcheck").stdout
    assert said.startswith("healthy: running") and "done 1" in said

    # `docker stop`: SIGTERM, then SIGKILL after 15 s; exit code 0 means the daemon drained within them.
    podman("stop", "--time", "15", name, timeout=60)
    assert podman.state(name)["ExitCode"] == 0
    assert '"event": "daemon_stopped"' in podman.logs(name)

    # The same container (so the same /config) again: the finished file is not paid for again. A file
    # dropped after the restart is transcribed, so the start-up scan has been and gone by then.
    podman("start", name)
    second = drop_wav(media, "second.wav", tone=550)
    wait_until(lambda: transcribed(second), timeout=120, message="the second transcript")
    assert emulator.counters()["jobs_created"] == 2
    assert sorted(job["file"]["filename"] for job in emulator.jobs()) == ["first.wav", "second.wav"]  # type: ignore[index]
    health = podman("healthcheck", "run", name, check=False)
    assert health.returncode == 0, health.stdout + health.stderr
    podman("stop", "--time", "15", name, timeout=60)
    assert podman.state(name)["ExitCode"] == 0
    assert KEY not in podman.logs(name)


def test_the_health_check_fails_when_the_daemon_is_not_running(
        podman: Podman, image: str, folders: tuple[Path, Path, Path]) -> None:
    config, _, _ = folders
    config.joinpath("config.toml").write_text('[ledger]\npath = "/config/ledger.sqlite3"\n')
    name = podman.run("--volume", f"{config}:/config", "--entrypoint", "sleep", image, "600")
    said = podman("exec", name, "transcribed-healthcheck", check=False)
    assert said.returncode == 1
    assert said.stdout == "unhealthy: the daemon is not running\n"


def test_a_first_start_writes_a_starter_config_that_runs_with_the_emulator(
        podman: Podman, image: str, tmp_path: Path) -> None:
    """`docker compose --profile try up try`: an empty /config, a media folder of root's, no key: the starter
    config is written and said so, and the daemon runs on it with the built-in emulator."""
    config, media = tmp_path / "config", tmp_path / "media"
    config.mkdir()
    media.mkdir()
    (media / "README.txt").write_text("not media\n")
    name = podman.run("--env", f"PUID={PUID}", "--env", f"PGID={PGID}", "--volume", f"{config}:/config",
                      "--volume", f"{media}:/media", image, "transcribed", "run", "--emulator", "--config",
                      "/config/config.toml")
    starter = config / "config.toml"
    wait_until(starter.exists, timeout=60, message="the starter config")
    text = starter.read_text()
    assert 'paths = ["/media"]' in text and 'path = "/config/ledger.sqlite3"' in text
    assert '# api_key_file = "/run/secrets/gladia_api_key"' in text     # no secret mounted: left commented
    assert owners(starter) == (PUID, PGID)
    wait_until(lambda: "starter" in podman.logs(name), timeout=30, message="the starter announced")
    wait_until(lambda: owners(media) == (PUID, PGID), timeout=30, message="the media folder given to PUID")
    assert owners(media / "README.txt") == (0, 0)           # the folder itself, not what is in it
    wait_until(lambda: "gave the folder (not its contents)" in podman.logs(name), timeout=30, message="said so")
    wait_until(lambda: '"event": "watch_started"' in podman.logs(name), timeout=60, message="the inbox watched")
    source = media / "hello.wav"
    shutil.copyfile(make_wav(tmp_path / "hello.wav", seconds=1.0), source)    # as `cp` writes it
    wait_until(lambda: transcribed(source), timeout=120, message="an emulated transcript")
    assert owners(source.with_suffix(".txt")) == (PUID, PGID)
    podman("stop", "--time", "15", name, timeout=60)
    assert podman.state(name)["ExitCode"] == 0

    checked = podman("run", "--rm", "--volume", f"{config}:/config", image, "transcribed", "config", "check")
    assert checked.stdout.startswith("config OK: /config/config.toml")


def test_a_first_start_with_the_secret_reads_the_key_from_it(
        podman: Podman, image: str, folders: tuple[Path, Path, Path]) -> None:
    config, _, key = folders
    checked = podman("run", "--rm", "--env", f"PUID={PUID}", "--env", f"PGID={PGID}", "--volume",
                     f"{config}:/config", "--volume", f"{key}:{SECRET}:ro", image, "transcribed", "config", "check")
    assert "starter" in checked.stderr
    assert f'\napi_key_file = "{SECRET}"' in (config / "config.toml").read_text()
    assert "API key set" in checked.stdout
    refused = podman("run", "--rm", "--env", "PUID=4321", "--volume", f"{config}:/config", "--volume",
                     f"{key}:{SECRET}:ro", image, "transcribed", "config", "check", check=False)
    assert refused.returncode == 78
    assert f"{SECRET} cannot be read by PUID 4321" in refused.stderr


def test_without_a_key_the_daemon_says_so_and_exits_78(podman: Podman, image: str, tmp_path: Path) -> None:
    done = podman("run", "--rm", "--volume", f"{tmp_path}:/config", image, check=False, timeout=120)
    assert done.returncode == 78
    assert "no Gladia API key" in done.stderr
