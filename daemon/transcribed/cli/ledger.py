"""Operator commands over the ledger: status, retry, forget, explain, render.

They work while the daemon runs (the ledger is SQLite in WAL mode; the daemon picks changes up within
seconds) and when it does not.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from datetime import datetime
from pathlib import Path
from typing import Any

from transcribed import logs
from transcribed.cli import shell
from transcribed.config import Config
from transcribed.inbox.filters import NameFilter
from transcribed.inbox.links import shown as shown_url
from transcribed.ledger import Entry, Ledger, LedgerError, Usage
from transcribed.pipeline import budget as budgets
from transcribed.pipeline.keycheck import read_pause

IN_FLIGHT = ("uploading", "uploaded", "submitted")


def register(commands: Any, common: argparse.ArgumentParser) -> None:
    """Add status, retry, forget, explain and render."""
    status = commands.add_parser("status", parents=[common], help="what the daemon is doing, at a glance",
                                 description="Show whether the daemon runs, counts by state, what is in flight, "
                                             "failures with their reasons and the last error from Gladia.")
    status.add_argument("--json", action="store_true", help="machine-readable output")
    status.set_defaults(handler=cmd_status)
    retry = commands.add_parser("retry", parents=[common], help="try failed or skipped files again",
                                description="Put failed (or skipped) files back in the queue. A recorded Gladia "
                                            "job is polled again, never paid twice.")
    retry.add_argument("paths", nargs="*", type=Path, metavar="PATH")
    retry.add_argument("--failed", action="store_true", help="every failed file")
    retry.set_defaults(handler=cmd_retry)
    forget = commands.add_parser("forget", parents=[common], help="drop a file from the ledger",
                                 description="Forget PATH: seen again (after a restart, or once it changes), it is "
                                             "new work and will be transcribed (and paid) again.")
    forget.add_argument("paths", nargs="+", type=Path, metavar="PATH")
    forget.set_defaults(handler=cmd_forget)
    explain = commands.add_parser("explain", parents=[common], help="why a file was or was not transcribed",
                                  description="Say why PATH was or was not transcribed, and what happens next.")
    explain.add_argument("path", type=Path, metavar="PATH")
    explain.set_defaults(handler=cmd_explain)
    render = commands.add_parser("render", parents=[common], help="re-write outputs from stored results",
                                 description="Re-render the outputs of finished files (all, or PATH...) from the "
                                             "stored Gladia results with the current [output] settings. No new job.")
    render.add_argument("paths", nargs="*", type=Path, metavar="PATH")
    render.set_defaults(handler=cmd_render)


def _open(loaded: Config, *, read_only: bool) -> Ledger | None:
    path = loaded.ledger.path
    if not path.exists():
        return None
    return Ledger.open(path, read_only=read_only)


def _open_for_change(loaded: Config) -> Ledger | None:
    """The ledger, writable (the daemon may run: SQLite in WAL mode); None, said on stderr, when there is none."""
    ledger = _open(loaded, read_only=False)
    if ledger is None:
        print(f"transcribed: nothing recorded yet (no ledger at {loaded.ledger.path})", file=sys.stderr)
    return ledger


def _name(entry: Entry) -> str:
    """How a command's output names an entry: its first path (one line), else its content key."""
    return logs.one_line(entry.paths[0] if entry.paths else entry.key)


def _entry_json(entry: Entry) -> dict[str, Any]:
    return {"path": entry.paths[0] if entry.paths else None, "paths": list(entry.paths), "state": entry.state,
            "key": entry.key, "job_id": entry.job_id, "reason": entry.reason, "attempts": entry.attempts,
            "job_attempts": entry.job_attempts, "next_retry_at": entry.next_retry_at,
            "updated_at": entry.updated_at}


