"""outputs/hooks.py with real processes: argv only (never a shell), placeholders, timeouts, failures."""

from __future__ import annotations

import json
import sys
import threading
import time
from pathlib import Path

import pytest
from structlog.testing import capture_logs

from transcribed.outputs.hooks import expand_argv, hook_placeholders, run_hook

RECORD_ARGV = "import json, os, sys; json.dump({'argv': sys.argv[1:], 'env': dict(os.environ)}, open(sys.argv[1], 'w'))"


def recorded(path: Path) -> dict[str, object]:
    return json.loads(path.read_text(encoding="utf-8"))


def test_hostile_names_reach_the_hook_as_plain_arguments(tmp_path: Path) -> None:
    hostile = tmp_path / "x; touch pwned $(touch pwned2) `touch pwned3` {reason} '\" | rm -rf ~.mp3"
    record = tmp_path / "argv.json"
    placeholders = hook_placeholders(hostile, "done", reason="all good", outputs=[hostile.with_suffix(".srt")])
    outcome = run_hook([sys.executable, "-c", RECORD_ARGV, str(record), "{source}", "--state={state}"],
                       placeholders, timeout=30)
    assert outcome.ok, outcome
    assert recorded(record)["argv"] == [str(record), str(hostile), "--state=done"]
    assert not list(tmp_path.glob("pwned*"))


def test_outputs_expand_to_one_argument_per_path_and_roles_to_their_path(tmp_path: Path) -> None:
    source = tmp_path / "talk.mp3"
    srt, txt = tmp_path / "talk.srt", tmp_path / "talk file.txt"
    placeholders = hook_placeholders(source, "done", outputs=[srt, txt], roles={srt: "srt", txt: "txt"})
    argv = ["notify", "{outputs}", "files={outputs}", "{srt}", "{vtt}", '{"text": "{state}"}', "{unknown}"]
    assert expand_argv(argv, placeholders) == [
        "notify", str(srt), str(txt), f"files={srt} {txt}", str(srt), "", '{"text": "done"}', "{unknown}",
    ]


def test_a_failing_hook_is_reported_with_its_exit_status_and_stderr(tmp_path: Path) -> None:
    script = "import sys; sys.stderr.write('x' * 5000 + 'could not reach Plex'); sys.exit(3)"
    with capture_logs() as logs:
        outcome = run_hook([sys.executable, "-c", script], {}, timeout=30)
    assert (outcome.ok, outcome.returncode, outcome.timed_out) == (False, 3, False)
    assert outcome.stderr_tail.endswith("could not reach Plex") and len(outcome.stderr_tail) <= 2000
    failed = [entry for entry in logs if entry["event"] == "hook_failed"]
    assert failed and failed[0]["returncode"] == 3 and failed[0]["log_level"] == "warning"


def test_a_successful_hook_is_logged_as_done() -> None:
    with capture_logs() as logs:
        outcome = run_hook([sys.executable, "-c", "pass"], {}, timeout=30)
    assert outcome.ok and outcome.returncode == 0
    assert [entry["event"] for entry in logs] == ["hook_done"]


@pytest.mark.parametrize("argv", [[], ["/nonexistent/program"], ["{outputs}"]])
def test_a_hook_that_cannot_start_is_an_outcome_not_an_exception(argv: list[str]) -> None:
    outcome = run_hook(argv, {"outputs": []}, timeout=30)
    assert not outcome.ok and outcome.returncode is None and outcome.error


def _alive(pid: int) -> bool:
    try:
        fields = Path(f"/proc/{pid}/stat").read_text(encoding="utf-8").rsplit(")", 1)[1].split()
    except FileNotFoundError:
        return False
    return fields[0] != "Z"  # a zombie is dead, merely not yet reaped by its new parent


def _wait_until(condition: object, deadline_seconds: float = 30.0) -> bool:
    deadline = time.monotonic() + deadline_seconds
    while time.monotonic() < deadline:
        if condition():  # type: ignore[operator]
            return True
        time.sleep(0.05)
    return False


SPAWN_AND_HANG = (
    "import subprocess, sys, time; "
    "child = subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(120)']); "
    "open(sys.argv[1], 'w').write(str(child.pid)); time.sleep(120)"
)


def test_a_hook_past_its_timeout_is_killed_with_its_children(tmp_path: Path) -> None:
    pid_file = tmp_path / "child.pid"
    outcome = run_hook([sys.executable, "-c", SPAWN_AND_HANG, str(pid_file)], {}, timeout=1.0)
    assert outcome.timed_out and outcome.returncode is None and not outcome.ok
    assert _wait_until(pid_file.exists)
    grandchild = int(pid_file.read_text(encoding="utf-8"))
    assert _wait_until(lambda: not _alive(grandchild)), "the hook's child survived the timeout"


def test_setting_stop_ends_a_running_hook(tmp_path: Path) -> None:
    stop = threading.Event()
    pid_file = tmp_path / "child.pid"
    result: list[object] = []

    def run() -> None:
        result.append(run_hook([sys.executable, "-c", SPAWN_AND_HANG, str(pid_file)], {}, timeout=600, stop=stop))

    worker = threading.Thread(target=run)
    worker.start()
    assert _wait_until(pid_file.exists)
    stop.set()
    worker.join(timeout=30)
    assert not worker.is_alive()
    assert getattr(result[0], "timed_out", False)


def test_the_environment_can_be_replaced_so_secrets_stay_out(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GLADIA_API_KEY", "sk_gladia_canary")
    record = tmp_path / "argv.json"
    outcome = run_hook([sys.executable, "-c", RECORD_ARGV, str(record)], {}, timeout=30, env={"LANG": "C.UTF-8"})
    assert outcome.ok
    environment = recorded(record)["env"]
    assert isinstance(environment, dict) and "GLADIA_API_KEY" not in environment