def cmd_status(args: argparse.Namespace) -> int:
    from transcribed.cli.startup import daemon_running

    loaded = shell.load_config(args)
    pid = daemon_running(loaded.ledger.path)
    try:
        ledger = _open(loaded, read_only=True)
    except LedgerError as exc:
        print(f"transcribed: cannot read the ledger {loaded.ledger.path}: {exc}", file=sys.stderr)
        return shell.EX_FAILED
    report: dict[str, Any] = {"running": pid is not None, "pid": pid if pid and pid > 0 else None,
                              "ledger": str(loaded.ledger.path), "inboxes": [str(p) for p in loaded.inbox.paths],
                              "counts": {}, "in_flight": [], "failures": [], "retrying": [], "skipped": [],
                              "last_api_error": None, "paused": None, "waiting": []}
    budget = budgets.Budget(loaded.budget, shell.budget_clock(os.environ)[0])
    report["budget"] = budget.report(lambda day, month: Usage(0.0, 0.0, 0.0, 0.0, 0))
    if ledger is not None:
        with ledger:
            counts = ledger.counts()
            for state, held in ledger.held_states(budgets.HOLD_KIND).items():
                counts[state] -= held
                counts["waiting"] = counts.get("waiting", 0) + held
            report["counts"] = counts
            report["budget"] = budget.report(ledger.usage)
            for key, reason in ledger.held(budgets.HOLD_KIND).items():
                held_entry = ledger.get(key)
                if held_entry is not None:
                    report["waiting"].append({**_entry_json(held_entry), "reason": reason})
            report["in_flight"] = [_entry_json(e) for e in ledger.in_flight()]
            for entry in ledger.failures(limit=50):
                (report["failures"] if entry.next_retry_at is None else report["retrying"]).append(_entry_json(entry))
            report["skipped"] = [_entry_json(e) for e in ledger.skipped(limit=50)]
            report["last_api_error"] = ledger.get_meta("last_api_error") or None
            pause = read_pause(ledger) if pid else None
            report["paused"] = pause.as_json() if pause else None
            if loaded.integrations.enabled:
                report["integrations"] = {name: int(ledger.get_meta(f"integrations_{name}") or 0)
                                          for name in ("from_ledger", "new_jobs", "webhook_files")}
    if args.json:
        print(json.dumps(report, indent=2))
        return shell.EX_OK
    _print_status(report)
    return shell.EX_OK


def _print_status(report: dict[str, Any]) -> None:
    running = f"running (pid {report['pid']})" if report["running"] else "not running"
    print(f"transcribed: {running}")
    print(f"  ledger:  {report['ledger']}")
    print(f"  inboxes: {', '.join(report['inboxes'])}")
    counts: dict[str, int] = report["counts"]
    if not counts:
        print("  nothing recorded yet")
    else:
        order = ("done", "waiting", "discovered", "uploading", "uploaded", "submitted", "failed", "skipped")
        print("  " + " · ".join(f"{name} {counts[name]}" for name in order if counts.get(name)))
    if report["paused"]:
        print(f"  {report['paused']['message']}")
    if report.get("integrations"):
        served = report["integrations"]
        print(f"  integrations: {served['from_ledger'] + served['new_jobs']} requests answered "
              f"({served['from_ledger']} from the ledger, {served['new_jobs']} by a new job), "
              f"{served['webhook_files']} files named by webhooks")
    for line in budgets.describe(report["budget"]):
        print(f"  {line}")
    sections = (("waiting for the audio budget", "waiting"), ("in flight", "in_flight"), ("retrying", "retrying"),
                ("failed", "failures"),
                ("skipped (`transcribed retry PATH` sends one anyway)", "skipped"))
    for title, name in sections:
        items = report[name]
        if items:
            print(f"{title}:")
            for item in items[:20]:
                detail = item["reason"] or (f"job {item['job_id']}" if item["job_id"] else item["state"])
                when = ""
                if item["next_retry_at"]:
                    when = f" (next try {datetime.fromtimestamp(item['next_retry_at']).strftime('%H:%M:%S')})"
                print(f"  {logs.one_line(str(item['path']))}: {logs.one_line(str(detail))}{when}")
            more = counts.get("skipped", 0) if name == "skipped" else len(items)
            if more > 20:
                print(f"  ... and {more - 20} more (transcribed status --json)")
    if report["last_api_error"]:
        print(f"last Gladia error: {logs.one_line(report['last_api_error'])}")


def cmd_retry(args: argparse.Namespace) -> int:
    loaded = shell.load_config(args)
    if not args.paths and not args.failed:
        print("transcribed retry: name PATH... or --failed", file=sys.stderr)
        return shell.EX_USAGE
    ledger = _open_for_change(loaded)
    if ledger is None:
        return shell.EX_FAILED
    status = shell.EX_OK
    with ledger:
        entries: list[Entry] = []
        if args.failed:
            entries += [e for e in ledger.failures(limit=1_000_000) if e.state == "failed"]
        for path in args.paths:
            entry = ledger.entry_for_path(str(path.absolute()))
            if entry is None:
                print(f"{logs.one_line(str(path))}: not in the ledger", file=sys.stderr)
                status = shell.EX_FAILED
            else:
                entries.append(entry)
        for entry in entries:
            try:
                ledger.reset_for_retry(entry.key)
            except LedgerError as exc:
                print(f"{_name(entry)}: {exc}", file=sys.stderr)
                status = shell.EX_FAILED
                continue
            anyway = " (the [skip] rules no longer apply to it)" if entry.state == "skipped" else ""
            print(f"{_name(entry)}: queued again{anyway}")
    return status


def cmd_forget(args: argparse.Namespace) -> int:
    loaded = shell.load_config(args)
    ledger = _open_for_change(loaded)
    if ledger is None:
        return shell.EX_FAILED
    status = shell.EX_OK
    with ledger:
        for path in args.paths:
            if ledger.forget_path(str(path.absolute())):
                print(f"{logs.one_line(str(path))}: forgotten")
            else:
                print(f"{logs.one_line(str(path))}: not in the ledger", file=sys.stderr)
                status = shell.EX_FAILED
    return status


def cmd_explain(args: argparse.Namespace) -> int:
    loaded = shell.load_config(args)
    path: Path = args.path.absolute()
    for line in explain(loaded, path):
        print(logs.one_line(line))
    return shell.EX_OK


def explain(loaded: Config, path: Path) -> list[str]:
    """Return the lines that say why `path` was or was not transcribed, what happens next, and (for a file
    inside an inbox) its effective per-folder settings and where each came from."""
    from transcribed.inbox.folders import FolderSettings

    lines = _explain_state(loaded, path)
    if not any(path.is_relative_to(root) for root in loaded.inbox.paths) or path.is_dir():
        return lines
    effective = FolderSettings(loaded).for_path(path)
    if effective.problems:
        if lines[-1].startswith("  not seen yet"):
            lines.pop()
        lines.append("  its folder settings are invalid: it waits (never sent with settings you did not mean) "
                     "and goes once they are fixed:")
        lines += [f"    {problem}" for problem in effective.problems]
    files = ", ".join(map(str, effective.files)) or "none"
    lines.append(f"  effective settings (main config, then the folders' .transcribed.toml: {files}):")
    lines += [f"    {line}" for line in effective.describe()]
    return lines


def _explain_state(loaded: Config, path: Path) -> list[str]:
    lines = [f"{path}:"]
    ledger = None
    try:
        ledger = _open(loaded, read_only=True)
    except LedgerError as exc:
        lines.append(f"  the ledger cannot be read: {exc}")
    entry = ledger.entry_for_path(str(path)) if ledger else None
    if entry is not None:
        assert ledger is not None
        lines += _explain_entry(entry, ledger, str(path))
        if entry.state not in ("done", "skipped") and (entry.state != "failed" or entry.next_retry_at):
            lines += _explain_pause(loaded, ledger)
        ledger.close()
        return lines
    if ledger is not None:
        ledger.close()
    root = next((r for r in loaded.inbox.paths if path.is_relative_to(r)), None)
    if root is None:
        return [*lines, f"  not inside any inbox ({', '.join(map(str, loaded.inbox.paths))}): it will not be taken"]
    if not path.exists():
        return [*lines, "  does not exist, and the ledger has no record of it"]
    if path.is_dir():
        return [*lines, "  is a folder: only the media files inside it are taken"]
    names = NameFilter(loaded.inbox.include, loaded.inbox.exclude)
    relative = path.relative_to(root).as_posix()
    reason = names.file_reason(path.name, relative)
    if reason is not None:
        return [*lines, f"  ignored: {reason} (see inbox.include / inbox.exclude)"]
    for parent in path.relative_to(root).parents:
        folder = root / parent
        if (folder / ".transcribed-ignore").exists():
            return [*lines, f"  ignored: {folder} holds .transcribed-ignore"]
        if parent.name and names.directory_reason(parent.name) is not None:
            return [*lines, f"  ignored: inside {folder} ({names.directory_reason(parent.name)})"]
    if not loaded.inbox.recursive and path.parent != root:
        return [*lines, "  ignored: in a sub-folder and inbox.recursive = false"]
    if not path.is_file():
        return [*lines, "  not a regular file (FIFO, socket or device): never read"]
    age = time.time() - path.stat().st_mtime
    if age < loaded.inbox.settle_seconds:
        return [*lines, f"  still settling: taken once it has been quiet for {loaded.inbox.settle_seconds:g} s"]
    return [*lines, "  not seen yet: a running daemon takes it at the next event or rescan "
                    f"(every {loaded.inbox.rescan_seconds:g} s); `transcribed once` takes it now"]


def _explain_pause(loaded: Config, ledger: Ledger) -> list[str]:
    """The line that says the running daemon is paused (Gladia refused the key), if it is."""
    from transcribed.cli.startup import daemon_running

    pause = read_pause(ledger) if daemon_running(loaded.ledger.path) else None
    if pause is None:
        return []
    return [f"  {pause.describe()} (this file waits; it is not failed for it)"]


def _explain_entry(entry: Entry, ledger: Ledger, shown: str) -> list[str]:
    when = datetime.fromtimestamp(entry.updated_at).strftime("%Y-%m-%d %H:%M:%S")
    lines = [f"  content {entry.key[:23]}…, {entry.size} bytes; state {entry.state} since {when}"]
    others = [path for path in entry.paths if path != shown]
    if others:
        lines.append(f"  the same content was also seen at: {', '.join(others[:3])}")
    if entry.key.startswith("url:") and entry.audio_url:
        lines.append(f"  a link file: Gladia fetches {shown_url(entry.audio_url)} (nothing is uploaded)")
    if entry.job_id:
        lines.append(f"  Gladia job {entry.job_id} (jobs created for it: {entry.job_attempts})")
    held = ledger.hold_of(entry.key)
    if held is not None:
        lines.append(f"  {held}")
        lines.append("  next: it goes when the next budget period starts (local midnight, or the 1st of the month "
                     "for the monthly budget), or at once after a reload that raises the budget")
    elif entry.state == "done":
        lines.append("  transcribed; outputs:")
        lines += [f"    {p}" for p in sorted(entry.outputs)]
        lines.append("  next: nothing (a changed file is new content; `transcribed render` re-writes outputs)")
    elif entry.state == "failed" and entry.next_retry_at is None:
        lines.append(f"  failed: {entry.reason}")
        lines.append("  next: nothing until `transcribed retry PATH` (a recorded job is polled, not paid again)")
    elif entry.state == "failed":
        at = datetime.fromtimestamp(entry.next_retry_at or 0).strftime("%H:%M:%S")
        lines.append(f"  retrying after a passing error ({entry.attempts} so far): {entry.reason}")
        lines.append(f"  next: another try at {at}")
    elif entry.state == "skipped":
        lines.append(f"  skipped: {entry.reason}")
        lines.append("  next: nothing (`transcribed retry PATH` to try anyway)")
    else:
        lines.append(f"  in progress ({entry.state}); the daemon carries it on, resuming after any restart")
    for output, reason in ledger.conflicts(entry.key):
        lines.append(f"  output not written: {output}: {reason}")
    return lines


def cmd_render(args: argparse.Namespace) -> int:
    from transcribed.inbox.folders import FolderSettings
    from transcribed.pipeline.publishing import publish_outputs

    loaded = shell.load_config(args)
    folders = FolderSettings(loaded)
    ledger = _open_for_change(loaded)
    if ledger is None:
        return shell.EX_FAILED
    status = shell.EX_OK
    with ledger:
        entries: list[Entry | None] = []
        if args.paths:
            entries = [ledger.entry_for_path(str(p.absolute())) for p in args.paths]
        else:
            entries = list(ledger.done_entries())
        for wanted, entry in zip(args.paths or [None] * len(entries), entries, strict=True):
            if entry is None or entry.state != "done":
                print(f"{logs.one_line(str(wanted))}: not transcribed yet; nothing to render", file=sys.stderr)
                status = shell.EX_FAILED
                continue
            try:
                written = publish_outputs(ledger, loaded, entry.key, folders=folders)
            except LedgerError as exc:   # a damaged page of stored results (not checked at start-up)
                print(f"{_name(entry)}: its stored Gladia result "
                      f"cannot be read ({exc})", file=sys.stderr)
                status = shell.EX_FAILED
                continue
            if written is None:
                print(f"{_name(entry)}: no stored Gladia result "
                      "(adopted from outputs without a .json?); nothing to render", file=sys.stderr)
                status = shell.EX_FAILED
                continue
            for output in written:
                print(logs.one_line(output))
    return status
